// --autotune limit, the proxy-worker side: one place of the scoreboard's
// AppLimit per request talking to the app. Every proxy worker takes places
// from the same counter with a compare-exchange that never passes the
// limit the master writes, so the limit holds across workers without a
// lock. No I/O: shared memory only.
#ifndef FORKD_SERVER_PROXY_SHARED_LIMIT_H_
#define FORKD_SERVER_PROXY_SHARED_LIMIT_H_

#include <atomic>
#include <cstdint>

#include "server/scoreboard/scoreboard.h"

namespace forkd::proxy {

class SharedLimit {
 public:
  // `limit` is the scoreboard's AppLimit; `held` the worker's own
  // Slot::limit_held (the master gives those places back if the worker
  // dies holding them); it may be null in tests. Both must outlive this.
  SharedLimit(scoreboard::AppLimit* limit, std::atomic<uint32_t>* held);

  // Takes one place: true when fewer than the limit were in flight (or the
  // limit is 0, off). The limit is re-read on every attempt: the master
  // lowers it live, and places taken before stay until given back. Any
  // thread.
  bool TryAcquire();
  // Gives one place back; exactly once per successful TryAcquire. Any
  // thread.
  void Release();

  uint32_t in_flight() const;
  uint32_t limit() const;

 private:
  scoreboard::AppLimit* limit_;
  std::atomic<uint32_t>* held_;
};

}  // namespace forkd::proxy

#endif  // FORKD_SERVER_PROXY_SHARED_LIMIT_H_

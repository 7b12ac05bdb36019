// The line for the app in the gthread and sync classes: at most `capacity`
// requests talk to the app at once (--threads, 1 for sync), HTTP/1.1
// requests and HTTP/2 streams alike; the others wait in FIFO order instead
// of being refused, and each one is handed the next free slot.
#ifndef FORKD_SERVER_PROXY_ADMISSION_H_
#define FORKD_SERVER_PROXY_ADMISSION_H_

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "server/proxy/error_response.h"

namespace forkd::proxy {

class ProxySession;
struct SessionContext;

// Why a new request is answered by forkd instead of going to the app.
struct Refusal {
  Failure failure;
  std::string detail;
};

// The admission rules every new request passes before it counts as in
// flight, whatever its client protocol (an HTTP/1.1 request, an HTTP/2
// stream) and its app protocol (HTTP/1.1, the h2c bridge). Two steps, so
// a caller can put its own rule between them in the order it has always
// had. Any thread.
//
// A drained server (admin Drain) refuses new requests (503); a worker that
// is stopping serves what reached it (its answers say it closes).
std::optional<Refusal> RefuseWhileDraining(const SessionContext& ctx);
// The async class's cap on requests in flight in the worker (503 past it).
std::optional<Refusal> RefuseOverInFlightCap(const SessionContext& ctx);

class Admission {
 public:
  explicit Admission(uint32_t capacity) : capacity_(capacity) {}

  // The calling thread's wake eventfd (-1: none): a slot handed to a
  // request this thread queued is announced there by writing 1 to it.
  static void SetThreadWakeFd(int fd);

  // True when `s` may talk to the app now: a slot was free with nobody in
  // line, or one was handed to it while it waited. Else `s` joins the line
  // (once) and must call again when woken (or later). Any thread.
  bool TryEnter(ProxySession* s);
  // `s` is done with the app (`entered`: its TryEnter returned true), or
  // leaves the line. Frees its slot for the next in line. Any thread.
  void Leave(ProxySession* s, bool entered);
  // Sessions handed a slot whose wake fd is `wake_fd`, not yet entered: the
  // driver on that thread drives them (they are still in the line, so
  // alive). Any thread.
  std::vector<ProxySession*> Granted(int wake_fd);

  // Live resize (--threads): growing hands slots to the line at once.
  void SetCapacity(uint32_t capacity);
  uint32_t in_use();

 private:
  struct Waiter {
    ProxySession* session;
    int wake_fd;
    bool granted;
  };
  void GrantLocked();

  std::mutex mu_;
  uint32_t capacity_;
  uint32_t used_ = 0;  // entered + granted
  std::deque<Waiter> line_;
};

}  // namespace forkd::proxy

#endif  // FORKD_SERVER_PROXY_ADMISSION_H_

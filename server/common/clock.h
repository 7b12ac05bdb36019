// A monotonic clock the request path reads through, so unit tests can drive
// time by hand. The default reads the loop clock (loop_clock.h).
#ifndef FORKD_SERVER_COMMON_CLOCK_H_
#define FORKD_SERVER_COMMON_CLOCK_H_

#include <cstdint>

#include "server/common/loop_clock.h"

namespace forkd {

class Clock {
 public:
  virtual ~Clock() = default;
  // CLOCK_MONOTONIC-like time in nanoseconds; never goes back.
  virtual int64_t NowNs() const = 0;
  int64_t NowMs() const { return NowNs() / 1000000; }
};

// loop_clock::NowNs(): the event loop's instant of the current batch, or
// the real clock on threads without a loop clock.
class LoopClock final : public Clock {
 public:
  int64_t NowNs() const override { return loop_clock::NowNs(); }
  // The one instance; stateless, any thread.
  static const Clock* Get() {
    static const LoopClock clock;
    return &clock;
  }
};

}  // namespace forkd

#endif  // FORKD_SERVER_COMMON_CLOCK_H_

// The time an event loop works with. An event loop reads the clock once
// per batch of events and everything that handles the batch uses that
// instant, as nginx does (ngx_time_update): a request costs several clock
// reads otherwise (start, upstream start and end, deadlines), each a vDSO
// call that some VMs turn into a trap. Threads that never refresh the loop
// clock (gthread and sync threads, the master) read the real clock.
#ifndef FORKD_SERVER_COMMON_LOOP_CLOCK_H_
#define FORKD_SERVER_COMMON_LOOP_CLOCK_H_

#include <cstdint>
#include <limits>

namespace forkd::loop_clock {

// A deadline that never comes: std::min with it changes nothing. Loops and
// sessions use it for "no deadline of this kind now".
inline constexpr int64_t kNoDeadlineMs = std::numeric_limits<int64_t>::max();

// Reads CLOCK_MONOTONIC into this thread's loop time and makes NowNs() and
// NowMs() return it until the next Refresh(). Called by an event loop after
// each wait.
void Refresh();

// CLOCK_MONOTONIC in nanoseconds / milliseconds: this thread's loop time
// when it ran Refresh(), else the clock read now.
int64_t NowNs();
int64_t NowMs();

}  // namespace forkd::loop_clock

#endif  // FORKD_SERVER_COMMON_LOOP_CLOCK_H_

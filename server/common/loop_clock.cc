#include "server/common/loop_clock.h"

#include <time.h>

namespace forkd::loop_clock {
namespace {

// 0: this thread runs no loop that refreshes the clock.
thread_local int64_t loop_ns = 0;

int64_t ReadNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace

void Refresh() { loop_ns = ReadNs(); }

int64_t NowNs() { return loop_ns != 0 ? loop_ns : ReadNs(); }

int64_t NowMs() { return NowNs() / 1000000; }

}  // namespace forkd::loop_clock

// What the files of the Arbiter class share and nothing else should: the
// relaxed loads and stores of scoreboard fields, and unit conversions. The
// class is split by concern: arbiter.cc (construction, start, the loop),
// arbiter_commands.cc (signals, commands, stop), arbiter_supervision.cc
// (spawn, watch, reap), arbiter_autotune.cc, arbiter_snapshot.cc.
#ifndef FORKD_SERVER_ARBITER_ARBITER_INTERNAL_H_
#define FORKD_SERVER_ARBITER_ARBITER_INTERNAL_H_

#include <atomic>
#include <cstdint>

#include "server/scoreboard/scoreboard.h"

namespace forkd::arbiter::internal {

inline int64_t SecondsToMs(double s) {
  return static_cast<int64_t>(s * 1000.0);
}

template <typename T>
T Load(const std::atomic<T>& a) {
  return a.load(std::memory_order_relaxed);
}

template <typename T>
void Store(std::atomic<T>& a, T v) {
  a.store(v, std::memory_order_relaxed);
}

inline scoreboard::WorkerState StateOf(const scoreboard::Slot& slot) {
  return static_cast<scoreboard::WorkerState>(Load(slot.state));
}

}  // namespace forkd::arbiter::internal

// Only the Arbiter's own files include this header: the short names are
// theirs.
namespace forkd::arbiter {
using internal::Load;
using internal::SecondsToMs;
using internal::StateOf;
using internal::Store;
using scoreboard::WorkerState;
}  // namespace forkd::arbiter

#endif  // FORKD_SERVER_ARBITER_ARBITER_INTERNAL_H_

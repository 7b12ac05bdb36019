#include "server/upstream/app_router.h"

#include <limits>

namespace forkd::upstream {
namespace {

using scoreboard::AppSlot;
using scoreboard::AppState;

bool IsReady(const AppSlot& s) {
  return static_cast<AppState>(s.state.load(std::memory_order_acquire)) ==
         AppState::kReady;
}

}  // namespace

AppRouter::AppRouter(scoreboard::AppSlot* slots, uint32_t count,
                     std::function<int64_t()> now_ms)
    : slots_(slots),
      count_(slots == nullptr ? 0 : count),
      now_ms_(std::move(now_ms)) {}

bool AppRouter::ReserveSlot(uint32_t i) {
  AppSlot& s = slots_[i];
  uint32_t cur = s.in_flight.load(std::memory_order_relaxed);
  while (true) {
    // The cap is re-read on every attempt: the master may lower it live.
    if (cur >= s.cap.load(std::memory_order_relaxed)) return false;
    if (s.in_flight.compare_exchange_weak(cur, cur + 1,
                                          std::memory_order_acq_rel,
                                          std::memory_order_relaxed)) {
      break;
    }
  }
  if (cur == 0) {
    s.last_progress_ms.store(now_ms_(), std::memory_order_relaxed);
  }
  return true;
}

std::optional<AppReservation> AppRouter::TryReserve(
    const AppReservation* avoid) {
  auto avoided = [avoid](uint32_t i, const AppSlot& s) {
    return avoid != nullptr && avoid->slot == i &&
           s.incarnation.load(std::memory_order_acquire) == avoid->incarnation;
  };
  if (count_ == 0) return std::nullopt;
  // The ticket picks among the least-loaded ready slots, not a starting
  // index into all slots: capacity is far above the processes in use, and a
  // start past the last used slot would wrap to slot 0 nearly every time.
  const uint32_t ticket = next_.fetch_add(1, std::memory_order_relaxed);
  // A few rounds: another worker may take the chosen slot's last place
  // between the scan and the compare-exchange; then the next best is tried.
  for (int attempt = 0; attempt < 4; ++attempt) {
    uint32_t best_load = std::numeric_limits<uint32_t>::max();
    uint32_t ties = 0;
    for (uint32_t i = 0; i < count_; ++i) {
      const AppSlot& s = slots_[i];
      if (!IsReady(s) || avoided(i, s)) continue;
      const uint32_t load = s.in_flight.load(std::memory_order_relaxed);
      if (load >= s.cap.load(std::memory_order_relaxed)) continue;
      if (load < best_load) {
        best_load = load;
        ties = 1;
      } else if (load == best_load) {
        ++ties;
      }
    }
    if (ties == 0) return std::nullopt;
    uint32_t pick = ticket % ties;
    uint32_t best = count_;
    for (uint32_t i = 0; i < count_; ++i) {
      const AppSlot& s = slots_[i];
      if (!IsReady(s) || avoided(i, s)) continue;
      const uint32_t load = s.in_flight.load(std::memory_order_relaxed);
      if (load != best_load || load >= s.cap.load(std::memory_order_relaxed)) {
        continue;
      }
      if (pick-- == 0) {
        best = i;
        break;
      }
    }
    if (best == count_) continue;  // the slots changed between the passes
    AppSlot& s = slots_[best];
    const uint64_t incarnation = s.incarnation.load(std::memory_order_acquire);
    if (!ReserveSlot(best)) continue;
    // The slot may have left the rotation (or changed process) between the
    // scan and the reservation: give it back and look again.
    if (!IsReady(s) ||
        s.incarnation.load(std::memory_order_acquire) != incarnation) {
      Release(AppReservation{best, incarnation}, false);
      continue;
    }
    return AppReservation{best, incarnation};
  }
  return std::nullopt;
}

void AppRouter::Release(const AppReservation& r, bool finished) {
  AppSlot& s = slots_[r.slot];
  // A reservation of a process the slot no longer runs gives back nothing:
  // the master starts a new incarnation with in_flight at zero.
  if (s.incarnation.load(std::memory_order_acquire) != r.incarnation) return;
  if (finished) s.requests.fetch_add(1, std::memory_order_relaxed);
  s.last_progress_ms.store(now_ms_(), std::memory_order_relaxed);
  uint32_t cur = s.in_flight.load(std::memory_order_relaxed);
  while (cur > 0 && !s.in_flight.compare_exchange_weak(
                        cur, cur - 1, std::memory_order_acq_rel,
                        std::memory_order_relaxed)) {
  }
}

void AppRouter::ReportRefused(const AppReservation& r) {
  if (r.slot >= count_) return;
  scoreboard::AppSlot& s = slots_[r.slot];
  if (s.incarnation.load(std::memory_order_acquire) != r.incarnation) return;
  s.refused.fetch_add(1, std::memory_order_relaxed);
}

bool AppRouter::StillServes(const AppReservation& r) const {
  const AppSlot& s = slots_[r.slot];
  const auto state =
      static_cast<AppState>(s.state.load(std::memory_order_acquire));
  return (state == AppState::kReady || state == AppState::kRetiring) &&
         s.incarnation.load(std::memory_order_acquire) == r.incarnation;
}

}  // namespace forkd::upstream

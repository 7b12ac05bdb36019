// App mode, proxy-worker side: picks the app process a request goes to.
// The app processes are the scoreboard's AppSlots, shared by every proxy
// worker; the router reserves one request of a slot's `cap` with a
// compare-exchange on `in_flight`, so the cap holds across all workers
// without a lock. No I/O: it reads and writes shared memory only.
#ifndef FORKD_SERVER_UPSTREAM_APP_ROUTER_H_
#define FORKD_SERVER_UPSTREAM_APP_ROUTER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>

#include "server/scoreboard/scoreboard.h"

namespace forkd::upstream {

// One request's claim on an app process: the slot and the process
// (incarnation) it was made for.
struct AppReservation {
  uint32_t slot = 0;
  uint64_t incarnation = 0;
  // Also holds a place of the shared in-flight limit (--autotune limit;
  // proxy::AppQueue takes and gives it back with the process).
  bool limited = false;
};

class AppRouter {
 public:
  // `slots` points at `count` AppSlots (Scoreboard::app_slot(0)); they must
  // outlive the router. `now_ms` is the clock (MonotonicMs by default).
  AppRouter(scoreboard::AppSlot* slots, uint32_t count,
            std::function<int64_t()> now_ms = scoreboard::MonotonicMs);
  explicit AppRouter(scoreboard::Scoreboard* sb)
      : AppRouter(sb->app_capacity() > 0 ? &sb->app_slot(0) : nullptr,
                  sb->app_capacity()) {}

  // Reserves one request on the kReady slot with the fewest in flight that
  // is below its cap (ties: the first from a start that moves round-robin,
  // so equal slots share the load). nullopt: every ready slot is full (or
  // none is ready). `avoid`: a process this request found refusing
  // connections (dead, not yet reaped), skipped while it runs that
  // incarnation. Any thread.
  std::optional<AppReservation> TryReserve(
      const AppReservation* avoid = nullptr);

  // Gives back a reservation. `finished`: a response was read (counts in
  // `requests`); false for a failed or abandoned exchange. Either way it
  // marks progress. Any thread; exactly once per TryReserve. A reservation
  // of an incarnation the slot no longer runs gives back nothing (the
  // master starts each incarnation with in_flight at zero).
  void Release(const AppReservation& r, bool finished);

  // Reports that the reserved process refused a connection (a live process
  // whose listener is gone or full, or a dead one not yet reaped): the
  // master takes it out of the rotation until it answers its probe again.
  // Counts nothing for an incarnation the slot no longer runs. Any thread.
  void ReportRefused(const AppReservation& r);

  // True while the reserved process may still take new connections to it:
  // the slot still holds that incarnation and is kReady or kRetiring (a
  // retiring process finishes what it was given).
  bool StillServes(const AppReservation& r) const;

  uint32_t count() const { return count_; }
  const scoreboard::AppSlot& slot(uint32_t i) const { return slots_[i]; }

 private:
  bool ReserveSlot(uint32_t i);

  scoreboard::AppSlot* slots_;
  uint32_t count_;
  std::function<int64_t()> now_ms_;
  std::atomic<uint32_t> next_{0};
};

}  // namespace forkd::upstream

#endif  // FORKD_SERVER_UPSTREAM_APP_ROUTER_H_

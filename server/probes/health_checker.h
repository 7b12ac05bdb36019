// The master's health checker: combines the arbiter's published pool
// snapshot (loop heartbeat, draining, ready workers) with periodic checks of
// the app into probes::Health, kept in a HealthState that the HTTP probe
// endpoints and the gRPC health service read.
//
// Threads: Start() runs two threads, one that checks the app (every
// --app-health-interval; every 250 ms until startup succeeds) and one that
// re-evaluates the snapshot every 100 ms, so a TERM turns readiness off
// within one turn of the master loop, not at the next app check.
#ifndef FORKD_SERVER_PROBES_HEALTH_CHECKER_H_
#define FORKD_SERVER_PROBES_HEALTH_CHECKER_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "server/arbiter/pool_snapshot.h"
#include "server/probes/health_state.h"

namespace forkd::probes {

// What the checker knows about the app.
struct AppStatus {
  bool enabled = true;        // false: --app-health-interval 0, never checked
  bool checked = false;       // at least one check finished
  bool ok = false;            // the last check succeeded
  bool reached_once = false;  // some check ever succeeded
  std::string why;            // the last check's result text
  uint64_t ok_total = 0;      // checks that succeeded
  uint64_t failed_total = 0;  // checks that failed
};

struct CheckerOptions {
  int64_t app_interval_ms = 5000;     // --app-health-interval; 0: no checks
  int64_t startup_interval_ms = 250;  // app checks until startup succeeds
  int64_t refresh_ms = 100;           // snapshot re-evaluation period
  // Liveness fails when the master loop has not published for this long
  // (it publishes at least every 250 ms).
  int64_t loop_stall_ms = 10000;
};

// The probe decision, without threads or clocks: liveness from the
// snapshot's age at `now_ms`, readiness from draining, ready workers and the
// app, startup once a worker was ready and the app reached (latched through
// `started_before`). App mode (snapshot.app_mode; `app` unused): startup
// once a proxy worker and every desired app process were ready; readiness
// then needs a proxy worker and at least one app process ready.
Health Decide(const arbiter::PoolSnapshot& snapshot, int64_t now_ms,
              const AppStatus& app, bool started_before, int64_t loop_stall_ms);

class HealthChecker {
 public:
  using SnapshotFn = std::function<arbiter::PoolSnapshot()>;
  using AppCheckFn = std::function<ProbeResult()>;  // blocking, bounded
  using ClockFn = std::function<int64_t()>;  // PoolSnapshot::published_ms clock

  // `state` must outlive the checker. `check_app` may be empty when
  // options.app_interval_ms is 0.
  HealthChecker(CheckerOptions options, SnapshotFn snapshot,
                AppCheckFn check_app, ClockFn now_ms, HealthState* state);
  ~HealthChecker();  // Stop()

  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Evaluates once, then starts the two threads. Call once.
  void Start();
  // Stops and joins the threads. Idempotent; any thread but the checker's.
  void Stop();

  // Any thread: recomputes Health from a fresh snapshot and the last app
  // check, stores it in the HealthState and returns it.
  Health Refresh();

  // Runs one app check now and records it (the app thread; tests).
  void CheckAppNow();

  // Any thread: the app as last checked (for metrics).
  AppStatus app_status() const;

 private:
  void AppLoop();
  void RefreshLoop();

  const CheckerOptions options_;
  SnapshotFn snapshot_;
  AppCheckFn check_app_;
  ClockFn now_ms_;
  HealthState* state_;

  std::mutex refresh_mu_;  // serialises Refresh()
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  AppStatus app_;          // guarded by mu_
  bool started_ = false;   // guarded by mu_: startup succeeded once
  std::thread app_thread_;
  std::thread refresh_thread_;
};

}  // namespace forkd::probes

#endif  // FORKD_SERVER_PROBES_HEALTH_CHECKER_H_

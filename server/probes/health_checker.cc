#include "server/probes/health_checker.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/common/log.h"

namespace forkd::probes {

namespace {

int ReadyApps(const arbiter::PoolSnapshot& s) {
  int n = 0;
  for (const app::AppProcessStatus& a : s.apps) {
    n += a.state == scoreboard::AppState::kReady ? 1 : 0;
  }
  return n;
}

// App mode: forkd checks each app process itself (it enters the rotation
// once its socket accepts, or --app-health-path answers), so there is no
// --upstream to check. Enough is the whole initial pool ready once (the
// startup probe), then at least one app process in the rotation, and a
// proxy worker to send it traffic.
void DecideApp(const arbiter::PoolSnapshot& s, bool started_before, Health* h) {
  const int ready = ReadyApps(s);
  const int want = std::max(1, s.desired_workers);
  std::string progress =
      absl::StrFormat("%d of %d app processes ready", ready, s.desired_workers);
  bool started_now = s.proxy_workers_ready > 0 && ready >= want;
  bool started = started_before || started_now;
  if (started) {
    h->started = {true, "started"};
  } else if (s.proxy_workers_ready == 0) {
    h->started = {false, "starting: waiting for a proxy worker to be ready"};
  } else {
    h->started = {false, absl::StrCat("starting: ", progress)};
  }
  if (s.draining) {
    h->ready = {false, "draining: forkd is shutting down"};
  } else if (s.proxy_workers_ready == 0) {
    h->ready = {false, absl::StrFormat("no proxy worker ready (%d wanted)",
                                       s.proxy_workers)};
  } else if (!started) {
    h->ready = {false, absl::StrCat("starting: ", progress)};
  } else if (ready == 0) {
    h->ready = {false, absl::StrFormat("no app process ready (%d desired)",
                                       s.desired_workers)};
  } else {
    h->ready = {true, absl::StrFormat("ready: %s, %d proxy workers ready",
                                      progress, s.proxy_workers_ready)};
  }
}

}  // namespace

Health Decide(const arbiter::PoolSnapshot& s, int64_t now_ms,
              const AppStatus& app, bool started_before,
              int64_t loop_stall_ms) {
  Health h;
  int64_t stall = now_ms - s.published_ms;
  if (stall > loop_stall_ms) {
    h.live = {false,
              absl::StrFormat("master loop stalled: last turn %.1f s ago",
                              static_cast<double>(stall) / 1000.0)};
  } else {
    h.live = {true, "master loop turning"};
  }

  if (s.app_mode) {
    DecideApp(s, started_before, &h);
    return h;
  }

  bool app_ok = !app.enabled || app.ok;
  std::string app_why = !app.checked
                            ? "app not checked yet"
                            : absl::StrCat("app unreachable: ", app.why);
  if (s.draining) {
    h.ready = {false, "draining: forkd is shutting down"};
  } else if (s.ready_workers == 0) {
    h.ready = {false, absl::StrFormat("no worker ready (%d desired)",
                                      s.desired_workers)};
  } else if (!app_ok) {
    h.ready = {false, app_why};
  } else {
    h.ready = {true,
               absl::StrFormat("ready: %d workers ready%s", s.ready_workers,
                               app.enabled ? ", app reachable" : "")};
  }

  bool reached = !app.enabled || app.reached_once;
  if (started_before || (s.ready_workers > 0 && reached)) {
    h.started = {true, "started"};
  } else if (s.ready_workers == 0) {
    h.started = {false, "starting: waiting for the first worker to be ready"};
  } else {
    h.started = {false,
                 absl::StrCat("starting: waiting for the app: ",
                              app.checked ? app.why : "not checked yet")};
  }
  return h;
}

HealthChecker::HealthChecker(CheckerOptions options, SnapshotFn snapshot,
                             AppCheckFn check_app, ClockFn now_ms,
                             HealthState* state)
    : options_(options),
      snapshot_(std::move(snapshot)),
      check_app_(std::move(check_app)),
      now_ms_(std::move(now_ms)),
      state_(state) {
  app_.enabled = options_.app_interval_ms > 0 && check_app_ != nullptr;
}

HealthChecker::~HealthChecker() { Stop(); }

void HealthChecker::Start() {
  Refresh();
  if (app_.enabled) app_thread_ = std::thread([this] { AppLoop(); });
  refresh_thread_ = std::thread([this] { RefreshLoop(); });
}

void HealthChecker::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (app_thread_.joinable()) app_thread_.join();
  if (refresh_thread_.joinable()) refresh_thread_.join();
}

Health HealthChecker::Refresh() {
  // One evaluation at a time, so an older picture never overwrites a newer
  // one in the HealthState.
  std::lock_guard<std::mutex> serial(refresh_mu_);
  arbiter::PoolSnapshot snapshot = snapshot_();
  int64_t now = now_ms_();
  Health h;
  {
    std::lock_guard<std::mutex> lock(mu_);
    h = Decide(snapshot, now, app_, started_, options_.loop_stall_ms);
    started_ = started_ || h.started.ok;
  }
  Health before = state_->Get();
  state_->Set(h);
  if (before.ready.ok != h.ready.ok) {
    LOG_INFO("Readiness: %s (%s)", h.ready.ok ? "ready" : "not ready",
             h.ready.why);
  }
  return h;
}

void HealthChecker::CheckAppNow() {
  if (!check_app_) return;
  ProbeResult r = check_app_();
  bool changed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    changed = !app_.checked || app_.ok != r.ok;
    app_.checked = true;
    app_.ok = r.ok;
    app_.why = r.why;
    app_.reached_once = app_.reached_once || r.ok;
    (r.ok ? app_.ok_total : app_.failed_total)++;
  }
  if (changed && !r.ok) {
    LOG_WARNING("App check failed: %s", r.why);
  } else if (changed) {
    LOG_INFO("App check passed: %s", r.why);
  }
  Refresh();
}

AppStatus HealthChecker::app_status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return app_;
}

void HealthChecker::AppLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    lock.unlock();
    CheckAppNow();
    lock.lock();
    int64_t wait = started_ ? options_.app_interval_ms
                            : std::min(options_.app_interval_ms,
                                       options_.startup_interval_ms);
    cv_.wait_for(lock, std::chrono::milliseconds(wait),
                 [this] { return stopping_; });
  }
}

void HealthChecker::RefreshLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::milliseconds(options_.refresh_ms),
                 [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    Refresh();
    lock.lock();
  }
}

}  // namespace forkd::probes

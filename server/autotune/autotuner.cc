#include "server/autotune/autotuner.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/autotune/usl.h"
#include "server/common/log.h"

namespace forkd::autotune {
namespace {

using config::AutotuneMode;

LatencyHistogram Delta(const scoreboard::CounterTotals::Hist& now,
                       const scoreboard::CounterTotals::Hist& before) {
  LatencyHistogram::Counts counts{};
  for (size_t i = 0; i < counts.size(); ++i) {
    counts[i] = now.buckets[i] >= before.buckets[i]
                    ? now.buckets[i] - before.buckets[i]
                    : 0;
  }
  const uint64_t sum_us =
      now.sum_us >= before.sum_us ? now.sum_us - before.sum_us : 0;
  return LatencyHistogram(counts, static_cast<double>(sum_us) / 1e6);
}

uint64_t Minus(uint64_t a, uint64_t b) { return a >= b ? a - b : 0; }

template <typename Array>
uint64_t Sum(const Array& a) {
  uint64_t n = 0;
  for (uint64_t v : a) n += v;
  return n;
}

const char* CapacityPhaseName(CapacityController::Phase p) {
  switch (p) {
    case CapacityController::Phase::kMeasure:
      return "measure";
    case CapacityController::Phase::kSearch:
      return "search";
    case CapacityController::Phase::kSteady:
      return "steady";
  }
  return "measure";
}

}  // namespace

absl::StatusOr<std::unique_ptr<Autotuner>> Autotuner::Create(AutotunerOptions o,
                                                             HostStats* host,
                                                             uint32_t seed) {
  if (o.mode == AutotuneMode::kFull && !o.app_mode) {
    return absl::InvalidArgumentError(
        "autotune full needs app mode (forkd -w N -- CMD)");
  }
  if (o.window_ms <= 0 || o.latency_target_seconds < 0) {
    return absl::InvalidArgumentError("autotune: window or target < 0");
  }
  return std::unique_ptr<Autotuner>(new Autotuner(std::move(o), host, seed));
}

Autotuner::Autotuner(AutotunerOptions o, HostStats* host, uint32_t seed)
    : opt_(std::move(o)), host_(host), rng_(seed) {}

config::AutotuneBounds Autotuner::Resolved(const Sample& s) const {
  const config::AutotuneBounds& b = opt_.bounds;
  config::AutotuneBounds r;
  // Workers: up to max(2 x CPU + 1, 4 x CPU) of the cgroup's CPU limit (the
  // capacity controller's rule); memory bounds them further at run time.
  const double cores = std::max(1.0, host_->Cgroup().cpu_limit_cores);
  const int derived = static_cast<int>(
      std::max(2 * std::ceil(cores) + 1, 4 * std::ceil(cores)));
  r.max_workers = std::min(b.max_workers ? b.max_workers : derived,
                           std::max(1, opt_.max_workers));
  r.min_workers = std::min(b.min_workers ? b.min_workers : 1, r.max_workers);
  r.max_threads = std::min(b.max_threads ? b.max_threads : 32,
                           std::max(1, opt_.max_threads));
  r.min_threads = std::min(b.min_threads ? b.min_threads : 1, r.max_threads);
  if (!opt_.threads_tunable)
    r.min_threads = r.max_threads = std::max(1, s.threads);
  const int cap =
      static_cast<int>(std::clamp<int64_t>(s.in_flight_cap, 1, 100000));
  r.min_limit = b.min_limit ? b.min_limit : std::min(3, cap);
  r.max_limit = std::max(r.min_limit, b.max_limit ? b.max_limit : cap);
  return r;
}

absl::Status Autotuner::Rebuild(const Sample& s) {
  limit_ctl_.reset();
  capacity_ctl_.reset();
  resolved_ = Resolved(s);
  workers_ = s.workers;
  threads_ = s.threads;
  if (opt_.mode == AutotuneMode::kLimit && pin_limit_ == 0) {
    LimitOptions lo;
    lo.min_limit = resolved_.min_limit;
    lo.max_limit = resolved_.max_limit;
    lo.latency_target_seconds = opt_.latency_target_seconds;
    lo.min_rtt_interval_seconds = opt_.min_rtt_interval_seconds;
    auto ctl = LimitController::Create(lo, rng_);
    if (!ctl.ok()) return ctl.status();
    limit_ctl_ = std::move(*ctl);
  }
  if (opt_.mode == AutotuneMode::kFull) {
    CapacityOptions co;
    co.bounds = {resolved_.min_workers, resolved_.max_workers,
                 resolved_.min_threads, resolved_.max_threads};
    if (pin_workers_)
      co.bounds.min_workers = co.bounds.max_workers = pin_workers_;
    if (pin_threads_)
      co.bounds.min_threads = co.bounds.max_threads = pin_threads_;
    co.latency_target_seconds = opt_.latency_target_seconds;
    workers_ =
        std::clamp(s.workers, co.bounds.min_workers, co.bounds.max_workers);
    threads_ =
        std::clamp(s.threads, co.bounds.min_threads, co.bounds.max_threads);
    auto ctl = CapacityController::Create(co, workers_, threads_);
    if (!ctl.ok()) return ctl.status();
    capacity_ctl_ = std::move(*ctl);
  }
  if (opt_.mode == AutotuneMode::kOff) {
    limit_ = 0;
  } else if (pin_limit_ != 0) {
    limit_ = pin_limit_;
  } else if (limit_ctl_) {
    limit_ = limit_ctl_->limit();  // the minimum while minRTT is measured
  } else {
    limit_ = 0;  // full: the app processes' caps are the limit
  }
  built_ = true;
  return absl::OkStatus();
}

void Autotuner::Record(const Decision& d) {
  // One line per decision, whatever the log level filters: it is the
  // explanation an operator reads after the fact.
  LOG_INFO("autotune decision %s", d.ToJson());
  ++by_rule_[RuleName(d.rule)];
  recent_.push_back(d);
  while (recent_.size() > opt_.recent_decisions) recent_.pop_front();
}

Window Autotuner::Build(const Sample& s) {
  Window w;
  w.end_seconds = static_cast<double>(s.now_ms) / 1000.0;
  w.duration_seconds =
      static_cast<double>(s.now_ms - window_start_ms_) / 1000.0;
  w.workers = workers_;
  w.threads = threads_;
  w.limit = limit_;
  const scoreboard::CounterTotals& a = s.totals;
  const scoreboard::CounterTotals& b = start_totals_;
  w.latency = Delta(a.request_duration, b.request_duration);
  w.app_latency = Delta(a.upstream_duration, b.upstream_duration);
  w.completed = w.app_latency.count();
  w.failed = Minus(Sum(a.upstream_errors), Sum(b.upstream_errors));
  const size_t over = static_cast<size_t>(scoreboard::Rejection::kOverCapacity);
  w.rejected = Minus(a.queue_timeouts, b.queue_timeouts) +
               Minus(a.rejected[over], b.rejected[over]);
  if (ticks_ > 0) {
    w.mean_in_flight = in_flight_sum_ / ticks_;
    w.mean_queue_length = queued_sum_ / ticks_;
  }
  const uint64_t waits = Minus(a.queue_waits, b.queue_waits);
  if (waits > 0) {
    w.mean_queue_seconds =
        static_cast<double>(Minus(a.queue_wait_us, b.queue_wait_us)) / 1e6 /
        static_cast<double>(waits);
  }
  std::map<pid_t, double> cpu;
  for (pid_t pid : s.app_pids) {
    std::optional<ProcStats> p = host_->Process(pid);
    if (!p) continue;
    cpu[pid] = p->cpu_seconds;
    auto it = start_cpu_.find(pid);
    // A process new in this window counts its CPU since it started.
    w.app_cpu_seconds += std::max(
        0.0, p->cpu_seconds - (it != start_cpu_.end() ? it->second : 0.0));
    w.rss_bytes.push_back(p->resident_bytes);
  }
  const CgroupStats cg = host_->Cgroup();
  w.cpu_limit_cores = cg.cpu_limit_cores;
  w.nr_periods = Minus(cg.nr_periods, start_cgroup_.nr_periods);
  w.nr_throttled = Minus(cg.nr_throttled, start_cgroup_.nr_throttled);
  w.throttled_usec = Minus(cg.throttled_usec, start_cgroup_.throttled_usec);
  w.memory_max_bytes = cg.memory_max_bytes;

  // The end of this window is the start of the next.
  start_cpu_ = std::move(cpu);
  start_cgroup_ = cg;
  start_totals_ = s.totals;
  window_start_ms_ = s.now_ms;
  in_flight_sum_ = queued_sum_ = 0;
  ticks_ = 0;
  return w;
}

void Autotuner::Observe(const Window& w) {
  if (w.completed == 0 || w.mean_in_flight < 0.5) return;
  Seen& p = seen_[static_cast<int>(std::lround(w.mean_in_flight))];
  const double k = p.n + 1;
  p.throughput += (w.Throughput() - p.throughput) / k;
  p.p50 += (w.latency.Quantile(0.5) - p.p50) / k;
  p.p99 += (w.latency.Quantile(0.99) - p.p99) / k;
  p.n = k;
}

std::vector<Change> Autotuner::OnTick(const Sample& s) {
  std::vector<Change> out;
  if (!built_) {
    if (absl::Status st = Rebuild(s); !st.ok()) {
      LOG_ERROR("autotune: %s; autotune is off", st.message());
      opt_.mode = AutotuneMode::kOff;
      (void)Rebuild(s);
    }
    if (limit_ != 0) out.push_back({Knob::kLimit, limit_});
    if (capacity_ctl_ && workers_ != s.workers) {
      out.push_back({Knob::kWorkers, workers_});
    }
    if (capacity_ctl_ && threads_ != s.threads) {
      out.push_back({Knob::kThreads, threads_});
    }
  }
  if (!started_) {
    started_ = true;
    window_start_ms_ = s.now_ms;
    start_totals_ = s.totals;
    start_cgroup_ = host_->Cgroup();
    for (pid_t pid : s.app_pids) {
      if (auto p = host_->Process(pid)) start_cpu_[pid] = p->cpu_seconds;
    }
    return out;
  }
  in_flight_sum_ += s.in_flight;
  queued_sum_ += s.queued;
  ++ticks_;
  if (s.now_ms - window_start_ms_ < opt_.window_ms) return out;
  Window w = Build(s);
  ++windows_;
  Observe(w);
  if (limit_ctl_) {
    if (std::optional<Decision> d = limit_ctl_->OnWindow(w)) {
      Record(*d);
      if (d->changes()) {
        limit_ = static_cast<int>(d->new_value);
        out.push_back({Knob::kLimit, limit_});
      }
    }
  }
  if (capacity_ctl_) {
    for (const Decision& d : capacity_ctl_->OnWindow(w)) {
      Record(d);
      if (!d.changes()) continue;
      const int v = static_cast<int>(d.new_value);
      if (d.knob == Knob::kWorkers) workers_ = v;
      if (d.knob == Knob::kThreads) threads_ = v;
      out.push_back({d.knob, v});
    }
  }
  return out;
}

absl::StatusOr<std::vector<Change>> Autotuner::Update(const TuneUpdate& u,
                                                      const Sample& s) {
  const AutotuneMode mode = u.mode.value_or(opt_.mode);
  if (mode == AutotuneMode::kFull && !opt_.app_mode) {
    return absl::InvalidArgumentError(
        "mode full needs app mode (forkd -w N -- CMD); this forkd is a "
        "sidecar: use off or limit");
  }
  auto check_pin = [&](const std::optional<int>& pin, const char* what,
                       int max) -> absl::Status {
    if (!pin) return absl::OkStatus();
    if (*pin < 0 || *pin > max) {
      return absl::InvalidArgumentError(absl::StrCat(
          "pin ", what, "=", *pin, ": must be 1..", max, " (0 unpins)"));
    }
    return absl::OkStatus();
  };
  if (auto st = check_pin(u.pin_workers, "workers", opt_.max_workers);
      !st.ok()) {
    return st;
  }
  if (auto st = check_pin(u.pin_threads, "threads", opt_.max_threads);
      !st.ok()) {
    return st;
  }
  if (auto st = check_pin(u.pin_limit, "limit", 100000); !st.ok()) return st;
  if (((u.pin_workers && *u.pin_workers) ||
       (u.pin_threads && *u.pin_threads)) &&
      mode != AutotuneMode::kFull) {
    return absl::InvalidArgumentError(
        "workers and threads are tuned (and pinned) only in mode full; "
        "without it, size them with forkctl scale / forkctl threads");
  }
  if (u.pin_limit && *u.pin_limit && mode == AutotuneMode::kOff) {
    return absl::InvalidArgumentError(
        "autotune is off: there is no limit to pin (set mode limit too)");
  }
  if (u.latency_target_seconds &&
      !(*u.latency_target_seconds >= 0 && *u.latency_target_seconds <= 3600)) {
    return absl::InvalidArgumentError("latency target must be 0..3600 seconds");
  }
  // All valid: apply, and start the controllers again from where the pool
  // is (what they learned under other settings does not carry over).
  AutotunerOptions before = opt_;
  const int pins[3] = {pin_workers_, pin_threads_, pin_limit_};
  opt_.mode = mode;
  if (u.bounds) opt_.bounds = *u.bounds;
  if (u.latency_target_seconds) {
    opt_.latency_target_seconds = *u.latency_target_seconds;
  }
  if (u.pin_workers) pin_workers_ = *u.pin_workers;
  if (u.pin_threads) pin_threads_ = *u.pin_threads;
  if (u.pin_limit) pin_limit_ = *u.pin_limit;
  if (mode == AutotuneMode::kOff) pin_workers_ = pin_threads_ = pin_limit_ = 0;
  if (mode != AutotuneMode::kFull) pin_workers_ = pin_threads_ = 0;
  const int old_limit = limit_;
  if (absl::Status st = Rebuild(s); !st.ok()) {
    opt_ = before;
    pin_workers_ = pins[0];
    pin_threads_ = pins[1];
    pin_limit_ = pins[2];
    (void)Rebuild(s);
    return absl::InvalidArgumentError(st.message());
  }
  std::vector<Change> out;
  if (limit_ != old_limit) out.push_back({Knob::kLimit, limit_});
  if (capacity_ctl_ && workers_ != s.workers) {
    out.push_back({Knob::kWorkers, workers_});
  }
  if (capacity_ctl_ && threads_ != s.threads) {
    out.push_back({Knob::kThreads, threads_});
  }
  LOG_INFO(
      "autotune: mode %s, limit %d, pins workers=%d threads=%d "
      "limit=%d, bounds \"%s\", latency target %.3gs",
      config::AutotuneModeName(opt_.mode), limit_, pin_workers_, pin_threads_,
      pin_limit_, config::FormatAutotuneBounds(resolved_),
      opt_.latency_target_seconds);
  return out;
}

std::vector<Change> Autotuner::OperatorResized(Knob knob, int value,
                                               const Sample& s) {
  if (opt_.mode != AutotuneMode::kFull || value < 1) return {};
  TuneUpdate u;
  if (knob == Knob::kWorkers) {
    u.pin_workers = value;
  } else if (knob == Knob::kThreads && opt_.threads_tunable) {
    u.pin_threads = value;
  } else {
    return {};
  }
  absl::StatusOr<std::vector<Change>> changes = Update(u, s);
  if (!changes.ok()) {
    LOG_WARNING("autotune: %s set to %d by an operator, not pinned: %s",
                KnobName(knob), value, changes.status().message());
    return {};
  }
  LOG_INFO(
      "autotune: %s set to %d by an operator: pinned (forkctl tune --pin "
      "%s=0 gives it back to autotune)",
      KnobName(knob), value, KnobName(knob));
  return *std::move(changes);
}

TuneStatus Autotuner::Status() const {
  TuneStatus t;
  t.mode = opt_.mode;
  t.limit = limit_;
  t.workers = workers_;
  t.threads = threads_;
  t.latency_target_seconds = opt_.latency_target_seconds;
  t.bounds = resolved_;
  t.pin_workers = pin_workers_;
  t.pin_threads = pin_threads_;
  t.pin_limit = pin_limit_;
  t.windows = windows_;
  t.recent.assign(recent_.begin(), recent_.end());
  t.decisions_by_rule = by_rule_;
  if (opt_.mode == AutotuneMode::kOff) {
    t.phase = "off";
  } else if (limit_ctl_) {
    t.phase = limit_ctl_->phase() == LimitController::Phase::kMinRtt
                  ? "min_rtt"
                  : "running";
    t.min_rtt_seconds = limit_ctl_->min_rtt_seconds();
    t.gradient = limit_ctl_->last_gradient();
  } else if (capacity_ctl_) {
    t.phase = pin_workers_ && pin_threads_
                  ? "pinned"
                  : CapacityPhaseName(capacity_ctl_->phase());
  } else {
    t.phase = "pinned";
  }
  if (capacity_ctl_) {
    t.report = capacity_ctl_->report();
    return t;
  }
  // Limit and off modes: what the windows showed at each concurrency.
  Report& r = t.report;
  r.app_class = "unknown";
  std::vector<UslPoint> usl;
  double best = -1;
  int best_n = 0;
  for (const auto& [n, p] : seen_) {
    r.points.push_back({workers_, threads_, static_cast<double>(n),
                        p.throughput, p.p50, p.p99});
    usl.push_back({static_cast<double>(n), p.throughput});
    const bool fits = opt_.latency_target_seconds <= 0 ||
                      p.p99 <= opt_.latency_target_seconds;
    if (fits && p.throughput > best) {
      best = p.throughput;
      best_n = n;
    }
  }
  if (absl::StatusOr<UslFit> fit = FitUsl(usl); fit.ok()) {
    r.usl_valid = true;
    r.sigma = fit->sigma;
    r.kappa = fit->kappa;
    r.knee = fit->Knee();
  }
  r.workers = std::max(1, workers_);
  r.threads = best_n > 0 ? std::max(1, (best_n + r.workers - 1) / r.workers)
                         : std::max(1, threads_);
  return t;
}

}  // namespace forkd::autotune

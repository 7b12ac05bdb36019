#include "server/autotune/capacity_controller.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace forkd::autotune {
namespace {

constexpr double kBusySlots = 0.85;  // in flight / slots: concurrency-bound
constexpr double kIdleSlots = 0.6;   // below: slots idle
constexpr double kCpuSaturated = 0.85;
// A point's window-to-window spread beyond which it is an outlier.
constexpr double kOutlierNoise = 0.3;

double CpuCap(double limit) {
  return limit > 0 ? limit : std::numeric_limits<double>::infinity();
}

// Relative standard deviation of window values; 0 for fewer than two or a
// zero mean.
double Spread(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  double mean = 0, var = 0;
  for (double r : v) mean += r;
  mean /= static_cast<double>(v.size());
  if (mean <= 0) return 0;
  for (double r : v) var += (r - mean) * (r - mean);
  var /= static_cast<double>(v.size() - 1);
  return std::sqrt(var) / mean;
}

int CpuCeil(double limit) {
  return limit > 0 ? static_cast<int>(std::ceil(limit - 1e-9)) : 1;
}

}  // namespace

const char* AppClassName(AppClass c) {
  switch (c) {
    case AppClass::kUnknown:
      return "unknown";
    case AppClass::kCpuBound:
      return "cpu-bound";
    case AppClass::kIoBound:
      return "io-bound";
    case AppClass::kMixed:
      return "mixed";
    case AppClass::kMemoryBound:
      return "memory-bound";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<CapacityController>> CapacityController::Create(
    const CapacityOptions& o, int workers, int threads) {
  const Bounds& b = o.bounds;
  if (b.min_workers < 1 ||
      (b.max_workers != 0 && b.max_workers < b.min_workers) ||
      b.min_threads < 1 || b.max_threads < b.min_threads) {
    return absl::InvalidArgumentError(
        "autotune bounds: need 1 <= min <= max for workers and threads");
  }
  if (workers < b.min_workers ||
      (b.max_workers != 0 && workers > b.max_workers) ||
      threads < b.min_threads || threads > b.max_threads) {
    return absl::InvalidArgumentError(
        absl::StrFormat("autotune: start -w %d --threads %d outside the bounds",
                        workers, threads));
  }
  if (o.settle_windows < 0 || o.measure_windows < 1 || o.min_gain < 0 ||
      o.max_worker_step < 1 || o.max_thread_step < 1 || o.drift_windows < 1 ||
      o.flap_limit < 1 || !(o.memory_headroom > 0 && o.memory_headroom <= 1) ||
      o.latency_target_seconds < 0) {
    return absl::InvalidArgumentError("autotune: option out of range");
  }
  return std::unique_ptr<CapacityController>(
      new CapacityController(o, workers, threads));
}

CapacityController::CapacityController(const CapacityOptions& o, int w, int t)
    : opt_(o), workers_(w), threads_(t) {}

int CapacityController::penalty(int workers, int threads) const {
  auto it = penalty_.find({workers, threads});
  return it == penalty_.end() ? 0 : it->second;
}

CapacityController::Point CapacityController::Summarise() const {
  Point p;
  p.workers = workers_;
  p.threads = threads_;
  uint64_t completed = 0, periods = 0, throttled = 0;
  double duration = 0, cpu = 0, in_flight = 0, queue = 0;
  LatencyHistogram lat, app;
  std::vector<double> rates, cpus;
  for (const Window& w : acc_) {
    completed += w.completed;
    duration += w.duration_seconds;
    cpu += w.app_cpu_seconds;
    in_flight += w.mean_in_flight * w.duration_seconds;
    queue += w.mean_queue_length * w.duration_seconds;
    periods += w.nr_periods;
    throttled += w.nr_throttled;
    lat.Add(w.latency);
    app.Add(w.app_latency);
    rates.push_back(w.Throughput());
    cpus.push_back(w.CpuPerRequest());
  }
  const Window& last = acc_.back();
  if (duration > 0) {
    p.throughput = static_cast<double>(completed) / duration;
    p.in_flight = in_flight / duration;
    p.queue = queue / duration;
    p.cores_used = cpu / duration;
  }
  p.cpu_per_request = completed ? cpu / static_cast<double>(completed) : 0;
  p.throttled =
      periods ? static_cast<double>(throttled) / static_cast<double>(periods)
              : 0;
  p.p50 = lat.Quantile(0.5);
  p.p99 = lat.Quantile(0.99);
  p.app_p50 = app.Quantile(0.5);
  p.rss_per_process = last.MeanRssBytes();
  p.cpu_limit = last.cpu_limit_cores;
  p.memory_max = static_cast<double>(last.memory_max_bytes);
  // Window-to-window spread at one configuration: the noise every
  // comparison is held against.
  p.noise = Spread(rates);
  p.cpu_noise = Spread(cpus);
  return p;
}

int CapacityController::MaxWorkers(const Point& p) const {
  int max = opt_.bounds.max_workers;
  if (max == 0) {
    const int cores = CpuCeil(p.cpu_limit);
    max = std::max(2 * cores + 1, 4 * cores);
  }
  return std::max(max, opt_.bounds.min_workers);
}

bool CapacityController::Fits(const Point& p, Config c) const {
  if (c.first < opt_.bounds.min_workers || c.first > MaxWorkers(p) ||
      c.second < opt_.bounds.min_threads ||
      c.second > opt_.bounds.max_threads) {
    return false;
  }
  if (p.memory_max <= 0 || p.rss_per_process <= 0) return true;
  const double per_process =
      p.rss_per_process + (c.second - p.threads) * opt_.thread_rss_bytes;
  return c.first * per_process <= opt_.memory_headroom * p.memory_max;
}

AppClass CapacityController::Classify(const Point& p) const {
  const double base = min_app_p50_ > 0 ? min_app_p50_ : p.app_p50;
  const double ratio = base > 0 ? p.cpu_per_request / base : 0;
  const double per_process = p.workers ? p.cores_used / p.workers : 0;
  const bool saturated =
      p.cores_used >= kCpuSaturated * CpuCap(p.cpu_limit) || p.throttled > 0.1;
  AppClass c = AppClass::kMixed;
  if (ratio >= 0.5 || per_process >= kBusySlots || saturated) {
    c = AppClass::kCpuBound;
  } else if (ratio < 0.1) {
    c = AppClass::kIoBound;
  }
  if (c != AppClass::kCpuBound && p.memory_max > 0 && p.rss_per_process > 0) {
    const int fit = static_cast<int>(opt_.memory_headroom * p.memory_max /
                                     p.rss_per_process);
    if (fit < 2 * CpuCeil(p.cpu_limit) + 1) c = AppClass::kMemoryBound;
  }
  return c;
}

int CapacityController::ClassThreads(AppClass c, const Point& p) const {
  if (c == AppClass::kCpuBound) return opt_.bounds.min_threads;
  const double base = min_app_p50_ > 0 ? min_app_p50_ : p.app_p50;
  double t = opt_.bounds.max_threads;
  if (p.cpu_per_request > 0) {
    // A process keeps one core busy with 1 + wait/compute threads.
    t = 1 + std::max(0.0, base - p.cpu_per_request) / p.cpu_per_request;
  }
  return std::clamp(static_cast<int>(std::lround(t)), opt_.bounds.min_threads,
                    opt_.bounds.max_threads);
}

std::optional<UslFit> CapacityController::Fit() const {
  std::vector<UslPoint> pts;
  for (const auto& [cfg, p] : points_) {
    pts.push_back({p.in_flight, p.throughput});
  }
  absl::StatusOr<UslFit> fit = FitUsl(pts);
  if (!fit.ok()) return std::nullopt;
  return *fit;
}

double CapacityController::ExpectedUpGain(const Point& p, Config to) const {
  auto known = points_.find(to);
  if (known != points_.end() && p.throughput > 0) {
    return known->second.throughput / p.throughput - 1;
  }
  const double slots = static_cast<double>(p.workers) * p.threads;
  if (p.in_flight < kBusySlots * slots) return 0;  // load-limited
  // Also load-limited: a slot to spare on average and nobody waiting for
  // one in forkd's queue (64 clients on 72 slots: 89 % busy, and more
  // slots serve nobody more).
  if (p.queue < 0.5 && p.in_flight <= slots - 1) return 0;
  const double cap = CpuCap(p.cpu_limit);
  const double used = std::max(p.cores_used, 1e-9);
  double gain;
  if (to.first != p.workers) {
    gain = std::min(static_cast<double>(to.first) / p.workers - 1,
                    0.95 * cap / used - 1);
  } else {
    // Threads of one process share its core when the runtime serialises
    // them (a GIL): they add concurrency, not CPU beyond one core each.
    gain = std::min(static_cast<double>(to.second) / p.threads - 1,
                    0.95 * std::min<double>(p.workers, cap) / used - 1);
  }
  if (std::optional<UslFit> fit = Fit(); fit) {
    const double scale = static_cast<double>(to.first) * to.second / slots;
    const double now = fit->Predict(p.in_flight);
    if (now > 0)
      gain = std::min(gain, fit->Predict(p.in_flight * scale) / now - 1);
  }
  return gain;
}

std::optional<CapacityController::Probe> CapacityController::NextProbe(
    const Point& p, std::string* why, double* expected) const {
  const Config here{p.workers, p.threads};
  const bool by_workers = class_ == AppClass::kCpuBound;
  auto threshold = [&](Config c) {
    return std::max(opt_.min_gain, 2 * noise_) *
           (1 + penalty(c.first, c.second));
  };
  auto allowed = [&](Config c) {
    return c != here && Fits(p, c) &&
           penalty(c.first, c.second) < opt_.flap_limit;
  };
  auto known_worse = [&](Config c) {
    auto it = points_.find(c);
    return it != points_.end() &&
           it->second.throughput <
               p.throughput * (1 - std::max(0.02, 2 * noise_));
  };

  // Up along the class's dimension.
  Config up = here;
  if (by_workers) {
    up.first += std::clamp(p.workers / 2, 1, opt_.max_worker_step);
  } else {
    // Up to the bound, not past it; at the bound, concurrency comes from
    // one more process (an I/O-bound app left with 1 x 32 by a CPU-bound
    // phase served 64 clients with 32 slots for good).
    up.second =
        std::min(p.threads + std::clamp(p.threads, 1, opt_.max_thread_step),
                 opt_.bounds.max_threads);
    if (up.second == p.threads) up.first += 1;
  }
  if (allowed(up)) {
    const double g = ExpectedUpGain(p, up);
    if (g > threshold(up)) {
      *expected = g;
      *why = absl::StrFormat("expected gain %.0f%% > %.0f%%", g * 100,
                             threshold(up) * 100);
      return Probe{up, here, Rule::kProbe, true};
    }
  }

  const std::optional<UslFit> fit = Fit();
  Config down = here;
  if (by_workers) {
    down.first -= 1;
  } else {
    down.second -= std::clamp(p.threads / 2, 1, opt_.max_thread_step);
  }
  if (allowed(down) && !known_worse(down)) {
    if (fit && p.in_flight > 0) {
      const double scale = static_cast<double>(down.first) * down.second /
                           (static_cast<double>(p.workers) * p.threads);
      const double g =
          fit->Predict(p.in_flight * scale) / fit->Predict(p.in_flight) - 1;
      if (g > threshold(down)) {
        *expected = g;
        *why = absl::StrFormat(
            "past the USL knee %.1f (in flight %.1f): expected gain %.0f%%",
            fit->Knee(), p.in_flight, g * 100);
        return Probe{down, here, Rule::kKnee, false};
      }
    }
  }
  // CPU at the limit with more processes than cores: one fewer process
  // frees memory and context switches and should not cost throughput.
  const Config fewer{p.workers - 1, p.threads};
  if (p.cores_used >= kCpuSaturated * CpuCap(p.cpu_limit) &&
      p.workers > CpuCeil(p.cpu_limit) && allowed(fewer) &&
      !known_worse(fewer)) {
    *expected = 0;
    *why = absl::StrFormat("CPU %.2f of %.2f cores with %d processes",
                           p.cores_used, p.cpu_limit, p.workers);
    return Probe{fewer, here, Rule::kTrimCpu, false};
  }
  if (allowed(down) && !known_worse(down)) {
    const double slots = static_cast<double>(p.workers) * p.threads;
    if (p.in_flight < kIdleSlots * slots) {
      *expected = 0;
      *why =
          absl::StrFormat("%.1f in flight for %.0f slots", p.in_flight, slots);
      return Probe{down, here, Rule::kTrimIdle, false};
    }
    if (!fit && !explored_.contains(here)) {
      *expected = 0;
      *why = "no curve yet: learn the throughput below this concurrency";
      return Probe{down, here, Rule::kExplore, false};
    }
  }
  return std::nullopt;
}

void CapacityController::Note(const Window& w, Rule rule,
                              const std::string& why, const Point& p,
                              std::vector<Decision>* out) const {
  Decision d;
  d.at_seconds = w.end_seconds;
  d.controller = "capacity";
  d.rule = rule;
  d.knob = Knob::kNone;
  d.inputs = {{"workers", static_cast<double>(p.workers)},
              {"threads", static_cast<double>(p.threads)},
              {"throughput", p.throughput},
              {"p50", p.p50},
              {"p99", p.p99},
              {"in_flight", p.in_flight},
              {"cpu_per_request", p.cpu_per_request},
              {"cores_used", p.cores_used},
              {"cpu_limit", p.cpu_limit},
              {"noise", noise_},
              {"cpu_noise", cpu_noise_}};
  d.why = absl::StrFormat("[%s] %s", AppClassName(class_), why);
  out->push_back(std::move(d));
}

void CapacityController::Apply(const Window& w, Rule rule, Config to,
                               const std::string& why, const Point& p,
                               std::vector<Decision>* out) {
  const Config from{workers_, threads_};
  if (to.first != from.first) {
    Note(w, rule, why, p, out);
    out->back().knob = Knob::kWorkers;
    out->back().old_value = from.first;
    out->back().new_value = to.first;
  }
  if (to.second != from.second) {
    Note(w, rule, why, p, out);
    out->back().knob = Knob::kThreads;
    out->back().old_value = from.second;
    out->back().new_value = to.second;
  }
  workers_ = to.first;
  threads_ = to.second;
  settle_left_ = opt_.settle_windows;
}

std::vector<Decision> CapacityController::OnWindow(const Window& w) {
  std::vector<Decision> out;
  if (w.duration_seconds <= 0) return out;
  if (phase_ == Phase::kSteady) {
    Steady(w, &out);
    return out;
  }
  if (settle_left_ > 0) {
    --settle_left_;
    return out;
  }
  acc_.push_back(w);
  if (static_cast<int>(acc_.size()) < opt_.measure_windows) return out;
  const Point p = Summarise();
  acc_.clear();
  return OnPoint(w, p);
}

std::vector<Decision> CapacityController::OnPoint(const Window& w,
                                                  const Point& p) {
  std::vector<Decision> out;
  if (p.throughput <= 0) return out;  // no load: nothing to learn
  // Windows of one point that disagree far beyond the noise (a stall of a
  // shared machine: a window with no throughput at all) measure nothing.
  // Taken as they are, they blew the noise estimate up to 150 % and left
  // the controller deaf for minutes; measure again instead, at most twice
  // in a row (a really noisy app is then taken as it is).
  if (p.noise > std::max(kOutlierNoise, 4 * noise_) && remeasured_ < 2) {
    ++remeasured_;
    Note(w, Rule::kRemeasure,
         absl::StrFormat("windows %.0f%% apart (noise %.0f%%): measured again",
                         p.noise * 100, noise_ * 100),
         p, &out);
    return out;
  }
  remeasured_ = 0;
  if (p.noise > 0)
    noise_ = 0.8 * noise_ + 0.2 * std::min(p.noise, kOutlierNoise);
  if (p.cpu_noise > 0) cpu_noise_ = 0.8 * cpu_noise_ + 0.2 * p.cpu_noise;
  if (p.app_p50 > 0 && (min_app_p50_ == 0 || p.app_p50 < min_app_p50_)) {
    min_app_p50_ = p.app_p50;
  }
  points_[{p.workers, p.threads}] = p;

  if (Bound(w, p, &out)) return out;

  if (phase_ == Phase::kMeasure) {
    const AppClass was = class_;
    class_ = Classify(p);
    phase_ = Phase::kSearch;
    Config to{p.workers, p.threads};
    Rule rule = Rule::kReclassify;
    if (!started_) {
      started_ = true;
      rule = Rule::kStart;
      to = {2 * CpuCeil(p.cpu_limit) + 1, ClassThreads(class_, p)};
      to.first = std::clamp(to.first, opt_.bounds.min_workers, MaxWorkers(p));
      while (to.first > opt_.bounds.min_workers && !Fits(p, to)) --to.first;
      while (to.second > opt_.bounds.min_threads && !Fits(p, to)) --to.second;
    } else if (class_ != was) {
      to.second = ClassThreads(class_, p);
      while (to.second > opt_.bounds.min_threads && !Fits(p, to)) --to.second;
    }
    if (to != Config{workers_, threads_}) {
      Apply(w, rule, to,
            absl::StrFormat("classified from %.2f ms CPU per request, app "
                            "p50 %.2f ms, %.2f of %.2f cores",
                            p.cpu_per_request * 1e3, p.app_p50 * 1e3,
                            p.cores_used, p.cpu_limit),
            p, &out);
      return out;
    }
  }

  if (probe_) {
    const Probe probe = *probe_;
    probe_.reset();
    const double gain =
        base_.throughput > 0 ? p.throughput / base_.throughput - 1 : 0;
    const bool latency_ok = opt_.latency_target_seconds <= 0 ||
                            p.p99 <= opt_.latency_target_seconds ||
                            p.p99 <= base_.p99;
    // Symmetric hysteresis: growth must gain more than the threshold, a
    // trim may lose less than it. Trims are held against the best point of
    // the regime, not only the last one, so that a chain of small losses
    // cannot ratchet throughput down.
    const double threshold = std::max(opt_.min_gain, 2 * noise_);
    double best = base_.throughput;
    for (const auto& [cfg, q] : points_) best = std::max(best, q.throughput);
    const bool keep =
        latency_ok &&
        (probe.up ? gain > threshold : p.throughput >= (1 - threshold) * best);
    if (keep) {
      Note(w, Rule::kAccept,
           absl::StrFormat("measured %+.1f%% throughput: kept", gain * 100), p,
           &out);
    } else {
      ++penalty_[probe.to];
      Apply(w, Rule::kRevert, probe.from,
            absl::StrFormat("measured %+.1f%% throughput%s: undone "
                            "(penalty %d)",
                            gain * 100, latency_ok ? "" : ", p99 over target",
                            penalty_[probe.to]),
            p, &out);
      return out;
    }
  }

  base_ = p;
  std::string why;
  double expected = 0;
  if (std::optional<Probe> next = NextProbe(p, &why, &expected); next) {
    if (next->rule == Rule::kExplore) explored_.insert(next->from);
    probe_ = next;
    const size_t first = out.size();
    Apply(w, next->rule, next->to, why, p, &out);
    for (size_t i = first; i < out.size(); ++i) {
      out[i].inputs.emplace_back("expected_gain", expected);
    }
    return out;
  }
  phase_ = Phase::kSteady;
  baseline_ = p;
  drift_count_ = 0;
  Note(w, Rule::kConverged,
       absl::StrFormat("no neighbour promises more than %.0f%%",
                       std::max(opt_.min_gain, 2 * noise_) * 100),
       p, &out);
  return out;
}

bool CapacityController::Bound(const Window& w, const Point& p,
                               std::vector<Decision>* out) {
  // memory.max shrank or the app grew: shed processes (then threads) until
  // the measured RSS fits, before anything else.
  if (Fits(p, {workers_, threads_})) return false;
  Config to{workers_, threads_};
  while (to.first > opt_.bounds.min_workers && !Fits(p, to)) --to.first;
  while (to.second > opt_.bounds.min_threads && !Fits(p, to)) --to.second;
  if (to == Config{workers_, threads_}) return false;
  probe_.reset();
  Apply(w, Rule::kBound, to,
        absl::StrFormat("%.0f MB RSS per process does not fit %.0f%% of "
                        "memory.max %.0f MB",
                        p.rss_per_process / 1e6, opt_.memory_headroom * 100,
                        p.memory_max / 1e6),
        p, out);
  return true;
}

void CapacityController::ResetRegime() {
  // A new regime: old points describe another app. Penalties decay
  // rather than vanish so a flapping configuration stays expensive.
  points_.clear();
  explored_.clear();
  for (auto& [cfg, n] : penalty_) n /= 2;
  min_app_p50_ = 0;
  drift_count_ = 0;
  phase_ = Phase::kMeasure;
  acc_.clear();
  probe_.reset();
}

void CapacityController::Steady(const Window& w, std::vector<Decision>* out) {
  if (w.memory_max_bytes > 0 &&
      static_cast<double>(w.TotalRssBytes()) >
          opt_.memory_headroom * static_cast<double>(w.memory_max_bytes)) {
    acc_ = {w};
    const Point p = Summarise();
    ResetRegime();
    Bound(w, p, out);
    return;
  }
  const double x = w.Throughput();
  const double limit = std::max(opt_.drift_min, 3 * noise_);
  auto moved = [&](double now, double then) {
    return then > 0 && std::abs(now / then - 1) > limit;
  };
  const double p99 = w.latency.Quantile(0.99);
  const bool over_target =
      opt_.latency_target_seconds > 0 && p99 > opt_.latency_target_seconds;
  // Latency is noisier than throughput: it counts as drift at twice the
  // threshold.
  // CPU per request against its own measured noise (/proc's ticks).
  const double cpu_limit = std::max(limit, 3 * cpu_noise_);
  const bool cpu_moved =
      baseline_.cpu_per_request > 0 &&
      std::abs(w.CpuPerRequest() / baseline_.cpu_per_request - 1) > cpu_limit;
  const bool drift =
      moved(x, baseline_.throughput) || cpu_moved ||
      (baseline_.p99 > 0 && std::abs(p99 / baseline_.p99 - 1) > 2 * limit &&
       p99 > baseline_.p99) ||
      over_target;
  drift_count_ = drift ? drift_count_ + 1 : 0;
  if (drift_count_ < opt_.drift_windows) return;
  Point now = baseline_;
  now.throughput = x;
  now.p99 = p99;
  now.cpu_per_request = w.CpuPerRequest();
  Note(w, Rule::kResearch,
       absl::StrFormat("%d windows beyond the noise (%.0f%%, CPU %.0f%%): "
                       "throughput %.1f -> %.1f req/s, CPU/request %.2f -> "
                       "%.2f ms",
                       drift_count_, limit * 100, cpu_limit * 100,
                       baseline_.throughput, x, baseline_.cpu_per_request * 1e3,
                       w.CpuPerRequest() * 1e3),
       now, out);
  ResetRegime();
  settle_left_ = 0;
}

Report CapacityController::report() const {
  Report r;
  r.app_class = AppClassName(class_);
  for (const auto& [cfg, p] : points_) {
    r.points.push_back(
        {p.workers, p.threads, p.in_flight, p.throughput, p.p50, p.p99});
  }
  std::sort(r.points.begin(), r.points.end(),
            [](const ReportPoint& a, const ReportPoint& b) {
              return a.concurrency < b.concurrency;
            });
  if (std::optional<UslFit> fit = Fit(); fit) {
    r.usl_valid = true;
    r.sigma = fit->sigma;
    r.kappa = fit->kappa;
    r.knee = fit->Knee();
  }
  r.workers = workers_;
  r.threads = threads_;
  if (phase_ != Phase::kSteady) {
    double best = -1;
    for (const auto& [cfg, p] : points_) {
      if (p.throughput > best) {
        best = p.throughput;
        r.workers = cfg.first;
        r.threads = cfg.second;
      }
    }
  }
  return r;
}

}  // namespace forkd::autotune

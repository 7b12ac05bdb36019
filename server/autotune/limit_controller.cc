#include "server/autotune/limit_controller.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/random/distributions.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace forkd::autotune {

absl::StatusOr<std::unique_ptr<LimitController>> LimitController::Create(
    const LimitOptions& o, absl::BitGenRef rng) {
  if (o.min_limit < 1 || o.max_limit < o.min_limit) {
    return absl::InvalidArgumentError(
        absl::StrFormat("autotune limit: bounds %d..%d are not 1 <= min <= max",
                        o.min_limit, o.max_limit));
  }
  if (o.initial_limit != 0 &&
      (o.initial_limit < o.min_limit || o.initial_limit > o.max_limit)) {
    return absl::InvalidArgumentError(
        "autotune limit: initial limit outside the bounds");
  }
  if (!(o.sample_quantile > 0 && o.sample_quantile <= 1) ||
      o.min_rtt_buffer < 0 || o.min_rtt_interval_seconds <= 0 ||
      o.min_rtt_jitter < 0 || o.latency_target_seconds < 0 ||
      o.min_rtt_requests == 0) {
    return absl::InvalidArgumentError(
        "autotune limit: quantile, buffer, interval, jitter, target or "
        "request count out of range");
  }
  return std::unique_ptr<LimitController>(new LimitController(o, rng));
}

LimitController::LimitController(const LimitOptions& o, absl::BitGenRef rng)
    : opt_(o), rng_(rng) {
  deferred_limit_ = o.initial_limit ? o.initial_limit : o.min_limit;
  limit_ = o.min_limit;  // the first windows measure minRTT
}

void LimitController::ScheduleProbe(double now) {
  const double jitter = opt_.min_rtt_jitter > 0
                            ? absl::Uniform(rng_, 0.0, opt_.min_rtt_jitter)
                            : 0.0;
  next_probe_at_ = now + opt_.min_rtt_interval_seconds * (1 + jitter);
}

Decision LimitController::Make(const Window& w, Rule rule, double new_limit,
                               std::string why) {
  Decision d;
  d.at_seconds = w.end_seconds;
  d.controller = "limit";
  d.rule = rule;
  d.knob = Knob::kLimit;
  d.old_value = static_cast<int>(limit_);
  d.new_value = static_cast<int>(new_limit);
  d.inputs = {{"min_rtt", min_rtt_},
              {"sample_rtt", w.app_latency.Quantile(opt_.sample_quantile)},
              {"p99", w.app_latency.Quantile(0.99)},
              {"gradient", gradient_},
              {"in_flight", w.mean_in_flight},
              {"throughput", w.Throughput()}};
  d.why = std::move(why);
  limit_ = new_limit;
  return d;
}

std::optional<Decision> LimitController::OnWindow(const Window& w) {
  if (phase_ == Phase::kMinRtt) {
    probe_samples_.Add(w.app_latency);
    if (probe_samples_.count() < opt_.min_rtt_requests) return std::nullopt;
    min_rtt_ = probe_samples_.Quantile(opt_.sample_quantile);
    probe_samples_ = LatencyHistogram();
    phase_ = Phase::kRunning;
    windows_at_min_ = 0;
    ScheduleProbe(w.end_seconds);
    Decision d = Make(
        w, Rule::kMinRttDone, deferred_limit_,
        absl::StrFormat("minRTT %.2f ms measured at the minimum limit; limit "
                        "restored",
                        min_rtt_ * 1e3));
    return d;
  }

  if (w.end_seconds >= next_probe_at_ ||
      windows_at_min_ >= opt_.min_limit_windows_before_probe) {
    // The latency without queueing drifts (deploys, dependencies); only a
    // window at the minimum limit shows it again. Jitter keeps several
    // forkd pods from probing in step.
    phase_ = Phase::kMinRtt;
    deferred_limit_ = limit_;
    probe_samples_ = LatencyHistogram();
    return Make(w, Rule::kMinRttProbe, opt_.min_limit,
                windows_at_min_ >= opt_.min_limit_windows_before_probe
                    ? "limit stuck at its minimum: minRTT may be stale"
                    : "periodic minRTT re-measurement");
  }

  if (w.app_latency.count() == 0 || min_rtt_ <= 0) return std::nullopt;
  const double sample = w.app_latency.Quantile(opt_.sample_quantile);
  if (sample <= 0) return std::nullopt;
  gradient_ =
      std::clamp((1 + opt_.min_rtt_buffer) * min_rtt_ / sample, 0.5, 2.0);
  const double scaled = limit_ * gradient_;
  double next = scaled + std::sqrt(scaled);
  Rule rule = Rule::kGradient;
  std::string why =
      absl::StrFormat("sample %.2f ms vs minRTT %.2f ms: gradient %.2f",
                      sample * 1e3, min_rtt_ * 1e3, gradient_);

  // Gradient2's guard: with fewer than L/2 in flight the app is not what
  // limits throughput, so latency says nothing about a larger limit.
  if (next > limit_ && w.mean_in_flight < limit_ / 2) {
    next = limit_;
    rule = Rule::kAppLimited;
  }
  guard_samples_.Add(w.app_latency);
  double p99 = 0;
  if (guard_samples_.count() >= opt_.p99_min_requests) {
    p99 = guard_samples_.Quantile(0.99);
    guard_samples_ = LatencyHistogram();
  }
  if (opt_.latency_target_seconds > 0 && p99 > opt_.latency_target_seconds) {
    const double shrink = std::max(0.5, opt_.latency_target_seconds / p99);
    const double guarded = std::min(next, limit_ * shrink);
    if (guarded < next) {
      next = guarded;
      rule = Rule::kLatencyGuard;
      why =
          absl::StrFormat("p99 %.2f ms above the target %.2f ms: x%.2f",
                          p99 * 1e3, opt_.latency_target_seconds * 1e3, shrink);
    }
  }
  next = std::clamp(next, static_cast<double>(opt_.min_limit),
                    static_cast<double>(opt_.max_limit));
  windows_at_min_ =
      static_cast<int>(next) == opt_.min_limit ? windows_at_min_ + 1 : 0;
  if (static_cast<int>(next) == static_cast<int>(limit_)) {
    limit_ = next;  // keep the fraction: small steps add up
    return std::nullopt;
  }
  if (rule == Rule::kAppLimited) return std::nullopt;
  return Make(w, rule, next, std::move(why));
}

}  // namespace forkd::autotune

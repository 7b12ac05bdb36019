// `--autotune limit`: an adaptive limit on requests in flight to the app,
// in the manner of Envoy's gradient controller (see README.md for why this
// one and not Gradient2). Fed one Window at a time by one thread (the
// master's loop); no I/O, the clock is the windows' end time and the jitter
// comes from an injected random generator.
#ifndef FORKD_SERVER_AUTOTUNE_LIMIT_CONTROLLER_H_
#define FORKD_SERVER_AUTOTUNE_LIMIT_CONTROLLER_H_

#include <memory>
#include <optional>
#include <vector>

#include "absl/random/bit_gen_ref.h"
#include "absl/status/statusor.h"
#include "server/autotune/decision.h"
#include "server/autotune/window.h"

namespace forkd::autotune {

struct LimitOptions {
  int min_limit = 3;
  int max_limit = 1000;
  int initial_limit = 0;  // 0: min_limit
  // p99 of the app's latency not to exceed (an upper guard), 0 = none.
  double latency_target_seconds = 0;
  double sample_quantile = 0.5;  // the window's "sample RTT"
  double min_rtt_buffer = 0.25;  // grad = (1 + buffer) * minRTT / sample
  double min_rtt_interval_seconds = 60;
  double min_rtt_jitter = 0.15;            // interval * (1 + U[0, jitter))
  uint64_t min_rtt_requests = 50;          // samples needed for a minRTT
  int min_limit_windows_before_probe = 5;  // Envoy: stuck at min: re-measure
  // The p99 guard judges at least this many requests (windows are merged
  // until then): in a window of 60 requests the "p99" is its slowest one,
  // and one stall of a busy machine halved the limit.
  uint64_t p99_min_requests = 100;
};

class LimitController {
 public:
  enum class Phase { kMinRtt, kRunning };

  // InvalidArgument when the options are inconsistent (min > max, a
  // quantile outside (0, 1], ...). `rng` must outlive the controller.
  static absl::StatusOr<std::unique_ptr<LimitController>> Create(
      const LimitOptions& options, absl::BitGenRef rng);

  // Reads one window and returns the decision that changes the limit, if
  // any. The first windows measure minRTT at the minimum limit.
  std::optional<Decision> OnWindow(const Window& w);

  int limit() const { return static_cast<int>(limit_); }
  Phase phase() const { return phase_; }
  double min_rtt_seconds() const { return min_rtt_; }
  double last_gradient() const { return gradient_; }

 private:
  LimitController(const LimitOptions& o, absl::BitGenRef rng);
  Decision Make(const Window& w, Rule rule, double new_limit, std::string why);
  void ScheduleProbe(double now);

  LimitOptions opt_;
  absl::BitGenRef rng_;
  Phase phase_ = Phase::kMinRtt;
  double limit_;
  double deferred_limit_;
  double min_rtt_ = 0;
  double gradient_ = 1;
  double next_probe_at_ = 0;
  int windows_at_min_ = 0;
  LatencyHistogram probe_samples_;
  LatencyHistogram guard_samples_;  // windows not judged by the p99 guard yet
};

}  // namespace forkd::autotune

#endif  // FORKD_SERVER_AUTOTUNE_LIMIT_CONTROLLER_H_

// `--autotune full` (app mode): the number of app processes and their
// threads. Classifies the app from measurements, starts at (2 x CPU) + 1
// processes with the class's threads, hill-climbs on throughput (p99 under
// the target as a constraint) along the class's dimension, stops before the
// USL knee, and searches again when the app's behaviour moves beyond the
// measured noise. README.md has the rules. Fed one Window at a time by one
// thread; no I/O, deterministic.
#ifndef FORKD_SERVER_AUTOTUNE_CAPACITY_CONTROLLER_H_
#define FORKD_SERVER_AUTOTUNE_CAPACITY_CONTROLLER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/autotune/decision.h"
#include "server/autotune/usl.h"
#include "server/autotune/window.h"

namespace forkd::autotune {

// Inclusive bounds; 0 for max_workers derives it from the cgroup CPU limit
// (max(2 x CPU + 1, 4 x CPU)). Memory bounds the workers further at run
// time from memory.max and the measured RSS per process.
struct Bounds {
  int min_workers = 1;
  int max_workers = 0;
  int min_threads = 1;
  int max_threads = 32;
};

struct CapacityOptions {
  Bounds bounds;
  double latency_target_seconds = 0;  // p99 of whole requests, 0 = none
  int settle_windows = 1;   // windows ignored after a change (cool-down)
  int measure_windows = 2;  // windows averaged into one point
  double min_gain = 0.05;   // hysteresis: act only on more expected gain
  int max_worker_step = 2;  // bounded steps
  int max_thread_step = 8;
  int drift_windows = 3;         // windows beyond the noise before a re-search
  double drift_min = 0.10;       // smallest relative move counted as drift
  int flap_limit = 3;            // reverts after which a config is not retried
  double memory_headroom = 0.9;  // share of memory.max the app may use
  double thread_rss_bytes = 2 << 20;  // assumed RSS cost of one thread
};

enum class AppClass { kUnknown, kCpuBound, kIoBound, kMixed, kMemoryBound };
const char* AppClassName(AppClass c);

class CapacityController {
 public:
  enum class Phase { kMeasure, kSearch, kSteady };

  // InvalidArgument for inconsistent options or a start configuration
  // outside the bounds.
  static absl::StatusOr<std::unique_ptr<CapacityController>> Create(
      const CapacityOptions& options, int workers, int threads);

  // Reads one window (of the configuration last decided) and returns the
  // decisions it led to, in order; those with changes() must be applied
  // before the next window. Windows during the cool-down are ignored.
  std::vector<Decision> OnWindow(const Window& w);

  int workers() const { return workers_; }
  int threads() const { return threads_; }
  Phase phase() const { return phase_; }
  AppClass app_class() const { return class_; }
  // Penalty (number of reverts) of a configuration.
  int penalty(int workers, int threads) const;
  // What was learned in the current regime.
  Report report() const;

 private:
  using Config = std::pair<int, int>;  // workers, threads
  struct Point {
    int workers = 0, threads = 0;
    double throughput = 0, p50 = 0, p99 = 0, app_p50 = 0;
    double in_flight = 0, cpu_per_request = 0, cores_used = 0;
    double throttled = 0, rss_per_process = 0, cpu_limit = 0;
    double memory_max = 0, noise = 0;
    double cpu_noise = 0;  // the same spread, of CPU per request
    double queue = 0;      // mean requests waiting in forkd for a slot
  };
  struct Probe {
    Config to;
    Config from;
    Rule rule;
    bool up;
  };

  explicit CapacityController(const CapacityOptions& o, int w, int t);
  Point Summarise() const;
  AppClass Classify(const Point& p) const;
  int ClassThreads(AppClass c, const Point& p) const;
  int MaxWorkers(const Point& p) const;
  bool Fits(const Point& p, Config c) const;
  std::optional<UslFit> Fit() const;
  double ExpectedUpGain(const Point& p, Config to) const;
  std::optional<Probe> NextProbe(const Point& p, std::string* why,
                                 double* expected) const;
  void Apply(const Window& w, Rule rule, Config to, const std::string& why,
             const Point& p, std::vector<Decision>* out);
  void Note(const Window& w, Rule rule, const std::string& why, const Point& p,
            std::vector<Decision>* out) const;
  std::vector<Decision> OnPoint(const Window& w, const Point& p);
  void Steady(const Window& w, std::vector<Decision>* out);
  // Sheds processes, then threads, when the configuration does not fit
  // memory.max; true when it decided so.
  bool Bound(const Window& w, const Point& p, std::vector<Decision>* out);
  void ResetRegime();

  CapacityOptions opt_;
  int workers_, threads_;
  Phase phase_ = Phase::kMeasure;
  AppClass class_ = AppClass::kUnknown;
  bool started_ = false;
  int settle_left_ = 0;
  std::vector<Window> acc_;
  std::map<Config, Point> points_;  // the current regime
  std::map<Config, int> penalty_;
  std::set<Config> explored_;  // bases already explored downwards
  std::optional<Probe> probe_;
  Point base_;
  Point baseline_;  // steady state
  double noise_ = 0.02;
  // CPU per request is noisier than throughput: /proc counts each process's
  // CPU in 10 ms ticks, tens of percent of a light app's window.
  double cpu_noise_ = 0.02;
  double min_app_p50_ = 0;
  int drift_count_ = 0;
  int remeasured_ = 0;  // points discarded in a row (kRemeasure)
};

}  // namespace forkd::autotune

#endif  // FORKD_SERVER_AUTOTUNE_CAPACITY_CONTROLLER_H_

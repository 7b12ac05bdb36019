// The master's side of autotune: once per window it turns what the
// scoreboard counted (request and app latency histograms, in-flight, queue),
// /proc of the app processes and the cgroup (through HostStats) into a
// Window, feeds the controllers, logs each Decision as one JSON line and
// returns the changes for the master to apply as ordinary commands (the
// limit into the scoreboard; workers and threads as ScaleTo / SetThreads,
// the TTIN/TTOU and forkctl path). Loop thread only; the clock is the
// Sample's, so tests drive it with a fake one.
#ifndef FORKD_SERVER_AUTOTUNE_AUTOTUNER_H_
#define FORKD_SERVER_AUTOTUNE_AUTOTUNER_H_

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/autotune/capacity_controller.h"
#include "server/autotune/host_stats.h"
#include "server/autotune/limit_controller.h"
#include "server/autotune/tune_status.h"
#include "server/autotune/window.h"
#include "server/config/autotune_settings.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::autotune {

struct AutotunerOptions {
  config::AutotuneMode mode = config::AutotuneMode::kOff;
  bool app_mode = false;
  double latency_target_seconds = 0;
  config::AutotuneBounds bounds;  // as given; zeros derive defaults
  int max_workers = 64;           // --max-workers, --max-threads: hard caps
  int max_threads = 256;
  // Threads are a knob only where they set the app processes' cap
  // (--worker-class gthread); otherwise full mode keeps them as they are.
  bool threads_tunable = true;
  int64_t window_ms = 1000;
  size_t recent_decisions = 20;  // kept for GetTune
  double min_rtt_interval_seconds = 60;
};

// What the master hands over on every tick: scoreboard totals (live slots
// plus retired workers, so never backwards) and gauges.
struct Sample {
  int64_t now_ms = 0;
  scoreboard::CounterTotals totals;
  uint32_t in_flight = 0;  // AppLimit::in_flight: requests at the app
  uint32_t queued = 0;     // requests waiting in forkd's queues
  int workers = 0;         // desired app processes (sidecar: workers)
  int threads = 0;
  int64_t in_flight_cap = 0;  // workers x threads (x connections)
  std::vector<pid_t> app_pids;
};

// One change the master applies.
struct Change {
  Knob knob = Knob::kNone;
  int value = 0;
};

class Autotuner {
 public:
  // InvalidArgument for full mode outside app mode or bounds the
  // controllers refuse. `host` must outlive the Autotuner.
  static absl::StatusOr<std::unique_ptr<Autotuner>> Create(
      AutotunerOptions options, HostStats* host, uint32_t seed = 1);

  // Reads one tick; at each window's end feeds the controllers and returns
  // the changes to apply (empty otherwise, and always when off).
  std::vector<Change> OnTick(const Sample& s);

  // SetTune: validates (InvalidArgument with a message, nothing changed)
  // and applies; returns the changes to make now (a pin, the limit removed
  // when switched off). `s` is the latest sample.
  absl::StatusOr<std::vector<Change>> Update(const TuneUpdate& u,
                                             const Sample& s);

  // An operator resized the pool (forkctl scale / threads, TTIN/TTOU) to
  // `value`: in full mode that knob becomes a pin, as `forkctl tune --pin`
  // makes it, so the next decision does not undo the operator's choice (the
  // controller restarts from the pool as it is). Not called for the
  // autotuner's own changes. Returns the changes to apply (normally none);
  // nothing in other modes or for threads that are not a knob.
  std::vector<Change> OperatorResized(Knob knob, int value, const Sample& s);

  TuneStatus Status() const;
  config::AutotuneMode mode() const { return opt_.mode; }

 private:
  Autotuner(AutotunerOptions o, HostStats* host, uint32_t seed);
  absl::Status Rebuild(const Sample& s);
  Window Build(const Sample& s);
  void Record(const Decision& d);
  void Observe(const Window& w);
  config::AutotuneBounds Resolved(const Sample& s) const;

  AutotunerOptions opt_;
  HostStats* host_;
  std::mt19937 rng_;
  std::unique_ptr<LimitController> limit_ctl_;
  std::unique_ptr<CapacityController> capacity_ctl_;
  config::AutotuneBounds resolved_;
  int pin_workers_ = 0;
  int pin_threads_ = 0;
  int pin_limit_ = 0;
  int limit_ = 0;  // written to the scoreboard
  int workers_ = 0;
  int threads_ = 0;
  bool built_ = false;

  // The window being measured.
  bool started_ = false;
  int64_t window_start_ms_ = 0;
  scoreboard::CounterTotals start_totals_;
  std::map<pid_t, double> start_cpu_;
  CgroupStats start_cgroup_;
  double in_flight_sum_ = 0;
  double queued_sum_ = 0;
  int ticks_ = 0;
  uint64_t windows_ = 0;

  std::deque<Decision> recent_;
  std::map<std::string, uint64_t> by_rule_;
  // limit/off mode's report: windows by concurrency (mean in flight).
  struct Seen {
    double n = 0, throughput = 0, p50 = 0, p99 = 0;
  };
  std::map<int, Seen> seen_;
};

}  // namespace forkd::autotune

#endif  // FORKD_SERVER_AUTOTUNE_AUTOTUNER_H_

// What the controllers answer: decisions (one knob, old -> new, the rule
// that fired, its inputs and why) that the master logs as one JSON line and
// applies as an ordinary command, and the Report of what was learned.
#ifndef FORKD_SERVER_AUTOTUNE_DECISION_H_
#define FORKD_SERVER_AUTOTUNE_DECISION_H_

#include <string>
#include <utility>
#include <vector>

namespace forkd::autotune {

enum class Knob { kLimit, kWorkers, kThreads, kNone };
const char* KnobName(Knob k);

enum class Rule {
  // limit controller
  kGradient,      // L' = L*grad + sqrt(L*grad)
  kLatencyGuard,  // p99 above the target: shrink by target/p99
  kAppLimited,    // in-flight < L/2: do not grow
  kMinRttProbe,   // pin the limit to its minimum to measure minRTT
  kMinRttDone,    // minRTT measured: restore the limit
  // capacity controller
  kStart,              // classified: (2 x CPU) + 1 workers, the class's threads
  kReclassify,         // the app changed class: the class's threads
  kProbe,              // try a neighbour (expected gain > threshold)
  kExplore,            // try a neighbour to learn the curve (no estimate yet)
  kTrimCpu,            // CPU at the limit with more processes than cores
  kTrimIdle,           // slots idle: fewer threads/processes, same throughput
  kKnee,               // the USL fit says we are past the knee
  kAccept,             // the probe delivered: keep it
  kRevert,             // the probe did not deliver: undo (anti-flap penalty)
  kConverged,          // no neighbour promises more than the threshold
  kResearch,           // throughput/latency/CPU moved beyond the noise: search
  kBound,              // the configuration left its bounds: clamp
  kRemeasure,          // a point's windows disagree far beyond the noise: again
  kLast = kRemeasure,  // the metrics export every rule up to this one
};
const char* RuleName(Rule r);

// One decision. `old_value == new_value` for decisions that change nothing
// (accept, converged, research): they are logged, not applied.
struct Decision {
  double at_seconds = 0;        // the window's end (monotonic)
  const char* controller = "";  // "limit" or "capacity"
  Rule rule = Rule::kGradient;
  Knob knob = Knob::kNone;
  double old_value = 0;
  double new_value = 0;
  // The measurements the rule read, by name (seconds, req/s, cores...).
  std::vector<std::pair<std::string, double>> inputs;
  std::string why;

  bool changes() const { return knob != Knob::kNone && old_value != new_value; }
  // One line of JSON: {"at":..,"controller":..,"rule":..,"knob":..,
  // "old":..,"new":..,"inputs":{..},"why":".."}.
  std::string ToJson() const;
};

// A measured point of the throughput curve.
struct ReportPoint {
  int workers = 0;
  int threads = 0;
  double concurrency = 0;  // mean in flight in the app
  double throughput = 0;   // req/s
  double p50_seconds = 0;
  double p99_seconds = 0;
};

// What forkd learned about the app (`forkctl tune report`).
struct Report {
  std::string app_class;  // "cpu-bound", "io-bound", "mixed", "memory-bound"
  std::vector<ReportPoint> points;  // ascending concurrency
  bool usl_valid = false;
  double sigma = 0;
  double kappa = 0;
  double knee = 0;  // concurrency; 0 when no knee (kappa == 0)
  int workers = 0;  // recommended static configuration
  int threads = 0;

  // "-w 3 --threads 8".
  std::string RecommendedFlags() const;
  std::string ToJson() const;
  // A table for humans, one point per line, then the fit and the flags.
  std::string ToText() const;
};

// `s` as a JSON string literal (quotes, backslashes and control characters
// escaped).
std::string JsonQuote(const std::string& s);

}  // namespace forkd::autotune

#endif  // FORKD_SERVER_AUTOTUNE_DECISION_H_

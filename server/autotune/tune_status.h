// What the autotuner shows (admin GetTune, forkd_autotune_* metrics): plain
// data the master's loop publishes with each pool snapshot.
#ifndef FORKD_SERVER_AUTOTUNE_TUNE_STATUS_H_
#define FORKD_SERVER_AUTOTUNE_TUNE_STATUS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "server/autotune/decision.h"
#include "server/config/autotune_settings.h"

namespace forkd::autotune {

struct TuneStatus {
  config::AutotuneMode mode = config::AutotuneMode::kOff;
  // "off", "min_rtt", "running" (limit); "measure", "search", "steady"
  // (full); "pinned" when every knob of the mode is pinned.
  std::string phase = "off";
  int limit = 0;    // the shared in-flight limit now (0: none)
  int workers = 0;  // app processes (sidecar: proxy workers) now
  int threads = 0;
  double min_rtt_seconds = 0;
  double gradient = 0;
  double latency_target_seconds = 0;
  config::AutotuneBounds bounds;  // in force (defaults resolved)
  int pin_workers = 0;            // 0: not pinned
  int pin_threads = 0;
  int pin_limit = 0;
  uint64_t windows = 0;          // windows measured since start
  std::vector<Decision> recent;  // the last decisions, oldest first
  std::map<std::string, uint64_t> decisions_by_rule;
  Report report;
};

// An operator's SetTune: every field optional.
struct TuneUpdate {
  std::optional<config::AutotuneMode> mode;
  std::optional<int> pin_workers;  // 0: unpin
  std::optional<int> pin_threads;
  std::optional<int> pin_limit;
  std::optional<config::AutotuneBounds> bounds;
  std::optional<double> latency_target_seconds;
};

}  // namespace forkd::autotune

#endif  // FORKD_SERVER_AUTOTUNE_TUNE_STATUS_H_

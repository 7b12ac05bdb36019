// The autotune settings as the user types them (--autotune,
// --latency-target, --autotune-bounds) and as the admin API takes them
// (SetTune): parsed here once, so the flag and the RPC give the same
// answers to the same text. No I/O.
#ifndef FORKD_SERVER_CONFIG_AUTOTUNE_SETTINGS_H_
#define FORKD_SERVER_CONFIG_AUTOTUNE_SETTINGS_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace forkd::config {

// --autotune: off (static sizes), limit (an adaptive in-flight limit to the
// app, sidecar and app mode), full (limit + app processes x threads, app
// mode only).
enum class AutotuneMode { kOff, kLimit, kFull };
const char* AutotuneModeName(AutotuneMode m);  // "off", "limit", "full"
// nullopt for anything but off|limit|full (case-insensitive).
std::optional<AutotuneMode> ParseAutotuneMode(std::string_view text);

// --autotune-bounds "workers=1:8,threads=1:16,limit=3:200": inclusive
// ranges; a knob not named (or 0) keeps the default derived at start-up
// (workers from the cgroup CPU limit, threads from --max-threads, limit
// from the in-flight cap).
struct AutotuneBounds {
  int min_workers = 0;
  int max_workers = 0;
  int min_threads = 0;
  int max_threads = 0;
  int min_limit = 0;
  int max_limit = 0;

  bool empty() const {
    return min_workers == 0 && max_workers == 0 && min_threads == 0 &&
           max_threads == 0 && min_limit == 0 && max_limit == 0;
  }
  friend bool operator==(const AutotuneBounds&,
                         const AutotuneBounds&) = default;
};

// InvalidArgument naming the bad part ("threads=4:2: min above max") for
// an unknown knob, a missing ':', a number that is not 1..100000 or
// min > max. "" is the empty (all defaults) bounds.
absl::StatusOr<AutotuneBounds> ParseAutotuneBounds(std::string_view text);
// The inverse, knobs in a fixed order; "" for empty bounds.
std::string FormatAutotuneBounds(const AutotuneBounds& b);

// A duration: "250ms", "0.25s", "2m" or a bare number of seconds.
// InvalidArgument when it is none of these, negative or not finite.
absl::StatusOr<double> ParseDuration(std::string_view text);

}  // namespace forkd::config

#endif  // FORKD_SERVER_CONFIG_AUTOTUNE_SETTINGS_H_

#include "server/config/autotune_settings.h"

#include <cmath>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace forkd::config {
namespace {

constexpr int kMaxBound = 100000;

}  // namespace

const char* AutotuneModeName(AutotuneMode m) {
  switch (m) {
    case AutotuneMode::kOff:
      return "off";
    case AutotuneMode::kLimit:
      return "limit";
    case AutotuneMode::kFull:
      return "full";
  }
  return "off";
}

std::optional<AutotuneMode> ParseAutotuneMode(std::string_view text) {
  absl::string_view v =
      absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size()));
  for (AutotuneMode m :
       {AutotuneMode::kOff, AutotuneMode::kLimit, AutotuneMode::kFull}) {
    if (absl::EqualsIgnoreCase(v, AutotuneModeName(m))) return m;
  }
  return std::nullopt;
}

absl::StatusOr<AutotuneBounds> ParseAutotuneBounds(std::string_view text) {
  AutotuneBounds b;
  absl::string_view all(text.data(), text.size());
  for (absl::string_view part : absl::StrSplit(all, ',', absl::SkipEmpty())) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) continue;
    std::vector<absl::string_view> kv = absl::StrSplit(part, '=');
    if (kv.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(part, ": not KNOB=MIN:MAX"));
    }
    absl::string_view knob = absl::StripAsciiWhitespace(kv[0]);
    int* lo = nullptr;
    int* hi = nullptr;
    if (absl::EqualsIgnoreCase(knob, "workers")) {
      lo = &b.min_workers;
      hi = &b.max_workers;
    } else if (absl::EqualsIgnoreCase(knob, "threads")) {
      lo = &b.min_threads;
      hi = &b.max_threads;
    } else if (absl::EqualsIgnoreCase(knob, "limit")) {
      lo = &b.min_limit;
      hi = &b.max_limit;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          part, ": unknown knob \"", knob, "\" (workers, threads or limit)"));
    }
    std::vector<absl::string_view> range = absl::StrSplit(kv[1], ':');
    int min = 0;
    int max = 0;
    if (range.size() != 2 ||
        !absl::SimpleAtoi(absl::StripAsciiWhitespace(range[0]), &min) ||
        !absl::SimpleAtoi(absl::StripAsciiWhitespace(range[1]), &max)) {
      return absl::InvalidArgumentError(
          absl::StrCat(part, ": the range is not MIN:MAX (two integers)"));
    }
    if (min < 1 || max < 1 || min > kMaxBound || max > kMaxBound) {
      return absl::InvalidArgumentError(
          absl::StrCat(part, ": bounds must be 1..", kMaxBound));
    }
    if (min > max) {
      return absl::InvalidArgumentError(absl::StrCat(part, ": min above max"));
    }
    *lo = min;
    *hi = max;
  }
  return b;
}

std::string FormatAutotuneBounds(const AutotuneBounds& b) {
  std::vector<std::string> parts;
  if (b.max_workers != 0) {
    parts.push_back(
        absl::StrCat("workers=", b.min_workers, ":", b.max_workers));
  }
  if (b.max_threads != 0) {
    parts.push_back(
        absl::StrCat("threads=", b.min_threads, ":", b.max_threads));
  }
  if (b.max_limit != 0) {
    parts.push_back(absl::StrCat("limit=", b.min_limit, ":", b.max_limit));
  }
  return absl::StrJoin(parts, ",");
}

absl::StatusOr<double> ParseDuration(std::string_view text) {
  absl::string_view v =
      absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size()));
  double scale = 1;
  if (absl::ConsumeSuffix(&v, "ms")) {
    scale = 1e-3;
  } else if (absl::ConsumeSuffix(&v, "s")) {
    scale = 1;
  } else if (absl::ConsumeSuffix(&v, "m")) {
    scale = 60;
  }
  double d = 0;
  if (v.empty() || !absl::SimpleAtod(v, &d) || !std::isfinite(d) || d < 0) {
    return absl::InvalidArgumentError(
        "is not a duration (250ms, 0.25s, 2m or seconds)");
  }
  return d * scale;
}

}  // namespace forkd::config

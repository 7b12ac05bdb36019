#include "server/autotune/decision.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace forkd::autotune {
namespace {

// JSON has no NaN or Infinity; a non-finite input renders as null.
std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.6g", v);
}

}  // namespace

const char* KnobName(Knob k) {
  switch (k) {
    case Knob::kLimit:
      return "limit";
    case Knob::kWorkers:
      return "workers";
    case Knob::kThreads:
      return "threads";
    case Knob::kNone:
      return "none";
  }
  return "none";
}

const char* RuleName(Rule r) {
  switch (r) {
    case Rule::kGradient:
      return "gradient";
    case Rule::kLatencyGuard:
      return "latency_guard";
    case Rule::kAppLimited:
      return "app_limited";
    case Rule::kMinRttProbe:
      return "min_rtt_probe";
    case Rule::kMinRttDone:
      return "min_rtt_done";
    case Rule::kStart:
      return "start";
    case Rule::kReclassify:
      return "reclassify";
    case Rule::kProbe:
      return "probe";
    case Rule::kExplore:
      return "explore";
    case Rule::kTrimCpu:
      return "trim_cpu";
    case Rule::kTrimIdle:
      return "trim_idle";
    case Rule::kKnee:
      return "knee";
    case Rule::kAccept:
      return "accept";
    case Rule::kRevert:
      return "revert";
    case Rule::kConverged:
      return "converged";
    case Rule::kResearch:
      return "research";
    case Rule::kBound:
      return "bound";
    case Rule::kRemeasure:
      return "remeasure";
  }
  return "unknown";
}

std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += "\"";
  return out;
}

std::string Decision::ToJson() const {
  std::string out =
      absl::StrCat("{\"at\":", JsonNumber(at_seconds),
                   ",\"controller\":", JsonQuote(controller),
                   ",\"rule\":", JsonQuote(RuleName(rule)),
                   ",\"knob\":", JsonQuote(KnobName(knob)),
                   ",\"old\":", JsonNumber(old_value),
                   ",\"new\":", JsonNumber(new_value), ",\"inputs\":{");
  for (size_t i = 0; i < inputs.size(); ++i) {
    absl::StrAppend(&out, i ? "," : "", JsonQuote(inputs[i].first), ":",
                    JsonNumber(inputs[i].second));
  }
  absl::StrAppend(&out, "},\"why\":", JsonQuote(why), "}");
  return out;
}

std::string Report::RecommendedFlags() const {
  return absl::StrCat("-w ", workers, " --threads ", threads);
}

std::string Report::ToJson() const {
  std::string out =
      absl::StrCat("{\"class\":", JsonQuote(app_class), ",\"points\":[");
  for (size_t i = 0; i < points.size(); ++i) {
    const ReportPoint& p = points[i];
    absl::StrAppend(&out, i ? "," : "", "{\"workers\":", p.workers,
                    ",\"threads\":", p.threads,
                    ",\"concurrency\":", JsonNumber(p.concurrency),
                    ",\"throughput\":", JsonNumber(p.throughput),
                    ",\"p50\":", JsonNumber(p.p50_seconds),
                    ",\"p99\":", JsonNumber(p.p99_seconds), "}");
  }
  absl::StrAppend(&out, "],\"usl\":{\"valid\":", usl_valid ? "true" : "false",
                  ",\"sigma\":", JsonNumber(sigma),
                  ",\"kappa\":", JsonNumber(kappa),
                  ",\"knee\":", JsonNumber(knee),
                  "},\"recommended\":", JsonQuote(RecommendedFlags()), "}");
  return out;
}

std::string Report::ToText() const {
  std::string out = absl::StrFormat("class: %s\n", app_class);
  absl::StrAppendFormat(&out, "%8s %8s %12s %12s %10s %10s\n", "workers",
                        "threads", "concurrency", "req/s", "p50 ms", "p99 ms");
  for (const ReportPoint& p : points) {
    absl::StrAppendFormat(&out, "%8d %8d %12.1f %12.1f %10.1f %10.1f\n",
                          p.workers, p.threads, p.concurrency, p.throughput,
                          p.p50_seconds * 1e3, p.p99_seconds * 1e3);
  }
  if (usl_valid) {
    absl::StrAppendFormat(&out, "USL: sigma %.4f kappa %.6f knee %s\n", sigma,
                          kappa,
                          knee > 0 ? absl::StrFormat("%.1f", knee) : "none");
  } else {
    out += "USL: not enough points\n";
  }
  absl::StrAppend(&out, "recommended: ", RecommendedFlags(), "\n");
  return out;
}

}  // namespace forkd::autotune

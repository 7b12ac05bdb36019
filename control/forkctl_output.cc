#include "control/forkctl_output.h"

#include <string.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"

namespace forkd::control {

std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (row.size() > width.size()) width.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(width[i] - row[i].size() + 3, ' ');
    }
    line.erase(line.find_last_not_of(' ') + 1);
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string FormatAge(double seconds) {
  if (!(seconds >= 0)) seconds = 0;
  if (seconds < 1) {
    return absl::StrCat(static_cast<int64_t>(seconds * 1000), "ms");
  }
  int64_t s = static_cast<int64_t>(seconds);
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) {
    return s % 60 ? absl::StrCat(s / 60, "m", s % 60, "s")
                  : absl::StrCat(s / 60, "m");
  }
  if (s < 86400) {
    int64_t m = (s % 3600) / 60;
    return m ? absl::StrCat(s / 3600, "h", m, "m")
             : absl::StrCat(s / 3600, "h");
  }
  int64_t h = (s % 86400) / 3600;
  return h ? absl::StrCat(s / 86400, "d", h, "h")
           : absl::StrCat(s / 86400, "d");
}

std::string FormatBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"Ki", "Mi", "Gi", "Ti"};
  if (bytes < 1024) return absl::StrCat(bytes);
  double v = static_cast<double>(bytes);
  int unit = -1;
  while (v >= 1024 && unit < 3) {
    v /= 1024;
    ++unit;
  }
  if (v < 10) return absl::StrFormat("%.2f%s", v, kUnits[unit]);
  if (v < 100) return absl::StrFormat("%.1f%s", v, kUnits[unit]);
  return absl::StrFormat("%.0f%s", v, kUnits[unit]);
}

std::string StateName(v1::WorkerState state) {
  switch (state) {
    case v1::WORKER_STATE_BOOTING:
      return "booting";
    case v1::WORKER_STATE_READY:
      return "ready";
    case v1::WORKER_STATE_BUSY:
      return "busy";
    case v1::WORKER_STATE_DRAINING:
      return "draining";
    case v1::WORKER_STATE_EXITING:
      return "exiting";
    default:
      return "unknown";
  }
}

std::string AppStateName(v1::AppProcessState state) {
  switch (state) {
    case v1::APP_PROCESS_STATE_STARTING:
      return "starting";
    case v1::APP_PROCESS_STATE_READY:
      return "ready";
    case v1::APP_PROCESS_STATE_RETIRING:
      return "retiring";
    case v1::APP_PROCESS_STATE_STOPPING:
      return "stopping";
    default:
      return "unknown";
  }
}

std::string FormatLastExit(const v1::AppProcessStatus& a) {
  if (a.last_exit().empty()) return "-";
  if (a.last_exit_signal() > 0) {
    const char* abbrev = sigabbrev_np(a.last_exit_signal());
    return abbrev != nullptr ? absl::StrCat(a.last_exit(), " (SIG", abbrev, ")")
                             : absl::StrCat(a.last_exit(), " (signal ",
                                            a.last_exit_signal(), ")");
  }
  if (a.last_exit_code() >= 0) {
    return absl::StrCat(a.last_exit(), " (code ", a.last_exit_code(), ")");
  }
  return a.last_exit();
}

namespace {

// App mode: which processes the summary's counts are, then their table.
std::string FormatApps(const v1::ServerStatus& s) {
  std::string mode = absl::StrFormat(
      "\nMode: app: %d %s app processes of `%s`; %d/%d %s proxy workers "
      "ready\n",
      s.desired_workers(), s.worker_class(), s.app_command(),
      s.ready_proxy_workers(), s.proxy_workers(), s.proxy_worker_class());
  std::vector<std::vector<std::string>> apps = {
      {"SLOT", "PID", "STATE", "AGE", "REQUESTS", "IN-FLIGHT", "CAP", "RSS",
       "CPU", "RESTARTS", "LAST-EXIT"},
  };
  for (const v1::AppProcessStatus& a : s.app_processes()) {
    std::string state = AppStateName(a.state());
    if (a.replacing()) absl::StrAppend(&state, " (replacing)");
    apps.push_back({
        absl::StrCat(a.slot()),
        absl::StrCat(a.pid()),
        state,
        FormatAge(a.age_seconds()),
        absl::StrCat(a.requests()),
        absl::StrCat(a.in_flight()),
        absl::StrCat(a.cap()),
        FormatBytes(a.rss_bytes()),
        absl::StrFormat("%.2fs", a.cpu_seconds()),
        absl::StrCat(a.restarts()),
        FormatLastExit(a),
    });
  }
  return absl::StrCat(mode, "\nAPP PROCESSES\n", FormatTable(apps),
                      "\nPROXY WORKERS\n");
}

}  // namespace

std::string FormatStatus(const v1::ServerStatus& s) {
  std::string state = "serving";
  if (s.stopping()) {
    state = "stopping";
  } else if (s.draining()) {
    state = "draining";
  } else if (s.upgrading()) {
    state = "upgrading";
  }
  std::vector<std::vector<std::string>> summary = {
      {"MASTER", "VERSION", "UPTIME", "CLASS", "WORKERS", "READY", "THREADS",
       "CONNECTIONS", "CAP", "GEN", "STATE"},
      {absl::StrCat(s.master_pid()), s.version(), FormatAge(s.uptime_seconds()),
       s.worker_class(),
       absl::StrCat(s.actual_workers(), "/", s.desired_workers()),
       absl::StrCat(s.ready_workers()), absl::StrCat(s.threads()),
       absl::StrCat(s.worker_connections()), absl::StrCat(s.in_flight_cap()),
       absl::StrCat(s.generation()), state},
  };
  std::vector<std::vector<std::string>> workers = {
      {"SLOT", "PID", "STATE", "GEN", "AGE", "REQUESTS", "IN-FLIGHT", "BUSY",
       "THREADS", "CONNS", "HEARTBEAT", "RSS", "CPU", "RESTARTS", "LAST-EXIT"},
  };
  for (const v1::WorkerStatus& w : s.workers()) {
    workers.push_back({
        absl::StrCat(w.slot()),
        absl::StrCat(w.pid()),
        StateName(w.state()),
        absl::StrCat(w.generation()),
        FormatAge(w.age_seconds()),
        absl::StrCat(w.requests_served()),
        absl::StrCat(w.in_flight()),
        absl::StrCat(w.busy_threads()),
        absl::StrCat(w.threads()),
        absl::StrCat(w.connection_cap()),
        FormatAge(static_cast<double>(w.heartbeat_age_ms()) / 1000.0),
        FormatBytes(w.rss_bytes()),
        absl::StrFormat("%.2fs", w.cpu_seconds()),
        absl::StrCat(w.restarts()),
        w.last_exit().empty() ? "-" : w.last_exit(),
    });
  }
  // Sidecar mode (or an older forkd without the field): as it always was.
  if (s.mode() != "app") {
    return absl::StrCat(FormatTable(summary), "\n", FormatTable(workers));
  }
  return absl::StrCat(FormatTable(summary), FormatApps(s),
                      FormatTable(workers));
}

std::string ToJson(const google::protobuf::Message& message, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  options.add_whitespace = pretty;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options)
           .ok()) {
    return "{}";
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string FormatTune(const v1::TuneStatus& t) {
  std::string out;
  absl::StrAppendFormat(&out, "mode %s, phase %s", t.mode(), t.phase());
  if (!t.message().empty()) absl::StrAppend(&out, " (", t.message(), ")");
  absl::StrAppend(&out, "\n");
  absl::StrAppendFormat(
      &out, "limit %s (%u in flight), workers %d, threads %d\n",
      t.limit() > 0 ? absl::StrCat(t.limit()) : std::string("none"),
      t.limit_in_flight(), t.workers(), t.threads());
  absl::StrAppendFormat(
      &out,
      "minRTT %.2f ms, gradient %.2f, p99 target %s, "
      "%u windows\n",
      t.min_rtt_seconds() * 1e3, t.gradient(),
      t.latency_target_seconds() > 0
          ? absl::StrFormat("%.0f ms", t.latency_target_seconds() * 1e3)
          : std::string("none"),
      static_cast<unsigned>(t.windows()));
  absl::StrAppend(&out, "bounds ", t.bounds().empty() ? "-" : t.bounds());
  if (t.pin_workers() || t.pin_threads() || t.pin_limit()) {
    absl::StrAppend(&out, "; pinned");
    if (t.pin_workers()) absl::StrAppend(&out, " workers=", t.pin_workers());
    if (t.pin_threads()) absl::StrAppend(&out, " threads=", t.pin_threads());
    if (t.pin_limit()) absl::StrAppend(&out, " limit=", t.pin_limit());
  }
  absl::StrAppend(&out, "\n");
  if (t.decisions().empty()) {
    absl::StrAppend(&out, "no decisions yet\n");
    return out;
  }
  std::vector<std::vector<std::string>> rows = {
      {"AT", "CONTROLLER", "RULE", "KNOB", "CHANGE", "WHY"}};
  for (const v1::TuneDecision& d : t.decisions()) {
    rows.push_back({absl::StrFormat("%.1f", d.at_seconds()), d.controller(),
                    d.rule(), d.knob(),
                    absl::StrFormat("%g -> %g", d.old_value(), d.new_value()),
                    d.why()});
  }
  absl::StrAppend(&out, FormatTable(rows));
  return out;
}

}  // namespace forkd::control

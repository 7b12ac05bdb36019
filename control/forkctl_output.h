// How forkctl shows answers: aligned tables like `kubectl get` (upper-case
// headers, columns three spaces apart) or the proto3 JSON mapping.
#ifndef FORKD_CONTROL_FORKCTL_OUTPUT_H_
#define FORKD_CONTROL_FORKCTL_OUTPUT_H_

#include <string>
#include <vector>

#include "forkd/admin/v1/admin.pb.h"
#include "google/protobuf/message.h"

namespace forkd::control {

namespace v1 = ::forkd::admin::v1;

// Rows (the first is the header) with every column padded to its widest
// cell, three spaces between columns, no trailing blanks.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

// kubectl's ages: "850ms", "45s", "5m3s", "2h5m", "3d4h".
std::string FormatAge(double seconds);

// Binary units like kubectl top: "512Ki", "12.3Mi", "1.50Gi".
std::string FormatBytes(uint64_t bytes);

// "ready", "busy", ... for a worker state.
std::string StateName(v1::WorkerState state);

// "starting", "ready", ... for an app process state.
std::string AppStateName(v1::AppProcessState state);

// Why an app slot's previous process left: "-" (none), "crash (code 1)",
// "timeout (SIGABRT)", "reload (code 0)".
std::string FormatLastExit(const v1::AppProcessStatus& app);

// The server summary table, a blank line, then the worker table. App mode:
// the summary (whose workers are the app processes), a mode line, the app
// processes table, then the proxy workers' table.
std::string FormatStatus(const v1::ServerStatus& status);

// `forkctl tune`: mode, phase, limit and sizes, pins, bounds, then the last
// decisions (rule, old -> new, why), newest last.
std::string FormatTune(const v1::TuneStatus& tune);

// `message` as one JSON object (proto field names, defaults included),
// without a trailing newline; `pretty` indents it.
std::string ToJson(const google::protobuf::Message& message, bool pretty);

}  // namespace forkd::control

#endif  // FORKD_CONTROL_FORKCTL_OUTPUT_H_

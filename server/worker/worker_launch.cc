#include "server/worker/worker_launch.h"

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace forkd::worker {
namespace {

constexpr absl::string_view kVersion = "forkd-worker-launch/1";
// Bounds a corrupt length prefix; a real message is a few KiB.
constexpr size_t kMaxField = 1 << 20;

void AppendNetstring(std::string* out, absl::string_view value) {
  absl::StrAppend(out, value.size(), ":", value, ",");
}

// Takes one netstring off the front of `in`.
absl::StatusOr<absl::string_view> TakeNetstring(absl::string_view* in) {
  size_t colon = in->find(':');
  if (colon == absl::string_view::npos || colon == 0 || colon > 7) {
    return absl::InvalidArgumentError("worker launch message: bad length");
  }
  size_t n = 0;
  if (!absl::SimpleAtoi(in->substr(0, colon), &n) || n > kMaxField) {
    return absl::InvalidArgumentError("worker launch message: bad length");
  }
  if (in->size() < colon + 1 + n + 1 || (*in)[colon + 1 + n] != ',') {
    return absl::InvalidArgumentError("worker launch message: truncated");
  }
  absl::string_view value = in->substr(colon + 1, n);
  in->remove_prefix(colon + 1 + n + 1);
  return value;
}

}  // namespace

std::string EncodeWorkerLaunch(const WorkerLaunch& launch) {
  std::string out;
  AppendNetstring(&out, kVersion);
  AppendNetstring(&out, absl::StrCat(launch.slot));
  AppendNetstring(&out, absl::StrCat(launch.generation));
  AppendNetstring(&out, absl::StrCat(launch.scoreboard_fd));
  AppendNetstring(&out, absl::StrJoin(launch.listen_fds, ","));
  AppendNetstring(&out, launch.record_metrics ? "1" : "0");
  std::vector<std::string> config_args = config::ToArgs(launch.config);
  AppendNetstring(&out, absl::StrCat(config_args.size()));
  for (const std::string& arg : config_args) {
    AppendNetstring(&out, arg);
  }
  return out;
}

absl::StatusOr<WorkerLaunch> DecodeWorkerLaunch(absl::string_view message) {
  absl::string_view in = message;
  std::vector<absl::string_view> head;
  for (int i = 0; i < 7; ++i) {
    absl::StatusOr<absl::string_view> field = TakeNetstring(&in);
    if (!field.ok()) return field.status();
    head.push_back(*field);
  }
  if (head[0] != kVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker launch message: version \"", head[0],
                     "\", expected \"", kVersion, "\""));
  }
  WorkerLaunch launch;
  size_t count = 0;
  if (!absl::SimpleAtoi(head[1], &launch.slot) ||
      !absl::SimpleAtoi(head[2], &launch.generation) ||
      !absl::SimpleAtoi(head[3], &launch.scoreboard_fd) ||
      launch.scoreboard_fd < 0 || (head[5] != "0" && head[5] != "1") ||
      !absl::SimpleAtoi(head[6], &count)) {
    return absl::InvalidArgumentError("worker launch message: bad number");
  }
  for (absl::string_view part :
       absl::StrSplit(head[4], ',', absl::SkipEmpty())) {
    int fd;
    if (!absl::SimpleAtoi(part, &fd) || fd < 0) {
      return absl::InvalidArgumentError(
          "worker launch message: bad listen fd list");
    }
    launch.listen_fds.push_back(fd);
  }
  launch.record_metrics = head[5] == "1";
  config::Sources sources;  // no env: the master resolved it
  for (size_t i = 0; i < count; ++i) {
    absl::StatusOr<absl::string_view> arg = TakeNetstring(&in);
    if (!arg.ok()) return arg.status();
    sources.args.emplace_back(*arg);
  }
  if (!in.empty()) {
    return absl::InvalidArgumentError(
        "worker launch message: bytes after the last field");
  }
  absl::StatusOr<config::ParseResult> parsed = config::Parse(sources);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "worker launch message: settings: ", parsed.status().message()));
  }
  launch.config = std::move(parsed->config);
  return launch;
}

}  // namespace forkd::worker

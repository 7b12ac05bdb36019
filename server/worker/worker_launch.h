// What the master hands a new worker, in one message. The master writes it
// into a sealed memfd the worker inherits and starts the worker as
//
//   argv = {"forkd: worker SLOT (gen G)", "__worker", "FD"}
//
// so `ps` names each worker from its first instant; the worker reads FD,
// decodes the message here (the one place that knows its layout) and then
// clears the trailing arguments from its command line (common/process_title).
// Workers read no environment and no config file: the message carries the
// master's resolved settings.
//
// Versions. The message has a version tag, and a decoder refuses any tag but
// its own with an error naming both. Encoder and decoder are always the same
// build: the master execs its workers from /proc/self/exe, the very binary
// it runs (even when the file on disk was replaced), and after USR2 the new
// master execs the new binary, which then starts its own workers the same
// way. Old workers were started by the old master and are never handed a
// new message. So a mismatch means someone ran `forkd __worker` by hand, and
// the tag turns it into a clear boot error rather than a misread setting.
#ifndef FORKD_SERVER_WORKER_WORKER_LAUNCH_H_
#define FORKD_SERVER_WORKER_WORKER_LAUNCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/config/config.h"

namespace forkd::worker {

struct WorkerLaunch {
  uint32_t slot = 0;            // its scoreboard slot
  uint64_t generation = 0;      // the master's reload generation
  int scoreboard_fd = -1;       // inherited memfd of the scoreboard
  std::vector<int> listen_fds;  // inherited listening sockets, non-blocking
  // The master's resolved settings for this worker. config_file is not
  // carried (workers read no file); in app mode neither is upstream, which
  // app mode does not use.
  config::Config config;
  // bench/metrics_cost.sh only: the workers skip every counter write. Not a
  // setting; the master reads FORKD_BENCH_NO_METRICS so workers need not.
  bool record_metrics = true;

  friend bool operator==(const WorkerLaunch&, const WorkerLaunch&) = default;
};

// The message: a version tag then one netstring per field ("5:hello,"),
// so any byte may appear in a value; the config travels as
// config::ToArgs(), the table-driven --name=value form every flag already
// has, so a new setting needs no change here. Encode never fails.
std::string EncodeWorkerLaunch(const WorkerLaunch& launch);

// Inverse of EncodeWorkerLaunch, config included (config::Parse of the
// carried arguments, no environment, no file). InvalidArgument names what is
// malformed: wrong version, truncated field, a number that does not parse,
// a setting the config refuses.
absl::StatusOr<WorkerLaunch> DecodeWorkerLaunch(absl::string_view message);

}  // namespace forkd::worker

#endif  // FORKD_SERVER_WORKER_WORKER_LAUNCH_H_

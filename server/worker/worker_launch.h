// What the master hands a new worker, in one message. The master writes it
// into a sealed memfd the worker inherits and starts the worker as
//
//   argv = {"forkd: worker SLOT (gen G)", "__worker", "FD"}
//
// so `ps` names each worker from its first instant; the worker reads FD,
// decodes the message here (the one place that knows its layout) and then
// clears the trailing arguments from its command line (SetProcessTitle).
// Workers read no environment and no config file: the message carries the
// master's resolved settings.
#ifndef FORKD_SERVER_WORKER_WORKER_LAUNCH_H_
#define FORKD_SERVER_WORKER_WORKER_LAUNCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace forkd::worker {

struct WorkerLaunch {
  uint32_t slot = 0;            // its scoreboard slot
  uint64_t generation = 0;      // the master's reload generation
  int scoreboard_fd = -1;       // inherited memfd of the scoreboard
  std::vector<int> listen_fds;  // inherited listening sockets, non-blocking
  // config::ToArgs() of the master's resolved Config for this worker.
  std::vector<std::string> config_args;
  // bench/metrics_cost.sh only: the workers skip every counter write. Not a
  // setting; the master reads FORKD_BENCH_NO_METRICS so workers need not.
  bool record_metrics = true;

  friend bool operator==(const WorkerLaunch&, const WorkerLaunch&) = default;
};

// The message: a version tag then one netstring per field ("5:hello,"),
// so any byte may appear in a value. Encode never fails.
std::string EncodeWorkerLaunch(const WorkerLaunch& launch);

// Inverse of EncodeWorkerLaunch. InvalidArgument names what is malformed
// (wrong version, truncated field, a number that does not parse).
absl::StatusOr<WorkerLaunch> DecodeWorkerLaunch(absl::string_view message);

// "forkd: worker 3 (gen 2)": the worker's argv[0], what ps shows.
std::string WorkerTitle(uint32_t slot, uint64_t generation);

}  // namespace forkd::worker

#endif  // FORKD_SERVER_WORKER_WORKER_LAUNCH_H_

// Commands that change the worker pool. Signals (TTIN, HUP, TERM, ...) and
// admin RPCs are both turned into a Command and run by the master's single
// event loop, so TTIN and ScaleWorkers(+1) run the same code.
#ifndef FORKD_SERVER_ARBITER_COMMAND_H_
#define FORKD_SERVER_ARBITER_COMMAND_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "server/autotune/tune_status.h"

namespace forkd::arbiter {

enum class CommandKind {
  kScaleBy,               // value: delta (TTIN +1, TTOU -1); clamped to limits
  kScaleTo,               // value: exact worker count, 1..--max-workers
  kSetThreads,            // value: threads per worker, 1..--max-threads
  kSetWorkerConnections,  // value: 1..--max-worker-connections
  kReload,                // HUP: re-read config, new generation of workers
  kGracefulStop,          // TERM: drain, then exit 0
  kQuickStop,             // INT / QUIT: stop now, exit 0
  kReopenLogs,            // USR1: reopen logs here and in every worker
  kUpgrade,               // USR2: exec a new master on the same sockets
  kStopWorkers,           // WINCH: stop all workers, keep the master
  kKillWorker,            // value: pid; stop it gracefully and replace it
  kDrain,                 // admin: not ready; workers stop accepting, 503
  kResume,                // admin: undo kDrain
  kSetTune,               // admin SetTune: autotune mode, pins, bounds
};
const char* CommandKindName(CommandKind kind);

struct Command {
  CommandKind kind;
  int64_t value = 0;
  // kScaleBy: refuse a step that would leave 1..--max-workers instead of
  // clamping it (the admin API's deltas; TTIN/TTOU clamp).
  bool exact = false;
  // kSetTune: what to change.
  std::shared_ptr<const autotune::TuneUpdate> tune = nullptr;
  // kScaleTo / kSetThreads issued by the autotuner itself; any other resize
  // is an operator's, which --autotune full takes as a pin.
  bool from_autotune = false;

  static Command ScaleBy(int delta, bool exact = false) {
    return {CommandKind::kScaleBy, delta, exact};
  }
  static Command ScaleTo(int n) { return {CommandKind::kScaleTo, n}; }
  static Command SetThreads(int n) { return {CommandKind::kSetThreads, n}; }
  static Command SetWorkerConnections(int n) {
    return {CommandKind::kSetWorkerConnections, n};
  }
  static Command Reload() { return {CommandKind::kReload}; }
  static Command GracefulStop() { return {CommandKind::kGracefulStop}; }
  static Command QuickStop() { return {CommandKind::kQuickStop}; }
  static Command ReopenLogs() { return {CommandKind::kReopenLogs}; }
  static Command Upgrade() { return {CommandKind::kUpgrade}; }
  static Command StopWorkers() { return {CommandKind::kStopWorkers}; }
  static Command KillWorker(pid_t pid) {
    return {CommandKind::kKillWorker, pid};
  }
  static Command Drain() { return {CommandKind::kDrain}; }
  static Command Resume() { return {CommandKind::kResume}; }
  static Command SetTune(autotune::TuneUpdate u) {
    return {CommandKind::kSetTune, 0, false,
            std::make_shared<const autotune::TuneUpdate>(std::move(u))};
  }
};

// The loop's answer to a Command. On an error status nothing changed; the
// sizes below are the (unchanged or new) desired state either way.
struct CommandResult {
  absl::Status status;
  int desired_workers = 0;
  int threads = 0;
  int worker_connections = 0;
  uint64_t generation = 0;           // reload generation
  uint64_t settings_generation = 0;  // scoreboard Settings generation
  std::string message;               // what happened, for logs and forkctl
};

}  // namespace forkd::arbiter

#endif  // FORKD_SERVER_ARBITER_COMMAND_H_

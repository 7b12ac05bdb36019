// Turns the master's PoolSnapshot into the API's ServerStatus, adding what
// the OS says about each worker (RSS, CPU, threads), and counts the workers
// an admin call waits for.
#ifndef FORKD_SERVER_ADMIN_STATUS_BUILDER_H_
#define FORKD_SERVER_ADMIN_STATUS_BUILDER_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "forkd/admin/v1/admin.pb.h"
#include "server/arbiter/pool_snapshot.h"
#include "server/common/proc_stats.h"

namespace forkd::admin {

using ProcessStatsReader = std::function<absl::StatusOr<ProcStats>(pid_t pid)>;

// The state a worker shows in the API: a ready worker with requests in
// flight is "busy"; one the master told to stop is "draining" even before
// it noticed.
v1::WorkerState ApiWorkerState(const arbiter::WorkerRow& row);

// Fills `out` from `snapshot`; `read_process` (may be null) supplies RSS,
// CPU seconds and OS thread counts. Any thread.
void BuildServerStatus(const arbiter::PoolSnapshot& snapshot,
                       const std::string& version,
                       const ProcessStatsReader& read_process,
                       v1::ServerStatus* out);

// The API's name for an app process's scoreboard state.
v1::AppProcessState ApiAppState(scoreboard::AppState state);

// Workers of the current generation, not retiring, in state ready: what
// ScaleWorkers(wait) waits for. App mode: app processes in the rotation and
// not being replaced (0 while no proxy worker is ready).
int ReadyCurrentWorkers(const arbiter::PoolSnapshot& snapshot);

// Of the ready, not retiring workers: how many (first) and how many of
// those (second) run with settings at least `settings_generation` and, when
// `threads` > 0, that many request threads; when `connections` > 0, that
// connection cap. What SetThreads / SetWorkerConnections(wait) wait for.
// App mode: of the ready app processes, those with that cap (gthread:
// `threads`, async: `connections`) and not waiting to be replaced.
std::pair<int, int> ConvergedWorkers(const arbiter::PoolSnapshot& snapshot,
                                     uint64_t settings_generation, int threads,
                                     int connections);

}  // namespace forkd::admin

#endif  // FORKD_SERVER_ADMIN_STATUS_BUILDER_H_

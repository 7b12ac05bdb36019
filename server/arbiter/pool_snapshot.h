// A consistent picture of the worker pool, published by the master's loop
// for the admin (GetStatus) and metrics planes.
#ifndef FORKD_SERVER_ARBITER_POOL_SNAPSHOT_H_
#define FORKD_SERVER_ARBITER_POOL_SNAPSHOT_H_

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "server/app/app_supervisor.h"
#include "server/autotune/tune_status.h"
#include "server/config/config.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::arbiter {

// Why a worker left. Counted per reason (a metric label).
enum class ExitCause {
  kCrash,        // died without being asked (signal or non-zero exit)
  kTimeout,      // missed heartbeats (or did not boot in time): SIGABRT
  kMaxRequests,  // recycled itself after --max-requests
  kScaleDown,    // retired by TTOU / ScaleWorkers / WINCH
  kReload,       // old generation retired after HUP
  kBootFailure,  // exited before becoming ready
  kKilled,       // KillWorker command
  kCount
};
const char* ExitCauseName(ExitCause cause);  // "crash", "max_requests", ...

struct WorkerRow {
  uint32_t slot = 0;
  pid_t pid = 0;
  uint64_t generation = 0;
  scoreboard::WorkerState state = scoreboard::WorkerState::kEmpty;
  bool retiring = false;  // told to stop (or stopping on its own)
  double age_s = 0;
  uint64_t requests_served = 0;
  uint32_t in_flight = 0;
  uint32_t busy_threads = 0;
  uint32_t threads = 0;         // request threads running (gthread)
  uint32_t connection_cap = 0;  // worker_connections it applies
  uint64_t settings_generation_seen = 0;
  int64_t heartbeat_age_ms = 0;
  int restarts = 0;  // workers that used this slot before this one
  std::optional<ExitCause> last_exit;  // why the previous one left
  uint32_t connections_active = 0;     // client connections with a request
  uint32_t connections_idle = 0;       // keep-alive connections waiting
  uint32_t queued = 0;  // app mode: requests waiting for an app process
};

struct PoolSnapshot {
  pid_t master_pid = 0;
  double uptime_s = 0;
  config::WorkerClass worker_class = config::WorkerClass::kSync;
  uint64_t generation = 0;           // reload generation
  uint64_t settings_generation = 0;  // scoreboard Settings generation
  int desired_workers = 0;
  int actual_workers = 0;  // current generation, not retiring
  int ready_workers = 0;   // any generation, state ready (app mode: app
                           // processes ready, 0 while no proxy worker is)
  // App mode: the app processes (workers/ready_workers above count them);
  // `workers` stays the proxy workers.
  bool app_mode = false;
  std::string app_command;                  // --app-cmd, as given
  int proxy_workers = 0;                    // --proxy-workers wanted (resolved)
  int proxy_workers_ready = 0;              // proxy workers in state ready
  std::vector<app::AppProcessStatus> apps;  // by slot
  std::map<app::AppExit, uint64_t> app_restarts;  // app processes that left
  // Requests finished per app slot, by every process that used it.
  std::map<uint32_t, uint64_t> app_requests_by_slot;
  int max_workers = 0;
  int threads = 0;
  int max_threads = 0;
  int worker_connections = 0;
  int max_worker_connections = 0;
  int64_t in_flight_cap = 0;  // desired x threads (x connections for async)
  bool draining = false;      // drained or shutting down: not ready
  bool stopping = false;      // shutting down (TERM/INT/QUIT)
  bool upgrading = false;     // a USR2 child master is running
  std::vector<WorkerRow> workers;  // every live worker process, by slot
  std::array<uint64_t, static_cast<size_t>(ExitCause::kCount)> exits{};
  scoreboard::CounterTotals totals;  // live slots + retired workers
  autotune::TuneStatus tune;         // --autotune (GetTune, metrics)
  uint32_t app_limit_in_flight = 0;  // places of the shared limit taken
  // When the loop published this (SysCalls::NowMs, CLOCK_MONOTONIC): the
  // master loop's heartbeat, which the liveness probe watches.
  int64_t published_ms = 0;
  // The wall clock (seconds since the epoch) at published_ms, to turn
  // monotonic times (an app process's start) into dates.
  double published_unix_s = 0;
};

}  // namespace forkd::arbiter

#endif  // FORKD_SERVER_ARBITER_POOL_SNAPSHOT_H_

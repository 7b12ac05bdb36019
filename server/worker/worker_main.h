// The worker process's entry point. The master starts workers by fork+exec
// of the forkd binary itself (gRPC does not survive a bare fork), as
//
//   forkd __worker SLOT GENERATION SCOREBOARD_FD LISTEN_FDS -- CONFIG_ARGS...
//
// SLOT: index of its scoreboard slot; GENERATION: the master's reload
// generation; SCOREBOARD_FD: inherited memfd of the scoreboard;
// LISTEN_FDS: comma-separated inherited listening socket fds (non-blocking);
// CONFIG_ARGS: config::ToArgs() of the master's resolved Config (the worker
// does not read the environment or a config file).
//
// Contract with the master:
// - Writes its slot: pid, kBooting, then kReady once it accepts; heartbeat
//   at least every second while its event loop turns.
// - SIGTERM: graceful stop (stop accepting, finish in-flight requests,
//   close idle keep-alive connections, exit 0 with exit_reason kStopped).
// - SIGQUIT / SIGINT: quick stop (exit at once).
// - SIGUSR1: reopen the error and access logs.
// - After --max-requests (+ a random 0..jitter) it stops accepting,
//   finishes, writes exit_reason kMaxRequests and exits 0.
// - Follows Settings (threads, worker_connections, draining) published in
//   the scoreboard header without restarting.
// - Exit code 3 (Gunicorn's WORKER_BOOT_ERROR) when it cannot start.
#ifndef FORKD_SERVER_WORKER_WORKER_MAIN_H_
#define FORKD_SERVER_WORKER_WORKER_MAIN_H_

namespace forkd::worker {

inline constexpr char kWorkerSubcommand[] = "__worker";
inline constexpr int kExitBootError = 3;

// Runs a worker; argv[0] is the SLOT argument (everything after
// "__worker"). Returns the process exit code.
int WorkerMain(int argc, char** argv);

}  // namespace forkd::worker

#endif  // FORKD_SERVER_WORKER_WORKER_MAIN_H_

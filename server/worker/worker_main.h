// The worker process's entry point. The master starts workers by fork+exec
// of the forkd binary itself (gRPC does not survive a bare fork), as
//
//   argv = {"forkd: worker SLOT (gen G)", "__worker", "LAUNCH_FD"}
//
// LAUNCH_FD: an inherited sealed memfd holding the WorkerLaunch message
// (worker_launch.h: slot, generation, the scoreboard fd, the listening
// socket fds and the master's resolved Config). The worker does not read
// the environment or a config file. After decoding it, it clears the last
// two arguments, so ps shows "forkd: worker 3 (gen 2)" ("forkd: proxy worker
// 3 (gen 2)" in app mode), and names itself forkd-worker (forkd-proxy) for
// top and `ps -e`, which would otherwise show "exe".
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

// Runs a worker from main()'s whole argc/argv (argv[1] is "__worker").
// Returns the process exit code.
int WorkerMain(int argc, char** argv);

}  // namespace forkd::worker

#endif  // FORKD_SERVER_WORKER_WORKER_MAIN_H_

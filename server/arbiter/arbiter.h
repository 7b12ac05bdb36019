// The master process (Gunicorn's arbiter): spawns the workers by fork+exec,
// keeps their number at the desired count, watches their heartbeats in the
// scoreboard, and turns signals and admin commands into pool changes on one
// event-loop thread. It never serves requests itself.
//
// Threads: everything but Post() and Snapshot() runs on the loop thread
// (the one in Run(); in tests, the test's thread).
#ifndef FORKD_SERVER_ARBITER_ARBITER_H_
#define FORKD_SERVER_ARBITER_ARBITER_H_

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/app/app_supervisor.h"
#include "server/arbiter/command.h"
#include "server/arbiter/listeners.h"
#include "server/arbiter/pool_snapshot.h"
#include "server/autotune/autotuner.h"
#include "server/autotune/host_stats.h"
#include "server/config/config.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::arbiter {

struct ArbiterOptions {
  config::Config config;  // as parsed; workers == 0 means "auto"
  // Re-reads the configuration on HUP (main: config::Reload(sources)).
  std::function<absl::StatusOr<config::Config>()> reload;
  std::vector<Listener> listeners;  // owned from here on; closed at exit
  std::string exe_path;             // what a USR2 upgrade execs
  // What workers exec; empty: exe_path. main() passes /proc/self/exe so
  // that workers always run the master's own image (same scoreboard layout
  // and worker contract), even after the file at exe_path was replaced or
  // removed by a package upgrade; only USR2 picks up the new file.
  std::string worker_exe_path;
  std::vector<std::string> argv;  // the original argv, for USR2
  std::vector<std::string> env;   // environment for children
  pid_t old_master_pid = 0;       // FORKD_MASTER_PID when started by USR2
  bool ignore_winch = false;      // on a terminal, WINCH means "resized"
  // What the autotuner reads of /proc and the cgroup; null: the real files
  // (autotune::HostStatsImpl). Tests pass a fake. Must outlive the Arbiter.
  autotune::HostStats* host_stats = nullptr;
};

class Arbiter {
 public:
  // Creates the scoreboard (2 x max_workers + 2 slots, so a reload can run
  // two generations side by side) and the command eventfd. Spawns nothing
  // yet. `sys` must outlive the Arbiter. Fails on OS errors only.
  static absl::StatusOr<std::unique_ptr<Arbiter>> Create(ArbiterOptions options,
                                                         os::SysCalls* sys);
  ~Arbiter();

  Arbiter(const Arbiter&) = delete;
  Arbiter& operator=(const Arbiter&) = delete;

  // Blocks the signals the master handles (they are read from a signalfd).
  // main() calls it before starting any thread so that no thread receives
  // them; Run() calls it again. Idempotent.
  static void BlockSignals();

  // The master: Start(), then the epoll loop on a signalfd, the command
  // eventfd and a tick (<= 250 ms) until stopped; then Finish(). Returns
  // the process exit code: 0 after TERM/INT/QUIT, 3 when workers fail to
  // boot (WORKER_BOOT_ERROR), 1 when start-up fails.
  int Run();

  // Any thread: queues `command` for the loop. `done` runs on the loop
  // thread with the result (keep it short; it must not block), or on the
  // caller's thread with Unavailable when the master has stopped.
  void Post(Command command, std::function<void(CommandResult)> done);

  // Any thread: the pool as last published by the loop. The loop publishes
  // after every command, child exit and tick (<= 250 ms old), under a mutex;
  // readers never touch the loop's state.
  PoolSnapshot Snapshot() const;

  // Any thread: Snapshot() with each worker's gauges (state, in flight,
  // busy and running threads, connection cap, settings seen, heartbeat,
  // requests) re-read from the scoreboard now and ready_workers recounted,
  // for callers that wait on workers (the admin API) and cannot wait for
  // the next publish.
  PoolSnapshot LiveSnapshot() const;

  // --- Loop-thread entry points: Run() wires them to epoll; unit tests
  // --- call them directly with a fake SysCalls and clock.

  // Writes the pidfile (`<pidfile>.2` when started by USR2), spawns every
  // worker, then publishes the settings (the workers' signal to start
  // accepting). Fails when the pidfile can't be written.
  absl::Status Start();

  // Runs one command; on error nothing changed.
  CommandResult HandleCommand(const Command& command);

  // Maps a signal to its command (TTIN -> ScaleBy(+1), HUP -> Reload, ...)
  // and runs it; SIGCHLD reaps. Logs the outcome.
  void HandleSignal(int signo);

  // A child was reaped with waitpid `status`: folds a worker's counters,
  // frees its slot, decides whether and when to replace it.
  void OnChildExit(pid_t pid, int status);

  // Reaps every exited child (workers, the USR2 master, strangers when we
  // are PID 1) via SysCalls::WaitAny.
  void ReapChildren();

  // Periodic work at `now_ms` (SysCalls clock): readiness, heartbeat and
  // drain timeouts, back-offs, reload hand-over, shutdown progress.
  void Tick(int64_t now_ms);

  // Runs the commands queued by Post().
  void RunPostedCommands();

  // After the loop: removes the pidfile, closes listeners, fails queued
  // commands.
  void Finish();

  bool done() const { return done_; }
  int exit_code() const { return exit_code_; }
  scoreboard::Scoreboard& scoreboard() { return *scoreboard_; }
  // App mode: the app-process supervisor (null in sidecar mode). Loop
  // thread only.
  app::AppSupervisor* app() { return app_.get(); }
  // Any thread: the app processes as last published (empty in sidecar mode).
  std::vector<app::AppProcessStatus> AppStatus() const;

  // Any thread: calls `fn` for each listening socket while it is sure to be
  // open; after Finish() closed them, not at all. `fn` may only inspect the
  // socket (getsockname, TCP_INFO), and must be quick.
  void VisitListeners(const std::function<void(const Listener&)>& fn) const;

  // Back-off after a boot failure: 100 ms doubling up to 5 s per slot; after
  // this many consecutive boot failures (no worker ready in between) the
  // server stops with WORKER_BOOT_ERROR.
  static constexpr int64_t kBootBackoffInitialMs = 100;
  static constexpr int64_t kBootBackoffMaxMs = 5000;
  static constexpr int kMaxConsecutiveBootFailures = 5;
  static constexpr int64_t kAbortToKillMs = 2000;  // SIGABRT, then SIGKILL
  static constexpr int64_t kMinBootTimeoutMs = 30000;
  static constexpr int64_t kQuickStopMs = 1000;  // SIGQUIT, then SIGKILL
  static constexpr int kExitBootError = 3;

 private:
  struct Worker {
    pid_t pid = 0;
    uint32_t slot = 0;
    uint64_t generation = 0;
    int64_t spawned_ms = 0;
    bool seen_ready = false;
    std::optional<ExitCause> retire_cause;  // the master told it to stop
    bool self_retired = false;      // draining on its own (e.g. max requests)
    int64_t drain_deadline_ms = 0;  // SIGKILL when passed (0: none)
    int64_t abort_sent_ms = 0;      // heartbeat timeout: SIGABRT sent
    bool kill_sent = false;
  };
  struct SlotHistory {
    int occupants = 0;
    std::optional<ExitCause> last_exit;
    int64_t backoff_ms = kBootBackoffInitialMs;
  };
  enum class Stop { kNone, kGraceful, kQuick };

  Arbiter(ArbiterOptions options, os::SysCalls* sys,
          std::unique_ptr<scoreboard::Scoreboard> scoreboard, int event_fd);

  // Sizes.
  bool AppModeOn() const { return app_ != nullptr; }
  // Proxy workers to run: in app mode --proxy-workers (the worker count
  // the commands change is the app processes'), else DesiredWorkers().
  int DesiredProxyWorkers() const;
  app::AppOptions MakeAppOptions() const;
  int MaxWorkers() const;
  int DesiredWorkers() const;
  int Threads() const;
  int WorkerConnections() const;
  int ResolveConfigWorkers();
  CommandResult Result(absl::Status status, std::string message) const;

  // Commands.
  CommandResult ScaleBy(int64_t delta, bool exact);
  CommandResult ScaleTo(int64_t n);
  CommandResult SetThreads(int64_t n);
  CommandResult SetWorkerConnections(int64_t n);
  // Both setters above: validates n against 1..max (the message names
  // `limit_flag`), stores it as the runtime size that survives HUP, and
  // publishes it to the workers.
  CommandResult SetLiveSize(int64_t n, int max, const char* what,
                            const char* limit_flag, const char* log_label,
                            int before, std::optional<int>* runtime_value);
  CommandResult Reload();
  CommandResult BeginGracefulStop();
  CommandResult BeginQuickStop();
  CommandResult ReopenLogs();
  CommandResult Upgrade();
  CommandResult StopWorkers();
  CommandResult KillWorker(pid_t pid);
  CommandResult Drain();
  CommandResult Resume();
  CommandResult SetTune(const autotune::TuneUpdate& u);

  // Autotune: what the scoreboard shows now, one window step, and applying
  // the controllers' changes as the commands above.
  autotune::Sample MakeSample(int64_t now) const;
  void RunAutotune(int64_t now);
  void ApplyTuneChanges(const std::vector<autotune::Change>& changes);

  // Supervision.
  void PublishSettings();
  void Maintain(int64_t now);
  void SpawnInto(uint32_t slot, int64_t now);
  void ScheduleRespawn(uint32_t slot, int64_t now, bool boot_failure);
  std::optional<uint32_t> FreeSlot() const;
  bool Counted(const Worker& w) const;
  int CountedWorkers() const;
  bool IsReady(const Worker& w) const;
  std::vector<Worker*> ByRetirePreference(std::vector<Worker*> candidates);
  void Retire(Worker& w, ExitCause cause, int64_t now);
  void HandOver(int64_t now);
  void ObserveWorkers(int64_t now);
  void CheckTimeouts(int64_t now);
  void BootFailed(const std::string& detail, bool fatal);
  void SignalAllForStop(int64_t now);
  void AdvanceStop(int64_t now);
  void CheckOldMaster();
  void PublishSnapshot(int64_t now);
  // After any event: moves a stop along, or else brings the pool to its
  // target; then publishes the snapshot.
  void Converge(int64_t now);

  os::SysCalls* sys_;
  std::unique_ptr<scoreboard::Scoreboard> scoreboard_;
  int event_fd_;
  config::Config config_;
  std::function<absl::StatusOr<config::Config>()> reload_;
  std::vector<Listener> listeners_;
  std::string exe_path_;
  std::string worker_exe_path_;
  std::vector<std::string> argv_;
  std::vector<std::string> env_;
  // FORKD_BENCH_NO_METRICS=1 (bench/metrics_cost.sh only): workers skip
  // their counter writes. Read here so that workers read no environment.
  bool bench_no_metrics_ = false;
  pid_t old_master_pid_;
  bool ignore_winch_;
  pid_t master_pid_;
  int64_t start_ms_;
  int start_max_workers_;  // the scoreboard was sized for it

  // Desired state. Sizes set at runtime (signals, commands) override the
  // config and survive HUP.
  int config_workers_ = 1;  // config.workers, "auto" resolved
  std::optional<int> runtime_workers_;
  std::optional<int> runtime_threads_;
  std::optional<int> runtime_connections_;
  bool workers_stopped_ = false;  // WINCH: 0 workers until HUP or TTIN
  bool drained_ = false;          // admin Drain until Resume; survives HUP
  uint64_t generation_ = 1;

  std::map<pid_t, Worker> workers_;
  std::map<uint32_t, int64_t> pending_;  // slot -> respawn not before (ms)
  std::vector<SlotHistory> slots_;
  int consecutive_boot_failures_ = 0;
  int64_t last_tick_ms_ = 0;
  int64_t heartbeats_from_ms_ = 0;  // older heartbeats count as this one
  std::array<uint64_t, static_cast<size_t>(ExitCause::kCount)> exits_{};
  scoreboard::CounterTotals retired_;  // counters of workers that left
  pid_t upgrade_child_pid_ = 0;
  bool started_ = false;
  bool warned_no_slot_ = false;

  Stop stop_ = Stop::kNone;
  bool workers_signalled_ = false;  // stop signal sent to every worker
  int64_t term_at_ms_ = 0;          // graceful: after --shutdown-delay
  int64_t give_up_ms_ = 0;          // stop waiting for unreapable workers
  bool done_ = false;
  int exit_code_ = 0;

  std::mutex post_mu_;
  std::deque<std::pair<Command, std::function<void(CommandResult)>>> posted_;
  bool closed_ = false;  // guarded by post_mu_

  mutable std::mutex snapshot_mu_;
  PoolSnapshot snapshot_;  // guarded by snapshot_mu_

  // Autotune (server/autotune): always present, mode off included, so the
  // admin API can switch it on live and `forkctl tune report` has data.
  std::unique_ptr<autotune::HostStats> own_host_stats_;
  autotune::HostStats* host_stats_ = nullptr;
  std::unique_ptr<autotune::Autotuner> autotuner_;

  // App mode.
  std::unique_ptr<app::AppSupervisor> app_;
  int proxy_workers_ = 0;
  std::vector<app::AppProcessStatus> app_status_;  // guarded by snapshot_mu_

  mutable std::mutex listeners_mu_;  // VisitListeners() vs closing them
  bool listeners_closed_ = false;    // guarded by listeners_mu_
};

}  // namespace forkd::arbiter

#endif  // FORKD_SERVER_ARBITER_ARBITER_H_

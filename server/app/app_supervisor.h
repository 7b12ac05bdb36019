// App mode (design "Two modes"): the master's supervisor of the app's own
// processes. It starts --workers processes of the app command, each on its
// own unix socket (bound by forkd and inherited as fd 3 with LISTEN_FDS=1,
// or the path {socket} the app binds itself), marks each kReady in its
// scoreboard AppSlot once the socket accepts (and --app-health-path answers
// 2xx), replaces processes that exit, kills hung ones, recycles after
// --max-requests or --max-worker-memory (new process first, the old one out
// of the rotation and stopped once idle), and relays their output to stderr
// as "[app N] line".
//
// Runs on the master's loop thread only. Every OS call goes through
// os::SysCalls, so the decisions are unit-tested with a fake.
#ifndef FORKD_SERVER_APP_APP_SUPERVISOR_H_
#define FORKD_SERVER_APP_APP_SUPERVISOR_H_

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/config/config.h"
#include "server/os/sys_calls.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::app {

// Splits a byte stream into lines of at most `max_line` bytes (a longer
// line comes out in pieces), without the '\n'. I/O free.
class LineSplitter {
 public:
  explicit LineSplitter(size_t max_line = 4096) : max_line_(max_line) {}
  // Appends `bytes`; calls `emit` for each complete line.
  void Feed(std::string_view bytes,
            const std::function<void(std::string_view)>& emit);
  // Emits what is left (a last line without '\n').
  void Flush(const std::function<void(std::string_view)>& emit);

 private:
  size_t max_line_;
  std::string partial_;
};

// Why an app process left (status, logs, restarts by reason).
enum class AppExit {
  kNone,
  kCrash,        // exited on its own while in the rotation
  kBootFailure,  // exited before it was ready
  kTimeout,      // hung: in flight with no progress for --timeout
  kMaxRequests,
  kMaxMemory,
  kReload,     // HUP / reload: rolling replacement
  kScaleDown,  // TTOU / scale
  kShutdown,
  kKilled,   // KillWorker (admin API, `forkctl kill`) with its pid
  kRefused,  // refused connections and did not accept again in time
};
const char* AppExitName(AppExit e);

struct AppOptions {
  std::vector<std::string> command;  // shell words, placeholders unexpanded
  std::vector<std::string> env;      // the master's environment
  config::WorkerClass worker_class = config::WorkerClass::kSync;
  int threads = 1;
  int worker_connections = 1000;
  int64_t timeout_ms = 30000;  // 0: no hang check
  int64_t graceful_timeout_ms = 30000;
  int max_requests = 0;
  int max_requests_jitter = 0;
  int64_t max_memory_bytes = 0;
  std::string health_path;
  std::string socket_parent;  // where the private socket dir goes
  // Where "[app N] line" goes (main: one write(2) to stderr per line).
  std::function<void(std::string_view)> output;
  // 0..n inclusive for --max-requests-jitter (tests: fixed).
  std::function<int(int)> jitter;
};

// One app process as status and metrics show it.
struct AppProcessStatus {
  uint32_t slot = 0;
  pid_t pid = 0;
  scoreboard::AppState state = scoreboard::AppState::kEmpty;
  uint32_t in_flight = 0;
  uint32_t cap = 0;
  uint64_t requests = 0;
  double cpu_seconds = 0;
  uint64_t rss_bytes = 0;
  uint32_t restarts = 0;
  AppExit last_exit = AppExit::kNone;
  std::string last_exit_detail;  // "exited with code 1"
  int last_exit_code = -1;       // the previous process's exit code, or -1
  int last_exit_signal = 0;      // the signal that ended it, or 0
  std::string socket_path;
  int64_t started_ms = 0;  // SysCalls::NowMs() at spawn
  // Stays in the rotation until its replacement is ready (reload,
  // --max-requests, --max-worker-memory, a {threads} change).
  bool replacing = false;
};

class AppSupervisor {
 public:
  // `sys` and `board` (with app slots) must outlive the supervisor.
  AppSupervisor(AppOptions options, os::SysCalls* sys,
                scoreboard::Scoreboard* board);
  ~AppSupervisor();

  // Makes the private socket directory. Fails naming it.
  absl::Status Start();

  // The number of app processes wanted (TTIN/TTOU, scale).
  void SetDesired(int n) { desired_ = n; }
  int desired() const { return desired_; }
  // Live --threads / --worker-connections: new caps for every process; when
  // the command uses {threads}, a rolling replacement.
  void SetThreads(int threads, int worker_connections, int64_t now);
  // HUP / reload: new options (the command may change) and a rolling
  // replacement: new processes ready before the old ones leave.
  void Reload(AppOptions options, int64_t now);

  // A reaped child: true when it was an app process (then handled).
  bool OnChildExit(pid_t pid, int status, int64_t now);

  // Periodic work: relays output, readiness, hang and recycle checks,
  // stopping retired processes, keeping `desired` processes.
  void Tick(int64_t now);

  // Shutdown: TERM to every process, KILL after --graceful-timeout.
  void BeginStop(int64_t now);
  bool stopping() const { return stopping_; }
  // True when no app process is left.
  bool Empty() const { return procs_.empty(); }
  // At exit: KILL what is left and remove the socket directory.
  void Finish();

  int ReadyCount() const;
  int ProcessCount() const { return static_cast<int>(procs_.size()); }
  std::vector<AppProcessStatus> Status() const;
  // The pids of the app processes running now; unlike Status(), reads
  // nothing from /proc (the autotuner asks on every tick).
  std::vector<pid_t> Pids() const;
  uint64_t RestartsBy(AppExit e) const;
  // App processes that left, by why (kShutdown not counted).
  const std::map<AppExit, uint64_t>& restarts() const { return restarts_; }
  // Requests finished per slot, by every process that used it (the ones
  // that left and the one there now), for counters that never go back.
  std::map<uint32_t, uint64_t> RequestsBySlot() const;

  // KillWorker: takes the app process `pid` out of the rotation (a
  // replacement starts now) and stops it once its in-flight requests are
  // done. NotFound when `pid` is no app process; FailedPrecondition when it
  // is already leaving.
  absl::Status Kill(pid_t pid, int64_t now);

  static constexpr int64_t kBootBackoffInitialMs = 100;
  static constexpr int64_t kBootBackoffMaxMs = 5000;
  static constexpr int64_t kAbortToKillMs = 2000;
  // A health probe (--app-health-path) with no answer by then is dropped
  // and tried again on a later tick.
  static constexpr int64_t kProbeTimeoutMs = 1000;
  // How long a process taken out of the rotation for refusing connections
  // may take to accept again before it is replaced, when --timeout is 0.
  static constexpr int64_t kRefusedGraceMs = 30000;

 private:
  struct Proc {
    pid_t pid = 0;
    uint32_t slot = 0;
    uint64_t generation = 0;
    int64_t spawned_ms = 0;
    bool ready = false;
    std::optional<AppExit> replace;  // stays in rotation until replaced
    std::optional<AppExit> retire;   // out of rotation, stopping when idle
    int64_t retire_ms = 0;
    bool term_sent = false;
    int64_t abort_ms = 0;
    bool kill_sent = false;
    uint64_t max_requests = 0;  // 0: none
    int out_fd = -1;
    LineSplitter lines;
    int probe = -1;  // a readiness probe in progress (SysCalls handle)
    int64_t probe_started_ms = 0;
    pid_t successor = 0;        // the process that took over its history
    uint32_t refused_seen = 0;  // AppSlot::refused when last looked at
    int64_t unready_ms = 0;     // taken out of the rotation for refusing
  };

  std::vector<std::string> ExpandCommand(uint32_t slot,
                                         const std::string& socket) const;
  bool UsesPlaceholder(std::string_view ph) const;
  uint32_t CapFor() const;
  // --timeout, or kRefusedGraceMs without one.
  int64_t RefusedGraceMs() const {
    return options_.timeout_ms > 0 ? options_.timeout_ms : kRefusedGraceMs;
  }
  bool Counted(const Proc& p) const;
  void Spawn(int64_t now);
  void Retire(Proc& p, AppExit why, int64_t now);
  void Signal(Proc& p, int signo);
  void DrainOutput(Proc& p, bool final);
  void Observe(int64_t now);
  void Maintain(int64_t now);
  void AdvanceStop(int64_t now);

  AppOptions options_;
  os::SysCalls* sys_;
  scoreboard::Scoreboard* board_;
  std::string dir_;
  int desired_ = 1;
  uint64_t generation_ = 1;
  std::map<pid_t, Proc> procs_;
  // What a row of `forkctl status` shows of the processes before this one
  // in its line of replacements (see Spawn).
  struct History {
    uint32_t restarts = 0;
    AppExit last_exit = AppExit::kNone;
    std::string detail;
    int status = -1;
  };
  History HistoryOf(uint32_t slot) const;
  void PutHistory(uint32_t slot, const History& h);
  // Histories of processes that exited with no successor yet (a crash):
  // the next process started takes the oldest.
  std::deque<History> exited_history_;
  std::vector<AppExit> slot_last_exit_;
  std::vector<std::string> slot_last_detail_;
  std::vector<int> slot_last_status_;            // waitpid status, -1: none
  std::vector<uint64_t> slot_requests_retired_;  // of the processes that left
  std::vector<bool> slot_used_;
  std::map<AppExit, uint64_t> restarts_;
  int consecutive_boot_failures_ = 0;
  int64_t backoff_ms_ = kBootBackoffInitialMs;
  int64_t next_spawn_ms_ = 0;
  bool stopping_ = false;
  int64_t stop_deadline_ms_ = 0;
};

}  // namespace forkd::app

#endif  // FORKD_SERVER_APP_APP_SUPERVISOR_H_

#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/arbiter/arbiter.h"
#include "server/arbiter/arbiter_internal.h"
#include "server/arbiter/upgrade.h"
#include "server/common/log.h"

// The master: signals and commands (admin API, forkctl, TTIN/TTOU...), reload,
// stop.
namespace forkd::arbiter {

namespace {

// After SIGKILL, how long to wait for the kernel to hand us the exit.
constexpr int64_t kGiveUpAfterKillMs = 5000;

}  // namespace

const char* CommandKindName(CommandKind kind) {
  switch (kind) {
    case CommandKind::kScaleBy:
      return "ScaleBy";
    case CommandKind::kScaleTo:
      return "ScaleTo";
    case CommandKind::kSetThreads:
      return "SetThreads";
    case CommandKind::kSetWorkerConnections:
      return "SetWorkerConnections";
    case CommandKind::kReload:
      return "Reload";
    case CommandKind::kGracefulStop:
      return "GracefulStop";
    case CommandKind::kQuickStop:
      return "QuickStop";
    case CommandKind::kReopenLogs:
      return "ReopenLogs";
    case CommandKind::kUpgrade:
      return "Upgrade";
    case CommandKind::kStopWorkers:
      return "StopWorkers";
    case CommandKind::kKillWorker:
      return "KillWorker";
    case CommandKind::kDrain:
      return "Drain";
    case CommandKind::kResume:
      return "Resume";
    case CommandKind::kSetTune:
      return "SetTune";
  }
  return "?";
}

// --- Commands --------------------------------------------------------------

void Arbiter::Post(Command command, std::function<void(CommandResult)> done) {
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    if (!closed_) {
      posted_.emplace_back(command, std::move(done));
      uint64_t one = 1;
      (void)!write(event_fd_, &one, sizeof(one));
      return;
    }
  }
  if (done) {
    CommandResult r;
    r.status = absl::UnavailableError("forkd is shutting down");
    r.message = std::string(r.status.message());
    done(std::move(r));
  }
}

void Arbiter::RunPostedCommands() {
  std::deque<std::pair<Command, std::function<void(CommandResult)>>> batch;
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    batch.swap(posted_);
  }
  for (auto& [command, done] : batch) {
    CommandResult r = HandleCommand(command);
    if (done) done(std::move(r));
  }
}

void Arbiter::HandleSignal(int signo) {
  if (signo == SIGCHLD) {
    ReapChildren();
    return;
  }
  std::string name = os::SignalName(signo);
  std::string short_name = absl::AsciiStrToLower(
      absl::StartsWith(name, "SIG") ? name.substr(3) : name);
  LOG_INFO("Handling signal: %s", short_name);
  Command command;
  switch (signo) {
    case SIGTTIN:
      command = Command::ScaleBy(+1);
      break;
    case SIGTTOU:
      command = Command::ScaleBy(-1);
      break;
    case SIGHUP:
      command = Command::Reload();
      break;
    case SIGTERM:
      command = Command::GracefulStop();
      break;
    case SIGINT:
    case SIGQUIT:
      command = Command::QuickStop();
      break;
    case SIGUSR1:
      command = Command::ReopenLogs();
      break;
    case SIGUSR2:
      command = Command::Upgrade();
      break;
    case SIGWINCH:
      if (ignore_winch_) {
        LOG_INFO("SIGWINCH ignored: forkd runs on a terminal (window resize)");
        return;
      }
      command = Command::StopWorkers();
      break;
    default:
      return;
  }
  CommandResult r = HandleCommand(command);
  if (!r.status.ok()) {
    LOG_WARNING("%s ignored: %s", short_name, r.status.message());
  }
}

CommandResult Arbiter::HandleCommand(const Command& command) {
  CommandResult r;
  bool stopping = stop_ != Stop::kNone || done_;
  switch (command.kind) {
    case CommandKind::kGracefulStop:
      r = done_ ? Result(absl::OkStatus(), "already stopped")
                : BeginGracefulStop();
      break;
    case CommandKind::kQuickStop:
      r = done_ ? Result(absl::OkStatus(), "already stopped")
                : BeginQuickStop();
      break;
    case CommandKind::kReopenLogs:
      r = ReopenLogs();
      break;
    default:
      if (stopping) {
        r = Result(
            absl::FailedPreconditionError(absl::StrCat(
                CommandKindName(command.kind), ": forkd is shutting down")),
            "");
        break;
      }
      switch (command.kind) {
        case CommandKind::kScaleBy:
          r = ScaleBy(command.value, command.exact);
          break;
        case CommandKind::kScaleTo:
          r = ScaleTo(command.value);
          break;
        case CommandKind::kSetThreads:
          r = SetThreads(command.value);
          break;
        case CommandKind::kSetWorkerConnections:
          r = SetWorkerConnections(command.value);
          break;
        case CommandKind::kReload:
          r = Reload();
          break;
        case CommandKind::kUpgrade:
          r = Upgrade();
          break;
        case CommandKind::kStopWorkers:
          r = StopWorkers();
          break;
        case CommandKind::kKillWorker:
          r = KillWorker(static_cast<pid_t>(command.value));
          break;
        case CommandKind::kDrain:
          r = Drain();
          break;
        case CommandKind::kResume:
          r = Resume();
          break;
        case CommandKind::kSetTune:
          r = command.tune
                  ? SetTune(*command.tune)
                  : Result(
                        absl::InvalidArgumentError("SetTune without settings"),
                        "");
          break;
        default:
          break;
      }
      if (r.status.ok() && !command.from_autotune &&
          (command.kind == CommandKind::kScaleBy ||
           command.kind == CommandKind::kScaleTo ||
           command.kind == CommandKind::kSetThreads)) {
        const bool threads = command.kind == CommandKind::kSetThreads;
        ApplyTuneChanges(autotuner_->OperatorResized(
            threads ? autotune::Knob::kThreads : autotune::Knob::kWorkers,
            threads ? Threads() : DesiredWorkers(),
            MakeSample(sys_->NowMs())));
      }
  }
  int64_t now = sys_->NowMs();
  if (stop_ != Stop::kNone) {
    AdvanceStop(now);
  } else if (r.status.ok()) {
    Maintain(now);
  }
  PublishSnapshot(now);
  return r;
}

CommandResult Arbiter::ScaleBy(int64_t delta, bool exact) {
  int current = DesiredWorkers();
  int max = MaxWorkers();
  if (delta == 0) return Result(absl::OkStatus(), "workers unchanged");
  if (delta < 0 && current == 0) {
    return Result(absl::InvalidArgumentError(
                      "no workers to remove: they were stopped (WINCH); "
                      "send HUP or TTIN to start them"),
                  "");
  }
  int64_t target = current + delta;
  if (exact && (target < 1 || target > max)) {
    return Result(absl::InvalidArgumentError(absl::StrFormat(
                      "workers would be %d (%d %+d): must be 1..%d "
                      "(--max-workers is %d)",
                      target, current, delta, max, max)),
                  "");
  }
  if (target > max) {
    if (current >= max) {
      return Result(
          absl::InvalidArgumentError(absl::StrFormat(
              "already at the limit of %d workers (--max-workers)", max)),
          "");
    }
    target = max;
  }
  if (target < 1) {
    if (current <= 1) {
      return Result(
          absl::InvalidArgumentError("already at the minimum of 1 worker"), "");
    }
    target = 1;
  }
  runtime_workers_ = static_cast<int>(target);
  workers_stopped_ = false;
  LOG_INFO("%s: %d -> %d", AppModeOn() ? "App processes" : "Workers", current,
           static_cast<int>(target));
  return Result(
      absl::OkStatus(),
      absl::StrFormat("%s: %d -> %d", AppModeOn() ? "app processes" : "workers",
                      current, static_cast<int>(target)));
}

CommandResult Arbiter::ScaleTo(int64_t n) {
  int max = MaxWorkers();
  if (n < 1 || n > max) {
    return Result(absl::InvalidArgumentError(absl::StrFormat(
                      "workers must be 1..%d (--max-workers is %d), got %d",
                      max, max, n)),
                  "");
  }
  int current = DesiredWorkers();
  runtime_workers_ = static_cast<int>(n);
  workers_stopped_ = false;
  LOG_INFO("%s: %d -> %d", AppModeOn() ? "App processes" : "Workers", current,
           static_cast<int>(n));
  return Result(
      absl::OkStatus(),
      absl::StrFormat("%s: %d -> %d", AppModeOn() ? "app processes" : "workers",
                      current, n));
}

CommandResult Arbiter::SetThreads(int64_t n) {
  return SetLiveSize(n, config_.max_threads, "threads", "--max-threads",
                     "Threads per worker", Threads(), &runtime_threads_);
}

CommandResult Arbiter::SetWorkerConnections(int64_t n) {
  return SetLiveSize(n, config_.max_worker_connections, "worker connections",
                     "--max-worker-connections", "Worker connections",
                     WorkerConnections(), &runtime_connections_);
}

CommandResult Arbiter::SetLiveSize(int64_t n, int max, const char* what,
                                   const char* limit_flag,
                                   const char* log_label, int before,
                                   std::optional<int>* runtime_value) {
  if (n < 1 || n > max) {
    return Result(
        absl::InvalidArgumentError(absl::StrFormat(
            "%s must be 1..%d (%s), got %d", what, max, limit_flag, n)),
        "");
  }
  *runtime_value = static_cast<int>(n);
  PublishSettings();
  if (app_) app_->SetThreads(Threads(), WorkerConnections(), sys_->NowMs());
  LOG_INFO("%s: %d -> %d", log_label, before, static_cast<int>(n));
  return Result(absl::OkStatus(),
                absl::StrFormat("%s: %d -> %d", what, before, n));
}

CommandResult Arbiter::Reload() {
  if (!reload_) {
    return Result(absl::UnimplementedError("reload is not configured"), "");
  }
  absl::StatusOr<config::Config> loaded = reload_();
  if (!loaded.ok()) {
    LOG_ERROR("Reload failed; keeping the current configuration: %s",
              loaded.status().message());
    return Result(loaded.status(), "");
  }
  config::Config next = std::move(*loaded);
  if (next.bind != config_.bind || next.backlog != config_.backlog ||
      next.reuse_port != config_.reuse_port) {
    LOG_WARNING(
        "Reload: listening sockets (--bind, --backlog, --reuse-port) change "
        "only on restart or USR2 upgrade");
  }
  if (next.pidfile != config_.pidfile) {
    LOG_WARNING("Reload: --pidfile changes only on restart");
    next.pidfile = config_.pidfile;
  }
  if (next.error_logfile != config_.error_logfile ||
      next.log_level != config_.log_level ||
      next.admin_bind != config_.admin_bind ||
      next.admin_token_file != config_.admin_token_file ||
      next.metrics_bind != config_.metrics_bind) {
    LOG_WARNING(
        "Reload: --error-logfile, --log-level, --admin-bind, "
        "--admin-token-file and --metrics-bind change only on restart "
        "(the token file's content is re-read when it changes)");
  }
  if (next.app_health_path != config_.app_health_path ||
      next.app_health_interval != config_.app_health_interval) {
    LOG_WARNING(
        "Reload: --app-health-path and --app-health-interval change only on "
        "restart");
  }
  if (next.max_workers > start_max_workers_) {
    LOG_WARNING(
        "Reload: --max-workers stays at %d (the scoreboard was sized for it "
        "at start)",
        start_max_workers_);
  }
  config_ = std::move(next);
  config_workers_ = ResolveConfigWorkers();
  if (runtime_workers_ && *runtime_workers_ > MaxWorkers()) {
    LOG_WARNING(
        "Reload: workers set at runtime (%d) capped at --max-workers %d",
        *runtime_workers_, MaxWorkers());
    runtime_workers_ = MaxWorkers();
  }
  if (runtime_threads_ && *runtime_threads_ > config_.max_threads) {
    LOG_WARNING(
        "Reload: threads set at runtime (%d) capped at --max-threads %d",
        *runtime_threads_, config_.max_threads);
    runtime_threads_ = config_.max_threads;
  }
  if (runtime_connections_ &&
      *runtime_connections_ > config_.max_worker_connections) {
    LOG_WARNING(
        "Reload: worker connections set at runtime (%d) capped at "
        "--max-worker-connections %d",
        *runtime_connections_, config_.max_worker_connections);
    runtime_connections_ = config_.max_worker_connections;
  }
  workers_stopped_ = false;
  ++generation_;
  PublishSettings();
  if (app_) {
    // Rolling replacement of the app processes: new ready before old go.
    app_->Reload(MakeAppOptions(), sys_->NowMs());
    app_->SetDesired(DesiredWorkers());
  }
  LOG_INFO("Reloading: generation %d with %d workers (%s), %d threads",
           generation_, DesiredWorkers(),
           runtime_workers_ ? "set at runtime" : "from the configuration",
           Threads());
  return Result(absl::OkStatus(),
                absl::StrFormat("reloaded: generation %d", generation_));
}

CommandResult Arbiter::BeginGracefulStop() {
  if (stop_ == Stop::kGraceful) {
    LOG_INFO("Second graceful stop request: stopping quickly");
    return BeginQuickStop();
  }
  if (stop_ == Stop::kQuick) {
    return Result(absl::OkStatus(), "already stopping quickly");
  }
  int64_t now = sys_->NowMs();
  stop_ = Stop::kGraceful;
  pending_.clear();
  int64_t delay = SecondsToMs(config_.shutdown_delay);
  if (delay > 0) {
    term_at_ms_ = now + delay;
    LOG_INFO(
        "Shutting down: not ready for traffic; still serving for %.1f s "
        "(--shutdown-delay)",
        config_.shutdown_delay);
  } else {
    SignalAllForStop(now);
  }
  return Result(absl::OkStatus(), "stopping gracefully");
}

CommandResult Arbiter::BeginQuickStop() {
  if (stop_ == Stop::kQuick) {
    return Result(absl::OkStatus(), "already stopping quickly");
  }
  stop_ = Stop::kQuick;
  pending_.clear();
  SignalAllForStop(sys_->NowMs());
  return Result(absl::OkStatus(), "stopping quickly");
}

void Arbiter::SignalAllForStop(int64_t now) {
  workers_signalled_ = true;
  bool quick = stop_ == Stop::kQuick;
  int signo = quick ? SIGQUIT : SIGTERM;
  int64_t deadline =
      now + (quick ? kQuickStopMs : SecondsToMs(config_.graceful_timeout));
  LOG_INFO("Stopping %d workers (%s)", static_cast<int>(workers_.size()),
           os::SignalName(signo));
  for (auto& [pid, w] : workers_) {
    if (w.kill_sent) continue;
    sys_->Kill(pid, signo);
    if (w.drain_deadline_ms == 0 || w.drain_deadline_ms > deadline) {
      w.drain_deadline_ms = deadline;
    }
  }
  give_up_ms_ = deadline + kGiveUpAfterKillMs;
}

void Arbiter::AdvanceStop(int64_t now) {
  if (stop_ == Stop::kGraceful && !workers_signalled_ && now >= term_at_ms_) {
    SignalAllForStop(now);
  }
  if (!workers_signalled_) return;
  if (workers_.empty() && app_) {
    // The proxy workers are gone (today's shutdown contract); then the app
    // processes: TERM, --graceful-timeout, KILL.
    if (!app_->stopping()) {
      LOG_INFO("Stopping %d app processes", app_->ProcessCount());
      app_->BeginStop(now);
    } else {
      app_->Tick(now);
    }
    if (app_->Empty()) done_ = true;
  } else if (workers_.empty()) {
    done_ = true;
  } else if (now >= give_up_ms_) {
    LOG_ERROR("%d workers did not exit after SIGKILL; exiting anyway",
              static_cast<int>(workers_.size()));
    done_ = true;
  }
}

CommandResult Arbiter::ReopenLogs() {
  log::Reopen();
  for (const auto& [pid, w] : workers_) sys_->Kill(pid, SIGUSR1);
  return Result(absl::OkStatus(),
                absl::StrFormat("logs reopened; SIGUSR1 sent to %d workers",
                                static_cast<int>(workers_.size())));
}

CommandResult Arbiter::Upgrade() {
  if (upgrade_child_pid_ != 0) {
    return Result(absl::FailedPreconditionError(absl::StrFormat(
                      "an upgrade is already running (new master pid %d)",
                      upgrade_child_pid_)),
                  "");
  }
  if (old_master_pid_ != 0) {
    return Result(absl::FailedPreconditionError(absl::StrFormat(
                      "this master is itself an upgrade; the old master "
                      "(pid %d) is still running",
                      old_master_pid_)),
                  "");
  }
  os::SpawnSpec spec;
  spec.path = exe_path_;
  spec.argv = argv_;
  if (spec.argv.empty()) spec.argv.push_back(exe_path_);
  spec.env = UpgradeEnvironment(env_, ListenerFdList(listeners_), master_pid_);
  for (const Listener& l : listeners_) spec.inherit_fds.push_back(l.fd);
  absl::StatusOr<pid_t> pid = sys_->Spawn(spec);
  if (!pid.ok()) {
    LOG_ERROR("Upgrade failed: %s", pid.status().message());
    return Result(pid.status(), "");
  }
  upgrade_child_pid_ = *pid;
  LOG_INFO("Upgrading: started a new master (pid: %d) on the same sockets",
           *pid);
  return Result(absl::OkStatus(),
                absl::StrFormat("new master started (pid %d)", *pid));
}

CommandResult Arbiter::StopWorkers() {
  workers_stopped_ = true;
  pending_.clear();
  LOG_INFO(
      "Stopping all workers gracefully; the master keeps running (HUP or "
      "TTIN starts them again)");
  return Result(absl::OkStatus(), "stopping all workers");
}

CommandResult Arbiter::KillWorker(pid_t pid) {
  auto it = workers_.find(pid);
  if (it == workers_.end() && app_) {
    // App mode: the workers the API names are the app processes (a proxy
    // worker's pid still works, above).
    if (absl::Status st = app_->Kill(pid, sys_->NowMs()); !st.ok()) {
      return Result(st, "");
    }
    return Result(absl::OkStatus(),
                  absl::StrFormat("app process %d is stopping once idle; a "
                                  "replacement starts",
                                  pid));
  }
  if (it == workers_.end()) {
    return Result(
        absl::NotFoundError(absl::StrFormat("no worker with pid %d", pid)), "");
  }
  Worker& w = it->second;
  if (w.retire_cause || w.kill_sent || w.abort_sent_ms != 0) {
    return Result(absl::FailedPreconditionError(
                      absl::StrFormat("worker %d is already stopping", pid)),
                  "");
  }
  Retire(w, ExitCause::kKilled, sys_->NowMs());
  return Result(
      absl::OkStatus(),
      absl::StrFormat("worker %d is stopping; a replacement starts", pid));
}

CommandResult Arbiter::Drain() {
  if (drained_) return Result(absl::OkStatus(), "already draining");
  drained_ = true;
  PublishSettings();
  LOG_INFO(
      "Draining: not ready for traffic; workers finish in-flight requests "
      "and take no new connections");
  return Result(absl::OkStatus(), "draining: readiness is off");
}

CommandResult Arbiter::Resume() {
  if (!drained_) return Result(absl::OkStatus(), "not draining");
  drained_ = false;
  PublishSettings();
  LOG_INFO("Resuming: workers accept connections again");
  return Result(absl::OkStatus(), "resumed: accepting connections");
}

}  // namespace forkd::arbiter

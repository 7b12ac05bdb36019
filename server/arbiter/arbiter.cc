#include "server/arbiter/arbiter.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/arbiter/pidfile.h"
#include "server/arbiter/upgrade.h"
#include "server/common/log.h"
#include "server/common/process_title.h"
#include "server/config/cpu_limit.h"
#include "server/worker/worker_launch.h"
#include "server/worker/worker_main.h"

namespace forkd::arbiter {
namespace {

using scoreboard::WorkerState;

constexpr int kHandledSignals[] = {SIGCHLD, SIGHUP,  SIGTERM, SIGINT,
                                   SIGQUIT, SIGTTIN, SIGTTOU, SIGUSR1,
                                   SIGUSR2, SIGWINCH};
constexpr int64_t kMaxTickMs = 250;
// After SIGKILL, how long to wait for the kernel to hand us the exit.
constexpr int64_t kGiveUpAfterKillMs = 5000;
// A gap between two ticks longer than this means the master itself did not
// run (the loop wakes at least every kMaxTickMs).
constexpr int64_t kStalledLoopMs = 2000;

sigset_t HandledSignalSet() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : kHandledSignals) sigaddset(&set, s);
  return set;
}

int64_t SecondsToMs(double s) { return static_cast<int64_t>(s * 1000.0); }

// Signals that end a process only when someone sends them; a crash of the
// worker's own (SEGV, ABRT, BUS, FPE, ILL...) is not among them.
bool KilledFromOutside(int signo) {
  return signo == SIGKILL || signo == SIGTERM || signo == SIGINT ||
         signo == SIGQUIT || signo == SIGHUP;
}

template <typename T>
T Load(const std::atomic<T>& a) {
  return a.load(std::memory_order_relaxed);
}

template <typename T>
void Store(std::atomic<T>& a, T v) {
  a.store(v, std::memory_order_relaxed);
}

WorkerState StateOf(const scoreboard::Slot& slot) {
  return static_cast<WorkerState>(Load(slot.state));
}

// What a worker writes into its slot and the snapshot shows as it is: the
// loop's PublishSnapshot and the admin plane's LiveSnapshot both read it.
void ReadSlotGauges(const scoreboard::Slot& slot, int64_t now, WorkerRow* row) {
  row->state = StateOf(slot);
  row->requests_served = Load(slot.requests_served);
  row->in_flight = Load(slot.in_flight);
  row->busy_threads = Load(slot.busy_threads);
  row->threads = Load(slot.threads);
  row->connection_cap = Load(slot.connection_cap);
  row->settings_generation_seen = Load(slot.settings_generation_seen);
  row->heartbeat_age_ms = now - Load(slot.heartbeat_ms);
  row->connections_active = Load(slot.connections_active);
  row->connections_idle = Load(slot.connections_idle);
  row->queued = Load(slot.queued);
}

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

const char* ExitCauseName(ExitCause cause) {
  switch (cause) {
    case ExitCause::kCrash:
      return "crash";
    case ExitCause::kTimeout:
      return "timeout";
    case ExitCause::kMaxRequests:
      return "max_requests";
    case ExitCause::kScaleDown:
      return "scale_down";
    case ExitCause::kReload:
      return "reload";
    case ExitCause::kBootFailure:
      return "boot_failure";
    case ExitCause::kKilled:
      return "killed";
    case ExitCause::kCount:
      break;
  }
  return "?";
}

// --- Construction ----------------------------------------------------------

absl::StatusOr<std::unique_ptr<Arbiter>> Arbiter::Create(ArbiterOptions options,
                                                         os::SysCalls* sys) {
  int max_workers = std::max(1, options.config.max_workers);
  absl::StatusOr<std::unique_ptr<scoreboard::Scoreboard>> sb =
      scoreboard::Scoreboard::Create(
          2 * max_workers + 2,
          config::AppMode(options.config) ? 2 * max_workers + 2 : 0);
  if (!sb.ok()) return sb.status();
  // Workers get the scoreboard through Spawn's inherit list only; nothing
  // else we exec (a USR2 master) should hold it.
  int flags = fcntl((*sb)->fd(), F_GETFD);
  if (flags >= 0) fcntl((*sb)->fd(), F_SETFD, flags | FD_CLOEXEC);
  int event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd < 0) {
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  return std::unique_ptr<Arbiter>(
      new Arbiter(std::move(options), sys, std::move(*sb), event_fd));
}

Arbiter::Arbiter(ArbiterOptions options, os::SysCalls* sys,
                 std::unique_ptr<scoreboard::Scoreboard> scoreboard,
                 int event_fd)
    : sys_(sys),
      scoreboard_(std::move(scoreboard)),
      event_fd_(event_fd),
      config_(std::move(options.config)),
      reload_(std::move(options.reload)),
      listeners_(std::move(options.listeners)),
      exe_path_(std::move(options.exe_path)),
      worker_exe_path_(options.worker_exe_path.empty()
                           ? exe_path_
                           : std::move(options.worker_exe_path)),
      argv_(std::move(options.argv)),
      env_(std::move(options.env)),
      old_master_pid_(options.old_master_pid),
      ignore_winch_(options.ignore_winch),
      master_pid_(sys->GetPid()),
      start_ms_(sys->NowMs()),
      start_max_workers_(std::max(1, config_.max_workers)) {
  slots_.resize(scoreboard_->capacity());
  bench_no_metrics_ = absl::c_linear_search(env_, "FORKD_BENCH_NO_METRICS=1");
  config_workers_ = ResolveConfigWorkers();
  if (config::AppMode(config_)) {
    proxy_workers_ =
        config_.proxy_workers > 0
            ? config_.proxy_workers
            : config::DefaultWorkers(std::max(1, sys_->EffectiveCpus()));
    app_ = std::make_unique<app::AppSupervisor>(MakeAppOptions(), sys_,
                                                scoreboard_.get());
    app_->SetDesired(DesiredWorkers());
  }
  host_stats_ = options.host_stats;
  if (host_stats_ == nullptr) {
    own_host_stats_ = std::make_unique<autotune::HostStatsImpl>();
    host_stats_ = own_host_stats_.get();
  }
  autotune::AutotunerOptions at;
  at.mode = config::ParseAutotuneMode(config_.autotune)
                .value_or(config::AutotuneMode::kOff);
  at.app_mode = AppModeOn();
  at.latency_target_seconds = config_.latency_target;
  at.bounds = config::ParseAutotuneBounds(config_.autotune_bounds)
                  .value_or(config::AutotuneBounds{});
  at.max_workers = config_.max_workers;
  at.max_threads = config_.max_threads;
  at.threads_tunable = config_.worker_class == config::WorkerClass::kGthread;
  // Validated by config::Parse; a config built by hand that is not gets
  // autotune off rather than a master that does not start.
  absl::StatusOr<std::unique_ptr<autotune::Autotuner>> tuner =
      autotune::Autotuner::Create(at, host_stats_);
  if (!tuner.ok()) {
    LOG_ERROR("%s; autotune is off", tuner.status().message());
    at.mode = config::AutotuneMode::kOff;
    tuner = autotune::Autotuner::Create(at, host_stats_);
  }
  autotuner_ = std::move(*tuner);
  PublishSnapshot(start_ms_);
}

int Arbiter::DesiredProxyWorkers() const {
  if (!AppModeOn()) return DesiredWorkers();
  return workers_stopped_ ? 0 : proxy_workers_;
}

app::AppOptions Arbiter::MakeAppOptions() const {
  app::AppOptions o;
  absl::StatusOr<std::vector<std::string>> words =
      config::SplitShellWords(config_.app_cmd);
  if (words.ok()) o.command = *words;  // Parse() validated it
  o.env = env_;
  o.worker_class = config_.worker_class;
  o.threads = Threads();
  o.worker_connections = WorkerConnections();
  o.timeout_ms = SecondsToMs(config_.timeout);
  o.graceful_timeout_ms = SecondsToMs(config_.graceful_timeout);
  o.max_requests = config_.max_requests;
  o.max_requests_jitter = config_.max_requests_jitter;
  o.max_memory_bytes = config_.max_worker_memory;
  o.health_path = config_.app_health_path;
  o.socket_parent = config_.app_socket_dir;
  if (o.socket_parent.empty()) {
    for (const std::string& e : env_) {
      if (e.rfind("TMPDIR=", 0) == 0 && e.size() > 7)
        o.socket_parent = e.substr(7);
    }
  }
  if (o.socket_parent.empty()) o.socket_parent = "/tmp";
  o.output = [](std::string_view line) {
    // One write per line: lines from different app processes never mix.
    (void)!write(STDERR_FILENO, line.data(), line.size());
  };
  o.jitter = [](int n) { return static_cast<int>(random() % (n + 1)); };
  return o;
}

std::vector<app::AppProcessStatus> Arbiter::AppStatus() const {
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  return app_status_;
}

Arbiter::~Arbiter() {
  {
    std::lock_guard<std::mutex> lock(listeners_mu_);
    listeners_closed_ = true;
  }
  CloseListeners(listeners_, /*unlink_unix=*/false);
  if (event_fd_ >= 0) close(event_fd_);
}

void Arbiter::VisitListeners(
    const std::function<void(const Listener&)>& fn) const {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  if (listeners_closed_) return;
  for (const Listener& l : listeners_) fn(l);
}

void Arbiter::BlockSignals() {
  sigset_t set = HandledSignalSet();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// --- Sizes -----------------------------------------------------------------

int Arbiter::MaxWorkers() const {
  return std::max(1, std::min(config_.max_workers, start_max_workers_));
}

int Arbiter::ResolveConfigWorkers() {
  int n = config_.workers > 0
              ? config_.workers
              : config::DefaultWorkers(std::max(1, sys_->EffectiveCpus()));
  return std::clamp(n, 1, MaxWorkers());
}

int Arbiter::DesiredWorkers() const {
  if (workers_stopped_) return 0;
  return std::min(runtime_workers_.value_or(config_workers_), MaxWorkers());
}

int Arbiter::Threads() const {
  return runtime_threads_.value_or(config_.threads);
}

int Arbiter::WorkerConnections() const {
  return runtime_connections_.value_or(config_.worker_connections);
}

CommandResult Arbiter::Result(absl::Status status, std::string message) const {
  CommandResult r;
  r.status = std::move(status);
  r.desired_workers = DesiredWorkers();
  r.threads = Threads();
  r.worker_connections = WorkerConnections();
  r.generation = generation_;
  r.settings_generation = Load(scoreboard_->settings().generation);
  r.message =
      r.status.ok() ? std::move(message) : std::string(r.status.message());
  return r;
}

// --- Start / stop ----------------------------------------------------------

absl::Status Arbiter::Start() {
  if (started_) return absl::OkStatus();
  started_ = true;
  int64_t now = sys_->NowMs();
  last_tick_ms_ = now;  // a stall before the first tick counts too
  if (!config_.pidfile.empty()) {
    std::string path = old_master_pid_ != 0
                           ? UpgradePidfilePath(config_.pidfile)
                           : config_.pidfile;
    if (absl::Status s = WritePidfile(path, master_pid_); !s.ok()) return s;
  }
  if (old_master_pid_ != 0) {
    LOG_INFO("Started by an upgrade of master %d; serving its sockets",
             old_master_pid_);
  }
  for (const Listener& l : listeners_) {
    std::string url = l.url;
    // With --certfile every listener serves TLS.
    if (!config_.certfile.empty() && absl::StartsWith(url, "http://")) {
      url.insert(4, "s");
    }
    LOG_INFO("Listening at: %s (%d)", url, master_pid_);
  }
  if (app_) {
    // Gunicorn's line, saying what runs: the class is the app processes'
    // (their per-process cap); forkd's own processes are async event loops.
    int cap = 1;
    if (config_.worker_class == config::WorkerClass::kGthread) {
      cap = Threads();
    } else if (config_.worker_class == config::WorkerClass::kAsync) {
      cap = WorkerConnections();
    }
    LOG_INFO("Using worker: %s app processes (%s), %s proxy workers",
             config::WorkerClassName(config_.worker_class),
             cap == 1
                 ? std::string("1 request at a time each")
                 : absl::StrFormat("up to %d requests at a time each", cap),
             config::WorkerClassName(config::WorkerClass::kAsync));
  } else {
    LOG_INFO("Using worker: %s", config::WorkerClassName(config_.worker_class));
  }
  if (app_) {
    if (absl::Status st = app_->Start(); !st.ok()) return st;
    LOG_INFO("App mode: %d app processes of: %s; %d proxy workers",
             DesiredWorkers(), config_.app_cmd, DesiredProxyWorkers());
  }
  Maintain(now);
  // Only now: workers wait for the first settings before they accept
  // (WorkerRuntime::Create), so the port answers once the whole initial
  // pool exists, not as soon as the first worker is up.
  PublishSettings();
  PublishSnapshot(now);
  return absl::OkStatus();
}

void Arbiter::Finish() {
  if (app_) app_->Finish();
  std::deque<std::pair<Command, std::function<void(CommandResult)>>> left;
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    closed_ = true;
    left.swap(posted_);
  }
  for (auto& [command, done] : left) {
    if (done) {
      CommandResult r;
      r.status = absl::UnavailableError("forkd is shutting down");
      r.message = std::string(r.status.message());
      done(std::move(r));
    }
  }
  if (!config_.pidfile.empty()) {
    RemovePidfileIfOwned(config_.pidfile, master_pid_);
    RemovePidfileIfOwned(UpgradePidfilePath(config_.pidfile), master_pid_);
  }
  // While another master (old or new) shares our sockets, the unix socket
  // files are its too.
  bool sole_owner = upgrade_child_pid_ == 0 && old_master_pid_ == 0;
  {
    std::lock_guard<std::mutex> lock(listeners_mu_);
    listeners_closed_ = true;
  }
  CloseListeners(listeners_, sole_owner);
}

int Arbiter::Run() {
  BlockSignals();
  signal(SIGPIPE, SIG_IGN);  // children get SIG_DFL back before exec
  sigset_t set = HandledSignalSet();
  int signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  auto cleanup = [&] {
    if (signal_fd >= 0) close(signal_fd);
    if (epoll_fd >= 0) close(epoll_fd);
  };
  if (signal_fd < 0 || epoll_fd < 0) {
    LOG_CRITICAL("cannot set up the master's event loop: %s",
                 std::strerror(errno));
    cleanup();
    Finish();
    return 1;
  }
  for (int fd : {signal_fd, event_fd_}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
  }
  if (absl::Status s = Start(); !s.ok()) {
    LOG_CRITICAL("%s", s.message());
    cleanup();
    Finish();
    return 1;
  }
  while (!done_) {
    // Wake for the earliest timer, at least every kMaxTickMs.
    int64_t now = sys_->NowMs();
    int64_t next = now + kMaxTickMs;
    for (const auto& [slot, at] : pending_) next = std::min(next, at);
    for (const auto& [pid, w] : workers_) {
      if (w.drain_deadline_ms != 0 && !w.kill_sent) {
        next = std::min(next, w.drain_deadline_ms);
      }
      if (w.abort_sent_ms != 0 && !w.kill_sent) {
        next = std::min(next, w.abort_sent_ms + kAbortToKillMs);
      }
    }
    if (stop_ == Stop::kGraceful && !workers_signalled_) {
      next = std::min(next, term_at_ms_);
    }
    int timeout =
        static_cast<int>(std::clamp<int64_t>(next - now, 0, kMaxTickMs));
    epoll_event events[4];
    int n = epoll_wait(epoll_fd, events, 4, timeout);
    if (n < 0 && errno != EINTR) {
      LOG_CRITICAL("epoll_wait: %s", std::strerror(errno));
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.fd == signal_fd) {
        signalfd_siginfo info;
        while (read(signal_fd, &info, sizeof(info)) ==
               static_cast<ssize_t>(sizeof(info))) {
          HandleSignal(static_cast<int>(info.ssi_signo));
        }
      } else if (events[i].data.fd == event_fd_) {
        uint64_t count;
        (void)!read(event_fd_, &count, sizeof(count));
        RunPostedCommands();
      }
    }
    ReapChildren();
    Tick(sys_->NowMs());
  }
  Finish();
  cleanup();
  LOG_INFO("Shutting down: Master");
  return exit_code_;
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

// --- Supervision -----------------------------------------------------------

void Arbiter::PublishSettings() {
  scoreboard::Settings& s = scoreboard_->settings();
  const bool first = Load(s.generation) == 0;
  const uint32_t before[] = {Load(s.threads), Load(s.worker_connections),
                             Load(s.draining)};
  Store(s.threads, static_cast<uint32_t>(Threads()));
  Store(s.worker_connections, static_cast<uint32_t>(WorkerConnections()));
  // Only an admin Drain makes workers answer 503. A stop does not: the
  // workers it signals serve what already reached them, with "Connection:
  // close", and publishing it here first would 503 the requests that
  // arrive before a worker's SIGTERM does.
  Store(s.draining, static_cast<uint32_t>(drained_ ? 1 : 0));
  // Release: a worker that sees the new generation sees the fields too.
  s.generation.fetch_add(1, std::memory_order_release);
  // Workers read the generation on their loop's 100 ms tick; when a value
  // they act on changed, SIGURG wakes them to converge now. Its default
  // action is to ignore it, so a worker still starting (before it blocks
  // SIGURG for its signalfd) loses nothing: it reads the settings once it
  // runs. The first publication needs no wake-up: starting workers poll
  // for it (WorkerRuntime::Create).
  const uint32_t after[] = {Load(s.threads), Load(s.worker_connections),
                            Load(s.draining)};
  if (!first &&
      !std::equal(std::begin(before), std::end(before), std::begin(after))) {
    for (const auto& [pid, w] : workers_) sys_->Kill(pid, SIGURG);
  }
}

bool Arbiter::Counted(const Worker& w) const {
  return w.generation == generation_ && !w.retire_cause && !w.self_retired;
}

int Arbiter::CountedWorkers() const {
  int n = 0;
  for (const auto& [pid, w] : workers_) n += Counted(w) ? 1 : 0;
  return n;
}

bool Arbiter::IsReady(const Worker& w) const {
  return StateOf(scoreboard_->slot(w.slot)) == WorkerState::kReady;
}

std::optional<uint32_t> Arbiter::FreeSlot() const {
  std::vector<bool> used(slots_.size(), false);
  for (const auto& [pid, w] : workers_) used[w.slot] = true;
  for (const auto& [slot, at] : pending_) used[slot] = true;
  for (uint32_t i = 0; i < used.size(); ++i) {
    if (!used[i]) return i;
  }
  return std::nullopt;
}

// Retire first what serves nothing: booting workers, then idle ones, then
// busy ones; the oldest first within each group.
std::vector<Arbiter::Worker*> Arbiter::ByRetirePreference(
    std::vector<Worker*> candidates) {
  auto rank = [this](const Worker* w) {
    const scoreboard::Slot& s = scoreboard_->slot(w->slot);
    if (StateOf(s) != WorkerState::kReady) return 0;
    return Load(s.in_flight) == 0 ? 1 : 2;
  };
  std::stable_sort(candidates.begin(), candidates.end(),
                   [&](const Worker* a, const Worker* b) {
                     int ra = rank(a), rb = rank(b);
                     if (ra != rb) return ra < rb;
                     if (a->spawned_ms != b->spawned_ms) {
                       return a->spawned_ms < b->spawned_ms;
                     }
                     return a->slot < b->slot;
                   });
  return candidates;
}

void Arbiter::Retire(Worker& w, ExitCause cause, int64_t now) {
  w.retire_cause = cause;
  w.drain_deadline_ms = now + SecondsToMs(config_.graceful_timeout);
  sys_->Kill(w.pid, SIGTERM);
  LOG_INFO("Stopping worker (pid:%d, slot %u): %s", w.pid, w.slot,
           ExitCauseName(cause));
}

void Arbiter::Maintain(int64_t now) {
  if (stop_ != Stop::kNone || done_ || !started_) return;
  if (app_) {
    app_->SetDesired(DesiredWorkers());
    app_->Tick(now);
  }
  int desired = DesiredProxyWorkers();
  int counted = CountedWorkers() + static_cast<int>(pending_.size());
  // Surplus: drop the latest pending respawns first, then retire workers.
  while (counted > desired && !pending_.empty()) {
    auto latest = std::max_element(
        pending_.begin(), pending_.end(),
        [](const auto& a, const auto& b) { return a.second < b.second; });
    pending_.erase(latest);
    --counted;
  }
  if (counted > desired) {
    std::vector<Worker*> candidates;
    for (auto& [pid, w] : workers_) {
      if (Counted(w)) candidates.push_back(&w);
    }
    std::vector<Worker*> order = ByRetirePreference(std::move(candidates));
    for (int i = 0; i < counted - desired && i < static_cast<int>(order.size());
         ++i) {
      Retire(*order[i], ExitCause::kScaleDown, now);
    }
  }
  // Respawns whose back-off has passed.
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second > now) {
      ++it;
      continue;
    }
    uint32_t slot = it->first;
    it = pending_.erase(it);
    SpawnInto(slot, now);
    if (stop_ != Stop::kNone) return;
  }
  counted = CountedWorkers() + static_cast<int>(pending_.size());
  while (counted < desired) {
    std::optional<uint32_t> slot = FreeSlot();
    if (!slot) {
      if (!warned_no_slot_) {
        LOG_WARNING("No free scoreboard slot for a new worker; will retry");
        warned_no_slot_ = true;
      }
      break;
    }
    SpawnInto(*slot, now);
    if (stop_ != Stop::kNone) return;
    ++counted;
  }
  HandOver(now);
}

void Arbiter::SpawnInto(uint32_t slot_index, int64_t now) {
  scoreboard_->ResetSlot(slot_index);
  scoreboard::Slot& slot = scoreboard_->slot(slot_index);
  Store(slot.generation, generation_);
  Store(slot.boot_ms, now);
  Store(slot.heartbeat_ms, now);
  Store(slot.state, static_cast<uint32_t>(WorkerState::kBooting));

  config::Config worker_config = config_;
  worker_config.workers = std::max(1, DesiredProxyWorkers());
  if (app_) {
    // Proxy workers in app mode are forkd's event loops; the Gunicorn
    // words (--workers, --threads, --worker-class) mean the app processes.
    worker_config.worker_class = config::WorkerClass::kAsync;
    worker_config.max_workers =
        std::max(worker_config.max_workers, worker_config.workers);
  }
  worker_config.threads = Threads();
  worker_config.worker_connections = WorkerConnections();
  worker::WorkerLaunch launch;
  launch.slot = slot_index;
  launch.generation = generation_;
  launch.scoreboard_fd = scoreboard_->fd();
  for (const Listener& l : listeners_) launch.listen_fds.push_back(l.fd);
  launch.record_metrics = !bench_no_metrics_;
  os::SpawnSpec spec;
  spec.path = worker_exe_path_;
  spec.argv = {common::WorkerTitle(slot_index, generation_,
                                   config::AppMode(worker_config)),
               worker::kWorkerSubcommand};
  launch.config = std::move(worker_config);
  spec.launch_message = worker::EncodeWorkerLaunch(launch);
  spec.env = env_;
  for (const Listener& l : listeners_) spec.inherit_fds.push_back(l.fd);
  spec.inherit_fds.push_back(scoreboard_->fd());
  // A master killed outright (OOM killer, kill -9) must not leave workers
  // serving unsupervised and holding the port: they stop gracefully, as
  // Gunicorn's do when their parent goes. Not for a USR2 master, which
  // outlives the old one by design.
  spec.parent_death_signal = SIGTERM;

  absl::StatusOr<pid_t> pid = sys_->Spawn(spec);
  if (!pid.ok()) {
    scoreboard_->ResetSlot(slot_index);
    LOG_ERROR("Cannot start a worker in slot %u: %s", slot_index,
              pid.status().message());
    BootFailed(
        absl::StrFormat("cannot start a worker: %s", pid.status().message()),
        /*fatal=*/false);
    if (stop_ == Stop::kNone) ScheduleRespawn(slot_index, now, true);
    return;
  }
  Store(slot.pid, static_cast<int32_t>(*pid));
  slots_[slot_index].occupants++;
  warned_no_slot_ = false;
  Worker w;
  w.pid = *pid;
  w.slot = slot_index;
  w.generation = generation_;
  w.spawned_ms = now;
  workers_[*pid] = w;
  LOG_INFO("Booting worker with pid: %d", *pid);
}

void Arbiter::ScheduleRespawn(uint32_t slot, int64_t now, bool boot_failure) {
  int64_t delay = 0;
  if (boot_failure) {
    SlotHistory& h = slots_[slot];
    delay = h.backoff_ms;
    h.backoff_ms = std::min(2 * delay, kBootBackoffMaxMs);
    LOG_INFO("Restarting the worker in slot %u in %d ms", slot, delay);
  }
  pending_[slot] = now + delay;
}

void Arbiter::BootFailed(const std::string& detail, bool fatal) {
  ++consecutive_boot_failures_;
  if (!fatal && consecutive_boot_failures_ < kMaxConsecutiveBootFailures) {
    return;
  }
  std::string why =
      fatal ? detail
            : absl::StrFormat(
                  "%d workers in a row exited before becoming ready; last: %s",
                  consecutive_boot_failures_, detail);
  LOG_CRITICAL("worker failed to boot (WORKER_BOOT_ERROR): %s", why);
  exit_code_ = kExitBootError;
  if (stop_ == Stop::kNone) {
    stop_ = Stop::kGraceful;
    pending_.clear();
    SignalAllForStop(sys_->NowMs());
  }
}

void Arbiter::HandOver(int64_t now) {
  int ready_new = 0;
  std::vector<Worker*> old_serving;
  for (auto& [pid, w] : workers_) {
    if (w.retire_cause || w.self_retired || w.abort_sent_ms != 0) continue;
    if (w.generation == generation_) {
      ready_new += IsReady(w) ? 1 : 0;
      continue;
    }
    WorkerState st = StateOf(scoreboard_->slot(w.slot));
    if (st == WorkerState::kBooting || st == WorkerState::kEmpty) {
      Retire(w, ExitCause::kReload, now);  // old and not serving yet
    } else {
      old_serving.push_back(&w);
    }
  }
  // Keep old workers until as many new ones are ready: never zero ready.
  int keep = std::max(0, DesiredProxyWorkers() - ready_new);
  int surplus = static_cast<int>(old_serving.size()) - keep;
  if (surplus <= 0) return;
  std::vector<Worker*> order = ByRetirePreference(std::move(old_serving));
  for (int i = 0; i < surplus; ++i) Retire(*order[i], ExitCause::kReload, now);
}

void Arbiter::ObserveWorkers(int64_t now) {
  for (auto& [pid, w] : workers_) {
    WorkerState st = StateOf(scoreboard_->slot(w.slot));
    if (st == WorkerState::kReady && !w.seen_ready) {
      w.seen_ready = true;
      consecutive_boot_failures_ = 0;
      slots_[w.slot].backoff_ms = kBootBackoffInitialMs;
      LOG_DEBUG("Worker (pid:%d) is ready", pid);
    }
    bool leaving = st == WorkerState::kDraining ||
                   (st == WorkerState::kExiting && w.seen_ready);
    if (leaving && !w.retire_cause && !w.self_retired && stop_ == Stop::kNone) {
      w.self_retired = true;
      w.seen_ready = true;
      w.drain_deadline_ms = now + SecondsToMs(config_.graceful_timeout);
      LOG_INFO("Worker (pid:%d) is stopping on its own; starting a replacement",
               pid);
    }
  }
}

void Arbiter::CheckTimeouts(int64_t now) {
  int64_t timeout = SecondsToMs(config_.timeout);
  for (auto& [pid, w] : workers_) {
    if (w.kill_sent) continue;
    if (w.abort_sent_ms != 0) {
      if (now >= w.abort_sent_ms + kAbortToKillMs) {
        LOG_WARNING("Worker (pid:%d) still alive %d ms after SIGABRT; SIGKILL",
                    pid, kAbortToKillMs);
        sys_->Kill(pid, SIGKILL);
        w.kill_sent = true;
      }
      continue;
    }
    if (w.drain_deadline_ms != 0 && now >= w.drain_deadline_ms) {
      LOG_WARNING("Worker (pid:%d) did not stop in time; SIGKILL", pid);
      sys_->Kill(pid, SIGKILL);
      w.kill_sent = true;
      continue;
    }
    if (timeout <= 0 || stop_ != Stop::kNone) continue;
    const scoreboard::Slot& slot = scoreboard_->slot(w.slot);
    WorkerState st = StateOf(slot);
    bool timed_out = false;
    if (st == WorkerState::kReady || st == WorkerState::kDraining) {
      timed_out = now - std::max(Load(slot.heartbeat_ms), heartbeats_from_ms_) >
                  timeout;
    } else if (st == WorkerState::kBooting || st == WorkerState::kEmpty) {
      timed_out = now - w.spawned_ms > std::max(timeout, kMinBootTimeoutMs);
    }
    if (timed_out) {
      LOG_CRITICAL("WORKER TIMEOUT (pid:%d)", pid);
      sys_->Kill(pid, SIGABRT);
      w.abort_sent_ms = now;
    }
  }
}

void Arbiter::CheckOldMaster() {
  if (old_master_pid_ == 0 || sys_->GetParentPid() == old_master_pid_) return;
  LOG_INFO("The old master (pid %d) has exited; this master takes over",
           old_master_pid_);
  old_master_pid_ = 0;
  if (config_.pidfile.empty()) return;
  std::string upgrade_path = UpgradePidfilePath(config_.pidfile);
  if (rename(upgrade_path.c_str(), config_.pidfile.c_str()) != 0) {
    if (absl::Status s = WritePidfile(config_.pidfile, master_pid_); !s.ok()) {
      LOG_WARNING("%s", s.message());
    }
  }
}

void Arbiter::ReapChildren() {
  int status = 0;
  pid_t pid;
  while ((pid = sys_->WaitAny(&status)) > 0) OnChildExit(pid, status);
}

void Arbiter::OnChildExit(pid_t pid, int status) {
  int64_t now = sys_->NowMs();
  std::string how = os::DescribeWaitStatus(status);
  if (pid == upgrade_child_pid_) {
    LOG_WARNING("The new master (pid %d) %s", pid, how);
    upgrade_child_pid_ = 0;
    PublishSnapshot(now);
    return;
  }
  if (app_ && app_->OnChildExit(pid, status, now)) {
    if (stop_ != Stop::kNone) AdvanceStop(now);
    PublishSnapshot(now);
    return;
  }
  auto it = workers_.find(pid);
  if (it == workers_.end()) {
    LOG_DEBUG("Reaped child %d (not a worker): %s", pid, how);
    return;
  }
  Worker w = it->second;
  workers_.erase(it);
  scoreboard::Slot& slot = scoreboard_->slot(w.slot);
  WorkerState st = StateOf(slot);
  auto exit_reason =
      static_cast<scoreboard::ExitReason>(Load(slot.exit_reason));
  if (!w.seen_ready &&
      (st == WorkerState::kReady || st == WorkerState::kDraining)) {
    // It became ready between two ticks.
    w.seen_ready = true;
    consecutive_boot_failures_ = 0;
    slots_[w.slot].backoff_ms = kBootBackoffInitialMs;
  }
  bool exit_code_3 =
      WIFEXITED(status) && WEXITSTATUS(status) == worker::kExitBootError;
  bool boot_failure = false;
  ExitCause cause;
  if (w.abort_sent_ms != 0) {
    cause = ExitCause::kTimeout;
    boot_failure = !w.seen_ready;
  } else if (w.retire_cause) {
    cause = *w.retire_cause;
  } else if (exit_reason == scoreboard::ExitReason::kMaxRequests) {
    cause = ExitCause::kMaxRequests;
  } else if (!w.seen_ready || exit_code_3 ||
             exit_reason == scoreboard::ExitReason::kBootFailed) {
    cause = ExitCause::kBootFailure;
    boot_failure = true;
  } else {
    cause = ExitCause::kCrash;
  }

  bool expected = w.retire_cause || w.kill_sent || w.abort_sent_ms != 0 ||
                  stop_ != Stop::kNone;
  // Killed by a signal the master did not send and the worker did not
  // raise itself: the OOM killer, an operator's kill -9, a stray TERM.
  bool killed_from_outside =
      WIFSIGNALED(status) && !expected && KilledFromOutside(WTERMSIG(status));
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && !w.kill_sent) {
    LOG_ERROR("Worker (pid:%d) was sent SIGKILL! Perhaps out of memory?", pid);
  } else if (!expected && cause != ExitCause::kMaxRequests) {
    LOG_ERROR("Worker (pid:%d) %s", pid, how);
  } else {
    LOG_INFO("Worker (pid:%d) %s (%s)", pid, how,
             stop_ != Stop::kNone ? "shutdown" : ExitCauseName(cause));
  }

  // Fold before the slot is reused so totals never go backwards.
  retired_.Add(slot.counters);
  scoreboard_->ResetSlot(w.slot);
  slots_[w.slot].last_exit = cause;

  if (stop_ != Stop::kNone) {
    AdvanceStop(now);
    PublishSnapshot(now);
    return;
  }
  exits_[static_cast<size_t>(cause)]++;

  bool replace = Counted(w);
  std::string detail =
      absl::StrFormat("worker (pid:%d, slot %u) %s", pid, w.slot, how);
  if (!w.retire_cause &&
      (exit_code_3 || exit_reason == scoreboard::ExitReason::kBootFailed)) {
    BootFailed(detail, /*fatal=*/true);
  } else if (boot_failure) {
    // A booting worker killed from outside proves nothing about whether
    // workers can boot: it backs off like a failed boot, but never counts
    // towards stopping a server whose other workers serve (five OOM kills
    // of new workers in a row would otherwise take the whole server down).
    if (!killed_from_outside) BootFailed(detail, /*fatal=*/false);
    if (replace && stop_ == Stop::kNone) ScheduleRespawn(w.slot, now, true);
  } else if (replace) {
    ScheduleRespawn(w.slot, now, false);
  }
  Converge(now);
}

// --- Autotune ----------------------------------------------------------------

autotune::Sample Arbiter::MakeSample(int64_t now) const {
  autotune::Sample s;
  s.now_ms = now;
  s.totals = retired_;
  for (const auto& [pid, w] : workers_) {
    const scoreboard::Slot& slot = scoreboard_->slot(w.slot);
    s.totals.Add(slot.counters);
    s.queued += slot.queued.load(std::memory_order_relaxed);
  }
  s.in_flight =
      scoreboard_->app_limit().in_flight.load(std::memory_order_relaxed);
  s.workers = DesiredWorkers();
  s.threads = Threads();
  int64_t per_worker = 1;
  if (config_.worker_class == config::WorkerClass::kGthread) {
    per_worker = Threads();
  } else if (config_.worker_class == config::WorkerClass::kAsync) {
    per_worker = WorkerConnections();
  }
  s.in_flight_cap = static_cast<int64_t>(std::max(1, s.workers)) * per_worker;
  if (app_) {
    for (const app::AppProcessStatus& a : app_->Status()) {
      if (a.pid > 0) s.app_pids.push_back(a.pid);
    }
  }
  return s;
}

void Arbiter::ApplyTuneChanges(const std::vector<autotune::Change>& changes) {
  for (const autotune::Change& c : changes) {
    switch (c.knob) {
      case autotune::Knob::kLimit:
        scoreboard_->app_limit().limit.store(
            static_cast<uint32_t>(std::max(0, c.value)),
            std::memory_order_relaxed);
        break;
      case autotune::Knob::kWorkers: {
        // The same command as TTIN/TTOU and forkctl scale; an app process
        // scaled away finishes its in-flight requests first.
        Command scale = Command::ScaleTo(c.value);
        scale.from_autotune = true;
        CommandResult r = HandleCommand(scale);
        if (!r.status.ok()) {
          LOG_WARNING("autotune: workers %d refused: %s", c.value,
                      r.status.message());
        }
        break;
      }
      case autotune::Knob::kThreads: {
        Command threads = Command::SetThreads(c.value);
        threads.from_autotune = true;
        CommandResult r = HandleCommand(threads);
        if (!r.status.ok()) {
          LOG_WARNING("autotune: threads %d refused: %s", c.value,
                      r.status.message());
        }
        break;
      }
      case autotune::Knob::kNone:
        break;
    }
  }
}

void Arbiter::RunAutotune(int64_t now) {
  if (!started_ || stop_ != Stop::kNone || workers_stopped_) return;
  ApplyTuneChanges(autotuner_->OnTick(MakeSample(now)));
}

CommandResult Arbiter::SetTune(const autotune::TuneUpdate& u) {
  if (u.mode && *u.mode != config::AutotuneMode::kOff &&
      config_.upstream_protocol == "h2c") {
    return Result(absl::InvalidArgumentError(
                      "autotune does not apply to --upstream-protocol h2c "
                      "yet (its streams bypass forkd's queue)"),
                  "");
  }
  absl::StatusOr<std::vector<autotune::Change>> changes =
      autotuner_->Update(u, MakeSample(sys_->NowMs()));
  if (!changes.ok()) return Result(changes.status(), "");
  ApplyTuneChanges(*changes);
  autotune::TuneStatus t = autotuner_->Status();
  return Result(absl::OkStatus(),
                absl::StrFormat("autotune: mode %s, limit %d, workers %d, "
                                "threads %d",
                                config::AutotuneModeName(t.mode), t.limit,
                                DesiredWorkers(), Threads()));
}

void Arbiter::Tick(int64_t now_ms) {
  if (done_) return;
  // SIGSTOP of the whole process group (Ctrl-Z), a frozen container: the
  // workers' heartbeats went stale while nobody watched, which proves
  // nothing about them. Time them from now instead of killing them all.
  if (started_ && now_ms - last_tick_ms_ > kStalledLoopMs) {
    LOG_WARNING(
        "The master did not run for %d ms (suspended?); worker heartbeats "
        "are timed from now",
        now_ms - last_tick_ms_);
    heartbeats_from_ms_ = now_ms;
  }
  last_tick_ms_ = now_ms;
  ObserveWorkers(now_ms);
  CheckTimeouts(now_ms);
  CheckOldMaster();
  RunAutotune(now_ms);
  Converge(now_ms);
}

void Arbiter::Converge(int64_t now) {
  if (stop_ != Stop::kNone) {
    AdvanceStop(now);
  } else {
    Maintain(now);
  }
  PublishSnapshot(now);
}

// --- Snapshot --------------------------------------------------------------

void Arbiter::PublishSnapshot(int64_t now) {
  PoolSnapshot s;
  s.master_pid = master_pid_;
  s.published_ms = now;
  s.published_unix_s = std::chrono::duration<double>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  s.uptime_s = static_cast<double>(now - start_ms_) / 1000.0;
  s.worker_class = config_.worker_class;
  s.generation = generation_;
  s.settings_generation = Load(scoreboard_->settings().generation);
  s.desired_workers = DesiredWorkers();
  s.max_workers = MaxWorkers();
  s.threads = Threads();
  s.max_threads = config_.max_threads;
  s.worker_connections = WorkerConnections();
  s.max_worker_connections = config_.max_worker_connections;
  int64_t per_worker = 1;
  if (config_.worker_class == config::WorkerClass::kGthread) {
    per_worker = Threads();
  } else if (config_.worker_class == config::WorkerClass::kAsync) {
    per_worker = WorkerConnections();
  }
  s.in_flight_cap = static_cast<int64_t>(s.desired_workers) * per_worker;
  s.stopping = stop_ != Stop::kNone;
  s.draining = s.stopping || drained_;
  s.upgrading = upgrade_child_pid_ != 0;
  s.exits = exits_;
  s.totals = retired_;
  for (const auto& [pid, w] : workers_) {
    const scoreboard::Slot& slot = scoreboard_->slot(w.slot);
    WorkerRow row;
    row.slot = w.slot;
    row.pid = pid;
    row.generation = w.generation;
    ReadSlotGauges(slot, now, &row);
    row.retiring = w.retire_cause.has_value() || w.self_retired ||
                   w.abort_sent_ms != 0 || stop_ != Stop::kNone;
    row.age_s = static_cast<double>(now - w.spawned_ms) / 1000.0;
    row.restarts = std::max(0, slots_[w.slot].occupants - 1);
    row.last_exit = slots_[w.slot].last_exit;
    s.actual_workers += Counted(w) ? 1 : 0;
    s.ready_workers += row.state == WorkerState::kReady ? 1 : 0;
    s.totals.Add(slot.counters);
    s.workers.push_back(row);
  }
  std::sort(
      s.workers.begin(), s.workers.end(),
      [](const WorkerRow& a, const WorkerRow& b) { return a.slot < b.slot; });
  if (app_) {
    s.app_mode = true;
    s.app_command = config_.app_cmd;
    s.proxy_workers = DesiredProxyWorkers();
    s.apps = app_->Status();
    s.app_restarts = app_->restarts();
    s.app_requests_by_slot = app_->RequestsBySlot();
    s.proxy_workers_ready = s.ready_workers;
    s.actual_workers = 0;
    for (const app::AppProcessStatus& a : s.apps) {
      // As a worker's Counted(): what the desired count is compared with.
      s.actual_workers += a.replacing ||
                                  a.state == scoreboard::AppState::kRetiring ||
                                  a.state == scoreboard::AppState::kStopping
                              ? 0
                              : 1;
    }
    s.ready_workers = s.proxy_workers_ready > 0 ? app_->ReadyCount() : 0;
  }
  if (autotuner_) {
    s.tune = autotuner_->Status();
    // The workers and threads in force, whoever set them last.
    s.tune.workers = s.desired_workers;
    s.tune.threads = s.threads;
    s.tune.limit = static_cast<int>(
        scoreboard_->app_limit().limit.load(std::memory_order_relaxed));
  }
  s.app_limit_in_flight =
      scoreboard_->app_limit().in_flight.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  app_status_ = s.apps;
  snapshot_ = std::move(s);
}

PoolSnapshot Arbiter::Snapshot() const {
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  return snapshot_;
}

PoolSnapshot Arbiter::LiveSnapshot() const {
  PoolSnapshot s = Snapshot();
  int64_t now = sys_->NowMs();
  s.ready_workers = 0;
  for (WorkerRow& row : s.workers) {
    // Only the scoreboard's atomics are read here, never the loop's state;
    // a slot already handed to another worker keeps the published values.
    const scoreboard::Slot& slot = scoreboard_->slot(row.slot);
    if (Load(slot.pid) == static_cast<int32_t>(row.pid)) {
      ReadSlotGauges(slot, now, &row);
    }
    s.ready_workers += row.state == WorkerState::kReady ? 1 : 0;
  }
  if (s.app_mode) {
    // The app slots' states are atomics too.
    s.proxy_workers_ready = s.ready_workers;
    int ready = 0;
    for (app::AppProcessStatus& a : s.apps) {
      const scoreboard::AppSlot& slot = scoreboard_->app_slot(a.slot);
      if (slot.pid.load(std::memory_order_relaxed) ==
          static_cast<int32_t>(a.pid)) {
        a.state = static_cast<scoreboard::AppState>(
            slot.state.load(std::memory_order_acquire));
        a.in_flight = slot.in_flight.load(std::memory_order_relaxed);
        a.requests = slot.requests.load(std::memory_order_relaxed);
      }
      ready += a.state == scoreboard::AppState::kReady ? 1 : 0;
    }
    s.ready_workers = s.proxy_workers_ready > 0 ? ready : 0;
  }
  return s;
}

}  // namespace forkd::arbiter

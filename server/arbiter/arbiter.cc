#include "server/arbiter/arbiter.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/algorithm/container.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/arbiter/arbiter_internal.h"
#include "server/arbiter/pidfile.h"
#include "server/common/log.h"
#include "server/config/cpu_limit.h"

// The master: construction, start and stop, the loop (Run, Tick).
namespace forkd::arbiter {

namespace {

constexpr int kHandledSignals[] = {SIGCHLD, SIGHUP,  SIGTERM, SIGINT,
                                   SIGQUIT, SIGTTIN, SIGTTOU, SIGUSR1,
                                   SIGUSR2, SIGWINCH};
constexpr int64_t kMaxTickMs = 250;
// A gap between two ticks longer than this means the master itself did not
// run (the loop wakes at least every kMaxTickMs).
constexpr int64_t kStalledLoopMs = 2000;

sigset_t HandledSignalSet() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : kHandledSignals) sigaddset(&set, s);
  return set;
}

}  // namespace

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

}  // namespace forkd::arbiter

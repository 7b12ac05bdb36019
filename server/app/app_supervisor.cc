#include "server/app/app_supervisor.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "server/common/log.h"

namespace forkd::app {
namespace {

using scoreboard::AppSlot;
using scoreboard::AppState;

AppState StateOf(const AppSlot& s) {
  return static_cast<AppState>(s.state.load(std::memory_order_acquire));
}

void SetState(AppSlot& s, AppState st) {
  s.state.store(static_cast<uint32_t>(st), std::memory_order_release);
}

// The executable for `name`: itself when it has a '/', else the first
// PATH entry (from the children's environment) where it exists.
std::string ResolveExecutable(const std::string& name,
                              const std::vector<std::string>& env) {
  if (name.find('/') != std::string::npos) return name;
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const std::string& e : env) {
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  }
  for (absl::string_view dir : absl::StrSplit(path, ':')) {
    if (dir.empty()) continue;
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return name;  // exec fails and the spawn error names it
}

}  // namespace

void LineSplitter::Feed(std::string_view bytes,
                        const std::function<void(std::string_view)>& emit) {
  while (!bytes.empty()) {
    size_t nl = bytes.find('\n');
    std::string_view piece = bytes.substr(0, nl);
    // Bounded lines: a line longer than max_line_ comes out in pieces.
    while (partial_.size() + piece.size() > max_line_) {
      size_t take = max_line_ - partial_.size();
      partial_.append(piece.substr(0, take));
      emit(partial_);
      partial_.clear();
      piece.remove_prefix(take);
    }
    partial_.append(piece);
    if (nl == std::string_view::npos) return;
    emit(partial_);
    partial_.clear();
    bytes.remove_prefix(nl + 1);
  }
}

void LineSplitter::Flush(const std::function<void(std::string_view)>& emit) {
  if (!partial_.empty()) emit(partial_);
  partial_.clear();
}

const char* AppExitName(AppExit e) {
  switch (e) {
    case AppExit::kNone:
      return "none";
    case AppExit::kCrash:
      return "crash";
    case AppExit::kBootFailure:
      return "boot_failure";
    case AppExit::kTimeout:
      return "timeout";
    case AppExit::kMaxRequests:
      return "max_requests";
    case AppExit::kMaxMemory:
      return "max_memory";
    case AppExit::kReload:
      return "reload";
    case AppExit::kScaleDown:
      return "scale_down";
    case AppExit::kShutdown:
      return "shutdown";
    case AppExit::kRefused:
      return "refused";
    case AppExit::kKilled:
      return "killed";
  }
  return "none";
}

AppSupervisor::AppSupervisor(AppOptions options, os::SysCalls* sys,
                             scoreboard::Scoreboard* board)
    : options_(std::move(options)), sys_(sys), board_(board) {
  slot_last_exit_.assign(board_->app_capacity(), AppExit::kNone);
  slot_last_detail_.assign(board_->app_capacity(), "");
  slot_last_status_.assign(board_->app_capacity(), -1);
  slot_requests_retired_.assign(board_->app_capacity(), 0);
  slot_used_.assign(board_->app_capacity(), false);
}

AppSupervisor::~AppSupervisor() {
  for (auto& [pid, p] : procs_) sys_->Close(p.out_fd);
}

absl::Status AppSupervisor::Start() {
  absl::StatusOr<std::string> dir = sys_->MakePrivateDir(
      options_.socket_parent.empty() ? "/tmp" : options_.socket_parent);
  if (!dir.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--app-socket-dir: ", dir.status().message()));
  }
  dir_ = *dir;
  return absl::OkStatus();
}

bool AppSupervisor::UsesPlaceholder(std::string_view ph) const {
  for (const std::string& w : options_.command) {
    if (absl::StrContains(w, absl::string_view(ph.data(), ph.size()))) {
      return true;
    }
  }
  return false;
}

std::vector<std::string> AppSupervisor::ExpandCommand(
    uint32_t slot, const std::string& socket) const {
  std::vector<std::string> out;
  for (const std::string& w : options_.command) {
    out.push_back(
        absl::StrReplaceAll(w, {{"{socket}", socket},
                                {"{threads}", absl::StrCat(options_.threads)},
                                {"{worker}", absl::StrCat(slot)}}));
  }
  return out;
}

uint32_t AppSupervisor::CapFor() const {
  switch (options_.worker_class) {
    case config::WorkerClass::kSync:
      return 1;
    case config::WorkerClass::kGthread:
      return static_cast<uint32_t>(std::max(1, options_.threads));
    case config::WorkerClass::kAsync:
      return static_cast<uint32_t>(std::max(1, options_.worker_connections));
  }
  return 1;
}

bool AppSupervisor::Counted(const Proc& p) const {
  return !p.replace && !p.retire && p.abort_ms == 0 && !p.kill_sent &&
         p.generation == generation_;
}

int AppSupervisor::ReadyCount() const {
  int n = 0;
  for (const auto& [pid, p] : procs_) {
    n += StateOf(board_->app_slot(p.slot)) == AppState::kReady ? 1 : 0;
  }
  return n;
}

void AppSupervisor::Spawn(int64_t now) {
  std::vector<bool> used(board_->app_capacity(), false);
  for (const auto& [pid, p] : procs_) used[p.slot] = true;
  auto free = std::find(used.begin(), used.end(), false);
  if (free == used.end()) {
    LOG_WARNING("No free app slot for a new app process; will retry");
    next_spawn_ms_ = now + kBootBackoffMaxMs;
    return;
  }
  uint32_t slot = static_cast<uint32_t>(free - used.begin());
  AppSlot& s = board_->app_slot(slot);
  std::string socket = absl::StrCat(dir_, "/app-", slot, ".sock");
  const bool app_binds = UsesPlaceholder("{socket}");
  int listen_fd = -1;
  if (app_binds) {
    sys_->RemovePath(socket);  // a stale file would make its bind fail
  } else {
    absl::StatusOr<int> fd = sys_->ListenUnix(socket);
    if (!fd.ok()) {
      LOG_ERROR("App process for slot %u: %s", slot, fd.status().message());
      next_spawn_ms_ = now + backoff_ms_;
      return;
    }
    listen_fd = *fd;
  }
  absl::StatusOr<std::pair<int, int>> pipe = sys_->MakePipe();

  os::SpawnSpec spec;
  spec.argv = ExpandCommand(slot, socket);
  spec.path = ResolveExecutable(spec.argv[0], options_.env);
  for (const std::string& e : options_.env) {
    if (e.rfind("LISTEN_", 0) == 0 || e.rfind("FORKD_WORKER=", 0) == 0 ||
        e.rfind("FORKD_SOCKET=", 0) == 0) {
      continue;
    }
    spec.env.push_back(e);
  }
  spec.env.push_back(absl::StrCat("FORKD_WORKER=", slot));
  spec.env.push_back(absl::StrCat("FORKD_SOCKET=", socket));
  if (listen_fd >= 0) {
    spec.env.push_back("LISTEN_FDS=1");
    spec.env.push_back("LISTEN_FDNAMES=http");
    spec.env.push_back("LISTEN_PID=0");
    spec.listen_fd = listen_fd;
    spec.set_listen_pid = true;
  }
  if (pipe.ok()) spec.stdio_fd = pipe->second;
  spec.parent_death_signal = SIGKILL;
  spec.new_process_group = true;

  // The identity fields first, while the slot is kEmpty; then the state.
  s.pid.store(0, std::memory_order_relaxed);
  s.in_flight.store(0, std::memory_order_relaxed);
  s.requests.store(0, std::memory_order_relaxed);
  s.refused.store(0, std::memory_order_relaxed);
  s.last_progress_ms.store(now, std::memory_order_relaxed);
  s.started_ms.store(now, std::memory_order_relaxed);
  s.cap.store(CapFor(), std::memory_order_relaxed);
  std::fill(std::begin(s.socket_path), std::end(s.socket_path), '\0');
  std::copy_n(socket.data(),
              std::min(socket.size(), scoreboard::kAppSocketPathMax - 1),
              s.socket_path);
  s.incarnation.fetch_add(1, std::memory_order_relaxed);

  absl::StatusOr<pid_t> pid = sys_->Spawn(spec);
  sys_->Close(listen_fd);  // the child has its copy
  if (pipe.ok()) sys_->Close(pipe->second);
  if (!pid.ok()) {
    if (pipe.ok()) sys_->Close(pipe->first);
    LOG_ERROR("Cannot start app process for slot %u: %s", slot,
              pid.status().message());
    ++consecutive_boot_failures_;
    next_spawn_ms_ = now + backoff_ms_;
    backoff_ms_ = std::min(backoff_ms_ * 2, kBootBackoffMaxMs);
    return;
  }
  s.pid.store(*pid, std::memory_order_relaxed);
  SetState(s, AppState::kStarting);
  slot_used_[slot] = true;
  Proc& p = procs_[*pid];
  p.pid = *pid;
  p.slot = slot;
  p.generation = generation_;
  p.spawned_ms = now;
  // A replacement takes over the history of the process it replaces (the
  // oldest leaving one without a successor, or one that already exited),
  // so `forkctl status` shows its restarts and last exit on the row now
  // serving in its place, whichever slot that is. A process started for a
  // scale up starts with none.
  Proc* leaving = nullptr;
  for (auto& [qpid, q] : procs_) {
    if (qpid == *pid || q.successor != 0 || Counted(q)) continue;
    if (q.retire == AppExit::kScaleDown) continue;
    if (leaving == nullptr || q.spawned_ms < leaving->spawned_ms) leaving = &q;
  }
  if (leaving != nullptr) {
    leaving->successor = *pid;
    PutHistory(slot, HistoryOf(leaving->slot));
  } else if (!exited_history_.empty()) {
    PutHistory(slot, exited_history_.front());
    exited_history_.pop_front();
  } else {
    PutHistory(slot, History{});
  }
  p.out_fd = pipe.ok() ? pipe->first : -1;
  if (options_.max_requests > 0) {
    int jitter = options_.max_requests_jitter > 0 && options_.jitter
                     ? options_.jitter(options_.max_requests_jitter)
                     : 0;
    p.max_requests = static_cast<uint64_t>(options_.max_requests) +
                     static_cast<uint64_t>(jitter);
  }
  LOG_INFO("Booting app process %u (pid: %d) on %s", slot, *pid, socket);
}

void AppSupervisor::Signal(Proc& p, int signo) {
  // The whole process group: the app and whatever it forked.
  sys_->Kill(-p.pid, signo);
  sys_->Kill(p.pid, signo);
}

void AppSupervisor::Retire(Proc& p, AppExit why, int64_t now) {
  if (p.retire) return;
  p.retire = why;
  p.retire_ms = now;
  AppSlot& s = board_->app_slot(p.slot);
  // Out of the rotation now; stopped once its in-flight requests are done.
  SetState(s, AppState::kRetiring);
  LOG_INFO("Retiring app process %u (pid: %d): %s", p.slot, p.pid,
           AppExitName(why));
}

void AppSupervisor::DrainOutput(Proc& p, bool final) {
  if (p.out_fd < 0) return;
  char buf[16384];
  std::string prefix = absl::StrCat("[app ", p.slot, "] ");
  auto emit = [&](std::string_view line) {
    if (options_.output) {
      options_.output(absl::StrCat(
          prefix, absl::string_view(line.data(), line.size()), "\n"));
    }
  };
  // Bounded per call so a chatty app cannot hold the master's loop.
  for (int i = 0; i < 64; ++i) {
    ssize_t n = sys_->Read(p.out_fd, buf, sizeof(buf));
    if (n <= 0) {
      if (n == 0) final = true;  // EOF
      break;
    }
    p.lines.Feed(std::string_view(buf, static_cast<size_t>(n)), emit);
  }
  if (final) {
    p.lines.Flush(emit);
  }
}

void AppSupervisor::SetThreads(int threads, int worker_connections,
                               int64_t now) {
  bool changed_threads = threads != options_.threads;
  options_.threads = threads;
  options_.worker_connections = worker_connections;
  uint32_t cap = CapFor();
  for (auto& [pid, p] : procs_) {
    board_->app_slot(p.slot).cap.store(cap, std::memory_order_relaxed);
  }
  if (changed_threads && UsesPlaceholder("{threads}")) {
    ++generation_;
    for (auto& [pid, p] : procs_) {
      if (!p.retire && !p.replace) p.replace = AppExit::kReload;
    }
    LOG_INFO(
        "App command uses {threads}: replacing app processes (%d "
        "threads)",
        threads);
    Maintain(now);
  }
}

void AppSupervisor::Reload(AppOptions options, int64_t now) {
  std::function<void(std::string_view)> output = options_.output;
  std::function<int(int)> jitter = options_.jitter;
  options_ = std::move(options);
  if (!options_.output) options_.output = std::move(output);
  if (!options_.jitter) options_.jitter = std::move(jitter);
  ++generation_;
  for (auto& [pid, p] : procs_) {
    if (!p.retire && !p.replace) p.replace = AppExit::kReload;
  }
  Maintain(now);
}

bool AppSupervisor::OnChildExit(pid_t pid, int status, int64_t now) {
  auto it = procs_.find(pid);
  if (it == procs_.end()) return false;
  Proc& p = it->second;
  DrainOutput(p, /*final=*/true);
  sys_->Close(p.out_fd);
  AppSlot& s = board_->app_slot(p.slot);
  bool was_ready = p.ready || StateOf(s) == AppState::kReady ||
                   (StateOf(s) == AppState::kRetiring && p.retire);
  std::string how = os::DescribeWaitStatus(status);
  AppExit why;
  if (stopping_) {
    why = AppExit::kShutdown;
  } else if (p.abort_ms != 0) {
    why = AppExit::kTimeout;
  } else if (p.retire) {
    why = *p.retire;
  } else if (!was_ready) {
    why = AppExit::kBootFailure;
  } else {
    why = AppExit::kCrash;
  }
  if (why == AppExit::kCrash || why == AppExit::kBootFailure) {
    LOG_ERROR("App process %u (pid: %d) %s", p.slot, pid, how);
  } else {
    LOG_INFO("App process %u (pid: %d) %s (%s)", p.slot, pid, how,
             AppExitName(why));
  }
  if (why == AppExit::kBootFailure) {
    ++consecutive_boot_failures_;
    next_spawn_ms_ = now + backoff_ms_;
    LOG_WARNING("App process failed to boot (%d in a row); next try in %d ms",
                consecutive_boot_failures_, backoff_ms_);
    backoff_ms_ = std::min(backoff_ms_ * 2, kBootBackoffMaxMs);
  }
  if (why != AppExit::kShutdown) {
    restarts_[why]++;
    s.restarts.fetch_add(1, std::memory_order_relaxed);
  }
  slot_last_exit_[p.slot] = why;
  slot_last_detail_[p.slot] = how;
  slot_last_status_[p.slot] = status;
  if (why != AppExit::kShutdown && why != AppExit::kScaleDown) {
    auto successor = p.successor != 0 ? procs_.find(p.successor) : procs_.end();
    if (successor != procs_.end()) {
      PutHistory(successor->second.slot, HistoryOf(p.slot));
    } else {
      exited_history_.push_back(HistoryOf(p.slot));
      if (exited_history_.size() > board_->app_capacity()) {
        exited_history_.pop_front();
      }
    }
  }
  // Its requests stay counted for the slot once the next process resets
  // the slot's own counter.
  slot_requests_retired_[p.slot] += s.requests.load(std::memory_order_relaxed);
  // Free the slot: state first, so no worker routes to a dead socket.
  SetState(s, AppState::kEmpty);
  s.pid.store(0, std::memory_order_relaxed);
  sys_->RemovePath(std::string(s.socket_path));
  if (p.probe >= 0) sys_->CancelProbe(p.probe);
  procs_.erase(it);
  if (stopping_) {
    AdvanceStop(now);
  } else {
    Maintain(now);
  }
  return true;
}

void AppSupervisor::Observe(int64_t now) {
  for (auto& [pid, p] : procs_) {
    DrainOutput(p, /*final=*/false);
    AppSlot& s = board_->app_slot(p.slot);
    AppState st = StateOf(s);
    if (st == AppState::kStarting && !p.kill_sent && p.abort_ms == 0) {
      // Taken out for refusing connections and still not answering after
      // --timeout (or kRefusedGraceMs): replaced like a hung process, once
      // its in-flight requests are done.
      if (p.unready_ms != 0 && !p.replace &&
          now - p.unready_ms >= RefusedGraceMs()) {
        LOG_WARNING(
            "App process %u (pid: %d) still refuses connections after %d ms: "
            "replacing it",
            p.slot, pid, now - p.unready_ms);
        p.replace = AppExit::kRefused;
      }
      // Polled, never waited for: the master's loop must not stall on an
      // app that is slow to answer its health path.
      if (p.probe < 0) {
        p.probe =
            sys_->StartProbe(std::string(s.socket_path), options_.health_path);
        p.probe_started_ms = now;
        if (p.probe < 0) continue;
      }
      os::SysCalls::ProbeResult probe = sys_->PollProbe(p.probe);
      if (probe == os::SysCalls::ProbeResult::kPending) {
        if (now - p.probe_started_ms >= kProbeTimeoutMs) {
          sys_->CancelProbe(p.probe);
          p.probe = -1;
        }
        continue;
      }
      p.probe = -1;
      if (probe == os::SysCalls::ProbeResult::kHealthy) {
        p.ready = true;
        s.last_progress_ms.store(now, std::memory_order_relaxed);
        SetState(s, AppState::kReady);
        if (p.unready_ms != 0) {
          LOG_INFO("App process %u (pid: %d) accepts connections again", p.slot,
                   pid);
          p.unready_ms = 0;
          continue;
        }
        consecutive_boot_failures_ = 0;
        backoff_ms_ = kBootBackoffInitialMs;
        LOG_INFO("App process %u (pid: %d) is ready", p.slot, pid);
      }
      continue;
    }
    if (st != AppState::kReady && st != AppState::kRetiring) continue;
    // Hung: requests in flight and none finished for --timeout.
    uint32_t in_flight = s.in_flight.load(std::memory_order_relaxed);
    int64_t progress = s.last_progress_ms.load(std::memory_order_relaxed);
    if (options_.timeout_ms > 0 && p.abort_ms == 0 && in_flight > 0 &&
        now - progress > options_.timeout_ms) {
      LOG_CRITICAL("WORKER TIMEOUT (pid:%d)", pid);
      p.abort_ms = now;
      SetState(s, AppState::kStopping);
      Signal(p, SIGABRT);
      continue;
    }
    if (st != AppState::kReady || p.replace) continue;
    // A worker found it refusing connections: out of the rotation (its
    // in-flight requests go on) until its readiness probe passes again.
    uint32_t refused = s.refused.load(std::memory_order_relaxed);
    if (refused != p.refused_seen) {
      p.refused_seen = refused;
      p.unready_ms = now;
      SetState(s, AppState::kStarting);
      LOG_WARNING(
          "App process %u (pid: %d) refused a connection: out of the "
          "rotation until it accepts again",
          p.slot, pid);
      continue;
    }
    uint64_t requests = s.requests.load(std::memory_order_relaxed);
    if (p.max_requests > 0 && requests >= p.max_requests) {
      LOG_INFO(
          "App process %u (pid: %d) served %d requests "
          "(--max-requests): replacing it",
          p.slot, pid, requests);
      p.replace = AppExit::kMaxRequests;
    } else if (options_.max_memory_bytes > 0) {
      uint64_t rss = sys_->ResidentBytes(pid);
      if (rss > static_cast<uint64_t>(options_.max_memory_bytes)) {
        LOG_WARNING(
            "App process %u (pid: %d) uses %d bytes of memory "
            "(--max-worker-memory %d): replacing it",
            p.slot, pid, rss, options_.max_memory_bytes);
        p.replace = AppExit::kMaxMemory;
      }
    }
  }
}

void AppSupervisor::Maintain(int64_t now) {
  if (stopping_) return;
  int counted = 0;
  int counted_ready = 0;
  std::vector<Proc*> counted_procs;
  for (auto& [pid, p] : procs_) {
    if (!Counted(p)) continue;
    ++counted;
    counted_procs.push_back(&p);
    if (StateOf(board_->app_slot(p.slot)) == AppState::kReady) {
      ++counted_ready;
    }
  }
  // Scale down: the ones that serve least first (starting, idle, busy).
  if (counted > desired_) {
    auto rank = [this](const Proc* p) {
      const AppSlot& s = board_->app_slot(p->slot);
      if (StateOf(s) != AppState::kReady) return 0;
      return s.in_flight.load(std::memory_order_relaxed) == 0 ? 1 : 2;
    };
    std::stable_sort(
        counted_procs.begin(), counted_procs.end(),
        [&](const Proc* a, const Proc* b) { return rank(a) < rank(b); });
    for (int i = 0; i < counted - desired_; ++i) {
      Retire(*counted_procs[i], AppExit::kScaleDown, now);
    }
    counted = desired_;
  }
  // Replacements (reload, recycling) leave once enough new ones are ready.
  int keep = std::max(0, desired_ - counted_ready);
  std::vector<Proc*> to_replace;
  for (auto& [pid, p] : procs_) {
    if (p.retire || p.abort_ms != 0) continue;
    if (p.replace || p.generation != generation_) to_replace.push_back(&p);
  }
  std::sort(to_replace.begin(), to_replace.end(),
            [](const Proc* a, const Proc* b) {
              return a->spawned_ms < b->spawned_ms;
            });
  for (size_t i = 0; i < to_replace.size(); ++i) {
    Proc& p = *to_replace[i];
    bool serving = StateOf(board_->app_slot(p.slot)) == AppState::kReady;
    if (!serving || static_cast<int>(to_replace.size() - i) > keep) {
      Retire(p, p.replace.value_or(AppExit::kReload), now);
    }
  }
  while (counted < desired_ && now >= next_spawn_ms_) {
    size_t before = procs_.size();
    Spawn(now);
    if (procs_.size() == before) break;
    ++counted;
  }
}

void AppSupervisor::Tick(int64_t now) {
  Observe(now);
  // Decide first (spawn, retire), then stop what retired and is idle.
  if (!stopping_) Maintain(now);
  for (auto& [pid, p] : procs_) {
    AppSlot& s = board_->app_slot(p.slot);
    if (p.abort_ms != 0 && !p.kill_sent && now - p.abort_ms >= kAbortToKillMs) {
      p.kill_sent = true;
      Signal(p, SIGKILL);
      continue;
    }
    if (!p.retire || p.kill_sent) continue;
    uint32_t in_flight = s.in_flight.load(std::memory_order_relaxed);
    if (!p.term_sent &&
        (in_flight == 0 || now - p.retire_ms >= options_.graceful_timeout_ms)) {
      p.term_sent = true;
      SetState(s, AppState::kStopping);
      Signal(p, SIGTERM);
    } else if (p.term_sent &&
               now - p.retire_ms >=
                   options_.graceful_timeout_ms + kAbortToKillMs) {
      p.kill_sent = true;
      Signal(p, SIGKILL);
    }
  }
  if (stopping_) AdvanceStop(now);
}

void AppSupervisor::BeginStop(int64_t now) {
  if (stopping_) return;
  stopping_ = true;
  stop_deadline_ms_ = now + options_.graceful_timeout_ms;
  for (auto& [pid, p] : procs_) {
    SetState(board_->app_slot(p.slot), AppState::kStopping);
    p.term_sent = true;
    Signal(p, SIGTERM);
  }
  AdvanceStop(now);
}

void AppSupervisor::AdvanceStop(int64_t now) {
  if (now < stop_deadline_ms_) return;
  for (auto& [pid, p] : procs_) {
    if (p.kill_sent) continue;
    p.kill_sent = true;
    LOG_WARNING(
        "App process %u (pid: %d) still running after "
        "--graceful-timeout: SIGKILL",
        p.slot, pid);
    Signal(p, SIGKILL);
  }
}

void AppSupervisor::Finish() {
  for (auto& [pid, p] : procs_) {
    DrainOutput(p, /*final=*/true);
    Signal(p, SIGKILL);
    sys_->Close(p.out_fd);
    p.out_fd = -1;
  }
  for (uint32_t i = 0; i < board_->app_capacity(); ++i) {
    const AppSlot& s = board_->app_slot(i);
    if (s.socket_path[0] != '\0') sys_->RemovePath(s.socket_path);
  }
  if (!dir_.empty()) sys_->RemovePath(dir_);
}

AppSupervisor::History AppSupervisor::HistoryOf(uint32_t slot) const {
  return History{
      .restarts =
          board_->app_slot(slot).restarts.load(std::memory_order_relaxed),
      .last_exit = slot_last_exit_[slot],
      .detail = slot_last_detail_[slot],
      .status = slot_last_status_[slot],
  };
}

void AppSupervisor::PutHistory(uint32_t slot, const History& h) {
  board_->app_slot(slot).restarts.store(h.restarts, std::memory_order_relaxed);
  slot_last_exit_[slot] = h.last_exit;
  slot_last_detail_[slot] = h.detail;
  slot_last_status_[slot] = h.status;
}

std::vector<pid_t> AppSupervisor::Pids() const {
  std::vector<pid_t> out;
  out.reserve(procs_.size());
  for (const auto& [pid, p] : procs_) out.push_back(pid);
  return out;
}

std::vector<AppProcessStatus> AppSupervisor::Status() const {
  std::vector<AppProcessStatus> out;
  for (const auto& [pid, p] : procs_) {
    const AppSlot& s = board_->app_slot(p.slot);
    AppProcessStatus st;
    st.slot = p.slot;
    st.pid = pid;
    st.state = StateOf(s);
    st.in_flight = s.in_flight.load(std::memory_order_relaxed);
    st.cap = s.cap.load(std::memory_order_relaxed);
    st.requests = s.requests.load(std::memory_order_relaxed);
    st.cpu_seconds = sys_->CpuSeconds(pid);
    st.rss_bytes = sys_->ResidentBytes(pid);
    st.restarts = s.restarts.load(std::memory_order_relaxed);
    st.last_exit = slot_last_exit_[p.slot];
    st.last_exit_detail = slot_last_detail_[p.slot];
    st.socket_path = s.socket_path;
    st.started_ms = s.started_ms.load(std::memory_order_relaxed);
    st.replacing = p.replace.has_value() || p.generation != generation_;
    int status = slot_last_status_[p.slot];
    if (status >= 0 && WIFEXITED(status)) {
      st.last_exit_code = WEXITSTATUS(status);
    } else if (status >= 0 && WIFSIGNALED(status)) {
      st.last_exit_signal = WTERMSIG(status);
    }
    out.push_back(std::move(st));
  }
  std::sort(out.begin(), out.end(),
            [](const AppProcessStatus& a, const AppProcessStatus& b) {
              return a.slot < b.slot;
            });
  return out;
}

std::map<uint32_t, uint64_t> AppSupervisor::RequestsBySlot() const {
  std::map<uint32_t, uint64_t> out;
  for (uint32_t i = 0; i < slot_used_.size(); ++i) {
    if (slot_used_[i]) out[i] = slot_requests_retired_[i];
  }
  for (const auto& [pid, p] : procs_) {
    out[p.slot] +=
        board_->app_slot(p.slot).requests.load(std::memory_order_relaxed);
  }
  return out;
}

absl::Status AppSupervisor::Kill(pid_t pid, int64_t now) {
  auto it = procs_.find(pid);
  if (it == procs_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no worker or app process with pid ", pid));
  }
  Proc& p = it->second;
  if (stopping_ || p.retire || p.abort_ms != 0 || p.kill_sent) {
    return absl::FailedPreconditionError(
        absl::StrCat("app process ", pid, " is already stopping"));
  }
  Retire(p, AppExit::kKilled, now);
  Maintain(now);  // its replacement starts now
  return absl::OkStatus();
}

uint64_t AppSupervisor::RestartsBy(AppExit e) const {
  auto it = restarts_.find(e);
  return it == restarts_.end() ? 0 : it->second;
}

}  // namespace forkd::app

#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_format.h"
#include "server/accesslog/access_log.h"
#include "server/arbiter/arbiter.h"
#include "server/arbiter/arbiter_internal.h"
#include "server/arbiter/pidfile.h"
#include "server/common/log.h"
#include "server/common/process_title.h"
#include "server/worker/worker_launch.h"
#include "server/worker/worker_main.h"

// The master: spawning, watching (heartbeats, timeouts) and reaping workers.
namespace forkd::arbiter {

namespace {

// Signals that end a process only when someone sends them; a crash of the
// worker's own (SEGV, ABRT, BUS, FPE, ILL...) is not among them.
bool KilledFromOutside(int signo) {
  return signo == SIGKILL || signo == SIGTERM || signo == SIGINT ||
         signo == SIGQUIT || signo == SIGHUP;
}

}  // namespace

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
  // Workers read no environment: %({NAME}e)s is resolved here, from the
  // environment the master runs with. A bad format is left for the
  // worker, whose boot fails naming it.
  if (!worker_config.access_logfile.empty()) {
    absl::StatusOr<std::string> format = accesslog::ResolveEnvironment(
        worker_config.access_logformat, [this](const std::string& name) {
          const std::string prefix = name + "=";
          for (const std::string& e : env_) {
            if (e.starts_with(prefix)) return e.c_str() + prefix.size();
          }
          return static_cast<const char*>(nullptr);
        });
    if (format.ok()) worker_config.access_logformat = *std::move(format);
  }
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
  // Its line is gone: the other workers must not defer to its head.
  scoreboard_->SetQueueHead(w.slot, 0);
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

}  // namespace forkd::arbiter

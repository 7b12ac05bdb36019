#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "server/arbiter/arbiter.h"
#include "server/arbiter/arbiter_internal.h"

// The master: the pool snapshot the admin plane and metrics read.
namespace forkd::arbiter {

namespace {

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

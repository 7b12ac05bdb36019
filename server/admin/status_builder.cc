#include "server/admin/status_builder.h"

#include <algorithm>

#include "server/app/app_supervisor.h"
#include "server/config/config.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::admin {

using scoreboard::WorkerState;

v1::WorkerState ApiWorkerState(const arbiter::WorkerRow& row) {
  switch (row.state) {
    case WorkerState::kEmpty:
    case WorkerState::kBooting:
      return row.retiring ? v1::WORKER_STATE_DRAINING
                          : v1::WORKER_STATE_BOOTING;
    case WorkerState::kReady:
      if (row.retiring) return v1::WORKER_STATE_DRAINING;
      return row.in_flight > 0 ? v1::WORKER_STATE_BUSY : v1::WORKER_STATE_READY;
    case WorkerState::kDraining:
      return v1::WORKER_STATE_DRAINING;
    case WorkerState::kExiting:
      return v1::WORKER_STATE_EXITING;
  }
  return v1::WORKER_STATE_UNSPECIFIED;
}

void BuildServerStatus(const arbiter::PoolSnapshot& s,
                       const std::string& version,
                       const ProcessStatsReader& read_process,
                       v1::ServerStatus* out) {
  out->set_master_pid(s.master_pid);
  out->set_version(version);
  out->set_uptime_seconds(s.uptime_s);
  out->set_worker_class(config::WorkerClassName(s.worker_class));
  out->set_desired_workers(s.desired_workers);
  out->set_actual_workers(s.actual_workers);
  out->set_ready_workers(s.ready_workers);
  out->set_max_workers(s.max_workers);
  out->set_threads(s.threads);
  out->set_max_threads(s.max_threads);
  out->set_worker_connections(s.worker_connections);
  out->set_max_worker_connections(s.max_worker_connections);
  out->set_in_flight_cap(s.in_flight_cap);
  out->set_draining(s.draining);
  out->set_stopping(s.stopping);
  out->set_upgrading(s.upgrading);
  out->set_generation(s.generation);
  out->set_settings_generation(s.settings_generation);
  out->set_requests_total(s.totals.TotalRequests());
  for (size_t i = 0; i < s.exits.size(); ++i) {
    (*out->mutable_exits())[arbiter::ExitCauseName(
        static_cast<arbiter::ExitCause>(i))] = s.exits[i];
  }
  out->set_mode(s.app_mode ? "app" : "sidecar");
  if (s.app_mode) {
    out->set_app_command(s.app_command);
    out->set_proxy_workers(s.proxy_workers);
    out->set_ready_proxy_workers(s.proxy_workers_ready);
    out->set_proxy_worker_class(
        config::WorkerClassName(config::WorkerClass::kAsync));
    for (const auto& [why, n] : s.app_restarts) {
      (*out->mutable_app_restarts())[app::AppExitName(why)] = n;
    }
    for (const app::AppProcessStatus& a : s.apps) {
      v1::AppProcessStatus* p = out->add_app_processes();
      p->set_slot(a.slot);
      p->set_pid(a.pid);
      p->set_state(ApiAppState(a.state));
      p->set_in_flight(a.in_flight);
      p->set_cap(a.cap);
      p->set_requests(a.requests);
      p->set_cpu_seconds(a.cpu_seconds);
      p->set_rss_bytes(a.rss_bytes);
      p->set_restarts(a.restarts);
      p->set_last_exit(a.last_exit == app::AppExit::kNone
                           ? ""
                           : app::AppExitName(a.last_exit));
      p->set_last_exit_detail(a.last_exit_detail);
      p->set_last_exit_code(a.last_exit_code);
      p->set_last_exit_signal(a.last_exit_signal);
      double age = std::max(
          0.0, static_cast<double>(s.published_ms - a.started_ms) / 1000.0);
      p->set_age_seconds(age);
      if (s.published_unix_s > 0) {
        p->set_started_at_unix_seconds(s.published_unix_s - age);
      }
      p->set_socket(a.socket_path);
      p->set_replacing(a.replacing);
    }
  }
  for (const arbiter::WorkerRow& row : s.workers) {
    v1::WorkerStatus* w = out->add_workers();
    w->set_slot(row.slot);
    w->set_pid(row.pid);
    w->set_state(ApiWorkerState(row));
    w->set_generation(row.generation);
    w->set_age_seconds(row.age_s);
    w->set_requests_served(row.requests_served);
    w->set_in_flight(row.in_flight);
    w->set_busy_threads(row.busy_threads);
    w->set_threads(row.threads);
    w->set_connection_cap(row.connection_cap);
    w->set_heartbeat_age_ms(row.heartbeat_age_ms);
    w->set_restarts(row.restarts);
    w->set_last_exit(row.last_exit ? arbiter::ExitCauseName(*row.last_exit)
                                   : "");
    w->set_retiring(row.retiring);
    w->set_settings_generation_seen(row.settings_generation_seen);
    if (read_process) {
      absl::StatusOr<ProcStats> p = read_process(row.pid);
      if (p.ok()) {
        w->set_rss_bytes(p->resident_bytes);
        w->set_cpu_seconds(p->cpu_seconds);
        w->set_os_threads(p->threads);
      }
    }
  }
}

v1::AppProcessState ApiAppState(scoreboard::AppState state) {
  switch (state) {
    case scoreboard::AppState::kEmpty:
      return v1::APP_PROCESS_STATE_UNSPECIFIED;
    case scoreboard::AppState::kStarting:
      return v1::APP_PROCESS_STATE_STARTING;
    case scoreboard::AppState::kReady:
      return v1::APP_PROCESS_STATE_READY;
    case scoreboard::AppState::kRetiring:
      return v1::APP_PROCESS_STATE_RETIRING;
    case scoreboard::AppState::kStopping:
      return v1::APP_PROCESS_STATE_STOPPING;
  }
  return v1::APP_PROCESS_STATE_UNSPECIFIED;
}

int ReadyCurrentWorkers(const arbiter::PoolSnapshot& s) {
  int n = 0;
  if (s.app_mode) {
    // What ScaleWorkers sized: the app processes. None counts while no
    // proxy worker is ready to send them traffic.
    if (s.proxy_workers_ready == 0) return 0;
    for (const app::AppProcessStatus& a : s.apps) {
      n += a.state == scoreboard::AppState::kReady && !a.replacing ? 1 : 0;
    }
    return n;
  }
  for (const arbiter::WorkerRow& row : s.workers) {
    if (row.generation == s.generation && !row.retiring &&
        row.state == WorkerState::kReady) {
      ++n;
    }
  }
  return n;
}

std::pair<int, int> ConvergedWorkers(const arbiter::PoolSnapshot& s,
                                     uint64_t settings_generation, int threads,
                                     int connections) {
  int serving = 0;
  int converged = 0;
  if (s.app_mode) {
    // The app processes apply --threads (gthread) or --worker-connections
    // (async) as their cap; a command that uses {threads} replaces them, so
    // a process still waiting for its replacement has not applied it.
    int cap = 0;
    if (s.worker_class == config::WorkerClass::kGthread) cap = threads;
    if (s.worker_class == config::WorkerClass::kAsync) cap = connections;
    for (const app::AppProcessStatus& a : s.apps) {
      if (a.state != scoreboard::AppState::kReady) continue;
      ++serving;
      bool ok = !a.replacing;
      if (cap > 0) ok = ok && a.cap == static_cast<uint32_t>(cap);
      converged += ok ? 1 : 0;
    }
    return {serving, converged};
  }
  for (const arbiter::WorkerRow& row : s.workers) {
    if (row.retiring || row.state != WorkerState::kReady) continue;
    ++serving;
    bool ok = row.settings_generation_seen >= settings_generation;
    if (threads > 0) ok = ok && row.threads == static_cast<uint32_t>(threads);
    if (connections > 0) {
      ok = ok && row.connection_cap == static_cast<uint32_t>(connections);
    }
    converged += ok ? 1 : 0;
  }
  return {serving, converged};
}

}  // namespace forkd::admin

#include "server/admin/status_builder.h"

#include "gtest/gtest.h"

namespace forkd::admin {
namespace {

using arbiter::PoolSnapshot;
using arbiter::WorkerRow;
using scoreboard::WorkerState;

WorkerRow Row(uint32_t slot, pid_t pid, WorkerState state,
              uint64_t generation = 1) {
  WorkerRow r;
  r.slot = slot;
  r.pid = pid;
  r.state = state;
  r.generation = generation;
  return r;
}

TEST(StatusBuilderTest, WorkerStatesAsTheApiShowsThem) {
  WorkerRow r = Row(0, 10, WorkerState::kReady);
  EXPECT_EQ(ApiWorkerState(r), v1::WORKER_STATE_READY);
  r.in_flight = 2;
  EXPECT_EQ(ApiWorkerState(r), v1::WORKER_STATE_BUSY);
  r.retiring = true;
  EXPECT_EQ(ApiWorkerState(r), v1::WORKER_STATE_DRAINING);
  EXPECT_EQ(ApiWorkerState(Row(0, 1, WorkerState::kBooting)),
            v1::WORKER_STATE_BOOTING);
  EXPECT_EQ(ApiWorkerState(Row(0, 1, WorkerState::kEmpty)),
            v1::WORKER_STATE_BOOTING);
  EXPECT_EQ(ApiWorkerState(Row(0, 1, WorkerState::kDraining)),
            v1::WORKER_STATE_DRAINING);
  EXPECT_EQ(ApiWorkerState(Row(0, 1, WorkerState::kExiting)),
            v1::WORKER_STATE_EXITING);
}

TEST(StatusBuilderTest, FillsEveryFieldAndAsksTheOsPerWorker) {
  PoolSnapshot s;
  s.master_pid = 42;
  s.uptime_s = 12.5;
  s.worker_class = config::WorkerClass::kGthread;
  s.generation = 3;
  s.settings_generation = 7;
  s.desired_workers = 2;
  s.actual_workers = 2;
  s.ready_workers = 1;
  s.max_workers = 8;
  s.threads = 4;
  s.max_threads = 16;
  s.worker_connections = 100;
  s.max_worker_connections = 1000;
  s.in_flight_cap = 8;
  s.draining = true;
  s.exits[static_cast<size_t>(arbiter::ExitCause::kCrash)] = 2;
  WorkerRow a = Row(0, 100, WorkerState::kReady, 3);
  a.threads = 4;
  a.restarts = 2;
  a.last_exit = arbiter::ExitCause::kCrash;
  a.requests_served = 99;
  s.workers = {a, Row(1, 101, WorkerState::kBooting, 3)};

  std::vector<pid_t> asked;
  ProcessStatsReader reader = [&](pid_t pid) -> absl::StatusOr<ProcStats> {
    asked.push_back(pid);
    if (pid == 101) return absl::NotFoundError("gone");
    return ProcStats{
        .cpu_seconds = 1.5, .resident_bytes = 1 << 20, .threads = 6};
  };
  v1::ServerStatus out;
  BuildServerStatus(s, "9.9.9", reader, &out);
  EXPECT_EQ(out.master_pid(), 42);
  EXPECT_EQ(out.version(), "9.9.9");
  EXPECT_EQ(out.worker_class(), "gthread");
  EXPECT_EQ(out.desired_workers(), 2);
  EXPECT_EQ(out.max_threads(), 16);
  EXPECT_EQ(out.max_worker_connections(), 1000);
  EXPECT_EQ(out.in_flight_cap(), 8);
  EXPECT_TRUE(out.draining());
  EXPECT_EQ(out.exits().at("crash"), 2u);
  EXPECT_EQ(out.exits().at("scale_down"), 0u);
  ASSERT_EQ(out.workers_size(), 2);
  EXPECT_EQ(out.workers(0).pid(), 100);
  EXPECT_EQ(out.workers(0).rss_bytes(), 1u << 20);
  EXPECT_DOUBLE_EQ(out.workers(0).cpu_seconds(), 1.5);
  EXPECT_EQ(out.workers(0).os_threads(), 6u);
  EXPECT_EQ(out.workers(0).threads(), 4u);
  EXPECT_EQ(out.workers(0).restarts(), 2);
  EXPECT_EQ(out.workers(0).last_exit(), "crash");
  EXPECT_EQ(out.workers(0).requests_served(), 99u);
  EXPECT_EQ(out.workers(1).state(), v1::WORKER_STATE_BOOTING);
  EXPECT_EQ(out.workers(1).rss_bytes(), 0u);  // gone: left empty
  EXPECT_EQ(out.workers(1).last_exit(), "");
  EXPECT_EQ(asked, (std::vector<pid_t>{100, 101}));
}

TEST(StatusBuilderTest, ReadyCurrentWorkersIgnoresOldAndRetiring) {
  PoolSnapshot s;
  s.generation = 2;
  WorkerRow retiring = Row(2, 12, WorkerState::kReady, 2);
  retiring.retiring = true;
  s.workers = {Row(0, 10, WorkerState::kReady, 2),
               Row(1, 11, WorkerState::kReady, 1),  // old generation
               retiring, Row(3, 13, WorkerState::kBooting, 2),
               Row(4, 14, WorkerState::kReady, 2)};
  EXPECT_EQ(ReadyCurrentWorkers(s), 2);
}

TEST(StatusBuilderTest, ConvergedWorkersNeedSettingsAndSize) {
  PoolSnapshot s;
  WorkerRow a = Row(0, 10, WorkerState::kReady);
  a.settings_generation_seen = 5;
  a.threads = 8;
  WorkerRow b = a;
  b.pid = 11;
  b.threads = 4;  // still shrinking
  WorkerRow c = a;
  c.pid = 12;
  c.settings_generation_seen = 4;  // has not looked yet
  WorkerRow booting = Row(3, 13, WorkerState::kBooting);
  s.workers = {a, b, c, booting};
  EXPECT_EQ(ConvergedWorkers(s, 5, 8, 0), std::make_pair(3, 1));
  EXPECT_EQ(ConvergedWorkers(s, 5, 0, 0), std::make_pair(3, 2));
  EXPECT_EQ(ConvergedWorkers(s, 4, 0, 0), std::make_pair(3, 3));
}

app::AppProcessStatus App(uint32_t slot, pid_t pid, scoreboard::AppState state,
                          uint32_t cap = 1) {
  app::AppProcessStatus a;
  a.slot = slot;
  a.pid = pid;
  a.state = state;
  a.cap = cap;
  return a;
}

// App mode: the three process rows below, behind one ready proxy worker.
PoolSnapshot AppSnapshot() {
  PoolSnapshot s;
  s.app_mode = true;
  s.app_command = "python3 app.py";
  s.worker_class = config::WorkerClass::kGthread;
  s.threads = 4;
  s.desired_workers = 2;
  s.proxy_workers = 1;
  s.proxy_workers_ready = 1;
  s.published_ms = 50'000;
  s.published_unix_s = 1'700'000'000;
  app::AppProcessStatus a = App(0, 200, scoreboard::AppState::kReady, 4);
  a.in_flight = 3;
  a.requests = 40;
  a.cpu_seconds = 2.5;
  a.rss_bytes = 30 << 20;
  a.restarts = 1;
  a.last_exit = app::AppExit::kCrash;
  a.last_exit_detail = "was killed by SIGSEGV";
  a.last_exit_signal = 11;
  a.started_ms = 20'000;
  a.socket_path = "/tmp/forkd-x/app-0.sock";
  app::AppProcessStatus b = App(1, 201, scoreboard::AppState::kReady, 4);
  b.replacing = true;  // --max-requests: waits for its replacement
  b.started_ms = 10'000;
  app::AppProcessStatus c = App(2, 202, scoreboard::AppState::kStarting, 4);
  c.started_ms = 49'000;
  s.apps = {a, b, c};
  s.app_restarts[app::AppExit::kCrash] = 1;
  s.app_restarts[app::AppExit::kMaxRequests] = 3;
  s.workers = {Row(5, 300, WorkerState::kReady)};
  return s;
}

TEST(StatusBuilderTest, AppModeListsTheAppProcessesAndTheProxyWorkers) {
  v1::ServerStatus out;
  BuildServerStatus(AppSnapshot(), "1.0", nullptr, &out);
  EXPECT_EQ(out.mode(), "app");
  EXPECT_EQ(out.app_command(), "python3 app.py");
  EXPECT_EQ(out.proxy_workers(), 1);
  EXPECT_EQ(out.ready_proxy_workers(), 1);
  EXPECT_EQ(out.proxy_worker_class(), "async");
  EXPECT_EQ(out.worker_class(), "gthread");  // the app processes' class
  EXPECT_EQ(out.app_restarts().at("crash"), 1u);
  EXPECT_EQ(out.app_restarts().at("max_requests"), 3u);
  ASSERT_EQ(out.app_processes_size(), 3);
  const v1::AppProcessStatus& a = out.app_processes(0);
  EXPECT_EQ(a.slot(), 0u);
  EXPECT_EQ(a.pid(), 200);
  EXPECT_EQ(a.state(), v1::APP_PROCESS_STATE_READY);
  EXPECT_EQ(a.in_flight(), 3u);
  EXPECT_EQ(a.cap(), 4u);
  EXPECT_EQ(a.requests(), 40u);
  EXPECT_DOUBLE_EQ(a.cpu_seconds(), 2.5);
  EXPECT_EQ(a.rss_bytes(), 30u << 20);
  EXPECT_EQ(a.restarts(), 1u);
  EXPECT_EQ(a.last_exit(), "crash");
  EXPECT_EQ(a.last_exit_detail(), "was killed by SIGSEGV");
  EXPECT_EQ(a.last_exit_signal(), 11);
  EXPECT_DOUBLE_EQ(a.age_seconds(), 30);
  EXPECT_DOUBLE_EQ(a.started_at_unix_seconds(), 1'700'000'000 - 30);
  EXPECT_EQ(a.socket(), "/tmp/forkd-x/app-0.sock");
  EXPECT_FALSE(a.replacing());
  EXPECT_TRUE(out.app_processes(1).replacing());
  EXPECT_EQ(out.app_processes(1).last_exit(), "");
  EXPECT_EQ(out.app_processes(2).state(), v1::APP_PROCESS_STATE_STARTING);
  ASSERT_EQ(out.workers_size(), 1);  // the proxy worker
  EXPECT_EQ(out.workers(0).pid(), 300);
}

TEST(StatusBuilderTest, SidecarModeHasNoAppFields) {
  PoolSnapshot s;
  s.workers = {Row(0, 10, WorkerState::kReady)};
  v1::ServerStatus out;
  BuildServerStatus(s, "1.0", nullptr, &out);
  EXPECT_EQ(out.mode(), "sidecar");
  EXPECT_EQ(out.app_processes_size(), 0);
  EXPECT_EQ(out.proxy_workers(), 0);
  EXPECT_TRUE(out.app_command().empty());
}

TEST(StatusBuilderTest, AppModeScaleWaitsForAppProcessesNotProxyWorkers) {
  PoolSnapshot s = AppSnapshot();
  // One ready app process not being replaced; the proxy worker does not
  // count, nor the starting one, nor the one waiting for its replacement.
  EXPECT_EQ(ReadyCurrentWorkers(s), 1);
  s.apps[2].state = scoreboard::AppState::kReady;
  EXPECT_EQ(ReadyCurrentWorkers(s), 2);
  s.apps.push_back(App(3, 203, scoreboard::AppState::kRetiring));
  EXPECT_EQ(ReadyCurrentWorkers(s), 2);
  // Without a ready proxy worker nothing reaches them.
  s.proxy_workers_ready = 0;
  EXPECT_EQ(ReadyCurrentWorkers(s), 0);
}

TEST(StatusBuilderTest, AppModeThreadsConvergeOnTheAppProcessCaps) {
  PoolSnapshot s = AppSnapshot();
  s.apps[2].state = scoreboard::AppState::kReady;
  s.apps[2].cap = 2;  // not yet given the new cap
  // Ready: slots 0, 1, 2. Converged to 4 threads: slot 0 (slot 1 awaits
  // its replacement, slot 2 still has 2).
  EXPECT_EQ(ConvergedWorkers(s, 0, 4, 0), std::make_pair(3, 1));
  s.apps[1].replacing = false;
  s.apps[2].cap = 4;
  EXPECT_EQ(ConvergedWorkers(s, 0, 4, 0), std::make_pair(3, 3));
  // gthread caps are threads: a connections change is applied by all.
  EXPECT_EQ(ConvergedWorkers(s, 0, 0, 50), std::make_pair(3, 3));
  // async caps are worker connections.
  s.worker_class = config::WorkerClass::kAsync;
  EXPECT_EQ(ConvergedWorkers(s, 0, 0, 50), std::make_pair(3, 0));
}

TEST(StatusBuilderTest, AppStatesAsTheApiShowsThem) {
  EXPECT_EQ(ApiAppState(scoreboard::AppState::kStarting),
            v1::APP_PROCESS_STATE_STARTING);
  EXPECT_EQ(ApiAppState(scoreboard::AppState::kReady),
            v1::APP_PROCESS_STATE_READY);
  EXPECT_EQ(ApiAppState(scoreboard::AppState::kRetiring),
            v1::APP_PROCESS_STATE_RETIRING);
  EXPECT_EQ(ApiAppState(scoreboard::AppState::kStopping),
            v1::APP_PROCESS_STATE_STOPPING);
}

}  // namespace
}  // namespace forkd::admin

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
    return ProcStats{.cpu_seconds = 1.5, .resident_bytes = 1 << 20, .threads = 6};
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

}  // namespace
}  // namespace forkd::admin

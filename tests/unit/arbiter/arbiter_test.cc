#include "server/arbiter/arbiter.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/arbiter/pidfile.h"
#include "server/scoreboard/scoreboard.h"
#include "server/worker/worker_launch.h"
#include "tests/unit/os/fake_sys_calls.h"

namespace forkd::arbiter {
namespace {

// The generation a spawned worker was given, "" for a non-worker.
std::string GenerationOf(const os::SpawnSpec& spec) {
  absl::StatusOr<worker::WorkerLaunch> launch =
      worker::DecodeWorkerLaunch(spec.launch_message);
  return launch.ok() ? absl::StrCat(launch->generation) : "";
}

using scoreboard::WorkerState;

int Exited(int code) { return W_EXITCODE(code, 0); }
int Signaled(int signo) { return W_EXITCODE(0, signo); }

size_t Cause(ExitCause c) { return static_cast<size_t>(c); }

config::Config BaseConfig() {
  config::Config c;
  c.workers = 2;
  c.max_workers = 4;
  c.worker_class = config::WorkerClass::kGthread;
  c.threads = 4;
  c.max_threads = 16;
  c.worker_connections = 100;
  c.max_worker_connections = 1000;
  c.timeout = 10;
  c.graceful_timeout = 5;
  c.shutdown_delay = 0;  // TERM reaches the workers at once unless a test says
  return c;
}

class ArbiterTest : public ::testing::Test {
 protected:
  void Make(const config::Config& config, pid_t old_master_pid = 0) {
    ArbiterOptions o;
    o.config = config;
    o.reload = [this] { return reload_result_; };
    Listener l;
    l.fd = open("/dev/null", O_RDONLY | O_CLOEXEC);  // closed by the arbiter
    l.url = "http://127.0.0.1:8000";
    l.bind = "127.0.0.1:8000";
    listen_fd_ = l.fd;
    o.listeners.push_back(l);
    o.exe_path = "/opt/forkd/bin/forkd";
    o.worker_exe_path = worker_exe_path_;
    o.argv = {"forkd", "--bind", "127.0.0.1:8000"};
    o.env = {"PATH=/bin", "FORKD_MASTER_PID=1"};
    o.env.insert(o.env.end(), extra_env_.begin(), extra_env_.end());
    o.old_master_pid = old_master_pid;
    absl::StatusOr<std::unique_ptr<Arbiter>> a =
        Arbiter::Create(std::move(o), &sys_);
    ASSERT_TRUE(a.ok()) << a.status();
    arbiter_ = std::move(*a);
  }

  void Start(const config::Config& config) {
    Make(config);
    absl::Status s = arbiter_->Start();
    ASSERT_TRUE(s.ok()) << s;
  }

  scoreboard::Slot& SlotOf(pid_t pid) {
    return arbiter_->scoreboard().slot(SlotIndex(pid));
  }

  uint32_t SlotIndex(pid_t pid) {
    for (const auto& s : sys_.spawned) {
      if (s.pid == pid) {
        absl::StatusOr<worker::WorkerLaunch> launch =
            worker::DecodeWorkerLaunch(s.spec.launch_message);
        EXPECT_TRUE(launch.ok()) << launch.status();
        return launch.ok() ? launch->slot : 0;
      }
    }
    ADD_FAILURE() << "no spawned pid " << pid;
    return 0;
  }

  std::string GenerationArg(pid_t pid) {
    for (const auto& s : sys_.spawned) {
      if (s.pid == pid) return GenerationOf(s.spec);
    }
    return "";
  }

  // Live workers by slot, from the snapshot.
  std::vector<pid_t> Live() {
    std::vector<pid_t> out;
    for (const WorkerRow& r : arbiter_->Snapshot().workers)
      out.push_back(r.pid);
    return out;
  }

  void MarkReady(pid_t pid) {
    scoreboard::Slot& s = SlotOf(pid);
    s.state = static_cast<uint32_t>(WorkerState::kReady);
    s.heartbeat_ms = sys_.now_ms;
  }

  void MarkAllReady() {
    for (pid_t p : Live()) MarkReady(p);
    arbiter_->Tick(sys_.now_ms);
  }

  void Advance(int64_t ms) {
    sys_.now_ms += ms;
    arbiter_->Tick(sys_.now_ms);
  }

  void Exit(pid_t pid, int status) {
    sys_.alive.erase(pid);
    arbiter_->OnChildExit(pid, status);
  }

  pid_t LastSpawned() { return sys_.spawned.back().pid; }

  bool Sent(pid_t pid, int signo) {
    std::vector<int> s = sys_.SignalsTo(pid);
    return std::find(s.begin(), s.end(), signo) != s.end();
  }

  os::FakeSysCalls sys_;
  std::string worker_exe_path_;         // ArbiterOptions::worker_exe_path
  std::vector<std::string> extra_env_;  // the master's environment, added
  std::unique_ptr<Arbiter> arbiter_;
  absl::StatusOr<config::Config> reload_result_ = BaseConfig();
  int listen_fd_ = -1;
};

// --- Spawning ----------------------------------------------------------------

TEST_F(ArbiterTest, SpawnsConfiguredWorkersWithWorkerCommandLine) {
  config::Config c = BaseConfig();
  c.workers = 3;
  Start(c);
  ASSERT_EQ(sys_.spawned.size(), 3u);
  const os::SpawnSpec& spec = sys_.spawned[0].spec;
  EXPECT_EQ(spec.path, "/opt/forkd/bin/forkd");
  // ps names the worker; everything else travels in the launch message.
  EXPECT_EQ(spec.argv,
            (std::vector<std::string>{"forkd: worker 0 (gen 1)", "__worker"}));
  absl::StatusOr<worker::WorkerLaunch> launch =
      worker::DecodeWorkerLaunch(spec.launch_message);
  ASSERT_TRUE(launch.ok()) << launch.status();
  EXPECT_EQ(launch->slot, 0u);
  EXPECT_EQ(launch->generation, 1u);
  EXPECT_EQ(launch->scoreboard_fd, arbiter_->scoreboard().fd());
  EXPECT_EQ(launch->listen_fds, std::vector<int>{listen_fd_});
  EXPECT_TRUE(launch->record_metrics);
  // The worker gets the master's resolved settings, not the environment.
  EXPECT_EQ(launch->config.workers, 3);
  EXPECT_EQ(launch->config.bind, c.bind);
  EXPECT_EQ(sys_.spawned[2].spec.argv[0], "forkd: worker 2 (gen 1)");
  std::vector<int> fds = spec.inherit_fds;
  EXPECT_NE(std::find(fds.begin(), fds.end(), listen_fd_), fds.end());
  EXPECT_NE(std::find(fds.begin(), fds.end(), arbiter_->scoreboard().fd()),
            fds.end());
  PoolSnapshot s = arbiter_->Snapshot();
  EXPECT_EQ(s.desired_workers, 3);
  EXPECT_EQ(s.actual_workers, 3);
  EXPECT_EQ(s.master_pid, 42);
  EXPECT_EQ(s.in_flight_cap, 3 * 4);  // gthread: workers x threads
  EXPECT_EQ(arbiter_->scoreboard().capacity(), 2u * 4 + 2);
  // The scoreboard reaches workers only through the inherit list.
  EXPECT_TRUE(fcntl(arbiter_->scoreboard().fd(), F_GETFD) & FD_CLOEXEC);
}

TEST_F(ArbiterTest, AppModeNamesItsWorkersProxyWorkers) {
  config::Config c = BaseConfig();
  c.app_cmd = "python3 app.py";
  c.workers = 2;  // app processes
  c.proxy_workers = 1;
  Start(c);
  std::vector<os::SpawnSpec> workers;
  for (const auto& s : sys_.spawned) {
    if (s.spec.argv.size() == 2 && s.spec.argv[1] == "__worker") {
      workers.push_back(s.spec);
    }
  }
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0].argv[0], "forkd: proxy worker 0 (gen 1)");
  absl::StatusOr<worker::WorkerLaunch> launch =
      worker::DecodeWorkerLaunch(workers[0].launch_message);
  ASSERT_TRUE(launch.ok()) << launch.status();
  // What the worker names itself from once it has decoded the message.
  EXPECT_TRUE(config::AppMode(launch->config));
  EXPECT_EQ(launch->config.worker_class, config::WorkerClass::kAsync);
}

TEST_F(ArbiterTest, AutoWorkerCountFollowsCpusAndIsCappedAtMaxWorkers) {
  config::Config c = BaseConfig();
  c.workers = 0;
  c.max_workers = 64;
  sys_.cpus = 2;
  Start(c);
  EXPECT_EQ(sys_.spawned.size(), 5u);  // 2 x 2 + 1

  os::FakeSysCalls other;
  other.cpus = 8;
  c.max_workers = 4;
  ArbiterOptions o;
  o.config = c;
  auto a = Arbiter::Create(std::move(o), &other);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE((*a)->Start().ok());
  EXPECT_EQ(other.spawned.size(), 4u);
}

TEST_F(ArbiterTest, AsyncCapIsWorkersTimesConnections) {
  config::Config c = BaseConfig();
  c.worker_class = config::WorkerClass::kAsync;
  Start(c);
  EXPECT_EQ(arbiter_->Snapshot().in_flight_cap, 2 * 100);
}

// --- Scaling -----------------------------------------------------------------

TEST_F(ArbiterTest, TtinAndTtouStayWithinOneAndMaxWorkers) {
  config::Config c = BaseConfig();
  c.max_workers = 3;
  Start(c);
  arbiter_->HandleSignal(SIGTTIN);
  EXPECT_EQ(sys_.spawned.size(), 3u);
  EXPECT_EQ(arbiter_->Snapshot().desired_workers, 3);

  arbiter_->HandleSignal(SIGTTIN);  // at the limit: logged, no change
  EXPECT_EQ(sys_.spawned.size(), 3u);
  CommandResult r = arbiter_->HandleCommand(Command::ScaleBy(+1));
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(r.status.message(), "--max-workers"));
  EXPECT_EQ(r.desired_workers, 3);

  arbiter_->HandleSignal(SIGTTOU);
  arbiter_->HandleSignal(SIGTTOU);
  EXPECT_EQ(arbiter_->Snapshot().desired_workers, 1);
  int terms = 0;
  for (const auto& k : sys_.kills) terms += k.signo == SIGTERM ? 1 : 0;
  EXPECT_EQ(terms, 2);

  arbiter_->HandleSignal(SIGTTOU);  // never below 1
  r = arbiter_->HandleCommand(Command::ScaleBy(-1));
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(arbiter_->Snapshot().desired_workers, 1);
  EXPECT_EQ(sys_.kills.size(), 2u);
}

TEST_F(ArbiterTest, ScaleByClampsLargeSteps) {
  Start(BaseConfig());
  CommandResult r = arbiter_->HandleCommand(Command::ScaleBy(+10));
  EXPECT_TRUE(r.status.ok());
  EXPECT_EQ(r.desired_workers, 4);
  r = arbiter_->HandleCommand(Command::ScaleBy(-10));
  EXPECT_TRUE(r.status.ok());
  EXPECT_EQ(r.desired_workers, 1);
}

TEST_F(ArbiterTest, InvalidScaleToChangesNothing) {
  Start(BaseConfig());
  for (int n : {0, -1, 5}) {
    CommandResult r = arbiter_->HandleCommand(Command::ScaleTo(n));
    EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument) << n;
    EXPECT_TRUE(absl::StrContains(r.status.message(), "--max-workers is 4"))
        << r.status;
    EXPECT_EQ(r.desired_workers, 2);
  }
  EXPECT_EQ(sys_.spawned.size(), 2u);
  EXPECT_TRUE(sys_.kills.empty());

  CommandResult r = arbiter_->HandleCommand(Command::ScaleTo(4));
  EXPECT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(sys_.spawned.size(), 4u);
}

TEST_F(ArbiterTest, ScaleDownPicksIdleOverBusyThenOldest) {
  config::Config c = BaseConfig();
  c.workers = 1;
  Start(c);
  pid_t p0 = LastSpawned();
  Advance(10);
  arbiter_->HandleSignal(SIGTTIN);
  pid_t p1 = LastSpawned();
  Advance(10);
  arbiter_->HandleSignal(SIGTTIN);
  pid_t p2 = LastSpawned();
  MarkAllReady();
  SlotOf(p0).in_flight = 2;  // oldest, busy
  SlotOf(p1).in_flight = 0;
  SlotOf(p2).in_flight = 0;
  arbiter_->HandleSignal(SIGTTOU);
  EXPECT_TRUE(Sent(p1, SIGTERM));  // the oldest idle one
  EXPECT_FALSE(Sent(p0, SIGTERM));
  EXPECT_FALSE(Sent(p2, SIGTERM));

  SlotOf(p2).in_flight = 1;  // now everyone left is busy: the oldest goes
  arbiter_->HandleSignal(SIGTTOU);
  EXPECT_TRUE(Sent(p0, SIGTERM));
  EXPECT_FALSE(Sent(p2, SIGTERM));

  size_t spawned = sys_.spawned.size();
  Exit(p1, Exited(0));
  Exit(p0, Exited(0));
  EXPECT_EQ(sys_.spawned.size(), spawned);  // not replaced
  PoolSnapshot s = arbiter_->Snapshot();
  EXPECT_EQ(s.exits[Cause(ExitCause::kScaleDown)], 2u);
  EXPECT_EQ(s.exits[Cause(ExitCause::kCrash)], 0u);
  EXPECT_EQ(s.actual_workers, 1);
}

TEST_F(ArbiterTest, RetiredWorkerPastGracefulTimeoutIsKilled) {
  Start(BaseConfig());
  MarkAllReady();
  arbiter_->HandleSignal(SIGTTOU);
  ASSERT_FALSE(sys_.kills.empty());
  pid_t retired = sys_.kills.back().pid;
  for (pid_t p : Live()) {
    if (p != retired) MarkReady(p);  // keep the survivor's heartbeat fresh
  }
  Advance(4999);
  EXPECT_FALSE(Sent(retired, SIGKILL));
  Advance(1);
  EXPECT_TRUE(Sent(retired, SIGKILL));
}

// --- Crashes, recycles, boot failures ----------------------------------------

TEST_F(ArbiterTest, CrashedWorkerIsReplacedInItsSlot) {
  Start(BaseConfig());
  MarkAllReady();
  pid_t victim = sys_.spawned[0].pid;
  uint32_t slot = SlotIndex(victim);
  Exit(victim, Signaled(SIGSEGV));
  ASSERT_EQ(sys_.spawned.size(), 3u);
  EXPECT_EQ(SlotIndex(LastSpawned()), slot);
  PoolSnapshot s = arbiter_->Snapshot();
  EXPECT_EQ(s.exits[Cause(ExitCause::kCrash)], 1u);
  EXPECT_EQ(s.actual_workers, 2);
  auto row = std::find_if(s.workers.begin(), s.workers.end(),
                          [&](const WorkerRow& r) { return r.slot == slot; });
  ASSERT_NE(row, s.workers.end());
  EXPECT_EQ(row->restarts, 1);
  ASSERT_TRUE(row->last_exit.has_value());
  EXPECT_EQ(*row->last_exit, ExitCause::kCrash);
}

TEST_F(ArbiterTest, MaxRequestsRecycleIsNotACrash) {
  Start(BaseConfig());
  MarkAllReady();
  pid_t p = sys_.spawned[0].pid;
  SlotOf(p).exit_reason =
      static_cast<uint32_t>(scoreboard::ExitReason::kMaxRequests);
  Exit(p, Exited(0));
  EXPECT_EQ(sys_.spawned.size(), 3u);
  PoolSnapshot s = arbiter_->Snapshot();
  EXPECT_EQ(s.exits[Cause(ExitCause::kMaxRequests)], 1u);
  EXPECT_EQ(s.exits[Cause(ExitCause::kCrash)], 0u);
}

TEST_F(ArbiterTest, WorkerDrainingOnItsOwnGetsAReplacementEarly) {
  Start(BaseConfig());
  MarkAllReady();
  pid_t p = sys_.spawned[0].pid;
  SlotOf(p).state = static_cast<uint32_t>(WorkerState::kDraining);
  Advance(1);
  EXPECT_EQ(sys_.spawned.size(), 3u);  // replacement while p finishes
  EXPECT_FALSE(Sent(p, SIGTERM));
  SlotOf(p).exit_reason =
      static_cast<uint32_t>(scoreboard::ExitReason::kMaxRequests);
  Exit(p, Exited(0));
  EXPECT_EQ(sys_.spawned.size(), 3u);  // no second replacement
  EXPECT_EQ(arbiter_->Snapshot().exits[Cause(ExitCause::kMaxRequests)], 1u);
}

TEST_F(ArbiterTest, BootFailureBacksOffExponentially) {
  config::Config c = BaseConfig();
  c.workers = 1;
  Start(c);
  int64_t expected_delay = 100;
  for (int i = 0; i < 3; ++i) {
    pid_t p = LastSpawned();
    size_t before = sys_.spawned.size();
    Exit(p, Exited(1));  // never became ready
    EXPECT_EQ(sys_.spawned.size(), before) << "respawned without back-off";
    Advance(expected_delay - 1);
    EXPECT_EQ(sys_.spawned.size(), before) << "attempt " << i;
    Advance(1);
    EXPECT_EQ(sys_.spawned.size(), before + 1) << "attempt " << i;
    expected_delay *= 2;
  }
  EXPECT_EQ(arbiter_->Snapshot().exits[Cause(ExitCause::kBootFailure)], 3u);
  EXPECT_FALSE(arbiter_->done());
}

TEST_F(ArbiterTest, BackoffIsPerSlotAndCappedAtFiveSeconds) {
  Start(BaseConfig());  // 2 workers
  pid_t failing = sys_.spawned[0].pid;
  pid_t healthy = sys_.spawned[1].pid;
  MarkReady(healthy);
  Advance(0);
  const int64_t delays[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000};
  for (int i = 0; i < 8; ++i) {
    if (i % 4 == 3) {
      // A worker elsewhere becoming ready ends the failure streak (so the
      // server keeps trying) but not this slot's back-off.
      Exit(healthy, Signaled(SIGSEGV));
      healthy = LastSpawned();
      MarkReady(healthy);
      Advance(0);
    }
    Exit(failing, Exited(1));
    size_t before = sys_.spawned.size();
    Advance(delays[i] - 1);
    ASSERT_EQ(sys_.spawned.size(), before) << "attempt " << i;
    Advance(1);
    ASSERT_EQ(sys_.spawned.size(), before + 1) << "attempt " << i;
    failing = LastSpawned();
    MarkReady(healthy);  // fresh heartbeat
  }
  EXPECT_FALSE(arbiter_->done());
}

TEST_F(ArbiterTest, RepeatedBootFailuresStopTheServerWithExitCode3) {
  config::Config c = BaseConfig();
  c.workers = 1;
  Start(c);
  for (int i = 0; i < Arbiter::kMaxConsecutiveBootFailures - 1; ++i) {
    Exit(LastSpawned(), Exited(1));
    Advance(5000);
    ASSERT_FALSE(arbiter_->done());
  }
  Exit(LastSpawned(), Signaled(SIGSEGV));
  EXPECT_TRUE(arbiter_->done());
  EXPECT_EQ(arbiter_->exit_code(), 3);
  size_t spawned = sys_.spawned.size();
  Advance(10000);
  EXPECT_EQ(sys_.spawned.size(), spawned);
}

// Found by the chaos test: kill -9 of each new worker while it booted, five
// times in a row, stopped the whole server although its other worker
// served. A kill from outside (the OOM killer, an operator) backs off like a
// failed boot but never counts towards stopping the server.
TEST_F(ArbiterTest, BootingWorkersKilledFromOutsideNeverStopTheServer) {
  Start(BaseConfig());  // 2 workers
  pid_t booting = sys_.spawned[0].pid;
  pid_t healthy = sys_.spawned[1].pid;
  MarkReady(healthy);
  Advance(0);
  int64_t delay = 100;
  for (int i = 0; i < 3 * Arbiter::kMaxConsecutiveBootFailures; ++i) {
    int signo = i % 3 == 0 ? SIGKILL : (i % 3 == 1 ? SIGTERM : SIGQUIT);
    size_t before = sys_.spawned.size();
    Exit(booting, Signaled(signo));  // never became ready
    ASSERT_FALSE(arbiter_->done()) << "after kill " << i;
    Advance(delay - 1);
    ASSERT_EQ(sys_.spawned.size(), before) << "respawned without back-off";
    Advance(1);
    ASSERT_EQ(sys_.spawned.size(), before + 1) << "kill " << i;
    booting = LastSpawned();
    delay = std::min<int64_t>(delay * 2, 5000);
    MarkReady(healthy);  // fresh heartbeat
  }
  EXPECT_EQ(arbiter_->Snapshot().exits[Cause(ExitCause::kBootFailure)],
            3u * Arbiter::kMaxConsecutiveBootFailures);
  // A worker crashing on its own while booting still counts.
  for (int i = 0; i < Arbiter::kMaxConsecutiveBootFailures; ++i) {
    Exit(LastSpawned(), Signaled(SIGSEGV));
    Advance(5000);
    MarkReady(healthy);
  }
  EXPECT_EQ(arbiter_->exit_code(), 3);
  EXPECT_TRUE(Sent(healthy, SIGTERM));
}

TEST_F(ArbiterTest, AReadyWorkerResetsTheBootFailureStreak) {
  config::Config c = BaseConfig();
  c.workers = 1;
  Start(c);
  for (int i = 0; i < 4; ++i) {
    Exit(LastSpawned(), Exited(1));
    Advance(5000);
  }
  MarkReady(LastSpawned());
  Advance(1);
  Exit(LastSpawned(), Signaled(SIGSEGV));  // a crash after ready
  for (int i = 0; i < 4; ++i) {
    Exit(LastSpawned(), Exited(1));
    Advance(5000);
  }
  EXPECT_FALSE(arbiter_->done());
}

TEST_F(ArbiterTest, ExitCode3StopsAtOnce) {
  Start(BaseConfig());
  MarkAllReady();
  pid_t bad = sys_.spawned[0].pid;
  pid_t good = sys_.spawned[1].pid;
  Exit(bad, Exited(3));
  EXPECT_EQ(arbiter_->exit_code(), 3);
  EXPECT_TRUE(Sent(good, SIGTERM));
  EXPECT_EQ(sys_.spawned.size(), 2u);
  EXPECT_FALSE(arbiter_->done());  // waits for the other worker
  Exit(good, Exited(0));
  EXPECT_TRUE(arbiter_->done());
  EXPECT_EQ(arbiter_->exit_code(), 3);
}

TEST_F(ArbiterTest, SpawnFailureIsABootFailure) {
  config::Config c = BaseConfig();
  c.workers = 1;
  sys_.spawn_error =
      absl::UnavailableError("fork: Resource temporarily unavailable");
  Start(c);
  EXPECT_TRUE(sys_.spawned.empty());
  for (int i = 0; i < 3; ++i) Advance(5000);
  EXPECT_FALSE(arbiter_->done());
  sys_.spawn_error = absl::OkStatus();
  Advance(5000);
  EXPECT_EQ(sys_.spawned.size(), 1u);
}

// --- Timeouts ----------------------------------------------------------------

TEST_F(ArbiterTest, HeartbeatTimeoutSendsAbortThenKill) {
  Start(BaseConfig());  // timeout 10 s
  MarkAllReady();
  pid_t stuck = sys_.spawned[0].pid;
  pid_t healthy = sys_.spawned[1].pid;
  for (int i = 0; i < 10; ++i) {
    Advance(1000);
    SlotOf(healthy).heartbeat_ms = sys_.now_ms;
  }
  EXPECT_FALSE(Sent(stuck, SIGABRT));  // exactly 10 s: not yet
  Advance(1);
  SlotOf(healthy).heartbeat_ms = sys_.now_ms;
  EXPECT_TRUE(Sent(stuck, SIGABRT));
  EXPECT_FALSE(Sent(healthy, SIGABRT));
  Advance(1999);
  EXPECT_FALSE(Sent(stuck, SIGKILL));
  Advance(1);
  EXPECT_TRUE(Sent(stuck, SIGKILL));
  uint32_t slot = SlotIndex(stuck);
  Exit(stuck, Signaled(SIGKILL));
  EXPECT_EQ(SlotIndex(LastSpawned()), slot);
  EXPECT_EQ(arbiter_->Snapshot().exits[Cause(ExitCause::kTimeout)], 1u);
}

TEST_F(ArbiterTest, StalledMasterTimesHeartbeatsFromWhenItRunsAgain) {
  Start(BaseConfig());  // timeout 10 s
  MarkAllReady();
  pid_t a = sys_.spawned[0].pid;
  pid_t b = sys_.spawned[1].pid;
  Advance(15000);  // stopped for 15 s, even before the first tick
  EXPECT_TRUE(sys_.kills.empty());
  SlotOf(b).heartbeat_ms = sys_.now_ms;  // b resumes; a stays hung
  for (int i = 0; i < 10; ++i) {
    Advance(1000);
    SlotOf(b).heartbeat_ms = sys_.now_ms;
  }
  EXPECT_FALSE(Sent(a, SIGABRT));  // 10 s watched: not yet
  Advance(1);
  EXPECT_TRUE(Sent(a, SIGABRT));
  EXPECT_FALSE(Sent(b, SIGABRT));
}

TEST_F(ArbiterTest, BootingWorkersGetAtLeastThirtySeconds) {
  Start(BaseConfig());  // timeout 10 s < 30 s
  pid_t p = sys_.spawned[0].pid;
  Advance(30000);
  EXPECT_FALSE(Sent(p, SIGABRT));
  Advance(1);
  EXPECT_TRUE(Sent(p, SIGABRT));
}

TEST_F(ArbiterTest, ZeroTimeoutDisablesHeartbeatChecks) {
  config::Config c = BaseConfig();
  c.timeout = 0;
  Start(c);
  MarkAllReady();
  Advance(600000);
  EXPECT_TRUE(sys_.kills.empty());
}

// --- Reload ------------------------------------------------------------------

TEST_F(ArbiterTest, ReloadRetiresOldWorkersOnlyAsNewOnesBecomeReady) {
  Start(BaseConfig());
  MarkAllReady();
  std::vector<pid_t> old = {sys_.spawned[0].pid, sys_.spawned[1].pid};
  arbiter_->HandleSignal(SIGHUP);
  ASSERT_EQ(sys_.spawned.size(), 4u);
  pid_t new0 = sys_.spawned[2].pid, new1 = sys_.spawned[3].pid;
  EXPECT_EQ(GenerationArg(new0), "2");
  EXPECT_TRUE(sys_.kills.empty());  // nothing new is ready yet
  Advance(100);
  EXPECT_TRUE(sys_.kills.empty());

  MarkReady(new0);
  for (pid_t p : old) SlotOf(p).heartbeat_ms = sys_.now_ms;
  Advance(1);
  int old_termed = Sent(old[0], SIGTERM) + Sent(old[1], SIGTERM);
  EXPECT_EQ(old_termed, 1);
  EXPECT_EQ(arbiter_->Snapshot().ready_workers, 3);

  MarkReady(new1);
  Advance(1);
  EXPECT_TRUE(Sent(old[0], SIGTERM));
  EXPECT_TRUE(Sent(old[1], SIGTERM));
  EXPECT_FALSE(Sent(new0, SIGTERM));
  Exit(old[0], Exited(0));
  Exit(old[1], Exited(0));
  EXPECT_EQ(sys_.spawned.size(), 4u);  // old ones are not replaced
  PoolSnapshot s = arbiter_->Snapshot();
  EXPECT_EQ(s.exits[Cause(ExitCause::kReload)], 2u);
  EXPECT_EQ(s.generation, 2u);
  EXPECT_EQ(s.actual_workers, 2);
}

TEST_F(ArbiterTest, RuntimeSizesSurviveReloadConfigSizesFollowIt) {
  Start(BaseConfig());  // 2 workers, 4 threads, 100 connections
  ASSERT_TRUE(arbiter_->HandleCommand(Command::ScaleBy(+1)).status.ok());
  ASSERT_TRUE(
      arbiter_->HandleCommand(Command::SetWorkerConnections(300)).status.ok());
  config::Config next = BaseConfig();
  next.workers = 1;
  next.threads = 8;
  next.worker_connections = 500;
  reload_result_ = next;
  CommandResult r = arbiter_->HandleCommand(Command::Reload());
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.desired_workers, 3);       // set by TTIN: survives
  EXPECT_EQ(r.threads, 8);               // config-only: follows
  EXPECT_EQ(r.worker_connections, 300);  // set at runtime: survives
  scoreboard::Settings& s = arbiter_->scoreboard().settings();
  EXPECT_EQ(s.threads.load(), 8u);
  EXPECT_EQ(s.worker_connections.load(), 300u);
  // Three new-generation workers.
  int gen2 = 0;
  for (const auto& sp : sys_.spawned) gen2 += GenerationOf(sp.spec) == "2";
  EXPECT_EQ(gen2, 3);
}

TEST_F(ArbiterTest, BenchNoMetricsReachesWorkersInTheLaunchMessage) {
  // Workers read no environment: the master passes the benchmark switch.
  extra_env_ = {"FORKD_BENCH_NO_METRICS=1"};
  Start(BaseConfig());
  ASSERT_FALSE(sys_.spawned.empty());
  absl::StatusOr<worker::WorkerLaunch> launch =
      worker::DecodeWorkerLaunch(sys_.spawned[0].spec.launch_message);
  ASSERT_TRUE(launch.ok()) << launch.status();
  EXPECT_FALSE(launch->record_metrics);
}

TEST_F(ArbiterTest, ConfigWorkerCountFollowsReloadWhenNotSetAtRuntime) {
  Start(BaseConfig());
  config::Config next = BaseConfig();
  next.workers = 3;
  reload_result_ = next;
  EXPECT_EQ(arbiter_->HandleCommand(Command::Reload()).desired_workers, 3);
}

TEST_F(ArbiterTest, BadReloadKeepsTheCurrentConfiguration) {
  Start(BaseConfig());
  reload_result_ =
      absl::InvalidArgumentError("--threads: \"x\" is not an integer");
  CommandResult r = arbiter_->HandleCommand(Command::Reload());
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.generation, 1u);
  EXPECT_EQ(sys_.spawned.size(), 2u);
  EXPECT_EQ(arbiter_->Snapshot().threads, 4);
}

// --- Stopping ----------------------------------------------------------------

TEST_F(ArbiterTest, GracefulStopSendsTermThenKillAfterGracefulTimeout) {
  Start(BaseConfig());  // graceful timeout 5 s
  MarkAllReady();
  pid_t a = sys_.spawned[0].pid, b = sys_.spawned[1].pid;
  arbiter_->HandleSignal(SIGTERM);
  EXPECT_TRUE(Sent(a, SIGTERM));
  EXPECT_TRUE(Sent(b, SIGTERM));
  // Readiness goes off, but workers are not told to 503: they serve what
  // reaches them until their SIGTERM.
  EXPECT_EQ(arbiter_->scoreboard().settings().draining.load(), 0u);
  EXPECT_TRUE(arbiter_->Snapshot().draining);
  Exit(a, Exited(0));
  EXPECT_EQ(sys_.spawned.size(), 2u);  // no replacement while stopping
  Advance(4999);
  EXPECT_FALSE(Sent(b, SIGKILL));
  Advance(1);
  EXPECT_TRUE(Sent(b, SIGKILL));
  EXPECT_FALSE(arbiter_->done());
  Exit(b, Signaled(SIGKILL));
  EXPECT_TRUE(arbiter_->done());
  EXPECT_EQ(arbiter_->exit_code(), 0);
}

TEST_F(ArbiterTest, ShutdownDelayKeepsServingBeforeDraining) {
  config::Config c = BaseConfig();
  c.shutdown_delay = 3;
  Start(c);
  MarkAllReady();
  arbiter_->HandleSignal(SIGTERM);
  EXPECT_TRUE(arbiter_->Snapshot().draining);  // readiness off
  EXPECT_TRUE(sys_.kills.empty());             // still serving
  Advance(3000);
  EXPECT_TRUE(Sent(sys_.spawned[0].pid, SIGTERM));
}

TEST_F(ArbiterTest, SecondTermGoesQuick) {
  Start(BaseConfig());
  pid_t a = sys_.spawned[0].pid;
  arbiter_->HandleSignal(SIGTERM);
  arbiter_->HandleSignal(SIGTERM);
  EXPECT_TRUE(Sent(a, SIGQUIT));
  Advance(1000);
  EXPECT_TRUE(Sent(a, SIGKILL));
}

TEST_F(ArbiterTest, QuickStopSendsQuitThenKillWithinASecond) {
  Start(BaseConfig());
  pid_t a = sys_.spawned[0].pid, b = sys_.spawned[1].pid;
  arbiter_->HandleSignal(SIGINT);
  EXPECT_TRUE(Sent(a, SIGQUIT));
  EXPECT_TRUE(Sent(b, SIGQUIT));
  EXPECT_FALSE(Sent(a, SIGTERM));
  Exit(a, Exited(0));
  Advance(999);
  EXPECT_FALSE(Sent(b, SIGKILL));
  Advance(1);
  EXPECT_TRUE(Sent(b, SIGKILL));
  Exit(b, Signaled(SIGKILL));
  EXPECT_TRUE(arbiter_->done());
  EXPECT_EQ(arbiter_->exit_code(), 0);
}

TEST_F(ArbiterTest, CommandsOtherThanStopAreRefusedWhileStopping) {
  Start(BaseConfig());
  arbiter_->HandleSignal(SIGTERM);
  CommandResult r = arbiter_->HandleCommand(Command::ScaleBy(1));
  EXPECT_EQ(r.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(sys_.spawned.size(), 2u);
}

TEST_F(ArbiterTest, WinchStopsWorkersAndHupRestoresThem) {
  Start(BaseConfig());
  MarkAllReady();
  pid_t a = sys_.spawned[0].pid, b = sys_.spawned[1].pid;
  CommandResult r = arbiter_->HandleCommand(Command::StopWorkers());
  EXPECT_TRUE(r.status.ok());
  EXPECT_EQ(r.desired_workers, 0);
  EXPECT_TRUE(Sent(a, SIGTERM));
  EXPECT_TRUE(Sent(b, SIGTERM));
  Exit(a, Exited(0));
  Exit(b, Exited(0));
  Advance(1000);
  EXPECT_EQ(sys_.spawned.size(), 2u);
  EXPECT_FALSE(arbiter_->done());  // the master stays
  EXPECT_EQ(arbiter_->HandleCommand(Command::ScaleBy(-1)).status.code(),
            absl::StatusCode::kInvalidArgument);
  arbiter_->HandleSignal(SIGHUP);
  EXPECT_EQ(arbiter_->Snapshot().desired_workers, 2);
  EXPECT_EQ(sys_.spawned.size(), 4u);
}

TEST_F(ArbiterTest, WinchIsIgnoredOnATerminal) {
  ArbiterOptions o;
  o.config = BaseConfig();
  o.ignore_winch = true;
  auto a = Arbiter::Create(std::move(o), &sys_);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE((*a)->Start().ok());
  (*a)->HandleSignal(SIGWINCH);
  EXPECT_TRUE(sys_.kills.empty());
  EXPECT_EQ((*a)->Snapshot().desired_workers, 2);
}

// --- Counters and settings ---------------------------------------------------

TEST_F(ArbiterTest, CountersFoldOnExitSoTotalsNeverGoBackwards) {
  config::Config c = BaseConfig();
  c.workers = 1;
  Start(c);
  MarkAllReady();
  pid_t p = LastSpawned();
  SlotOf(p).counters.requests[0][1] = 5;  // GET 2xx
  SlotOf(p).counters.bytes_out = 1000;
  SlotOf(p).counters.request_duration.Observe(0.003);
  Advance(1);
  EXPECT_EQ(arbiter_->Snapshot().totals.TotalRequests(), 5u);

  uint32_t slot = SlotIndex(p);
  Exit(p, Signaled(SIGSEGV));
  PoolSnapshot s = arbiter_->Snapshot();
  EXPECT_EQ(s.totals.TotalRequests(), 5u);
  EXPECT_EQ(s.totals.bytes_out, 1000u);
  EXPECT_EQ(s.totals.request_duration.buckets[3], 1u);  // le 0.005

  pid_t q = LastSpawned();
  ASSERT_EQ(SlotIndex(q), slot);
  EXPECT_EQ(SlotOf(q).counters.requests[0][1].load(), 0u);  // slot was reset
  SlotOf(q).counters.requests[0][1] = 2;
  Advance(1);
  EXPECT_EQ(arbiter_->Snapshot().totals.TotalRequests(), 7u);
}

TEST_F(ArbiterTest, SetThreadsPublishesSettingsWithANewGeneration) {
  Start(BaseConfig());
  scoreboard::Settings& s = arbiter_->scoreboard().settings();
  uint64_t gen = s.generation.load();
  EXPECT_GT(gen, 0u);
  EXPECT_EQ(s.threads.load(), 4u);
  CommandResult r = arbiter_->HandleCommand(Command::SetThreads(8));
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(s.threads.load(), 8u);
  EXPECT_EQ(s.generation.load(), gen + 1);
  EXPECT_EQ(r.settings_generation, gen + 1);
  EXPECT_EQ(arbiter_->Snapshot().in_flight_cap, 2 * 8);

  for (int bad : {0, 17}) {
    r = arbiter_->HandleCommand(Command::SetThreads(bad));
    EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(r.status.message(), "--max-threads"));
  }
  EXPECT_EQ(s.threads.load(), 8u);
  EXPECT_EQ(s.generation.load(), gen + 1);
  EXPECT_EQ(sys_.spawned.size(), 2u);  // no restarts for a thread change
}

TEST_F(ArbiterTest, PublishedSettingsWakeEveryWorkerWithSigurg) {
  Start(BaseConfig());
  ASSERT_EQ(sys_.spawned.size(), 2u);
  sys_.kills.clear();
  ASSERT_TRUE(arbiter_->HandleCommand(Command::SetThreads(8)).status.ok());
  for (const auto& w : sys_.spawned) {
    EXPECT_EQ(sys_.SignalsTo(w.pid), std::vector<int>{SIGURG}) << w.pid;
  }
  // A refused change publishes nothing and wakes nobody.
  sys_.kills.clear();
  EXPECT_FALSE(arbiter_->HandleCommand(Command::SetThreads(0)).status.ok());
  EXPECT_TRUE(sys_.kills.empty());
}

TEST_F(ArbiterTest, SetWorkerConnectionsValidatesAndPublishes) {
  Start(BaseConfig());
  scoreboard::Settings& s = arbiter_->scoreboard().settings();
  uint64_t gen = s.generation.load();
  EXPECT_EQ(arbiter_->HandleCommand(Command::SetWorkerConnections(1001))
                .status.code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.generation.load(), gen);
  EXPECT_TRUE(
      arbiter_->HandleCommand(Command::SetWorkerConnections(250)).status.ok());
  EXPECT_EQ(s.worker_connections.load(), 250u);
  EXPECT_EQ(s.generation.load(), gen + 1);
}

// --- Other commands, children and plumbing -----------------------------------

TEST_F(ArbiterTest, KillWorkerStopsItAndStartsAReplacement) {
  Start(BaseConfig());
  MarkAllReady();
  EXPECT_EQ(arbiter_->HandleCommand(Command::KillWorker(9999)).status.code(),
            absl::StatusCode::kNotFound);
  pid_t p = sys_.spawned[0].pid;
  ASSERT_TRUE(arbiter_->HandleCommand(Command::KillWorker(p)).status.ok());
  EXPECT_TRUE(Sent(p, SIGTERM));
  EXPECT_EQ(sys_.spawned.size(), 3u);
  Exit(p, Exited(0));
  EXPECT_EQ(sys_.spawned.size(), 3u);
  EXPECT_EQ(arbiter_->Snapshot().exits[Cause(ExitCause::kKilled)], 1u);
}

TEST_F(ArbiterTest, WorkersExecTheWorkerImageAndUpgradesTheExePath) {
  worker_exe_path_ = "/proc/self/exe";
  Start(BaseConfig());
  ASSERT_EQ(sys_.spawned.size(), 2u);
  EXPECT_EQ(sys_.spawned[0].spec.path, "/proc/self/exe");
  MarkAllReady();
  Exit(sys_.spawned[0].pid, Signaled(SIGKILL));  // the replacement too
  Advance(1);
  ASSERT_EQ(sys_.spawned.size(), 3u);
  EXPECT_EQ(sys_.spawned.back().spec.path, "/proc/self/exe");
  EXPECT_EQ(sys_.spawned.back().spec.argv[1], "__worker");
  arbiter_->HandleSignal(SIGUSR2);
  EXPECT_EQ(sys_.spawned.back().spec.path, "/opt/forkd/bin/forkd");
  EXPECT_NE(sys_.spawned.back().spec.argv[1], "__worker");
}

TEST_F(ArbiterTest, WorkersButNotANewMasterStopWhenTheMasterDies) {
  Start(BaseConfig());
  arbiter_->HandleSignal(SIGUSR2);
  ASSERT_EQ(sys_.spawned.size(), 3u);
  EXPECT_EQ(sys_.spawned[0].spec.parent_death_signal, SIGTERM);
  EXPECT_EQ(sys_.spawned[1].spec.parent_death_signal, SIGTERM);
  EXPECT_EQ(sys_.spawned[2].spec.parent_death_signal, 0);  // the new master
}

TEST_F(ArbiterTest, StartPublishesSettingsOnlyAfterSpawningThePool) {
  // Workers wait for the first settings before accepting: none may see
  // them before every worker of the initial pool exists.
  config::Config c = BaseConfig();
  c.workers = 3;
  Make(c);
  std::vector<uint64_t> seen;
  sys_.on_spawn = [&] {
    seen.push_back(arbiter_->scoreboard().settings().generation.load());
  };
  ASSERT_TRUE(arbiter_->Start().ok());
  EXPECT_EQ(seen, (std::vector<uint64_t>{0, 0, 0}));
  EXPECT_GE(arbiter_->scoreboard().settings().generation.load(), 1u);
}

TEST_F(ArbiterTest, ReopenLogsForwardsUsr1) {
  Start(BaseConfig());
  arbiter_->HandleSignal(SIGUSR1);
  EXPECT_TRUE(Sent(sys_.spawned[0].pid, SIGUSR1));
  EXPECT_TRUE(Sent(sys_.spawned[1].pid, SIGUSR1));
}

TEST_F(ArbiterTest, Usr2StartsANewMasterThatIsNotAWorker) {
  Start(BaseConfig());
  arbiter_->HandleSignal(SIGUSR2);
  ASSERT_EQ(sys_.spawned.size(), 3u);
  const os::FakeSysCalls::Spawned& m = sys_.spawned.back();
  EXPECT_EQ(m.spec.path, "/opt/forkd/bin/forkd");
  EXPECT_EQ(m.spec.argv,
            (std::vector<std::string>{"forkd", "--bind", "127.0.0.1:8000"}));
  std::vector<std::string> env = m.spec.env;
  auto has = [&](const std::string& e) {
    return std::find(env.begin(), env.end(), e) != env.end();
  };
  EXPECT_TRUE(has("FORKD_INHERITED_FDS=" + std::to_string(listen_fd_)));
  EXPECT_TRUE(has("FORKD_MASTER_PID=42"));
  EXPECT_FALSE(has("FORKD_MASTER_PID=1"));  // stale value replaced
  EXPECT_TRUE(has("PATH=/bin"));
  EXPECT_EQ(m.spec.inherit_fds, std::vector<int>{listen_fd_});
  EXPECT_TRUE(arbiter_->Snapshot().upgrading);

  CommandResult again = arbiter_->HandleCommand(Command::Upgrade());
  EXPECT_EQ(again.status.code(), absl::StatusCode::kFailedPrecondition);

  // The new master exits (say it failed): not a worker, nothing respawned.
  Exit(m.pid, Exited(1));
  EXPECT_EQ(sys_.spawned.size(), 3u);
  PoolSnapshot s = arbiter_->Snapshot();
  EXPECT_FALSE(s.upgrading);
  uint64_t total_exits = 0;
  for (uint64_t n : s.exits) total_exits += n;
  EXPECT_EQ(total_exits, 0u);
  EXPECT_EQ(s.actual_workers, 2);
}

TEST_F(ArbiterTest, ReapsStrangersAndWorkersAlike) {
  Start(BaseConfig());
  MarkAllReady();
  pid_t a = sys_.spawned[0].pid;
  sys_.exits.push_back({77777, Exited(0)});  // not ours (we may be PID 1)
  sys_.exits.push_back({a, Signaled(SIGSEGV)});
  arbiter_->HandleSignal(SIGCHLD);
  EXPECT_TRUE(sys_.exits.empty());
  EXPECT_EQ(sys_.spawned.size(), 3u);
  EXPECT_EQ(arbiter_->Snapshot().exits[Cause(ExitCause::kCrash)], 1u);
}

TEST_F(ArbiterTest, PostedCommandsRunOnTheLoopAndAnswer) {
  Start(BaseConfig());
  std::optional<CommandResult> got;
  arbiter_->Post(Command::ScaleTo(3),
                 [&](CommandResult r) { got = std::move(r); });
  EXPECT_FALSE(got.has_value());
  EXPECT_EQ(sys_.spawned.size(), 2u);
  arbiter_->RunPostedCommands();
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->status.ok());
  EXPECT_EQ(got->desired_workers, 3);
  EXPECT_EQ(sys_.spawned.size(), 3u);

  std::optional<CommandResult> queued;
  arbiter_->Post(Command::ScaleTo(4),
                 [&](CommandResult r) { queued = std::move(r); });
  arbiter_->Finish();
  ASSERT_TRUE(queued.has_value());
  EXPECT_EQ(queued->status.code(), absl::StatusCode::kUnavailable);

  std::optional<CommandResult> late;
  arbiter_->Post(Command::ScaleTo(4),
                 [&](CommandResult r) { late = std::move(r); });
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(late->status.code(), absl::StatusCode::kUnavailable);
}

class PidfileTest : public ArbiterTest {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/forkd-arbiter-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/forkd.pid";
  }
  void TearDown() override {
    unlink(path_.c_str());
    unlink(UpgradePidfilePath(path_).c_str());
    rmdir(dir_.c_str());
  }
  std::string dir_, path_;
};

TEST_F(PidfileTest, WrittenAtStartRemovedAtExit) {
  config::Config c = BaseConfig();
  c.pidfile = path_;
  Start(c);
  EXPECT_EQ(ReadPidfile(path_), 42);
  arbiter_->Finish();
  EXPECT_EQ(access(path_.c_str(), F_OK), -1);
}

TEST_F(PidfileTest, NotRemovedWhenAnotherMasterOwnsIt) {
  config::Config c = BaseConfig();
  c.pidfile = path_;
  Start(c);
  ASSERT_TRUE(WritePidfile(path_, 4242).ok());
  arbiter_->Finish();
  EXPECT_EQ(ReadPidfile(path_), 4242);
}

TEST_F(PidfileTest, UpgradedMasterTakesThePidfileWhenTheOldOneLeaves) {
  config::Config c = BaseConfig();
  c.pidfile = path_;
  ASSERT_TRUE(WritePidfile(path_, 7).ok());  // the old master's
  sys_.parent_pid = 7;
  Make(c, /*old_master_pid=*/7);
  ASSERT_TRUE(arbiter_->Start().ok());
  EXPECT_EQ(ReadPidfile(path_), 7);
  EXPECT_EQ(ReadPidfile(UpgradePidfilePath(path_)), 42);
  EXPECT_EQ(arbiter_->HandleCommand(Command::Upgrade()).status.code(),
            absl::StatusCode::kFailedPrecondition);
  Advance(250);
  EXPECT_EQ(ReadPidfile(path_), 7);
  sys_.parent_pid = 1;  // the old master exited; we were re-parented
  Advance(250);
  EXPECT_EQ(ReadPidfile(path_), 42);
  EXPECT_EQ(access(UpgradePidfilePath(path_).c_str(), F_OK), -1);
}

// --- Admin commands: Drain / Resume, exact deltas, live snapshot ------------

TEST_F(ArbiterTest, DrainPublishesDrainingAndResumeClearsIt) {
  Start(BaseConfig());
  MarkAllReady();
  scoreboard::Settings& s = arbiter_->scoreboard().settings();
  uint64_t gen = s.generation.load();
  ASSERT_EQ(s.draining.load(), 0u);

  CommandResult r = arbiter_->HandleCommand(Command::Drain());
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(s.draining.load(), 1u);
  EXPECT_EQ(s.generation.load(), gen + 1);  // workers notice the change
  PoolSnapshot snap = arbiter_->Snapshot();
  EXPECT_TRUE(snap.draining);
  EXPECT_FALSE(snap.stopping);
  // Draining keeps the pool: nothing is stopped or replaced; the workers
  // only get the SIGURG that wakes them to read the new settings.
  for (const auto& k : sys_.kills) EXPECT_EQ(k.signo, SIGURG) << k.pid;
  EXPECT_EQ(sys_.kills.size(), 2u);
  EXPECT_EQ(sys_.spawned.size(), 2u);
  EXPECT_EQ(snap.actual_workers, 2);

  // Idempotent: a second Drain changes nothing.
  EXPECT_TRUE(arbiter_->HandleCommand(Command::Drain()).status.ok());
  EXPECT_EQ(s.generation.load(), gen + 1);

  r = arbiter_->HandleCommand(Command::Resume());
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(s.draining.load(), 0u);
  EXPECT_EQ(s.generation.load(), gen + 2);
  EXPECT_FALSE(arbiter_->Snapshot().draining);
  EXPECT_TRUE(arbiter_->HandleCommand(Command::Resume()).status.ok());
  EXPECT_EQ(s.generation.load(), gen + 2);
}

TEST_F(ArbiterTest, DrainSurvivesReloadAndScaling) {
  Start(BaseConfig());
  MarkAllReady();
  ASSERT_TRUE(arbiter_->HandleCommand(Command::Drain()).status.ok());
  ASSERT_TRUE(arbiter_->HandleCommand(Command::ScaleTo(3)).status.ok());
  ASSERT_TRUE(arbiter_->HandleCommand(Command::Reload()).status.ok());
  EXPECT_EQ(arbiter_->scoreboard().settings().draining.load(), 1u);
  EXPECT_TRUE(arbiter_->Snapshot().draining);
  EXPECT_EQ(arbiter_->Snapshot().desired_workers, 3);
}

TEST_F(ArbiterTest, ResumeDoesNotUndoAShutdown) {
  Start(BaseConfig());
  MarkAllReady();
  ASSERT_TRUE(arbiter_->HandleCommand(Command::Drain()).status.ok());
  ASSERT_TRUE(arbiter_->HandleCommand(Command::GracefulStop()).status.ok());
  EXPECT_EQ(arbiter_->HandleCommand(Command::Resume()).status.code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(arbiter_->scoreboard().settings().draining.load(), 1u);
  PoolSnapshot snap = arbiter_->Snapshot();
  EXPECT_TRUE(snap.draining);
  EXPECT_TRUE(snap.stopping);
}

TEST_F(ArbiterTest, ExactScaleByRefusesOutOfRangeStepsAndChangesNothing) {
  Start(BaseConfig());  // 2 workers, max 4
  MarkAllReady();
  for (int delta : {+3, -2, -5}) {
    CommandResult r =
        arbiter_->HandleCommand(Command::ScaleBy(delta, /*exact=*/true));
    EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument) << delta;
    EXPECT_TRUE(absl::StrContains(r.status.message(), "--max-workers"))
        << r.status.message();
    EXPECT_EQ(r.desired_workers, 2);
  }
  EXPECT_EQ(sys_.spawned.size(), 2u);
  EXPECT_TRUE(sys_.kills.empty());
  CommandResult r = arbiter_->HandleCommand(Command::ScaleBy(+2, true));
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.desired_workers, 4);
  // TTIN keeps clamping (and refusing only at the limit).
  EXPECT_EQ(arbiter_->HandleCommand(Command::ScaleBy(+1)).status.code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ArbiterTest, LiveSnapshotReadsWorkerGaugesBeforeTheNextTick) {
  Start(BaseConfig());
  pid_t p = sys_.spawned[0].pid;
  EXPECT_EQ(arbiter_->Snapshot().ready_workers, 0);
  MarkReady(p);  // no Tick: the published snapshot does not know yet
  SlotOf(p).threads = 6;
  SlotOf(p).connection_cap = 77;
  SlotOf(p).settings_generation_seen = 9;
  EXPECT_EQ(arbiter_->Snapshot().ready_workers, 0);
  PoolSnapshot live = arbiter_->LiveSnapshot();
  EXPECT_EQ(live.ready_workers, 1);
  for (const WorkerRow& row : live.workers) {
    if (row.pid != p) continue;
    EXPECT_EQ(row.state, WorkerState::kReady);
    EXPECT_EQ(row.threads, 6u);
    EXPECT_EQ(row.connection_cap, 77u);
    EXPECT_EQ(row.settings_generation_seen, 9u);
  }
  EXPECT_EQ(live.max_threads, 16);
  EXPECT_EQ(live.max_worker_connections, 1000);
}

}  // namespace
}  // namespace forkd::arbiter

#include "server/app/app_supervisor.h"

#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/os/fake_sys_calls.h"

namespace forkd::app {
namespace {

using scoreboard::AppSlot;
using scoreboard::AppState;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

int ExitedWith(int code) { return code << 8; }
int KilledBy(int sig) { return sig; }

class AppSupervisorTest : public ::testing::Test {
 protected:
  void Make(std::vector<std::string> command, int desired) {
    board_ = *scoreboard::Scoreboard::Create(4, 6);
    AppOptions o;
    o.command = std::move(command);
    o.env = {"PATH=/usr/bin:/bin", "LISTEN_FDS=7", "HOME=/root"};
    o.worker_class = config::WorkerClass::kGthread;
    o.threads = 4;
    o.timeout_ms = 30000;
    o.graceful_timeout_ms = 10000;
    o.socket_parent = "/tmp";
    o.output = [this](std::string_view line) { out_.emplace_back(line); };
    o.jitter = [](int) { return 0; };
    Customize(o);
    sup_ = std::make_unique<AppSupervisor>(std::move(o), &sys_, board_.get());
    ASSERT_TRUE(sup_->Start().ok());
    sup_->SetDesired(desired);
    sup_->Tick(sys_.now_ms);
  }
  virtual void Customize(AppOptions&) {}

  AppSlot& SlotOf(pid_t pid) {
    for (uint32_t i = 0; i < board_->app_capacity(); ++i) {
      if (board_->app_slot(i).pid.load() == pid) return board_->app_slot(i);
    }
    ADD_FAILURE() << "no slot for pid " << pid;
    return board_->app_slot(0);
  }
  AppState StateOf(pid_t pid) {
    return static_cast<AppState>(SlotOf(pid).state.load());
  }
  // Every spawned app's socket accepts: the next tick marks them ready.
  void AllAccept() {
    for (const auto& s : sys_.spawned) {
      for (const std::string& e : s.spec.env) {
        if (e.rfind("FORKD_SOCKET=", 0) == 0) {
          sys_.accepting.insert(e.substr(13));
        }
      }
    }
  }
  void Advance(int64_t ms) {
    sys_.now_ms += ms;
    sup_->Tick(sys_.now_ms);
  }
  void Exit(pid_t pid, int status) {
    sys_.alive.erase(pid);
    ASSERT_TRUE(sup_->OnChildExit(pid, status, sys_.now_ms));
  }
  std::vector<pid_t> Live() {
    std::vector<pid_t> out;
    for (const AppProcessStatus& s : sup_->Status()) out.push_back(s.pid);
    return out;
  }
  bool Sent(pid_t pid, int signo) {
    std::vector<int> sigs = sys_.SignalsTo(pid);
    return std::find(sigs.begin(), sigs.end(), signo) != sigs.end();
  }

  os::FakeSysCalls sys_;
  std::unique_ptr<scoreboard::Scoreboard> board_;
  std::unique_ptr<AppSupervisor> sup_;
  std::vector<std::string> out_;
};

TEST_F(AppSupervisorTest, SpawnsOnInheritedFd3WithSocketActivationEnv) {
  Make({"python3", "app.py", "--threads", "{threads}", "--n", "{worker}"}, 2);
  ASSERT_EQ(sys_.spawned.size(), 2u);
  const os::SpawnSpec& spec = sys_.spawned[0].spec;
  EXPECT_EQ(spec.path, "/usr/bin/python3");
  EXPECT_THAT(spec.argv,
              ElementsAre("python3", "app.py", "--threads", "4", "--n", "0"));
  EXPECT_GE(spec.listen_fd, 0);
  EXPECT_TRUE(spec.set_listen_pid);
  EXPECT_EQ(spec.parent_death_signal, SIGKILL);
  EXPECT_TRUE(spec.new_process_group);
  EXPECT_GE(spec.stdio_fd, 0);
  EXPECT_THAT(spec.env, Contains("LISTEN_FDS=1"));
  EXPECT_THAT(spec.env, Contains("LISTEN_FDNAMES=http"));
  EXPECT_THAT(spec.env, Contains("LISTEN_PID=0"));  // rewritten in the child
  EXPECT_THAT(spec.env, Contains("FORKD_WORKER=0"));
  EXPECT_THAT(spec.env, ::testing::Not(Contains("LISTEN_FDS=7")));
  EXPECT_EQ(sys_.listened.size(), 2u);
  // Starting until the socket accepts; then ready, with the gthread cap.
  pid_t a = sys_.spawned[0].pid;
  EXPECT_EQ(StateOf(a), AppState::kStarting);
  EXPECT_EQ(sup_->ReadyCount(), 0);
  AllAccept();
  Advance(100);
  EXPECT_EQ(StateOf(a), AppState::kReady);
  EXPECT_EQ(SlotOf(a).cap.load(), 4u);
  EXPECT_EQ(sup_->ReadyCount(), 2);
}

// A live process that refuses connections (its listener gone or its
// backlog full) leaves the rotation when a worker reports it, and comes
// back once its probe passes again: no restart, no boot back-off.
TEST_F(AppSupervisorTest, RefusingProcessLeavesTheRotationUntilItAnswers) {
  Make({"app"}, 1);
  pid_t a = sys_.spawned[0].pid;
  const std::string sock = "/tmp/forkd-app-test/app-0.sock";
  AllAccept();
  Advance(100);
  ASSERT_EQ(StateOf(a), AppState::kReady);
  sys_.accepting.erase(sock);
  SlotOf(a).refused.fetch_add(1);
  Advance(100);
  EXPECT_EQ(StateOf(a), AppState::kStarting);
  EXPECT_EQ(sup_->ReadyCount(), 0);
  Advance(1000);  // the probe keeps failing: still out, not replaced
  EXPECT_EQ(StateOf(a), AppState::kStarting);
  EXPECT_FALSE(Sent(a, SIGTERM));
  sys_.accepting.insert(sock);
  Advance(100);
  EXPECT_EQ(StateOf(a), AppState::kReady);
  EXPECT_EQ(sys_.spawned.size(), 1u);
  EXPECT_THAT(Live(), ElementsAre(a));
}

// One that does not accept again within --timeout is replaced: TERM once
// its in-flight requests are done, and a new process in its place.
TEST_F(AppSupervisorTest, RefusingProcessIsReplacedAfterTimeout) {
  Make({"app"}, 1);
  pid_t a = sys_.spawned[0].pid;
  AllAccept();
  Advance(100);
  ASSERT_EQ(StateOf(a), AppState::kReady);
  sys_.accepting.clear();
  SlotOf(a).in_flight.store(1);
  SlotOf(a).refused.fetch_add(1);
  Advance(100);
  ASSERT_EQ(StateOf(a), AppState::kStarting);
  Advance(30000);
  EXPECT_EQ(StateOf(a), AppState::kRetiring);
  EXPECT_FALSE(Sent(a, SIGTERM));  // a request of its own is still running
  SlotOf(a).in_flight.store(0);
  Advance(100);
  EXPECT_TRUE(Sent(a, SIGTERM));
  Exit(a, KilledBy(SIGTERM));
  Advance(100);
  ASSERT_EQ(sys_.spawned.size(), 2u);
  EXPECT_EQ(sup_->restarts().at(AppExit::kRefused), 1u);
}

// A health probe that gets no answer never holds the master's loop: it
// stays pending across ticks, is dropped after kProbeTimeoutMs and started
// again; the process turns ready on the first answer.
TEST_F(AppSupervisorTest, SlowHealthProbeIsPolledAndRetriedNotWaitedFor) {
  Make({"app"}, 1);
  pid_t a = sys_.spawned[0].pid;
  const std::string sock = "/tmp/forkd-app-test/app-0.sock";
  sys_.pending.insert(sock);
  Advance(100);
  EXPECT_EQ(StateOf(a), AppState::kStarting);
  EXPECT_EQ(sys_.probes.size(), 1u);  // the same probe, still waiting
  Advance(AppSupervisor::kProbeTimeoutMs);
  EXPECT_EQ(sys_.cancelled_probes, 1);
  EXPECT_EQ(StateOf(a), AppState::kStarting);
  sys_.pending.erase(sock);
  sys_.accepting.insert(sock);
  Advance(100);
  EXPECT_EQ(StateOf(a), AppState::kReady);
  EXPECT_TRUE(sys_.probes.empty());
}

TEST_F(AppSupervisorTest, SocketPlaceholderMeansTheAppBindsThePath) {
  Make({"gunicorn", "--bind", "unix:{socket}", "app:app"}, 1);
  ASSERT_EQ(sys_.spawned.size(), 1u);
  const os::SpawnSpec& spec = sys_.spawned[0].spec;
  EXPECT_EQ(spec.listen_fd, -1);
  EXPECT_FALSE(spec.set_listen_pid);
  EXPECT_TRUE(sys_.listened.empty());
  EXPECT_EQ(spec.argv[2], "unix:/tmp/forkd-app-test/app-0.sock");
  EXPECT_THAT(sys_.removed, Contains("/tmp/forkd-app-test/app-0.sock"));
  EXPECT_THAT(spec.env,
              Contains("FORKD_SOCKET=/tmp/forkd-app-test/app-0.sock"));
}

TEST_F(AppSupervisorTest, CrashIsReplacedAndBootFailuresBackOff) {
  Make({"app"}, 1);
  AllAccept();
  Advance(100);
  pid_t a = sys_.spawned[0].pid;
  Exit(a, KilledBy(SIGKILL));
  ASSERT_EQ(sys_.spawned.size(), 2u);  // replaced at once: it had served
  EXPECT_EQ(sup_->RestartsBy(AppExit::kCrash), 1u);
  pid_t b = sys_.spawned[1].pid;
  EXPECT_EQ(StateOf(b), AppState::kStarting);
  EXPECT_EQ(SlotOf(b).restarts.load(), 1u);
  // b never becomes ready (its socket is not in `accepting`): boot failure.
  sys_.accepting.clear();
  Exit(b, ExitedWith(1));
  EXPECT_EQ(sys_.spawned.size(), 2u);  // backing off
  Advance(AppSupervisor::kBootBackoffInitialMs);
  EXPECT_EQ(sys_.spawned.size(), 3u);
  Exit(sys_.spawned[2].pid, ExitedWith(1));
  Advance(AppSupervisor::kBootBackoffInitialMs);
  EXPECT_EQ(sys_.spawned.size(), 3u);  // doubled: 200 ms now
  Advance(AppSupervisor::kBootBackoffInitialMs);
  EXPECT_EQ(sys_.spawned.size(), 4u);
  EXPECT_EQ(sup_->RestartsBy(AppExit::kBootFailure), 2u);
}

TEST_F(AppSupervisorTest, HungProcessGetsAbortThenKill) {
  Make({"app"}, 1);
  AllAccept();
  Advance(100);
  pid_t a = sys_.spawned[0].pid;
  AppSlot& s = SlotOf(a);
  s.in_flight.store(1);
  s.last_progress_ms.store(sys_.now_ms);
  Advance(29000);
  EXPECT_FALSE(Sent(a, SIGABRT));
  Advance(2000);
  EXPECT_TRUE(Sent(a, SIGABRT));
  EXPECT_TRUE(Sent(-a, SIGABRT));              // its process group too
  EXPECT_EQ(StateOf(a), AppState::kStopping);  // out of the rotation
  EXPECT_FALSE(Sent(a, SIGKILL));
  // Its replacement starts at once (it no longer counts).
  EXPECT_EQ(sys_.spawned.size(), 2u);
  Advance(AppSupervisor::kAbortToKillMs);
  EXPECT_TRUE(Sent(a, SIGKILL));
  Exit(a, KilledBy(SIGKILL));
  EXPECT_EQ(sup_->RestartsBy(AppExit::kTimeout), 1u);
}

TEST_F(AppSupervisorTest, IdleProcessIsNeverHung) {
  Make({"app"}, 1);
  AllAccept();
  Advance(100);
  Advance(120000);
  EXPECT_TRUE(sys_.SignalsTo(sys_.spawned[0].pid).empty());
}

class MaxRequestsTest : public AppSupervisorTest {
  void Customize(AppOptions& o) override { o.max_requests = 10; }
};

TEST_F(MaxRequestsTest, RecycleStartsTheNewOneFirstAndStopsTheOldWhenIdle) {
  Make({"app"}, 1);
  AllAccept();
  Advance(100);
  pid_t old = sys_.spawned[0].pid;
  AppSlot& s = SlotOf(old);
  s.requests.store(10);
  s.in_flight.store(1);
  Advance(100);
  ASSERT_EQ(sys_.spawned.size(), 2u);  // the replacement
  pid_t fresh = sys_.spawned[1].pid;
  EXPECT_EQ(StateOf(old), AppState::kReady);  // still serving meanwhile
  AllAccept();
  Advance(100);
  EXPECT_EQ(StateOf(fresh), AppState::kReady);
  EXPECT_EQ(StateOf(old), AppState::kRetiring);  // out of the rotation
  EXPECT_FALSE(Sent(old, SIGTERM));              // a request is in flight
  s.in_flight.store(0);
  Advance(100);
  EXPECT_TRUE(Sent(old, SIGTERM));
  Exit(old, ExitedWith(0));
  EXPECT_EQ(sup_->RestartsBy(AppExit::kMaxRequests), 1u);
  EXPECT_THAT(Live(), ElementsAre(fresh));
}

// The replacement runs in another slot (the old one still serves while it
// starts): once the old one exits, the new one's row carries the line's
// history, so `forkctl status` shows the recycling where it now serves.
TEST_F(MaxRequestsTest, TheReplacementsRowShowsTheRecyclingItFollows) {
  Make({"app"}, 1);
  AllAccept();
  Advance(100);
  pid_t old = sys_.spawned[0].pid;
  SlotOf(old).requests.store(10);
  Advance(100);
  ASSERT_EQ(sys_.spawned.size(), 2u);
  pid_t fresh = sys_.spawned[1].pid;
  AllAccept();
  Advance(100);
  ASSERT_TRUE(Sent(old, SIGTERM));
  Exit(old, ExitedWith(0));
  std::vector<AppProcessStatus> rows = sup_->Status();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].pid, fresh);
  EXPECT_NE(rows[0].slot, 0u);
  EXPECT_EQ(rows[0].restarts, 1u);
  EXPECT_EQ(rows[0].last_exit, AppExit::kMaxRequests);
  EXPECT_EQ(rows[0].last_exit_code, 0);
}

// A process started by a scale up starts with no history, even in a slot
// an earlier line used.
TEST_F(AppSupervisorTest, AScaleUpStartsWithNoHistory) {
  Make({"app"}, 2);
  AllAccept();
  Advance(100);
  sup_->SetDesired(1);
  Advance(100);
  pid_t a = Sent(sys_.spawned[0].pid, SIGTERM) ? sys_.spawned[0].pid
                                               : sys_.spawned[1].pid;
  ASSERT_TRUE(Sent(a, SIGTERM));
  Exit(a, ExitedWith(0));  // scaled down: its slot is free, its record kept
  sup_->SetDesired(2);
  Advance(100);
  ASSERT_EQ(sys_.spawned.size(), 3u);
  for (const AppProcessStatus& row : sup_->Status()) {
    EXPECT_EQ(row.restarts, 0u) << row.pid;
    EXPECT_EQ(row.last_exit, AppExit::kNone) << row.pid;
  }
}

class MaxMemoryTest : public AppSupervisorTest {
  void Customize(AppOptions& o) override { o.max_memory_bytes = 100 << 20; }
};

TEST_F(MaxMemoryTest, RssPastTheLimitIsRecycled) {
  Make({"app"}, 1);
  AllAccept();
  Advance(100);
  pid_t a = sys_.spawned[0].pid;
  sys_.rss[a] = 50 << 20;
  Advance(100);
  EXPECT_EQ(sys_.spawned.size(), 1u);
  sys_.rss[a] = 101 << 20;
  Advance(100);
  EXPECT_EQ(sys_.spawned.size(), 2u);
  AllAccept();
  Advance(100);
  Advance(100);
  EXPECT_TRUE(Sent(a, SIGTERM));
}

TEST_F(AppSupervisorTest, ScaleDownRetiresIdleBeforeBusy) {
  Make({"app"}, 3);
  AllAccept();
  Advance(100);
  pid_t a = sys_.spawned[0].pid, b = sys_.spawned[1].pid,
        c = sys_.spawned[2].pid;
  SlotOf(a).in_flight.store(1);
  SlotOf(c).in_flight.store(1);
  sup_->SetDesired(2);
  Advance(100);
  EXPECT_TRUE(Sent(b, SIGTERM));
  EXPECT_FALSE(Sent(a, SIGTERM));
  EXPECT_FALSE(Sent(c, SIGTERM));
  sup_->SetDesired(4);
  Advance(100);
  EXPECT_EQ(sys_.spawned.size(), 5u);  // b is leaving: two new ones
}

TEST_F(AppSupervisorTest, ReloadIsRollingNewReadyBeforeOldLeave) {
  Make({"app"}, 2);
  AllAccept();
  Advance(100);
  pid_t a = sys_.spawned[0].pid, b = sys_.spawned[1].pid;
  AppOptions o;
  o.command = {"app", "--v2"};
  o.env = {"PATH=/usr/bin"};
  o.graceful_timeout_ms = 10000;
  sup_->Reload(std::move(o), sys_.now_ms);
  ASSERT_EQ(sys_.spawned.size(), 4u);
  EXPECT_THAT(sys_.spawned[3].spec.argv, ElementsAre("app", "--v2"));
  // None of the new ones ready: both old ones keep serving.
  EXPECT_EQ(StateOf(a), AppState::kReady);
  EXPECT_EQ(StateOf(b), AppState::kReady);
  AllAccept();
  Advance(100);
  EXPECT_EQ(sup_->ReadyCount(), 2);  // the new ones
  EXPECT_TRUE(Sent(a, SIGTERM));
  EXPECT_TRUE(Sent(b, SIGTERM));
  Exit(a, ExitedWith(0));
  Exit(b, ExitedWith(0));
  EXPECT_EQ(sup_->RestartsBy(AppExit::kReload), 2u);
  EXPECT_EQ(sys_.spawned.size(), 4u);
}

TEST_F(AppSupervisorTest, ThreadsChangeReplacesOnlyWhenTheCommandUsesIt) {
  Make({"app"}, 1);
  AllAccept();
  Advance(100);
  pid_t a = sys_.spawned[0].pid;
  sup_->SetThreads(8, 1000, sys_.now_ms);
  EXPECT_EQ(SlotOf(a).cap.load(), 8u);  // new cap, same process
  EXPECT_EQ(sys_.spawned.size(), 1u);
}

TEST_F(AppSupervisorTest, ThreadsPlaceholderMeansRollingReplacement) {
  Make({"app", "--threads={threads}"}, 1);
  AllAccept();
  Advance(100);
  sup_->SetThreads(8, 1000, sys_.now_ms);
  ASSERT_EQ(sys_.spawned.size(), 2u);
  EXPECT_THAT(sys_.spawned[1].spec.argv, ElementsAre("app", "--threads=8"));
}

TEST_F(AppSupervisorTest, StopSendsTermThenKillAfterGracefulTimeout) {
  Make({"app"}, 2);
  AllAccept();
  Advance(100);
  pid_t a = sys_.spawned[0].pid, b = sys_.spawned[1].pid;
  sup_->BeginStop(sys_.now_ms);
  EXPECT_TRUE(Sent(a, SIGTERM));
  EXPECT_TRUE(Sent(b, SIGTERM));
  Exit(a, ExitedWith(0));
  EXPECT_EQ(sys_.spawned.size(), 2u);  // no replacement while stopping
  Advance(9000);
  EXPECT_FALSE(Sent(b, SIGKILL));
  Advance(1000);
  EXPECT_TRUE(Sent(b, SIGKILL));
  Exit(b, KilledBy(SIGKILL));
  EXPECT_TRUE(sup_->Empty());
}

TEST_F(AppSupervisorTest, OutputIsPrefixedLineByLine) {
  Make({"app"}, 1);
  int fd = -1;
  ASSERT_EQ(sup_->Status().size(), 1u);
  // The read end is the fd the fake handed out just before the write end.
  fd = sys_.spawned[0].spec.stdio_fd - 1;
  sys_.pipe_data[fd] = "hello\nwor";
  Advance(10);
  sys_.pipe_data[fd] = "ld\nlast";
  Advance(10);
  EXPECT_THAT(out_, ElementsAre("[app 0] hello\n", "[app 0] world\n"));
  Exit(sys_.spawned[0].pid, ExitedWith(0));
  EXPECT_THAT(out_, Contains("[app 0] last\n"));
}

TEST_F(AppSupervisorTest, KillRetiresOnceIdleAndStartsAReplacementAtOnce) {
  Make({"app"}, 2);
  AllAccept();
  Advance(100);
  pid_t a = sys_.spawned[0].pid;
  SlotOf(a).in_flight.store(1);
  ASSERT_TRUE(sup_->Kill(a, sys_.now_ms).ok());
  EXPECT_EQ(StateOf(a), AppState::kRetiring);  // out of the rotation
  EXPECT_EQ(sys_.spawned.size(), 3u);          // its replacement
  EXPECT_FALSE(Sent(a, SIGTERM));              // a request is in flight
  EXPECT_EQ(sup_->Kill(a, sys_.now_ms).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(sup_->Kill(4242, sys_.now_ms).code(), absl::StatusCode::kNotFound);
  SlotOf(a).in_flight.store(0);
  Advance(100);
  EXPECT_TRUE(Sent(a, SIGTERM));
  Exit(a, ExitedWith(0));
  EXPECT_EQ(sup_->RestartsBy(AppExit::kKilled), 1u);
  EXPECT_EQ(sup_->restarts().at(AppExit::kKilled), 1u);
}

TEST_F(AppSupervisorTest, StatusSaysHowTheSlotsLastProcessEndedAndWhen) {
  Make({"app"}, 2);
  AllAccept();
  int64_t started = sys_.now_ms;
  Advance(100);
  pid_t a = sys_.spawned[0].pid;
  pid_t b = sys_.spawned[1].pid;
  sys_.cpu[a] = 1.25;
  sys_.rss[a] = 7 << 20;
  std::vector<AppProcessStatus> st = sup_->Status();
  ASSERT_EQ(st.size(), 2u);
  EXPECT_EQ(st[0].pid, a);
  EXPECT_EQ(st[0].state, AppState::kReady);
  EXPECT_EQ(st[0].started_ms, started);
  EXPECT_DOUBLE_EQ(st[0].cpu_seconds, 1.25);
  EXPECT_EQ(st[0].rss_bytes, 7u << 20);
  EXPECT_EQ(st[0].last_exit, AppExit::kNone);
  EXPECT_EQ(st[0].last_exit_code, -1);
  EXPECT_FALSE(st[0].replacing);

  // a crashes on a signal, b exits with code 3: their slots' next
  // processes say so.
  Exit(a, KilledBy(SIGSEGV));
  Exit(b, ExitedWith(3));
  st = sup_->Status();
  ASSERT_EQ(st.size(), 2u);
  EXPECT_EQ(st[0].slot, 0u);
  EXPECT_EQ(st[0].last_exit, AppExit::kCrash);
  EXPECT_EQ(st[0].last_exit_signal, SIGSEGV);
  EXPECT_EQ(st[0].last_exit_code, -1);
  EXPECT_EQ(st[0].restarts, 1u);
  EXPECT_EQ(st[1].last_exit, AppExit::kCrash);
  EXPECT_EQ(st[1].last_exit_code, 3);
  EXPECT_EQ(st[1].last_exit_signal, 0);
  EXPECT_EQ(st[1].last_exit_detail, "exited with code 3");

  // A reload marks every process as waiting for its replacement.
  AllAccept();
  Advance(100);
  AppOptions o;
  o.command = {"app"};
  o.worker_class = config::WorkerClass::kGthread;
  o.threads = 4;
  o.socket_parent = "/tmp";
  sup_->Reload(o, sys_.now_ms);
  int replacing = 0;
  for (const AppProcessStatus& s : sup_->Status()) {
    replacing += s.replacing ? 1 : 0;
  }
  EXPECT_EQ(replacing, 2);
}

TEST_F(AppSupervisorTest, RequestsPerSlotKeepWhatTheLeaversServed) {
  Make({"app"}, 2);
  AllAccept();
  Advance(100);
  pid_t a = sys_.spawned[0].pid;
  SlotOf(a).requests.store(7);
  SlotOf(sys_.spawned[1].pid).requests.store(2);
  EXPECT_EQ(sup_->RequestsBySlot(),
            (std::map<uint32_t, uint64_t>{{0, 7}, {1, 2}}));
  Exit(a, KilledBy(SIGKILL));
  // Replaced in slot 0, whose counter starts again from 0: the slot's
  // total keeps the 7.
  pid_t next = sys_.spawned.back().pid;
  ASSERT_NE(next, a);
  EXPECT_EQ(SlotOf(next).requests.load(), 0u);
  SlotOf(next).requests.store(1);
  EXPECT_EQ(sup_->RequestsBySlot(),
            (std::map<uint32_t, uint64_t>{{0, 8}, {1, 2}}));
}

TEST(LineSplitterTest, SplitsLongLinesAndKeepsPartials) {
  LineSplitter split(4);
  std::vector<std::string> lines;
  auto emit = [&](std::string_view l) { lines.emplace_back(l); };
  split.Feed("abcdefghij\nxy", emit);
  EXPECT_THAT(lines, ElementsAre("abcd", "efgh", "ij"));
  split.Feed("z\n", emit);
  EXPECT_THAT(lines, ElementsAre("abcd", "efgh", "ij", "xyz"));
  split.Feed("tail", emit);
  split.Flush(emit);
  EXPECT_EQ(lines.back(), "tail");
}

}  // namespace
}  // namespace forkd::app

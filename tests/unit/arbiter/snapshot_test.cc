// What the metrics and probes read from the arbiter: the published
// snapshot (its loop heartbeat, per-worker gauges, counter totals that never
// go backwards whatever way a worker leaves) and the listening sockets.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "gtest/gtest.h"
#include "server/arbiter/arbiter.h"
#include "server/worker/worker_launch.h"
#include "tests/unit/os/fake_sys_calls.h"

namespace forkd::arbiter {
namespace {

using scoreboard::CounterTotals;
using scoreboard::WorkerState;

class SnapshotTest : public ::testing::Test {
 protected:
  void Start(int workers) {
    config::Config c;
    c.workers = workers;
    c.max_workers = 4;
    c.worker_class = config::WorkerClass::kGthread;
    c.threads = 2;
    c.timeout = 10;
    c.graceful_timeout = 5;
    reload_config_ = c;
    ArbiterOptions o;
    o.config = c;
    o.reload = [this] { return reload_config_; };
    Listener l;
    l.fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    l.url = "http://127.0.0.1:8000";
    l.bind = "127.0.0.1:8000";
    o.listeners.push_back(l);
    o.exe_path = "/opt/forkd";
    o.argv = {"forkd"};
    auto a = Arbiter::Create(std::move(o), &sys_);
    ASSERT_TRUE(a.ok()) << a.status();
    arbiter_ = std::move(*a);
    ASSERT_TRUE(arbiter_->Start().ok());
    MarkAllReady();
  }

  scoreboard::Slot& SlotOf(pid_t pid) {
    for (const auto& s : sys_.spawned) {
      if (s.pid == pid) {
        absl::StatusOr<worker::WorkerLaunch> launch =
            worker::DecodeWorkerLaunch(s.spec.launch_message);
        EXPECT_TRUE(launch.ok()) << launch.status();
        return arbiter_->scoreboard().slot(launch.ok() ? launch->slot : 0);
      }
    }
    ADD_FAILURE() << "no spawned pid " << pid;
    return arbiter_->scoreboard().slot(0);
  }

  std::vector<pid_t> Live() {
    std::vector<pid_t> out;
    for (const WorkerRow& r : arbiter_->Snapshot().workers) {
      out.push_back(r.pid);
    }
    return out;
  }

  void MarkAllReady() {
    for (pid_t p : Live()) {
      SlotOf(p).state = static_cast<uint32_t>(WorkerState::kReady);
      SlotOf(p).heartbeat_ms = sys_.now_ms;
    }
    Advance(1);
  }

  void Advance(int64_t ms) {
    sys_.now_ms += ms;
    arbiter_->Tick(sys_.now_ms);
  }

  // Every live worker serves `n` more GETs; returns the new total.
  uint64_t Serve(uint64_t n) {
    for (pid_t p : Live()) {
      scoreboard::Counters& c = SlotOf(p).counters;
      c.requests[0][1] += n;
      c.bytes_out += 100 * n;
      c.request_duration.Observe(0.01);
    }
    Advance(1);
    return arbiter_->Snapshot().totals.TotalRequests();
  }

  void Exit(pid_t pid, int status) {
    sys_.alive.erase(pid);
    arbiter_->OnChildExit(pid, status);
  }

  void ExpectNotLower(const CounterTotals& now, const CounterTotals& before) {
    EXPECT_GE(now.TotalRequests(), before.TotalRequests());
    EXPECT_GE(now.bytes_out, before.bytes_out);
    for (size_t i = 0; i < now.request_duration.buckets.size(); ++i) {
      EXPECT_GE(now.request_duration.buckets[i],
                before.request_duration.buckets[i]);
    }
    EXPECT_GE(now.request_duration.sum_us, before.request_duration.sum_us);
  }

  os::FakeSysCalls sys_;
  std::unique_ptr<Arbiter> arbiter_;
  config::Config reload_config_;
};

TEST_F(SnapshotTest, PublishedTimeIsTheLoopsHeartbeat) {
  Start(1);
  EXPECT_EQ(arbiter_->Snapshot().published_ms, sys_.now_ms);
  Advance(250);
  EXPECT_EQ(arbiter_->Snapshot().published_ms, sys_.now_ms);
  // A command publishes at once, without waiting for the tick: TERM shows
  // as draining in the very next snapshot.
  sys_.now_ms += 7;
  arbiter_->HandleSignal(SIGTERM);
  PoolSnapshot s = arbiter_->Snapshot();
  EXPECT_EQ(s.published_ms, sys_.now_ms);
  EXPECT_TRUE(s.draining);
}

TEST_F(SnapshotTest, RowsCarryTheConnectionGauges) {
  Start(2);
  std::vector<pid_t> pids = Live();
  SlotOf(pids[0]).connections_active = 3;
  SlotOf(pids[0]).connections_idle = 9;
  SlotOf(pids[1]).connections_idle = 1;
  Advance(1);
  PoolSnapshot s = arbiter_->Snapshot();
  ASSERT_EQ(s.workers.size(), 2u);
  EXPECT_EQ(s.workers[0].connections_active + s.workers[1].connections_active,
            3u);
  EXPECT_EQ(s.workers[0].connections_idle + s.workers[1].connections_idle, 10u);
}

TEST_F(SnapshotTest, TotalsNeverGoBackwardsWhicheverWayAWorkerLeaves) {
  Start(3);
  uint64_t total = Serve(10);
  EXPECT_EQ(total, 30u);
  CounterTotals last = arbiter_->Snapshot().totals;
  auto check = [&](const char* what) {
    SCOPED_TRACE(what);
    CounterTotals now = arbiter_->Snapshot().totals;
    ExpectNotLower(now, last);
    last = now;
  };

  // kill -9 (a crash).
  Exit(Live()[0], W_EXITCODE(0, SIGKILL));
  check("crash");
  MarkAllReady();
  Serve(1);
  check("after crash");

  // Recycled after --max-requests.
  pid_t p = Live()[1];
  SlotOf(p).exit_reason =
      static_cast<uint32_t>(scoreboard::ExitReason::kMaxRequests);
  Exit(p, W_EXITCODE(0, 0));
  check("max_requests");
  MarkAllReady();

  // TTOU: scale down, the retired worker drains and exits.
  arbiter_->HandleSignal(SIGTTOU);
  pid_t retired = 0;
  for (const WorkerRow& r : arbiter_->Snapshot().workers) {
    if (r.retiring) retired = r.pid;
  }
  ASSERT_NE(retired, 0);
  SlotOf(retired).counters.requests[0][1] += 4;  // finishes in-flight work
  Advance(1);
  check("draining");
  Exit(retired, W_EXITCODE(0, 0));
  check("scale_down");

  // HUP: the whole old generation is replaced.
  std::vector<pid_t> old = Live();
  arbiter_->HandleSignal(SIGHUP);
  MarkAllReady();
  for (pid_t o : old) Exit(o, W_EXITCODE(0, 0));
  check("reload");
  Serve(2);
  check("after reload");

  PoolSnapshot s = arbiter_->Snapshot();
  EXPECT_EQ(s.exits[static_cast<size_t>(ExitCause::kCrash)], 1u);
  EXPECT_EQ(s.exits[static_cast<size_t>(ExitCause::kMaxRequests)], 1u);
  EXPECT_EQ(s.exits[static_cast<size_t>(ExitCause::kScaleDown)], 1u);
  EXPECT_EQ(s.exits[static_cast<size_t>(ExitCause::kReload)], 2u);
  // 30 + 3 (after crash: three live) + 4 (draining) + 2 x 2 (after reload).
  EXPECT_EQ(s.totals.TotalRequests(), 41u);
}

TEST_F(SnapshotTest, ListenersAreVisitedUntilTheyAreClosed) {
  Start(1);
  std::vector<std::string> urls;
  arbiter_->VisitListeners([&](const Listener& l) { urls.push_back(l.url); });
  EXPECT_EQ(urls, std::vector<std::string>{"http://127.0.0.1:8000"});
  arbiter_->Finish();
  urls.clear();
  arbiter_->VisitListeners([&](const Listener& l) { urls.push_back(l.url); });
  EXPECT_TRUE(urls.empty());
}

}  // namespace
}  // namespace forkd::arbiter

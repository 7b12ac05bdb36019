// App mode as the admin and metrics planes see the arbiter: the snapshot
// lists the app processes (and counts them as the workers), and the worker
// commands (ScaleTo, KillWorker) act on them.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/arbiter/arbiter.h"
#include "server/worker/worker_launch.h"
#include "tests/unit/os/fake_sys_calls.h"

namespace forkd::arbiter {
namespace {

using scoreboard::AppState;
using scoreboard::WorkerState;

class AppModeTest : public ::testing::Test {
 protected:
  void Start(int app_processes) {
    config::Config c;
    c.workers = app_processes;
    c.max_workers = 4;
    c.worker_class = config::WorkerClass::kSync;
    c.timeout = 10;
    c.graceful_timeout = 5;
    c.app_cmd = "python3 app.py";
    c.proxy_workers = 1;
    ArbiterOptions o;
    o.config = c;
    o.reload = [c] { return c; };
    Listener l;
    l.fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    l.url = "http://127.0.0.1:8000";
    l.bind = "127.0.0.1:8000";
    o.listeners.push_back(l);
    o.exe_path = "/opt/forkd";
    o.argv = {"forkd"};
    o.env = {"PATH=/usr/bin:/bin"};
    auto a = Arbiter::Create(std::move(o), &sys_);
    ASSERT_TRUE(a.ok()) << a.status();
    arbiter_ = std::move(*a);
    ASSERT_TRUE(arbiter_->Start().ok());
    AllReady();
  }

  // Proxy workers carry a launch message; app processes do not.
  std::vector<pid_t> Spawned(bool apps) {
    std::vector<pid_t> out;
    for (const auto& s : sys_.spawned) {
      if (s.spec.launch_message.empty() == apps && sys_.alive.count(s.pid)) {
        out.push_back(s.pid);
      }
    }
    return out;
  }

  // Every proxy worker ready, every app socket accepting; then a tick.
  void AllReady() {
    for (const auto& s : sys_.spawned) {
      if (!s.spec.launch_message.empty()) {
        absl::StatusOr<worker::WorkerLaunch> launch =
            worker::DecodeWorkerLaunch(s.spec.launch_message);
        ASSERT_TRUE(launch.ok());
        scoreboard::Slot& slot = arbiter_->scoreboard().slot(launch->slot);
        slot.state = static_cast<uint32_t>(WorkerState::kReady);
        slot.heartbeat_ms = sys_.now_ms;
        continue;
      }
      for (const std::string& e : s.spec.env) {
        if (e.rfind("FORKD_SOCKET=", 0) == 0) {
          sys_.accepting.insert(e.substr(13));
        }
      }
    }
    Advance(1);
  }

  void Advance(int64_t ms) {
    sys_.now_ms += ms;
    arbiter_->Tick(sys_.now_ms);
  }

  os::FakeSysCalls sys_;
  std::unique_ptr<Arbiter> arbiter_;
};

TEST_F(AppModeTest, SnapshotListsTheAppProcessesAsTheWorkers) {
  Start(3);
  ASSERT_EQ(Spawned(true).size(), 3u);
  ASSERT_EQ(Spawned(false).size(), 1u);
  PoolSnapshot s = arbiter_->Snapshot();
  EXPECT_TRUE(s.app_mode);
  EXPECT_EQ(s.app_command, "python3 app.py");
  EXPECT_EQ(s.proxy_workers, 1);
  EXPECT_EQ(s.proxy_workers_ready, 1);
  EXPECT_EQ(s.desired_workers, 3);
  EXPECT_EQ(s.actual_workers, 3);
  EXPECT_EQ(s.ready_workers, 3);
  ASSERT_EQ(s.apps.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(s.apps[i].slot, i);
    EXPECT_EQ(s.apps[i].state, AppState::kReady);
    EXPECT_EQ(s.apps[i].cap, 1u);  // sync
  }
  ASSERT_EQ(s.workers.size(), 1u);  // the proxy worker
  EXPECT_EQ(s.workers[0].pid, Spawned(false)[0]);
  EXPECT_GT(s.published_unix_s, 1.6e9);

  // Requests finished by an app process show at once in LiveSnapshot.
  arbiter_->scoreboard().app_slot(1).requests.store(5);
  arbiter_->scoreboard().app_slot(1).in_flight.store(1);
  PoolSnapshot live = arbiter_->LiveSnapshot();
  EXPECT_EQ(live.apps[1].requests, 5u);
  EXPECT_EQ(live.apps[1].in_flight, 1u);
  Advance(1);
  EXPECT_EQ(arbiter_->Snapshot().app_requests_by_slot.at(1), 5u);
}

TEST_F(AppModeTest, ScaleActsOnTheAppProcesses) {
  Start(2);
  CommandResult r = arbiter_->HandleCommand(Command::ScaleTo(4));
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.desired_workers, 4);
  EXPECT_EQ(r.message, "app processes: 2 -> 4");
  EXPECT_EQ(Spawned(true).size(), 4u);
  EXPECT_EQ(Spawned(false).size(), 1u);  // --proxy-workers unchanged
  r = arbiter_->HandleCommand(Command::ScaleBy(-1, /*exact=*/true));
  ASSERT_TRUE(r.status.ok()) << r.status;
  PoolSnapshot s = arbiter_->Snapshot();
  EXPECT_EQ(s.desired_workers, 3);
  EXPECT_EQ(s.actual_workers, 3);  // the retiring one no longer counts
  EXPECT_EQ(s.apps.size(), 4u);    // it is still listed until it exits
  EXPECT_EQ(arbiter_->HandleCommand(Command::ScaleTo(5)).status.code(),
            absl::StatusCode::kInvalidArgument);  // --max-workers 4
}

TEST_F(AppModeTest, KillWorkerStopsAnAppProcessAndStartsAReplacement) {
  Start(2);
  pid_t app = Spawned(true)[0];
  CommandResult r = arbiter_->HandleCommand(Command::KillWorker(app));
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_NE(r.message.find("app process"), std::string::npos) << r.message;
  EXPECT_EQ(Spawned(true).size(), 3u);  // the replacement started
  const std::vector<int> sigs = sys_.SignalsTo(app);
  EXPECT_NE(std::find(sigs.begin(), sigs.end(), SIGTERM), sigs.end());
  EXPECT_EQ(arbiter_->HandleCommand(Command::KillWorker(app)).status.code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(arbiter_->HandleCommand(Command::KillWorker(9999)).status.code(),
            absl::StatusCode::kNotFound);
  // A proxy worker's pid still names the proxy worker.
  pid_t proxy = Spawned(false)[0];
  ASSERT_TRUE(arbiter_->HandleCommand(Command::KillWorker(proxy)).status.ok());
  const std::vector<int> proxy_sigs = sys_.SignalsTo(proxy);
  EXPECT_NE(std::find(proxy_sigs.begin(), proxy_sigs.end(), SIGTERM),
            proxy_sigs.end());
  sys_.alive.erase(app);
  arbiter_->OnChildExit(app, 0);
  EXPECT_EQ(arbiter_->Snapshot().app_restarts.at(app::AppExit::kKilled), 1u);
}

TEST_F(AppModeTest, ReadyNeedsAProxyWorker) {
  Start(2);
  for (const auto& s : sys_.spawned) {
    if (s.spec.launch_message.empty()) continue;
    absl::StatusOr<worker::WorkerLaunch> launch =
        worker::DecodeWorkerLaunch(s.spec.launch_message);
    arbiter_->scoreboard().slot(launch->slot).state =
        static_cast<uint32_t>(WorkerState::kBooting);
  }
  Advance(1);
  PoolSnapshot s = arbiter_->Snapshot();
  EXPECT_EQ(s.proxy_workers_ready, 0);
  EXPECT_EQ(s.ready_workers, 0);  // nothing can reach the app processes
  EXPECT_EQ(s.apps.size(), 2u);
}

}  // namespace
}  // namespace forkd::arbiter

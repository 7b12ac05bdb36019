#include "server/probes/health_checker.h"

#include <mutex>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace forkd::probes {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kStall = 10000;

arbiter::PoolSnapshot Snap(int ready, bool draining = false,
                           int64_t published_ms = 1000) {
  arbiter::PoolSnapshot s;
  s.desired_workers = 2;
  s.ready_workers = ready;
  s.draining = draining;
  s.published_ms = published_ms;
  return s;
}

AppStatus AppOk() {
  AppStatus a;
  a.checked = a.ok = a.reached_once = true;
  a.why = "connected to unix:/app.sock";
  return a;
}

AppStatus AppDown(bool reached_before) {
  AppStatus a;
  a.checked = true;
  a.ok = false;
  a.reached_once = reached_before;
  a.why = "connect unix:/app.sock: No such file or directory";
  return a;
}

TEST(DecideTest, ReadyNeedsAWorkerTheAppAndNoDrain) {
  Health h = Decide(Snap(2), 1000, AppOk(), false, kStall);
  EXPECT_TRUE(h.live.ok);
  EXPECT_TRUE(h.ready.ok);
  EXPECT_EQ(h.ready.why, "ready: 2 workers ready, app reachable");
  EXPECT_TRUE(h.started.ok);

  h = Decide(Snap(0), 1000, AppOk(), true, kStall);
  EXPECT_FALSE(h.ready.ok);
  EXPECT_EQ(h.ready.why, "no worker ready (2 desired)");
  EXPECT_TRUE(h.started.ok);  // latched

  h = Decide(Snap(2), 1000, AppDown(true), true, kStall);
  EXPECT_FALSE(h.ready.ok);
  EXPECT_EQ(h.ready.why,
            "app unreachable: connect unix:/app.sock: No such file or "
            "directory");
  EXPECT_TRUE(h.live.ok);

  // Draining wins over everything else, and says so.
  h = Decide(Snap(2, /*draining=*/true), 1000, AppDown(true), true, kStall);
  EXPECT_FALSE(h.ready.ok);
  EXPECT_EQ(h.ready.why, "draining: forkd is shutting down");
}

TEST(DecideTest, StartupWaitsForAWorkerAndTheApp) {
  AppStatus unchecked;
  Health h = Decide(Snap(0), 1000, unchecked, false, kStall);
  EXPECT_FALSE(h.started.ok);
  EXPECT_THAT(h.started.why, HasSubstr("first worker"));
  EXPECT_EQ(h.ready.why, "no worker ready (2 desired)");

  h = Decide(Snap(1), 1000, unchecked, false, kStall);
  EXPECT_FALSE(h.started.ok);
  EXPECT_FALSE(h.ready.ok);
  EXPECT_EQ(h.ready.why, "app not checked yet");

  h = Decide(Snap(1), 1000, AppDown(false), false, kStall);
  EXPECT_FALSE(h.started.ok);
  EXPECT_THAT(h.started.why, HasSubstr("No such file"));

  h = Decide(Snap(1), 1000, AppOk(), false, kStall);
  EXPECT_TRUE(h.started.ok);
}

TEST(DecideTest, DisabledAppChecksCountAsReachable) {
  AppStatus off;
  off.enabled = false;
  Health h = Decide(Snap(1), 1000, off, false, kStall);
  EXPECT_TRUE(h.ready.ok);
  EXPECT_EQ(h.ready.why, "ready: 1 workers ready");
  EXPECT_TRUE(h.started.ok);
}

// App mode: `desired` app processes, `ready` of them in the rotation,
// behind `proxy_ready` of 1 proxy worker.
arbiter::PoolSnapshot AppSnap(int desired, int ready, int proxy_ready = 1) {
  arbiter::PoolSnapshot s;
  s.app_mode = true;
  s.published_ms = 1000;
  s.desired_workers = desired;
  s.proxy_workers = 1;
  s.proxy_workers_ready = proxy_ready;
  for (int i = 0; i < desired; ++i) {
    app::AppProcessStatus a;
    a.slot = static_cast<uint32_t>(i);
    a.pid = 100 + i;
    a.state = i < ready ? scoreboard::AppState::kReady
                        : scoreboard::AppState::kStarting;
    s.apps.push_back(a);
  }
  s.ready_workers = proxy_ready > 0 ? ready : 0;
  return s;
}

TEST(DecideTest, AppModeStartsOnceTheWholePoolIsReady) {
  // No --upstream check in app mode: a failed app check changes nothing.
  Health h = Decide(AppSnap(3, 2), 1000, AppDown(false), false, kStall);
  EXPECT_FALSE(h.started.ok);
  EXPECT_THAT(h.started.why, HasSubstr("2 of 3 app processes ready"));
  EXPECT_FALSE(h.ready.ok);
  EXPECT_THAT(h.ready.why, HasSubstr("starting: 2 of 3"));
  h = Decide(AppSnap(3, 0), 1000, AppStatus{}, false, kStall);
  EXPECT_EQ(h.ready.why, "starting: 0 of 3 app processes ready");
  h = Decide(AppSnap(3, 3), 1000, AppDown(false), false, kStall);
  EXPECT_TRUE(h.started.ok);
  EXPECT_TRUE(h.ready.ok) << h.ready.why;
  EXPECT_THAT(h.ready.why, HasSubstr("3 of 3 app processes ready"));
  EXPECT_THAT(h.ready.why, HasSubstr("1 proxy workers ready"));
  // No proxy worker: nothing reaches the app processes.
  h = Decide(AppSnap(3, 3, 0), 1000, AppOk(), false, kStall);
  EXPECT_FALSE(h.started.ok);
  EXPECT_FALSE(h.ready.ok);
  EXPECT_THAT(h.ready.why, HasSubstr("no proxy worker ready"));
}

TEST(DecideTest, AppModeStaysReadyWhileOneAppProcessServes) {
  // Once started (latched), one ready app process is enough: a crash or a
  // rolling replacement does not take the pod out of its Service.
  Health h = Decide(AppSnap(4, 1), 1000, AppStatus{}, true, kStall);
  EXPECT_TRUE(h.started.ok);
  EXPECT_TRUE(h.ready.ok) << h.ready.why;
  EXPECT_THAT(h.ready.why, HasSubstr("1 of 4 app processes ready"));
  h = Decide(AppSnap(4, 0), 1000, AppStatus{}, true, kStall);
  EXPECT_FALSE(h.ready.ok);
  EXPECT_THAT(h.ready.why, HasSubstr("no app process ready (4 desired)"));
  arbiter::PoolSnapshot draining = AppSnap(4, 4);
  draining.draining = true;
  h = Decide(draining, 1000, AppStatus{}, true, kStall);
  EXPECT_FALSE(h.ready.ok);
  EXPECT_THAT(h.ready.why, HasSubstr("draining"));
  EXPECT_TRUE(h.live.ok);
}

TEST(DecideTest, LivenessFailsWhenTheLoopStopsPublishing) {
  Health h = Decide(Snap(1), 1000 + kStall, AppOk(), true, kStall);
  EXPECT_TRUE(h.live.ok);
  h = Decide(Snap(1), 1000 + kStall + 1500, AppOk(), true, kStall);
  EXPECT_FALSE(h.live.ok);
  EXPECT_EQ(h.live.why, "master loop stalled: last turn 11.5 s ago");
}

class HealthCheckerTest : public ::testing::Test {
 protected:
  std::unique_ptr<HealthChecker> Make(int64_t app_interval_ms = 5000) {
    CheckerOptions o;
    o.app_interval_ms = app_interval_ms;
    return std::make_unique<HealthChecker>(
        o,
        [this] {
          std::lock_guard<std::mutex> lock(mu_);
          return snapshot_;
        },
        [this] {
          std::lock_guard<std::mutex> lock(mu_);
          ++app_calls_;
          return app_;
        },
        [this] {
          std::lock_guard<std::mutex> lock(mu_);
          return now_;
        },
        &state_);
  }

  std::mutex mu_;
  arbiter::PoolSnapshot snapshot_ = Snap(1);
  ProbeResult app_{true, "connected"};
  int app_calls_ = 0;
  int64_t now_ = 1000;
  HealthState state_;
};

TEST_F(HealthCheckerTest, AppChecksFeedReadinessAndStartupLatches) {
  auto checker = Make();
  Health h = checker->Refresh();
  EXPECT_FALSE(h.ready.ok);  // not checked yet
  EXPECT_FALSE(h.started.ok);

  checker->CheckAppNow();
  h = state_.Get();
  EXPECT_TRUE(h.ready.ok);
  EXPECT_TRUE(h.started.ok);
  EXPECT_EQ(checker->app_status().ok_total, 1u);

  app_ = {false, "connect unix:/a: Connection refused"};
  checker->CheckAppNow();
  h = state_.Get();
  EXPECT_FALSE(h.ready.ok);
  EXPECT_EQ(h.ready.why,
            "app unreachable: connect unix:/a: Connection refused");
  EXPECT_TRUE(h.started.ok);  // startup stays done
  AppStatus st = checker->app_status();
  EXPECT_EQ(st.failed_total, 1u);
  EXPECT_TRUE(st.reached_once);

  app_ = {true, "connected"};
  checker->CheckAppNow();
  EXPECT_TRUE(state_.Get().ready.ok);
  EXPECT_EQ(app_calls_, 3);
}

TEST_F(HealthCheckerTest, RefreshSeesDrainingAtOnceAndNotifiesSubscribers) {
  std::vector<bool> seen;
  state_.Subscribe([&](const Health& h) { seen.push_back(h.ready.ok); });
  auto checker = Make();
  checker->CheckAppNow();
  ASSERT_TRUE(state_.Get().ready.ok);
  snapshot_.draining = true;
  Health h = checker->Refresh();
  EXPECT_FALSE(h.ready.ok);
  EXPECT_FALSE(state_.Get().ready.ok);
  checker->Refresh();  // unchanged: no new notification
  EXPECT_EQ(seen, (std::vector<bool>{true, false}));
}

TEST_F(HealthCheckerTest, NoAppChecksWhenTheIntervalIsZero) {
  auto checker = Make(/*app_interval_ms=*/0);
  Health h = checker->Refresh();
  EXPECT_TRUE(h.ready.ok);
  EXPECT_TRUE(h.started.ok);
  EXPECT_FALSE(checker->app_status().enabled);
  checker->Start();
  checker->Stop();
  EXPECT_EQ(app_calls_, 0);
}

TEST_F(HealthCheckerTest, StaleSnapshotFailsLiveness) {
  auto checker = Make();
  now_ = snapshot_.published_ms + 60000;
  EXPECT_FALSE(checker->Refresh().live.ok);
  snapshot_.published_ms = now_;
  EXPECT_TRUE(checker->Refresh().live.ok);
}

}  // namespace
}  // namespace forkd::probes

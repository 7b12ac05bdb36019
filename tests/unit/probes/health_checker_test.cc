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

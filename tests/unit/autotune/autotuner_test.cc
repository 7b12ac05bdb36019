#include "server/autotune/autotuner.h"

#include <algorithm>
#include <map>
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace forkd::autotune {
namespace {

using config::AutotuneMode;
using ::testing::HasSubstr;

class FakeHost final : public HostStats {
 public:
  std::optional<ProcStats> Process(pid_t pid) override {
    ++process_reads;
    auto it = procs.find(pid);
    if (it == procs.end()) return std::nullopt;
    return it->second;
  }
  CgroupStats Cgroup() override { return cgroup; }

  std::map<pid_t, ProcStats> procs;
  CgroupStats cgroup{.cpu_limit_cores = 2};
  int process_reads = 0;
};

// Drives an Autotuner with a fake clock: each Step() is one tick with `n`
// more requests of `app_seconds` in the app (and `queued` waiting).
class AutotunerTest : public ::testing::Test {
 protected:
  std::unique_ptr<Autotuner> Make(AutotunerOptions o) {
    auto t = Autotuner::Create(o, &host_);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? std::move(*t) : nullptr;
  }
  void Observe(double app_seconds, uint64_t n) {
    for (auto* h : {&sample_.totals.upstream_duration,
                    &sample_.totals.request_duration}) {
      size_t i = 0;
      while (i < scoreboard::kDurationBuckets.size() &&
             app_seconds > scoreboard::kDurationBuckets[i]) {
        ++i;
      }
      h->buckets[i] += n;
      h->sum_us += static_cast<uint64_t>(app_seconds * 1e6) * n;
    }
  }
  // One tick every 250 ms; a 1 s window is four ticks.
  std::vector<Change> Step(Autotuner* t, double app_seconds, uint64_t n,
                           uint32_t in_flight) {
    sample_.now_ms += 250;
    Observe(app_seconds, n);
    sample_.in_flight = in_flight;
    std::vector<Change> c = t->OnTick(sample_);
    for (const Change& ch : c) {
      if (ch.knob == Knob::kWorkers) sample_.workers = ch.value;
      if (ch.knob == Knob::kThreads) sample_.threads = ch.value;
      if (ch.knob == Knob::kLimit) limit_ = ch.value;
    }
    return c;
  }
  // Runs `windows` windows (4 ticks each) of steady load.
  std::vector<Change> Windows(Autotuner* t, int windows, double app_seconds,
                              uint64_t per_tick, uint32_t in_flight) {
    std::vector<Change> all;
    for (int i = 0; i < 4 * windows; ++i) {
      for (const Change& c : Step(t, app_seconds, per_tick, in_flight)) {
        all.push_back(c);
      }
    }
    return all;
  }

  FakeHost host_;
  autotune::Sample sample_{
      .now_ms = 1000, .workers = 2, .threads = 4, .in_flight_cap = 100};
  int limit_ = 0;
};

TEST_F(AutotunerTest, OffChangesNothingButLearnsTheCurve) {
  auto t = Make({.mode = AutotuneMode::kOff});
  EXPECT_TRUE(Windows(t.get(), 3, 0.010, 50, 2).empty());
  EXPECT_TRUE(Windows(t.get(), 3, 0.020, 80, 8).empty());
  EXPECT_TRUE(Windows(t.get(), 3, 0.050, 90, 20).empty());
  TuneStatus s = t->Status();
  EXPECT_EQ(s.phase, "off");
  EXPECT_EQ(s.limit, 0);
  EXPECT_TRUE(s.recent.empty());
  // Windows straddling two loads add points in between.
  ASSERT_GE(s.report.points.size(), 3u);
  EXPECT_DOUBLE_EQ(s.report.points[0].concurrency, 2);
  EXPECT_NEAR(s.report.points[0].throughput, 200, 1);  // 50 per 250 ms
  EXPECT_GE(s.windows, 8u);
}

TEST_F(AutotunerTest, NoWindowBeforeItsTime) {
  auto t = Make({.mode = AutotuneMode::kLimit, .window_ms = 1000});
  Step(t.get(), 0.01, 100, 3);  // starts the window
  for (int i = 0; i < 3; ++i) Step(t.get(), 0.01, 100, 3);
  EXPECT_EQ(t->Status().windows, 0u);
  Step(t.get(), 0.01, 100, 3);
  EXPECT_EQ(t->Status().windows, 1u);
}

// Limit mode: minRTT at the minimum limit first, then the gradient grows
// the limit while latency stays near minRTT and the app is busy, and
// shrinks it when latency climbs (a queue inside the app).
TEST_F(AutotunerTest, LimitGrowsThenShrinksUnderOverload) {
  auto t = Make({.mode = AutotuneMode::kLimit});
  std::vector<Change> first = Step(t.get(), 0.01, 0, 0);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].knob, Knob::kLimit);
  EXPECT_EQ(first[0].value, 3);  // the minimum, to measure minRTT
  EXPECT_EQ(t->Status().phase, "min_rtt");
  Windows(t.get(), 2, 0.010, 25, 3);  // 200 samples
  EXPECT_EQ(t->Status().phase, "running");
  EXPECT_NEAR(t->Status().min_rtt_seconds, 0.0075, 0.003);
  // Busy at the limit, latency at minRTT: the limit grows.
  for (int i = 0; i < 8; ++i) {
    Windows(t.get(), 1, 0.010, 25, static_cast<uint32_t>(limit_));
  }
  const int grown = limit_;
  EXPECT_GT(grown, 10);
  EXPECT_LE(grown, 100);  // the in-flight cap
  // Latency 10x minRTT: the gradient halves it.
  Windows(t.get(), 2, 0.100, 25, static_cast<uint32_t>(limit_));
  EXPECT_LT(limit_, grown);
  TuneStatus s = t->Status();
  EXPECT_EQ(s.limit, limit_);
  EXPECT_GT(s.decisions_by_rule["gradient"], 0u);
  EXPECT_EQ(s.decisions_by_rule["min_rtt_done"], 1u);
  ASSERT_FALSE(s.recent.empty());
  EXPECT_THAT(s.recent.back().ToJson(), HasSubstr("\"controller\":\"limit\""));
  EXPECT_TRUE(
      std::any_of(s.recent.begin(), s.recent.end(), [&](const Decision& d) {
        return d.old_value == grown && d.new_value < grown;
      }));
}

TEST_F(AutotunerTest, LatencyTargetGuardsTheLimit) {
  auto t = Make({.mode = AutotuneMode::kLimit, .latency_target_seconds = 0.05});
  Step(t.get(), 0.01, 0, 0);
  Windows(t.get(), 2, 0.010, 25, 3);
  for (int i = 0; i < 8; ++i) {
    Windows(t.get(), 1, 0.010, 25, static_cast<uint32_t>(limit_));
  }
  const int grown = limit_;
  Windows(t.get(), 1, 0.200, 25, static_cast<uint32_t>(limit_));
  EXPECT_LT(limit_, grown);
  EXPECT_GT(t->Status().decisions_by_rule["latency_guard"] +
                t->Status().decisions_by_rule["gradient"],
            0u);
}

TEST_F(AutotunerTest, FullModeNeedsAppMode) {
  auto t = Autotuner::Create({.mode = AutotuneMode::kFull}, &host_);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("app mode"));
}

// Full mode: the configuration is brought into the bounds at once, the app
// processes' CPU is read from /proc (the fake), and the capacity
// controller's moves come out as workers/threads changes within bounds.
TEST_F(AutotunerTest, FullModeSizesTheAppWithinBounds) {
  sample_.app_pids = {101, 102};
  sample_.workers = 1;
  host_.procs[101] = {.cpu_seconds = 1, .resident_bytes = 50 << 20};
  host_.procs[102] = {.cpu_seconds = 1, .resident_bytes = 50 << 20};
  auto t = Make({.mode = AutotuneMode::kFull,
                 .app_mode = true,
                 .bounds = {.min_workers = 2,
                            .max_workers = 4,
                            .min_threads = 1,
                            .max_threads = 8}});
  std::vector<Change> first = Step(t.get(), 0.01, 0, 0);
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(first[0].knob, Knob::kWorkers);
  EXPECT_EQ(first[0].value, 2);  // 1 is below the bounds
  EXPECT_GT(host_.process_reads, 0);
  // A CPU-bound app: 5 ms CPU per request, the cores busy.
  std::vector<Change> all;
  for (int i = 0; i < 40; ++i) {
    host_.procs[101].cpu_seconds += 0.45;
    host_.procs[102].cpu_seconds += 0.45;
    for (const Change& c : Step(t.get(), 0.006, 45, 2)) all.push_back(c);
    EXPECT_GE(sample_.workers, 2);
    EXPECT_LE(sample_.workers, 4);
    EXPECT_GE(sample_.threads, 1);
    EXPECT_LE(sample_.threads, 8);
  }
  EXPECT_FALSE(all.empty());
  TuneStatus s = t->Status();
  EXPECT_NE(s.phase, "off");
  EXPECT_EQ(s.bounds.max_workers, 4);
  EXPECT_EQ(s.report.app_class, "cpu-bound");
  EXPECT_GT(s.decisions_by_rule["start"], 0u);
}

TEST_F(AutotunerTest, UpdateRefusesBadInputAndChangesNothing) {
  auto t = Make({.mode = AutotuneMode::kLimit});
  Step(t.get(), 0.01, 0, 0);
  auto bad = [&](TuneUpdate u) {
    auto r = t->Update(u, sample_);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(r.status().message());
  };
  EXPECT_THAT(bad({.mode = AutotuneMode::kFull}), HasSubstr("app mode"));
  EXPECT_THAT(bad({.pin_workers = 3}), HasSubstr("only in mode full"));
  EXPECT_THAT(bad({.pin_limit = -1}), HasSubstr("must be 1..100000"));
  EXPECT_THAT(bad({.mode = AutotuneMode::kOff, .pin_limit = 5}),
              HasSubstr("autotune is off"));
  EXPECT_THAT(bad({.latency_target_seconds = -1}), HasSubstr("0..3600"));
  EXPECT_EQ(t->Status().mode, AutotuneMode::kLimit);
  EXPECT_EQ(t->Status().limit, 3);
}

TEST_F(AutotunerTest, PinAndSwitchOffLive) {
  auto t = Make({.mode = AutotuneMode::kLimit});
  Step(t.get(), 0.01, 0, 0);
  auto pinned = t->Update({.pin_limit = 7}, sample_);
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  ASSERT_EQ(pinned->size(), 1u);
  EXPECT_EQ((*pinned)[0].value, 7);
  EXPECT_EQ(t->Status().phase, "pinned");
  // A pinned limit is not moved by the controller.
  EXPECT_TRUE(Windows(t.get(), 5, 0.2, 25, 7).empty());
  auto off = t->Update({.mode = AutotuneMode::kOff}, sample_);
  ASSERT_TRUE(off.ok());
  ASSERT_EQ(off->size(), 1u);
  EXPECT_EQ((*off)[0].knob, Knob::kLimit);
  EXPECT_EQ((*off)[0].value, 0);  // no limit any more
  EXPECT_EQ(t->Status().phase, "off");
  EXPECT_EQ(t->Status().pin_limit, 0);
  auto bounds = t->Update(
      {.mode = AutotuneMode::kLimit,
       .bounds = config::AutotuneBounds{.min_limit = 5, .max_limit = 9}},
      sample_);
  ASSERT_TRUE(bounds.ok());
  EXPECT_EQ(t->Status().limit, 5);
  EXPECT_EQ(t->Status().bounds.max_limit, 9);
}

// An operator's forkctl scale while full mode runs: without the pin the
// next decision puts the controller's own count back (it starts a CPU-bound
// app at (2 x CPU) + 1 = 5 and climbs from there); with it, the operator's
// 2 stays, the phase shows it, and unpinning hands the knob back.
TEST_F(AutotunerTest, OperatorScaleInFullModeIsAPin) {
  sample_.app_pids = {101, 102};
  host_.procs[101] = {.cpu_seconds = 1, .resident_bytes = 50 << 20};
  host_.procs[102] = {.cpu_seconds = 1, .resident_bytes = 50 << 20};
  auto t = Make({.mode = AutotuneMode::kFull,
                 .app_mode = true,
                 .bounds = {.max_workers = 8, .max_threads = 8}});
  auto busy = [&](int windows) {
    std::vector<Change> all;
    for (int i = 0; i < 4 * windows; ++i) {
      host_.procs[101].cpu_seconds += 0.2;
      host_.procs[102].cpu_seconds += 0.2;
      for (const Change& c : Step(t.get(), 0.006, 45, 2)) all.push_back(c);
    }
    return all;
  };
  busy(4);
  ASSERT_NE(sample_.workers, 2) << "the controller moved the workers";
  // forkctl scale 2: the arbiter has applied it, then tells the autotuner.
  sample_.workers = 2;
  std::vector<Change> now = t->OperatorResized(Knob::kWorkers, 2, sample_);
  EXPECT_TRUE(now.empty());
  EXPECT_EQ(t->Status().pin_workers, 2);
  EXPECT_EQ(t->Status().bounds.max_workers, 8);  // the bounds stay
  for (const Change& c : busy(30)) {
    EXPECT_NE(c.knob, Knob::kWorkers)
        << "undid the operator's scale to " << c.value;
  }
  EXPECT_EQ(sample_.workers, 2);
  EXPECT_EQ(t->Status().workers, 2);
  // Threads too; other modes take no pin.
  sample_.threads = 3;
  EXPECT_TRUE(t->OperatorResized(Knob::kThreads, 3, sample_).empty());
  EXPECT_EQ(t->Status().pin_threads, 3);
  EXPECT_EQ(t->Status().phase, "pinned");
  ASSERT_TRUE(t->Update({.pin_workers = 0, .pin_threads = 0}, sample_).ok());
  EXPECT_EQ(t->Status().pin_workers, 0);
  auto limit = Make({.mode = AutotuneMode::kLimit});
  Step(limit.get(), 0.01, 0, 0);
  EXPECT_TRUE(limit->OperatorResized(Knob::kWorkers, 3, sample_).empty());
  EXPECT_EQ(limit->Status().pin_workers, 0);
}

}  // namespace
}  // namespace forkd::autotune

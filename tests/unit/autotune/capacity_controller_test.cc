#include "server/autotune/capacity_controller.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/autotune/sim_app.h"

namespace forkd::autotune {
namespace {

using sim::AppModel;
using sim::SimApp;

constexpr int kMaxThreads = 32;
// Derived from 2 cores: max(2 x 2 + 1, 4 x 2).
constexpr int kMaxWorkers = 8;

// Drives a controller with a simulated app, one 1 s window at a time,
// applying every decision as the master would.
struct Loop {
  Loop(const AppModel& m, CapacityOptions o = {}, int w = 1, int t = 1,
       uint64_t seed = 7)
      : app(m, seed) {
    o.bounds.max_threads = kMaxThreads;
    opts = o;
    auto c = CapacityController::Create(o, w, t);
    EXPECT_TRUE(c.ok()) << c.status();
    ctl = *std::move(c);
  }

  // AUTOTUNE_TRACE=1 prints every decision and the report of each loop.
  ~Loop() {
    if (std::getenv("AUTOTUNE_TRACE") == nullptr) return;
    for (const Decision& d : all) std::cout << d.ToJson() << "\n";
    std::cout << ctl->report().ToText() << "\n";
  }

  // Runs `n` windows; returns the decisions made.
  std::vector<Decision> Run(int n) {
    std::vector<Decision> made;
    for (int i = 0; i < n; ++i) {
      now += 1;
      Window win = app.Run(ctl->workers(), ctl->threads(), now);
      configs.push_back({ctl->workers(), ctl->threads()});
      for (Decision& d : ctl->OnWindow(win)) {
        if (d.changes()) change_windows.push_back(window_index);
        made.push_back(d);
        all.push_back(d);
      }
      ++window_index;
    }
    return made;
  }

  // Windows until steady, at most `limit`; -1 if never. From a steady
  // state, first waits for the controller to leave it.
  int RunUntilSteady(int limit) {
    int i = 0;
    while (i < limit && ctl->phase() == CapacityController::Phase::kSteady) {
      Run(1);
      ++i;
    }
    for (; i < limit; ++i) {
      Run(1);
      if (ctl->phase() == CapacityController::Phase::kSteady) return i + 1;
    }
    return -1;
  }

  double Ratio() const {
    return app.Throughput(ctl->workers(), ctl->threads()) /
           app.BestConfig(kMaxWorkers, kMaxThreads).throughput;
  }

  CapacityOptions opts;
  SimApp app;
  std::unique_ptr<CapacityController> ctl;
  double now = 0;
  int window_index = 0;
  std::vector<std::pair<int, int>> configs;
  std::vector<int> change_windows;
  std::vector<Decision> all;
};

std::string Dump(const std::vector<Decision>& ds) {
  std::string out;
  for (const Decision& d : ds) out += d.ToJson() + "\n";
  return out;
}

struct Case {
  const char* name;
  AppModel model;
};

class Converges : public ::testing::TestWithParam<Case> {};

// Five seeds: the noise differs, the outcome must not.
TEST_P(Converges, WithinTenPercentOfTheBestInBoundedWindows) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Loop loop(GetParam().model, {}, 1, 1, seed);
    const int windows = loop.RunUntilSteady(60);
    ASSERT_GT(windows, 0) << Dump(loop.all);
    EXPECT_GE(loop.Ratio(), 0.9)
        << GetParam().name << " at -w " << loop.ctl->workers() << " --threads "
        << loop.ctl->threads() << "\n"
        << Dump(loop.all);
    // Bounds: never outside them, never over memory.
    for (auto [w, t] : loop.configs) {
      EXPECT_GE(w, 1);
      EXPECT_LE(w, kMaxWorkers);
      EXPECT_GE(t, 1);
      EXPECT_LE(t, kMaxThreads);
    }
    EXPECT_EQ(loop.app.memory_violations(), 0);
    // Hysteresis: every growth or knee move expected more than 5 %.
    for (const Decision& d : loop.all) {
      if (d.rule != Rule::kProbe && d.rule != Rule::kKnee) continue;
      ASSERT_FALSE(d.inputs.empty());
      EXPECT_EQ(d.inputs.back().first, "expected_gain");
      EXPECT_GT(d.inputs.back().second, 0.05) << d.ToJson();
    }
    // Steady: 30 more windows of noise change nothing.
    const std::vector<Decision> later = loop.Run(30);
    for (const Decision& d : later) EXPECT_FALSE(d.changes()) << d.ToJson();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Apps, Converges,
    ::testing::Values(Case{"cpu", sim::CpuBound()}, Case{"io", sim::IoBound()},
                      Case{"mixed", sim::Mixed()}, Case{"knee", sim::Knee()}),
    [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

TEST(CapacityController, ClassifiesFromMeasurements) {
  struct Want {
    AppModel m;
    AppClass c;
  };
  for (const Want& want : {Want{sim::CpuBound(), AppClass::kCpuBound},
                           Want{sim::IoBound(), AppClass::kIoBound},
                           Want{sim::Mixed(), AppClass::kMixed}}) {
    Loop loop(want.m);
    loop.Run(2);  // one point at -w 1 --threads 1
    EXPECT_EQ(loop.ctl->app_class(), want.c) << Dump(loop.all);
  }
}

TEST(CapacityController, StartsAtTwiceTheCoresPlusOneWithTheClassThreads) {
  Loop loop(sim::Mixed());
  const std::vector<Decision> d = loop.Run(2);
  ASSERT_EQ(d.size(), 2u) << Dump(d);
  EXPECT_EQ(d[0].rule, Rule::kStart);
  EXPECT_EQ(loop.ctl->workers(), 5);  // 2 cores
  // 1 + wait/compute = 1 + 20/5, within the histogram's resolution.
  EXPECT_GE(loop.ctl->threads(), 4);
  EXPECT_LE(loop.ctl->threads(), 6);
}

TEST(CapacityController, MemoryBoundsTheWorkers) {
  AppModel m = sim::IoBound();
  m.rss_base_bytes = 100e6;
  m.memory_max_bytes = 420e6;  // three processes and their threads at most
  Loop loop(m);
  ASSERT_GT(loop.RunUntilSteady(60), 0) << Dump(loop.all);
  EXPECT_EQ(loop.ctl->app_class(), AppClass::kMemoryBound);
  EXPECT_EQ(loop.app.memory_violations(), 0) << Dump(loop.all);
  for (auto [w, t] : loop.configs) {
    EXPECT_LE(loop.app.MemoryBytes(w, t), 0.9 * m.memory_max_bytes);
  }
  EXPECT_GE(loop.app.Throughput(loop.ctl->workers(), loop.ctl->threads()),
            0.9 * loop.app.BestConfig(kMaxWorkers, kMaxThreads).throughput)
      << Dump(loop.all);
}

TEST(CapacityController, ShedsProcessesWhenMemoryShrinks) {
  Loop loop(sim::CpuBound());
  ASSERT_GT(loop.RunUntilSteady(60), 0);
  const int before = loop.ctl->workers();
  ASSERT_GE(before, 2);
  AppModel m = sim::CpuBound();
  m.memory_max_bytes = 1.5 * (m.rss_base_bytes + m.rss_thread_bytes);
  loop.app.set_model(m);
  loop.Run(1);  // one window over memory.max: the violation that tells
  loop.Run(20);
  EXPECT_EQ(loop.ctl->workers(), 1) << Dump(loop.all);
  bool bound = false;
  for (const Decision& d : loop.all) bound |= d.rule == Rule::kBound;
  EXPECT_TRUE(bound) << Dump(loop.all);
  // Within the windows needed to see it (at most one point), then never.
  EXPECT_LE(loop.app.memory_violations(), 3);
}

TEST(CapacityController, ExplicitBoundsAreRespected) {
  CapacityOptions o;
  o.bounds.max_workers = 3;
  Loop loop(sim::IoBound(), o);
  loop.Run(60);
  for (auto [w, t] : loop.configs) {
    EXPECT_LE(w, 3);
    EXPECT_LE(t, kMaxThreads);
  }
  EXPECT_TRUE(CapacityController::Create(o, 4, 1).status().code() ==
              absl::StatusCode::kInvalidArgument);
}

TEST(CapacityController, CoolDownBetweenChanges) {
  CapacityOptions o;
  o.settle_windows = 2;
  o.measure_windows = 3;
  Loop loop(sim::Knee(), o);
  loop.Run(80);
  ASSERT_GE(loop.change_windows.size(), 2u);
  for (size_t i = 1; i < loop.change_windows.size(); ++i) {
    if (loop.change_windows[i] == loop.change_windows[i - 1]) continue;
    // Two knobs may change in one decision; otherwise a whole cool-down
    // (settle + measure windows) separates two changes.
    EXPECT_GE(loop.change_windows[i] - loop.change_windows[i - 1], 5)
        << Dump(loop.all);
  }
}

// Hysteresis: an app whose throughput does not depend on the configuration
// beyond a few percent gets no growth probe at all.
TEST(CapacityController, NoGrowthWithoutMoreThanFivePercentExpected) {
  AppModel m = sim::IoBound();
  m.clients = 4;  // load-limited: four requests in flight whatever we do
  Loop loop(m);
  loop.Run(60);
  for (const Decision& d : loop.all) {
    if (!d.changes()) continue;
    EXPECT_NE(d.rule, Rule::kProbe) << d.ToJson();
    if (d.rule != Rule::kStart && d.rule != Rule::kRevert) {
      EXPECT_LT(d.new_value, d.old_value) << d.ToJson();  // trims only
    }
  }
  EXPECT_EQ(loop.ctl->phase(), CapacityController::Phase::kSteady);
}

// A probe that measures less than the threshold is undone and penalised,
// and a configuration undone flap_limit times is not tried again.
TEST(CapacityController, UndoneProbesArePenalised) {
  Loop loop(sim::CpuBound());
  ASSERT_GT(loop.RunUntilSteady(60), 0);
  int reverts = 0;
  for (const Decision& d : loop.all) {
    if (d.rule == Rule::kRevert && d.changes()) ++reverts;
  }
  EXPECT_GE(reverts, 1) << Dump(loop.all);
  int penalised = 0;
  for (int w = 1; w <= kMaxWorkers; ++w) {
    penalised += loop.ctl->penalty(w, 1);
  }
  EXPECT_EQ(penalised, reverts);
}

TEST(CapacityController, ReconvergesWhenTheAppFlipsCpuToIo) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Loop loop(sim::CpuBound(), {}, 1, 1, seed);
    ASSERT_GT(loop.RunUntilSteady(60), 0);
    const size_t before = loop.all.size();
    loop.app.set_model(sim::IoBound());
    // Bounded: detect the change and search again within 60 windows.
    ASSERT_GT(loop.RunUntilSteady(60), 0) << Dump(loop.all);
    EXPECT_EQ(loop.ctl->app_class(), AppClass::kIoBound) << Dump(loop.all);
    EXPECT_GE(loop.Ratio(), 0.9) << Dump(loop.all);
    bool researched = false;
    for (size_t i = before; i < loop.all.size(); ++i) {
      researched |= loop.all[i].rule == Rule::kResearch;
    }
    EXPECT_TRUE(researched);
    EXPECT_EQ(loop.app.memory_violations(), 0);
  }
}

TEST(CapacityController, ReconvergesWhenTheAppFlipsIoToCpu) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Loop loop(sim::IoBound(), {}, 1, 1, seed);
    ASSERT_GT(loop.RunUntilSteady(60), 0);
    const size_t before = loop.all.size();
    loop.app.set_model(sim::CpuBound());
    // Bounded: detect the change and search again within 60 windows.
    ASSERT_GT(loop.RunUntilSteady(60), 0) << Dump(loop.all);
    EXPECT_EQ(loop.ctl->app_class(), AppClass::kCpuBound) << Dump(loop.all);
    EXPECT_GE(loop.Ratio(), 0.9) << Dump(loop.all);
    bool researched = false;
    for (size_t i = before; i < loop.all.size(); ++i) {
      researched |= loop.all[i].rule == Rule::kResearch;
    }
    EXPECT_TRUE(researched);
    EXPECT_EQ(loop.app.memory_violations(), 0);
  }
}

// Real /proc CPU comes in 10 ms ticks per process: a light app's CPU per
// request then jitters window to window by tens of percent with nothing
// changed. That jitter is measured noise, not drift: a steady controller
// stays steady (each false re-search costs throughput: it explores below),
// and a real flip is still seen.
TEST(CapacityController, CpuTickJitterIsNotDrift) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Loop loop(sim::IoBoundInTicks(), {}, 1, 1, seed);
    ASSERT_GT(loop.RunUntilSteady(60), 0) << Dump(loop.all);
    const size_t before = loop.all.size();
    loop.Run(60);
    for (size_t i = before; i < loop.all.size(); ++i) {
      EXPECT_NE(loop.all[i].rule, Rule::kResearch) << loop.all[i].ToJson();
    }
    loop.app.set_model(sim::CpuBound());
    ASSERT_GT(loop.RunUntilSteady(60), 0) << Dump(loop.all);
    EXPECT_EQ(loop.ctl->app_class(), AppClass::kCpuBound) << Dump(loop.all);
  }
}

// A real closed loop of 64 clients on 3 x 24 = 72 slots: 89 % of the slots
// busy, but nobody waits in forkd's queue, so more threads cannot serve
// more. No probe up (with real processes it was tried, measured +0 % and
// undone, costing a rolling restart and two windows each time).
TEST(CapacityController, NoProbeUpWhenNobodyWaitsForASlot) {
  CapacityOptions o;
  o.bounds = {
      .min_workers = 1, .max_workers = 3, .min_threads = 1, .max_threads = 32};
  auto c = CapacityController::Create(o, 3, 24);
  ASSERT_TRUE(c.ok()) << c.status();
  auto window = [](double end, double queue) {
    Window w;
    w.end_seconds = end;
    w.duration_seconds = 1;
    w.workers = 3;
    w.threads = 24;
    // 3.125 ms CPU per request against an app p50 of 75 ms: I/O-bound,
    // whose class threads (1 + wait/compute) are the 24 it runs.
    w.completed = 500;
    for (int i = 0; i < 500; ++i) {
      w.app_latency.Observe(0.051);
      w.latency.Observe(0.052);
    }
    w.mean_in_flight = 63.9;
    w.mean_queue_length = queue;
    w.app_cpu_seconds = 500 * 0.003125;
    w.cpu_limit_cores = 2;
    return w;
  };
  std::vector<Decision> ds = (*c)->OnWindow(window(1, 0));
  for (const Decision& d : (*c)->OnWindow(window(2, 0))) ds.push_back(d);
  ASSERT_FALSE(ds.empty());
  for (const Decision& d : ds) {
    EXPECT_FALSE(d.rule == Rule::kProbe && d.new_value > d.old_value)
        << d.ToJson();
  }
  // With requests waiting for a slot, the same busy slots are worth a probe.
  auto q = CapacityController::Create(o, 3, 24);
  ASSERT_TRUE(q.ok());
  std::vector<Decision> waiting = (*q)->OnWindow(window(1, 20));
  for (const Decision& d : (*q)->OnWindow(window(2, 20))) waiting.push_back(d);
  EXPECT_TRUE(std::any_of(waiting.begin(), waiting.end(),
                          [](const Decision& d) {
                            return d.rule == Rule::kProbe &&
                                   d.knob == Knob::kThreads &&
                                   d.new_value > d.old_value;
                          }))
      << Dump(waiting);
}

// A stall of the machine: one window of a point with almost no throughput.
// The point is measured again rather than taken (it would blow the noise
// estimate up and every threshold with it), and a steady app's noise stays
// small.
TEST(CapacityController, StalledWindowIsMeasuredAgain) {
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Loop loop(sim::IoBound(), {}, 1, 1, seed);
    ASSERT_GT(loop.RunUntilSteady(60), 0) << Dump(loop.all);
    // Leave steady (a real change), then stall one window of the search.
    loop.app.set_model(sim::CpuBound());
    std::vector<Decision> made;
    bool stalled = false;
    int in_search = 0;
    for (int i = 0; i < 40; ++i) {
      loop.now += 1;
      Window win =
          loop.app.Run(loop.ctl->workers(), loop.ctl->threads(), loop.now);
      // The second window of the search: the first is the cool-down.
      if (loop.ctl->phase() == CapacityController::Phase::kSearch &&
          ++in_search == 2) {
        stalled = true;
        win.completed /= 200;
        win.app_cpu_seconds /= 200;
      }
      for (Decision& d : loop.ctl->OnWindow(win)) made.push_back(d);
    }
    ASSERT_TRUE(stalled);
    bool remeasured = false;
    for (const Decision& d : made) {
      remeasured |= d.rule == Rule::kRemeasure;
      for (const auto& [k, v] : d.inputs) {
        if (k == "noise") EXPECT_LT(v, 0.2) << d.ToJson();
      }
    }
    EXPECT_TRUE(remeasured) << Dump(made);
  }
}

// An I/O-bound app at the thread bound with requests waiting: on one core
// a CPU-bound phase leaves one process; when the app turns I/O-bound it
// gets 32 threads (the bound) for 64 clients, and must then grow by
// processes rather than stay at half the clients' concurrency.
TEST(CapacityController, IoBoundAtTheThreadBoundGrowsProcesses) {
  sim::AppModel cpu = sim::CpuBound(), io = sim::IoBound();
  cpu.cores = io.cores = 1;
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Loop loop(cpu, {}, 1, 1, seed);
    ASSERT_GT(loop.RunUntilSteady(60), 0);
    loop.app.set_model(io);
    ASSERT_GT(loop.RunUntilSteady(60), 0) << Dump(loop.all);
    EXPECT_EQ(loop.ctl->threads(), kMaxThreads) << Dump(loop.all);
    EXPECT_GE(loop.ctl->workers(), 2) << Dump(loop.all);
    EXPECT_GE(loop.Ratio(), 0.9) << Dump(loop.all);
  }
}

TEST(CapacityController, KneeAppReportsItsKnee) {
  Loop loop(sim::Knee());
  ASSERT_GT(loop.RunUntilSteady(60), 0);
  const Report r = loop.ctl->report();
  ASSERT_TRUE(r.usl_valid) << r.ToText();
  // The model's knee is sqrt((1 - 0.02) / 0.002) = 22.
  EXPECT_GT(r.knee, 11) << r.ToText();
  EXPECT_LT(r.knee, 44) << r.ToText();
  EXPECT_EQ(r.RecommendedFlags(), "-w " + std::to_string(loop.ctl->workers()) +
                                      " --threads " +
                                      std::to_string(loop.ctl->threads()));
  EXPECT_GE(r.points.size(), 3u);
}

TEST(CapacityController, DecisionsAreOneJsonLineEach) {
  Loop loop(sim::Mixed());
  loop.Run(30);
  ASSERT_FALSE(loop.all.empty());
  for (const Decision& d : loop.all) {
    const std::string j = d.ToJson();
    EXPECT_EQ(j.find('\n'), std::string::npos);
    EXPECT_EQ(j.front(), '{');
    EXPECT_NE(j.find("\"controller\":\"capacity\""), std::string::npos);
    EXPECT_FALSE(d.why.empty());
  }
}

}  // namespace
}  // namespace forkd::autotune

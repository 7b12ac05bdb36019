#include "server/autotune/window.h"

#include "gtest/gtest.h"

namespace forkd::autotune {
namespace {

TEST(LatencyHistogram, EmptyAnswersZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.Quantile(0.5), 0);
  EXPECT_EQ(h.Mean(), 0);
}

TEST(LatencyHistogram, CountsInTheScoreboardBuckets) {
  LatencyHistogram h;
  h.Observe(0.0003);  // le 0.0005
  h.Observe(0.005);   // le 0.005 (bounds are inclusive)
  h.Observe(0.006);   // le 0.01
  h.Observe(20);      // +Inf
  EXPECT_EQ(h.counts()[0], 1u);
  EXPECT_EQ(h.counts()[3], 1u);
  EXPECT_EQ(h.counts()[4], 1u);
  EXPECT_EQ(h.counts().back(), 1u);
  EXPECT_EQ(h.count(), 4u);
}

TEST(LatencyHistogram, QuantilesInterpolateInsideTheBucket) {
  LatencyHistogram h;
  // 100 in (0.01, 0.025]: p50 is halfway through that bucket.
  h.Observe(0.02, 100);
  EXPECT_NEAR(h.Quantile(0.5), 0.0175, 1e-9);
  EXPECT_NEAR(h.Quantile(1.0), 0.025, 1e-9);
  // 100 more in (0.05, 0.1]: p99 is near its top, p50 at the first's top.
  h.Observe(0.07, 100);
  EXPECT_NEAR(h.Quantile(0.5), 0.025, 1e-9);
  EXPECT_NEAR(h.Quantile(0.99), 0.05 + 0.05 * 0.98, 1e-9);
  EXPECT_NEAR(h.Mean(), 0.045, 1e-9);
}

TEST(LatencyHistogram, InfBucketAnswersTheLastBound) {
  LatencyHistogram h;
  h.Observe(30, 10);
  EXPECT_EQ(h.Quantile(0.99), 10.0);
}

TEST(LatencyHistogram, FromScoreboardCountsAndMerge) {
  LatencyHistogram::Counts c{};
  c[5] = 4;  // (0.01, 0.025]
  LatencyHistogram a(c, 0.08);
  EXPECT_EQ(a.count(), 4u);
  EXPECT_NEAR(a.Mean(), 0.02, 1e-12);
  LatencyHistogram b;
  b.Observe(0.02, 4);
  a.Add(b);
  EXPECT_EQ(a.count(), 8u);
  EXPECT_EQ(a.counts()[5], 8u);
}

TEST(Window, DerivedRates) {
  Window w;
  w.duration_seconds = 2;
  w.completed = 400;
  w.app_cpu_seconds = 2;
  w.nr_periods = 20;
  w.nr_throttled = 5;
  w.rss_bytes = {100, 300};
  EXPECT_EQ(w.Throughput(), 200);
  EXPECT_EQ(w.CpuPerRequest(), 0.005);
  EXPECT_EQ(w.CpuCoresUsed(), 1);
  EXPECT_EQ(w.ThrottledFraction(), 0.25);
  EXPECT_EQ(w.MeanRssBytes(), 200);
  EXPECT_EQ(w.TotalRssBytes(), 400u);
  Window empty;
  EXPECT_EQ(empty.Throughput(), 0);
  EXPECT_EQ(empty.CpuPerRequest(), 0);
  EXPECT_EQ(empty.ThrottledFraction(), 0);
}

}  // namespace
}  // namespace forkd::autotune

#include "server/admin/admin_stats.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace forkd::admin {
namespace {

TEST(AdminStatsTest, CountsByCommandAndResult) {
  AdminStats stats;
  stats.Record("ScaleWorkers", "ok");
  stats.Record("ScaleWorkers", "ok");
  stats.Record("ScaleWorkers", "invalid_argument");
  stats.Record("Drain", "permission_denied");
  EXPECT_EQ(stats.Count("ScaleWorkers", "ok"), 2u);
  EXPECT_EQ(stats.Count("ScaleWorkers", "invalid_argument"), 1u);
  EXPECT_EQ(stats.Count("Drain", "ok"), 0u);
  std::vector<AdminStats::Entry> want = {
      {"Drain", "permission_denied", 1},
      {"ScaleWorkers", "invalid_argument", 1},
      {"ScaleWorkers", "ok", 2},
  };
  EXPECT_EQ(stats.Counts(), want);
}

TEST(AdminStatsTest, RecordsFromManyThreads) {
  AdminStats stats;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) stats.Record("GetStatus", "ok");
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(stats.Count("GetStatus", "ok"), 4000u);
}

TEST(AdminStatsTest, ResultNamesFollowGrpcCodes) {
  EXPECT_EQ(AdminStats::ResultName(0), "ok");
  EXPECT_EQ(AdminStats::ResultName(3), "invalid_argument");
  EXPECT_EQ(AdminStats::ResultName(7), "permission_denied");
  EXPECT_EQ(AdminStats::ResultName(16), "unauthenticated");
  EXPECT_EQ(AdminStats::ResultName(17), "unknown");
  EXPECT_EQ(AdminStats::ResultName(-1), "unknown");
}

}  // namespace
}  // namespace forkd::admin

#include "server/admin/process_stats.h"

#include <unistd.h>

#include "gtest/gtest.h"

namespace forkd::admin {
namespace {

// Field 2 holds ") (" and spaces on purpose; utime 250, stime 150 ticks,
// num_threads 7; statm: 3000 resident pages.
constexpr char kStat[] =
    "4242 (forkd ) (x y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 "
    "20 0 7 0 12345 100000000 3000 18446744073709551615 1 1 0 0 0 0 0 4096 "
    "0 0 0 0 17 1 0 0 0 0 0\n";
constexpr char kStatm[] = "25000 3000 500 100 0 2000 0\n";

TEST(ProcessStatsTest, ParsesStatAndStatm) {
  absl::StatusOr<ProcessStats> s = ParseProcStat(kStat, kStatm, 100, 4096);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->rss_bytes, 3000u * 4096u);
  EXPECT_DOUBLE_EQ(s->cpu_seconds, 4.0);
  EXPECT_EQ(s->threads, 7u);
}

TEST(ProcessStatsTest, RejectsGarbage) {
  EXPECT_FALSE(ParseProcStat("4242 forkd S 1", kStatm, 100, 4096).ok());
  EXPECT_FALSE(ParseProcStat("4242 (forkd) S 1 2 3", kStatm, 100, 4096).ok());
  EXPECT_FALSE(ParseProcStat(kStat, "25000", 100, 4096).ok());
}

TEST(ProcessStatsTest, ReadsThisProcess) {
  absl::StatusOr<ProcessStats> s = ReadProcessStats(getpid());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_GT(s->rss_bytes, 0u);
  EXPECT_GE(s->threads, 1u);
  EXPECT_EQ(ReadProcessStats(0x7ffffff0).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace forkd::admin

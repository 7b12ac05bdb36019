#include "server/common/proc_stats.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace forkd {
namespace {


// A /proc/PID/stat line whose command name holds spaces and parentheses.
constexpr char kStat[] =
    "4242 (forkd: a (b) c) S 1 4242 4242 0 -1 4194560 1000 0 0 0 "
    "250 130 0 0 20 0 3 0 98765 123456789 1234 18446744073709551615 "
    "1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
constexpr char kStatm[] = "30000 1234 500 100 0 2000 0\n";

TEST(ProcStatsTest, ParsesCpuRssAndStartTime) {
  absl::StatusOr<ProcStats> s = ParseProcStats(kStat, kStatm, 100, 4096);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_DOUBLE_EQ(s->cpu_seconds, 3.8);  // (250 + 130) / 100
  EXPECT_EQ(s->resident_bytes, 1234u * 4096u);
  EXPECT_DOUBLE_EQ(s->start_time_seconds, 987.65);
  EXPECT_EQ(s->threads, 3u);
}

TEST(ProcStatsTest, MalformedTextIsAnError) {
  EXPECT_FALSE(ParseProcStats("4242 forkd S 1", kStatm, 100, 4096).ok());
  EXPECT_FALSE(ParseProcStats("4242 (forkd) S 1 2 3", kStatm, 100, 4096).ok());
  EXPECT_FALSE(ParseProcStats(kStat, "30000", 100, 4096).ok());
  EXPECT_FALSE(ParseProcStats(kStat, "30000 x", 100, 4096).ok());
}

TEST(ProcStatsTest, ReadsAProcTree) {
  std::string root =
      ::testing::TempDir() + "/forkd_proc_" + std::to_string(getpid());
  std::string dir = root + "/77";
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  std::ofstream(dir + "/stat") << kStat;
  std::ofstream(dir + "/statm") << kStatm;
  std::ofstream(root + "/stat")
      << "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
  absl::StatusOr<ProcStats> s = ReadProcStats(77, root);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->resident_bytes,
            1234u * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)));
  EXPECT_DOUBLE_EQ(BootTimeSeconds(root), 1700000000.0);
  absl::StatusOr<ProcStats> gone = ReadProcStats(78, root);
  EXPECT_TRUE(absl::IsNotFound(gone.status())) << gone.status();
}

TEST(ProcStatsTest, ReadsThisProcess) {
  absl::StatusOr<ProcStats> s = ReadProcStats(getpid());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_GT(s->resident_bytes, 0u);
  EXPECT_GE(s->threads, 1u);
  EXPECT_GT(BootTimeSeconds(), 1e9);
}

}  // namespace
}  // namespace forkd

#include "server/config/cpu_limit.h"

#include <string>

#include "gtest/gtest.h"

namespace forkd::config {
namespace {

std::string Fixture(const std::string& name) {
  return std::string(FORKD_TESTDATA_DIR) + "/config/testdata/" + name;
}

// With a cgroup namespace the process sees itself at the root.
constexpr char kV2Root[] = "0::/\n";

TEST(EffectiveCpusTest, V2QuotaLimitsOnlineCpus) {
  EXPECT_EQ(EffectiveCpus(Fixture("cgroup_v2_quota"), kV2Root, 8), 2);
}

TEST(EffectiveCpusTest, V2QuotaAboveOnlineCpusKeepsOnline) {
  EXPECT_EQ(EffectiveCpus(Fixture("cgroup_v2_quota"), kV2Root, 1), 1);
}

TEST(EffectiveCpusTest, V2UnlimitedUsesOnlineCpus) {
  EXPECT_EQ(EffectiveCpus(Fixture("cgroup_v2_unlimited"), kV2Root, 8), 8);
  // The cpuset (16 CPUs) still caps a larger online count.
  EXPECT_EQ(EffectiveCpus(Fixture("cgroup_v2_unlimited"), kV2Root, 64), 16);
}

TEST(EffectiveCpusTest, V2HalfCpuRoundsUpToOne) {
  EXPECT_EQ(EffectiveCpus(Fixture("cgroup_v2_fractional"), kV2Root, 8), 1);
}

TEST(EffectiveCpusTest, V2OneAndAHalfCpusRoundsUpToTwo) {
  EXPECT_EQ(EffectiveCpus(Fixture("cgroup_v2_fractional_1_5"), kV2Root, 8), 2);
}

TEST(EffectiveCpusTest, V2CpusetSmallerThanQuotaWins) {
  EXPECT_EQ(EffectiveCpus(Fixture("cgroup_v2_cpuset"), kV2Root, 8), 2);
}

TEST(EffectiveCpusTest, V2CpusetListCountsRangesAndSingles) {
  // "0-3,6,8-9" is 4 + 1 + 2 CPUs.
  EXPECT_EQ(EffectiveCpus(Fixture("cgroup_v2_cpuset_list"), kV2Root, 64), 7);
}

TEST(EffectiveCpusTest, V2NestedPathFromProcSelfCgroup) {
  EXPECT_EQ(EffectiveCpus(Fixture("cgroup_v2_nested"),
                          "0::/kubepods.slice/pod1234/ctr-abc\n", 16),
            3);
  // A sibling container has its own limit.
  EXPECT_EQ(EffectiveCpus(Fixture("cgroup_v2_nested"),
                          "0::/kubepods.slice/pod1234/ctr-other\n", 16),
            1);
}

TEST(EffectiveCpusTest, V2AncestorLimitBindsTheChild) {
  EXPECT_EQ(
      EffectiveCpus(Fixture("cgroup_v2_parent_limit"), "0::/app/worker\n", 16),
      3);
}

TEST(EffectiveCpusTest, V2MissingPathFallsBackToTheRoot) {
  // The container mounts its own cgroup at the root, so the host path from
  // /proc/self/cgroup does not exist under it.
  EXPECT_EQ(EffectiveCpus(Fixture("cgroup_v2_quota"),
                          "0::/kubepods/burstable/pod-x/ctr-y\n", 8),
            2);
}

TEST(EffectiveCpusTest, V1QuotaRoundsUp) {
  EXPECT_EQ(EffectiveCpus(Fixture("cgroup_v1_quota"),
                          "4:cpu,cpuacct:/\n3:cpuset:/\n", 8),
            2);
}

TEST(EffectiveCpusTest, V1MissingPathFallsBackToTheMountRoot) {
  EXPECT_EQ(
      EffectiveCpus(Fixture("cgroup_v1_quota"),
                    "4:cpu,cpuacct:/docker/zzz\n3:cpuset:/docker/zzz\n", 8),
      2);
}

TEST(EffectiveCpusTest, V1UnlimitedQuotaUsesOnlineCpus) {
  EXPECT_EQ(
      EffectiveCpus(Fixture("cgroup_v1_unlimited"), "4:cpu,cpuacct:/\n", 6), 6);
}

TEST(EffectiveCpusTest, V1HalfCpuUnderPlainCpuMountRoundsUpToOne) {
  EXPECT_EQ(EffectiveCpus(Fixture("cgroup_v1_fractional"), "5:cpu:/\n", 8), 1);
}

TEST(EffectiveCpusTest, V1NestedPathWithCpusetSmallerThanQuota) {
  const char* self =
      "12:memory:/docker/abc123\n"
      "4:cpu,cpuacct:/docker/abc123\n"
      "3:cpuset:/docker/abc123\n"
      "0::/\n";
  EXPECT_EQ(EffectiveCpus(Fixture("cgroup_v1_nested"), self, 32), 2);
}

TEST(EffectiveCpusTest, NoCgroupFilesMeansOnlineCpus) {
  EXPECT_EQ(EffectiveCpus(Fixture("does_not_exist"), kV2Root, 12), 12);
  EXPECT_EQ(EffectiveCpus(Fixture("does_not_exist"), "", 3), 3);
}

TEST(EffectiveCpusTest, NeverBelowOne) {
  EXPECT_EQ(EffectiveCpus(Fixture("does_not_exist"), "", 0), 1);
  EXPECT_EQ(EffectiveCpus(Fixture("does_not_exist"), "", -4), 1);
}

TEST(EffectiveCpusTest, HostEffectiveCpusIsPositive) {
  EXPECT_GE(HostEffectiveCpus(), 1);
}

TEST(DefaultWorkersTest, TwiceCpusPlusOne) {
  EXPECT_EQ(DefaultWorkers(1), 3);
  EXPECT_EQ(DefaultWorkers(4), 9);
}

}  // namespace
}  // namespace forkd::config

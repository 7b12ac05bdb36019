// What the autotuner reads from the OS: /proc of the app processes and the
// cgroup's CPU and memory files. Behind an interface so the Autotuner is
// unit-tested with a fake (tests/unit/autotune/autotuner_test.cc).
#ifndef FORKD_SERVER_AUTOTUNE_HOST_STATS_H_
#define FORKD_SERVER_AUTOTUNE_HOST_STATS_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "server/common/proc_stats.h"

namespace forkd::autotune {

struct CgroupStats {
  double cpu_limit_cores = 0;  // cpu.max quota/period, else the host's CPUs
  uint64_t nr_periods = 0;     // cpu.stat counters (cumulative)
  uint64_t nr_throttled = 0;
  uint64_t throttled_usec = 0;
  uint64_t memory_max_bytes = 0;  // memory.max; 0 = no limit
};

class HostStats {
 public:
  virtual ~HostStats() = default;
  // CPU seconds and RSS of `pid`; nullopt when it is gone.
  virtual std::optional<ProcStats> Process(pid_t pid) = 0;
  // This process's cgroup (forkd and, in app mode, the app share it).
  virtual CgroupStats Cgroup() = 0;
};

// Reads /proc/PID/stat(m) and the cgroup v2 files of /proc/self/cgroup's
// path under `cgroup_root`. Missing files read as "no limit"/0.
class HostStatsImpl final : public HostStats {
 public:
  explicit HostStatsImpl(std::string cgroup_root = "/sys/fs/cgroup",
                         std::string proc_root = "/proc");
  std::optional<ProcStats> Process(pid_t pid) override;
  CgroupStats Cgroup() override;

 private:
  std::string proc_root_;
  std::string cgroup_dir_;
  int host_cpus_;
};

// Parses cpu.max ("max 100000" or "50000 100000") into cores, 0 for none.
double ParseCpuMaxCores(std::string_view text);
// Fills the three counters of `out` from cpu.stat's text.
void ParseCpuStat(std::string_view text, CgroupStats* out);

}  // namespace forkd::autotune

#endif  // FORKD_SERVER_AUTOTUNE_HOST_STATS_H_

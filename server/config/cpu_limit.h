// How many CPUs this container may use, honouring cgroup limits, and the
// default worker count derived from it.
#ifndef FORKD_SERVER_CONFIG_CPU_LIMIT_H_
#define FORKD_SERVER_CONFIG_CPU_LIMIT_H_

#include <string>

namespace forkd::config {

// Effective CPU count: the smallest of the cgroup v2 `cpu.max` quota/period,
// the cgroup v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us` quota, the cpuset
// (`cpuset.cpus.effective` / `cpuset.cpus`) and `online_cpus`; fractional
// quotas round up; never below 1. `cgroup_root` is normally "/sys/fs/cgroup";
// tests point it at fixture trees. `proc_self_cgroup` is the text of
// /proc/self/cgroup, used to find this process's cgroup directory (fixtures
// pass their own). Missing or unreadable files mean "no limit from there".
int EffectiveCpus(const std::string& cgroup_root,
                  const std::string& proc_self_cgroup, int online_cpus);

// EffectiveCpus() for this process (reads /sys/fs/cgroup, /proc/self/cgroup
// and sysconf(_SC_NPROCESSORS_ONLN), narrowed by sched_getaffinity()).
int HostEffectiveCpus();

// Gunicorn's rule of thumb: (2 x cpus) + 1.
inline int DefaultWorkers(int cpus) { return 2 * cpus + 1; }

}  // namespace forkd::config

#endif  // FORKD_SERVER_CONFIG_CPU_LIMIT_H_

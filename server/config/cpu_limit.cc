#include "server/config/cpu_limit.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "server/common/small_file.h"

namespace forkd::config {
namespace {

bool IsDirectory(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  close(fd);
  return true;
}

// Ceiling of quota/period CPUs, at least 1; nullopt for "no limit".
std::optional<int64_t> QuotaCpus(int64_t quota, int64_t period) {
  if (quota <= 0 || period <= 0) return std::nullopt;
  return std::max<int64_t>(1, (quota + period - 1) / period);
}

// cgroup v2 cpu.max: "max 100000" (no limit) or "50000 100000".
std::optional<int64_t> ParseCpuMax(absl::string_view text) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(absl::StripAsciiWhitespace(text), ' ', absl::SkipEmpty());
  if (parts.empty() || parts[0] == "max") return std::nullopt;
  int64_t quota = 0;
  int64_t period = 100000;  // the kernel's default when only one is shown
  if (!absl::SimpleAtoi(parts[0], &quota)) return std::nullopt;
  if (parts.size() > 1 && !absl::SimpleAtoi(parts[1], &period)) {
    return std::nullopt;
  }
  return QuotaCpus(quota, period);
}

// The cpuset list format: "0-3,6,8-9" has 7 CPUs.
std::optional<int64_t> ParseCpuList(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (text.empty()) return std::nullopt;
  int64_t count = 0;
  for (absl::string_view range : absl::StrSplit(text, ',')) {
    range = absl::StripAsciiWhitespace(range);
    std::vector<absl::string_view> ends = absl::StrSplit(range, '-');
    int64_t lo = 0;
    int64_t hi = 0;
    if (ends.size() == 1) {
      if (!absl::SimpleAtoi(ends[0], &lo)) return std::nullopt;
      hi = lo;
    } else if (ends.size() == 2) {
      if (!absl::SimpleAtoi(ends[0], &lo) || !absl::SimpleAtoi(ends[1], &hi)) {
        return std::nullopt;
      }
    } else {
      return std::nullopt;
    }
    if (lo < 0 || hi < lo) return std::nullopt;
    count += hi - lo + 1;
  }
  return count > 0 ? std::optional<int64_t>(count) : std::nullopt;
}

// `base` + `cgroup_path` and every ancestor up to `base` itself, deepest
// first. Limits on an ancestor bind the process too, and walking up ends at
// `base`, which is where a container sees its own cgroup when the path from
// /proc/self/cgroup does not exist in its mount namespace.
std::vector<std::string> Candidates(const std::string& base,
                                    absl::string_view cgroup_path) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(cgroup_path, '/', absl::SkipEmpty());
  std::vector<std::string> dirs;
  for (size_t n = parts.size() + 1; n-- > 0;) {
    std::string dir = base;
    for (size_t i = 0; i < n; ++i) absl::StrAppend(&dir, "/", parts[i]);
    dirs.push_back(std::move(dir));
  }
  return dirs;
}

// What /proc/self/cgroup says about this process.
struct CgroupPaths {
  std::string v2 = "/";
  std::string cpu_controllers = "cpu,cpuacct";  // v1 mount directory name
  std::string cpu_v1 = "/";
  std::string cpuset_v1 = "/";
};

CgroupPaths ParseProcSelfCgroup(absl::string_view text) {
  CgroupPaths paths;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    // "hierarchy-ID:controller-list:cgroup-path"; the path may hold ':'.
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (fields.size() != 3) continue;
    absl::string_view id = fields[0];
    absl::string_view controllers = fields[1];
    std::string path(absl::StripAsciiWhitespace(fields[2]));
    if (id == "0" && controllers.empty()) {
      paths.v2 = path;
      continue;
    }
    for (absl::string_view c : absl::StrSplit(controllers, ',')) {
      if (c == "cpu") {
        paths.cpu_v1 = path;
        paths.cpu_controllers = std::string(controllers);
      } else if (c == "cpuset") {
        paths.cpuset_v1 = path;
      }
    }
  }
  return paths;
}

}  // namespace

int EffectiveCpus(const std::string& cgroup_root,
                  const std::string& proc_self_cgroup, int online_cpus) {
  int64_t cpus = online_cpus > 0 ? online_cpus : INT_MAX;
  auto limit = [&cpus](std::optional<int64_t> n) {
    if (n.has_value()) cpus = std::min(cpus, *n);
  };
  const CgroupPaths paths = ParseProcSelfCgroup(proc_self_cgroup);

  // cgroup v2 (unified): cpu.max and cpuset.cpus.effective.
  for (const std::string& dir : Candidates(cgroup_root, paths.v2)) {
    if (auto text = common::ReadSmallFileIfAny(dir + "/cpu.max"))
      limit(ParseCpuMax(*text));
    if (auto text =
            common::ReadSmallFileIfAny(dir + "/cpuset.cpus.effective")) {
      limit(ParseCpuList(*text));
    }
  }

  // cgroup v1: the cpu controller is mounted as "cpu,cpuacct" (or "cpu").
  for (const std::string& mount :
       {paths.cpu_controllers, std::string("cpu,cpuacct"),
        std::string("cpuacct,cpu"), std::string("cpu")}) {
    std::string base = absl::StrCat(cgroup_root, "/", mount);
    if (!IsDirectory(base)) continue;
    for (const std::string& dir : Candidates(base, paths.cpu_v1)) {
      auto quota_text = common::ReadSmallFileIfAny(dir + "/cpu.cfs_quota_us");
      auto period_text = common::ReadSmallFileIfAny(dir + "/cpu.cfs_period_us");
      int64_t quota = 0;
      int64_t period = 0;
      if (quota_text && period_text &&
          absl::SimpleAtoi(absl::StripAsciiWhitespace(*quota_text), &quota) &&
          absl::SimpleAtoi(absl::StripAsciiWhitespace(*period_text), &period)) {
        limit(QuotaCpus(quota, period));  // quota -1 means none
      }
    }
    break;  // one mount holds the cpu controller
  }
  for (const std::string& dir :
       Candidates(cgroup_root + "/cpuset", paths.cpuset_v1)) {
    if (auto text = common::ReadSmallFileIfAny(dir + "/cpuset.cpus"))
      limit(ParseCpuList(*text));
  }

  if (cpus == INT_MAX && online_cpus <= 0) return 1;  // nothing known
  return static_cast<int>(std::clamp<int64_t>(cpus, 1, INT_MAX));
}

int HostEffectiveCpus() {
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  int cpus = online > 0 ? static_cast<int>(std::min<long>(online, INT_MAX)) : 1;
  // taskset/affinity narrows what this process may run on, like a cpuset.
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int allowed = CPU_COUNT(&set);
    if (allowed > 0) cpus = std::min(cpus, allowed);
  }
  std::string self =
      common::ReadSmallFileIfAny("/proc/self/cgroup").value_or("");
  return EffectiveCpus("/sys/fs/cgroup", self, cpus);
}

}  // namespace forkd::config

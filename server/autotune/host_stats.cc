#include "server/autotune/host_stats.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "server/common/small_file.h"
#include "server/config/cpu_limit.h"

namespace forkd::autotune {
namespace {

// The unified hierarchy's path of this process ("0::/kubepods/..."); the
// root when the path is not visible in this mount namespace.
std::string CgroupDir(const std::string& root, const std::string& proc_root) {
  std::string self =
      common::ReadSmallFileIfAny(proc_root + "/self/cgroup").value_or("");
  for (absl::string_view line : absl::StrSplit(self, '\n')) {
    if (!absl::ConsumePrefix(&line, "0::")) continue;
    std::string dir = absl::StrCat(root, absl::StripSuffix(line, "/"));
    if (common::ReadSmallFileIfAny(dir + "/cpu.stat")) return dir;
  }
  return root;
}

}  // namespace

double ParseCpuMaxCores(std::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(
      absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size())),
      ' ', absl::SkipEmpty());
  if (parts.empty() || parts[0] == "max") return 0;
  double quota = 0;
  double period = 100000;
  if (!absl::SimpleAtod(parts[0], &quota)) return 0;
  if (parts.size() > 1 && !absl::SimpleAtod(parts[1], &period)) return 0;
  return quota > 0 && period > 0 ? quota / period : 0;
}

void ParseCpuStat(std::string_view text, CgroupStats* out) {
  for (absl::string_view line :
       absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    std::vector<absl::string_view> kv =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (kv.size() != 2) continue;
    uint64_t v = 0;
    if (!absl::SimpleAtoi(kv[1], &v)) continue;
    if (kv[0] == "nr_periods") out->nr_periods = v;
    if (kv[0] == "nr_throttled") out->nr_throttled = v;
    if (kv[0] == "throttled_usec") out->throttled_usec = v;
  }
}

HostStatsImpl::HostStatsImpl(std::string cgroup_root, std::string proc_root)
    : proc_root_(std::move(proc_root)),
      cgroup_dir_(CgroupDir(cgroup_root, proc_root_)),
      host_cpus_(config::HostEffectiveCpus()) {}

std::optional<ProcStats> HostStatsImpl::Process(pid_t pid) {
  absl::StatusOr<ProcStats> s = ReadProcStats(pid, proc_root_);
  if (!s.ok()) return std::nullopt;
  return *s;
}

CgroupStats HostStatsImpl::Cgroup() {
  CgroupStats c;
  c.cpu_limit_cores = ParseCpuMaxCores(
      common::ReadSmallFileIfAny(cgroup_dir_ + "/cpu.max").value_or(""));
  if (c.cpu_limit_cores <= 0) c.cpu_limit_cores = host_cpus_;
  ParseCpuStat(
      common::ReadSmallFileIfAny(cgroup_dir_ + "/cpu.stat").value_or(""), &c);
  std::string mem =
      common::ReadSmallFileIfAny(cgroup_dir_ + "/memory.max").value_or("");
  uint64_t max = 0;
  if (absl::SimpleAtoi(absl::StripAsciiWhitespace(mem), &max)) {
    c.memory_max_bytes = max;
  }
  return c;
}

}  // namespace forkd::autotune

#include "server/admin/process_stats.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace forkd::admin {
namespace {

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ESRCH) {
      return absl::NotFoundError(absl::StrCat(path, ": no such process"));
    }
    return absl::InternalError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  std::string out;
  char buf[1024];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  int e = errno;
  close(fd);
  if (n < 0) {
    if (e == ESRCH) {
      return absl::NotFoundError(absl::StrCat(path, ": no such process"));
    }
    return absl::InternalError(absl::StrCat(path, ": ", std::strerror(e)));
  }
  return out;
}

}  // namespace

absl::StatusOr<ProcessStats> ParseProcStat(const std::string& stat,
                                           const std::string& statm,
                                           long ticks_per_second,
                                           long page_size) {
  // "pid (comm) state ppid ...": comm may contain ") ", so split after the
  // last ')'. Then fields[0] is field 3 (state) of proc(5).
  size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 > stat.size()) {
    return absl::InvalidArgumentError("/proc/PID/stat: no command name");
  }
  std::vector<absl::string_view> fields = absl::StrSplit(
      absl::string_view(stat).substr(close + 2), ' ', absl::SkipEmpty());
  // utime is field 14, stime 15, num_threads 20 -> indexes 11, 12, 17.
  uint64_t utime = 0, stime = 0, threads = 0;
  if (fields.size() < 18 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime) ||
      !absl::SimpleAtoi(fields[17], &threads)) {
    return absl::InvalidArgumentError("/proc/PID/stat: unexpected fields");
  }
  std::vector<absl::string_view> pages =
      absl::StrSplit(statm, ' ', absl::SkipEmpty());
  uint64_t resident = 0;
  if (pages.size() < 2 || !absl::SimpleAtoi(pages[1], &resident)) {
    return absl::InvalidArgumentError("/proc/PID/statm: unexpected fields");
  }
  ProcessStats s;
  s.rss_bytes = resident * static_cast<uint64_t>(page_size);
  s.cpu_seconds =
      static_cast<double>(utime + stime) /
      static_cast<double>(ticks_per_second > 0 ? ticks_per_second : 100);
  s.threads = static_cast<uint32_t>(threads);
  return s;
}

absl::StatusOr<ProcessStats> ReadProcessStats(pid_t pid) {
  std::string dir = absl::StrCat("/proc/", pid);
  absl::StatusOr<std::string> stat = ReadSmallFile(dir + "/stat");
  if (!stat.ok()) return stat.status();
  absl::StatusOr<std::string> statm = ReadSmallFile(dir + "/statm");
  if (!statm.ok()) return statm.status();
  return ParseProcStat(*stat, *statm, sysconf(_SC_CLK_TCK),
                       sysconf(_SC_PAGESIZE));
}

}  // namespace forkd::admin

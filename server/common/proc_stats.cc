#include "server/common/proc_stats.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "server/common/small_file.h"

namespace forkd {

using common::ReadSmallFile;

absl::StatusOr<ProcStats> ParseProcStats(std::string_view stat,
                                         std::string_view statm,
                                         long ticks_per_second,
                                         long page_size) {
  // The command name (field 2) is in parentheses and may itself hold
  // spaces and ')': fields 3.. start after the last ')'.
  size_t close = stat.rfind(')');
  if (close == std::string_view::npos) {
    return absl::InvalidArgumentError("stat: no ')' after the command name");
  }
  std::vector<absl::string_view> fields = absl::StrSplit(
      absl::string_view(stat.data() + close + 1, stat.size() - close - 1), ' ',
      absl::SkipWhitespace());
  // fields[0] is field 3 (state): utime is 14, stime 15, num_threads 20,
  // starttime 22.
  uint64_t utime = 0, stime = 0, start = 0;
  uint32_t threads = 0;
  if (fields.size() < 20 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime) ||
      !absl::SimpleAtoi(fields[17], &threads) ||
      !absl::SimpleAtoi(fields[19], &start)) {
    return absl::InvalidArgumentError("stat: malformed fields");
  }
  std::vector<absl::string_view> mem =
      absl::StrSplit(absl::string_view(statm.data(), statm.size()), ' ',
                     absl::SkipWhitespace());
  uint64_t resident = 0;
  if (mem.size() < 2 || !absl::SimpleAtoi(mem[1], &resident)) {
    return absl::InvalidArgumentError("statm: malformed fields");
  }
  ProcStats s;
  double hz =
      ticks_per_second > 0 ? static_cast<double>(ticks_per_second) : 100;
  s.cpu_seconds = static_cast<double>(utime + stime) / hz;
  s.start_time_seconds = static_cast<double>(start) / hz;
  s.resident_bytes = resident * static_cast<uint64_t>(page_size);
  s.threads = threads;
  return s;
}

absl::StatusOr<ProcStats> ReadProcStats(pid_t pid,
                                        const std::string& proc_root) {
  std::string dir = absl::StrCat(proc_root, "/", pid);
  absl::StatusOr<std::string> stat = ReadSmallFile(dir + "/stat");
  if (!stat.ok()) return stat.status();
  absl::StatusOr<std::string> statm = ReadSmallFile(dir + "/statm");
  if (!statm.ok()) return statm.status();
  static const long kTicks = sysconf(_SC_CLK_TCK);
  static const long kPage = sysconf(_SC_PAGESIZE);
  return ParseProcStats(*stat, *statm, kTicks, kPage);
}

double BootTimeSeconds(const std::string& proc_root) {
  absl::StatusOr<std::string> text = ReadSmallFile(proc_root + "/stat");
  if (!text.ok()) return 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    if (absl::ConsumePrefix(&line, "btime ")) {
      double v = 0;
      return absl::SimpleAtod(line, &v) ? v : 0;
    }
  }
  return 0;
}

}  // namespace forkd

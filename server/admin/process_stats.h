// What the OS says about a worker process, read from /proc at call time for
// GetStatus: resident memory, CPU time and thread count.
#ifndef FORKD_SERVER_ADMIN_PROCESS_STATS_H_
#define FORKD_SERVER_ADMIN_PROCESS_STATS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace forkd::admin {

struct ProcessStats {
  uint64_t rss_bytes = 0;  // resident set size
  double cpu_seconds = 0;  // user + system
  uint32_t threads = 0;    // num_threads
};

// Parses the text of /proc/PID/stat (the command name may hold spaces and
// parentheses) and /proc/PID/statm. `ticks_per_second` is sysconf
// (_SC_CLK_TCK), `page_size` sysconf(_SC_PAGESIZE). InvalidArgument when the
// text is not in the expected shape.
absl::StatusOr<ProcessStats> ParseProcStat(const std::string& stat,
                                           const std::string& statm,
                                           long ticks_per_second,
                                           long page_size);

// Reads /proc/PID/stat and /proc/PID/statm. Any thread. NotFound when the
// process is gone.
absl::StatusOr<ProcessStats> ReadProcessStats(pid_t pid);

}  // namespace forkd::admin

#endif  // FORKD_SERVER_ADMIN_PROCESS_STATS_H_

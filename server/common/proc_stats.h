// What the OS says about a process (CPU time, resident memory, threads,
// start time), from /proc/PID/stat and /proc/PID/statm. Read at call time by
// the metrics plane (scrapes) and the admin API (GetStatus).
#ifndef FORKD_SERVER_COMMON_PROC_STATS_H_
#define FORKD_SERVER_COMMON_PROC_STATS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace forkd {

struct ProcStats {
  double cpu_seconds = 0;         // user + system
  uint64_t resident_bytes = 0;    // RSS
  double start_time_seconds = 0;  // since boot (stat field 22)
  uint32_t threads = 0;           // num_threads (stat field 20)
};

// Parses the text of /proc/PID/stat and /proc/PID/statm. InvalidArgument
// when either is malformed.
absl::StatusOr<ProcStats> ParseProcStats(std::string_view stat,
                                         std::string_view statm,
                                         long ticks_per_second, long page_size);

// Reads `proc_root`/PID/stat and statm. NotFound when the process is gone.
// Any thread.
absl::StatusOr<ProcStats> ReadProcStats(pid_t pid,
                                        const std::string& proc_root = "/proc");

// Seconds since the epoch when the system booted (btime in /proc/stat), or
// 0 when unknown.
double BootTimeSeconds(const std::string& proc_root = "/proc");

}  // namespace forkd

#endif  // FORKD_SERVER_COMMON_PROC_STATS_H_

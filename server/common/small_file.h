// Reading the small pseudo-files of /proc and the cgroup (a few lines each):
// one read loop for the master's readers (cpu_limit, proc_stats, the
// Autotuner's HostStats).
#ifndef FORKD_SERVER_COMMON_SMALL_FILE_H_
#define FORKD_SERVER_COMMON_SMALL_FILE_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace forkd::common {

// The whole file, up to `max_bytes` (the rest is not read). NotFound when
// it does not exist (ENOENT, or ESRCH for a process that is gone), another
// error naming the path otherwise. Any thread.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          size_t max_bytes = 1 << 20);

// The same, nullopt for any error: for files that may well be absent.
std::optional<std::string> ReadSmallFileIfAny(const std::string& path,
                                              size_t max_bytes = 1 << 20);

}  // namespace forkd::common

#endif  // FORKD_SERVER_COMMON_SMALL_FILE_H_

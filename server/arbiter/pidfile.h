// The --pidfile: written at start, removed at exit, handed over on a USR2
// upgrade (the new master writes `<pidfile>.2` and renames it once the old
// master is gone).
#ifndef FORKD_SERVER_ARBITER_PIDFILE_H_
#define FORKD_SERVER_ARBITER_PIDFILE_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"

namespace forkd::arbiter {

// Writes "<pid>\n" to `path` atomically (temporary file + rename), so a
// reader never sees a partial file. The error names the path.
absl::Status WritePidfile(const std::string& path, pid_t pid);

// Removes `path` if it still holds `pid` (a newer master may own it now).
void RemovePidfileIfOwned(const std::string& path, pid_t pid);

// The pid in `path`, or 0 when missing or unreadable.
pid_t ReadPidfile(const std::string& path);

// Where a master started by USR2 writes its pid while the old one runs.
inline std::string UpgradePidfilePath(const std::string& path) {
  return path + ".2";
}

}  // namespace forkd::arbiter

#endif  // FORKD_SERVER_ARBITER_PIDFILE_H_

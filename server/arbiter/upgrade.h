// The USR2 binary-upgrade hand-off between an old and a new master: the old
// master execs the binary with its original argv and these variables; the
// new master adopts the sockets and takes the pidfile once the old is gone.
#ifndef FORKD_SERVER_ARBITER_UPGRADE_H_
#define FORKD_SERVER_ARBITER_UPGRADE_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace forkd::arbiter {

inline constexpr char kInheritedFdsEnv[] = "FORKD_INHERITED_FDS";
inline constexpr char kMasterPidEnv[] = "FORKD_MASTER_PID";

// What a master started by USR2 finds in its environment.
struct UpgradeHandoff {
  std::optional<std::string> inherited_fds;  // "3,4"
  pid_t old_master_pid = 0;                  // 0: not an upgrade
};

// Reads FORKD_INHERITED_FDS and FORKD_MASTER_PID and removes them from the
// process environment (so workers and config parsing never see them). Call
// once in main(), before threads start.
UpgradeHandoff TakeUpgradeHandoff();

// `base` ("NAME=value" entries) without any earlier hand-off variables, plus
// FORKD_INHERITED_FDS=<fds> and FORKD_MASTER_PID=<pid>.
std::vector<std::string> UpgradeEnvironment(
    const std::vector<std::string>& base, const std::string& fds,
    pid_t master_pid);

// The current process environment as "NAME=value" entries.
std::vector<std::string> CurrentEnvironment();

}  // namespace forkd::arbiter

#endif  // FORKD_SERVER_ARBITER_UPGRADE_H_

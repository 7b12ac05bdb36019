#include "server/arbiter/upgrade.h"

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace forkd::arbiter {

UpgradeHandoff TakeUpgradeHandoff() {
  UpgradeHandoff h;
  if (const char* fds = std::getenv(kInheritedFdsEnv)) {
    h.inherited_fds = fds;
    unsetenv(kInheritedFdsEnv);
  }
  if (const char* pid = std::getenv(kMasterPidEnv)) {
    int value = 0;
    if (absl::SimpleAtoi(pid, &value) && value > 0) h.old_master_pid = value;
    unsetenv(kMasterPidEnv);
  }
  return h;
}

std::vector<std::string> UpgradeEnvironment(
    const std::vector<std::string>& base, const std::string& fds,
    pid_t master_pid) {
  std::vector<std::string> env;
  const std::string fds_prefix = absl::StrCat(kInheritedFdsEnv, "=");
  const std::string pid_prefix = absl::StrCat(kMasterPidEnv, "=");
  for (const std::string& e : base) {
    if (absl::StartsWith(e, fds_prefix) || absl::StartsWith(e, pid_prefix)) {
      continue;
    }
    env.push_back(e);
  }
  env.push_back(fds_prefix + fds);
  env.push_back(absl::StrCat(pid_prefix, master_pid));
  return env;
}

std::vector<std::string> CurrentEnvironment() {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    env.emplace_back(*e);
  }
  return env;
}

}  // namespace forkd::arbiter

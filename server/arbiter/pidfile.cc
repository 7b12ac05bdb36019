#include "server/arbiter/pidfile.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace forkd::arbiter {

absl::Status WritePidfile(const std::string& path, pid_t pid) {
  std::string tmp = absl::StrCat(path, ".tmp.", pid);
  std::string text = absl::StrCat(pid, "\n");
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot write pidfile ", path, ": ", std::strerror(errno)));
  }
  bool ok =
      write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  int err = errno;
  ok = (close(fd) == 0) && ok;
  if (ok && rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    unlink(tmp.c_str());
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write pidfile ", path, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

pid_t ReadPidfile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[32];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return 0;
  int pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::string_view(buf, n)),
                        &pid)) {
    return 0;
  }
  return pid;
}

void RemovePidfileIfOwned(const std::string& path, pid_t pid) {
  if (!path.empty() && ReadPidfile(path) == pid) unlink(path.c_str());
}

}  // namespace forkd::arbiter

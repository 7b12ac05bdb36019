#include "server/common/small_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace forkd::common {

absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          size_t max_bytes) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string what = absl::StrCat(path, ": ", std::strerror(err));
    if (err == ENOENT || err == ESRCH) return absl::NotFoundError(what);
    return absl::InternalError(what);
  }
  std::string text;
  char buf[4096];
  while (text.size() < max_bytes) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return absl::InternalError(absl::StrCat(path, ": ", std::strerror(err)));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (text.size() > max_bytes) text.resize(max_bytes);
  return text;
}

std::optional<std::string> ReadSmallFileIfAny(const std::string& path,
                                              size_t max_bytes) {
  absl::StatusOr<std::string> text = ReadSmallFile(path, max_bytes);
  if (!text.ok()) return std::nullopt;
  return *std::move(text);
}

}  // namespace forkd::common

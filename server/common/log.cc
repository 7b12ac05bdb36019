#include "server/common/log.h"

#include <fcntl.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>

namespace forkd::log {
namespace {

struct State {
  std::mutex mu;
  std::string path;
  std::atomic<int> fd{STDERR_FILENO};
  std::atomic<int> min_level{static_cast<int>(Level::kInfo)};
};

State& GetState() {
  static State* state = new State();  // never destroyed: used until exit
  return *state;
}

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug: return "DEBUG";
    case Level::kInfo: return "INFO";
    case Level::kWarning: return "WARNING";
    case Level::kError: return "ERROR";
    case Level::kCritical: return "CRITICAL";
  }
  return "?";
}

int OpenLog(const std::string& path) {
  if (path.empty() || path == "-") return STDERR_FILENO;
  return open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

}  // namespace

bool Init(const std::string& path, Level min_level) {
  State& s = GetState();
  std::lock_guard<std::mutex> lock(s.mu);
  s.path = path;
  s.min_level = static_cast<int>(min_level);
  int fd = OpenLog(path);
  if (fd < 0) return false;
  int old = s.fd.exchange(fd);
  if (old != STDERR_FILENO) close(old);
  return true;
}

void Reopen() {
  State& s = GetState();
  std::lock_guard<std::mutex> lock(s.mu);
  int fd = OpenLog(s.path);
  if (fd < 0) return;
  int old = s.fd.exchange(fd);
  if (old != STDERR_FILENO && old != fd) close(old);
}

bool Enabled(Level level) {
  return static_cast<int>(level) >= GetState().min_level.load();
}

void Write(Level level, const std::string& message) {
  State& s = GetState();
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  localtime_r(&tv.tv_sec, &tm);
  char stamp[64];
  strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S %z", &tm);
  std::string line = absl::StrFormat("[%s] [%d] [%s] %s\n", stamp, getpid(),
                                     LevelName(level), message);
  // One write() per line keeps lines whole across processes (O_APPEND).
  (void)!write(s.fd.load(), line.data(), line.size());
}

}  // namespace forkd::log

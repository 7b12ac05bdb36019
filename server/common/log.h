// The error log: leveled, line-at-a-time, safe from any thread, reopened on
// USR1. absl 20220623 has no logging library, so forkd keeps this small one.
#ifndef FORKD_SERVER_COMMON_LOG_H_
#define FORKD_SERVER_COMMON_LOG_H_

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace forkd::log {

enum class Level { kDebug = 0, kInfo, kWarning, kError, kCritical };

// Sets the destination ("-" or "" = stderr, else a file appended to) and the
// least level written. Call once at start-up, before threads. Returns false
// (and keeps stderr) when the file cannot be opened.
bool Init(const std::string& path, Level min_level);

// Reopens the log file after rotation (USR1). Any thread.
void Reopen();

// Writes one line "[time] [pid] [LEVEL] message". Any thread; one write(2)
// per line so lines from several processes never interleave.
void Write(Level level, const std::string& message);

bool Enabled(Level level);

}  // namespace forkd::log

#define FORKD_LOG(level, ...)                                    \
  do {                                                           \
    if (::forkd::log::Enabled(::forkd::log::Level::level)) {     \
      ::forkd::log::Write(::forkd::log::Level::level,            \
                          ::absl::StrFormat(__VA_ARGS__));       \
    }                                                            \
  } while (0)

#define LOG_DEBUG(...) FORKD_LOG(kDebug, __VA_ARGS__)
#define LOG_INFO(...) FORKD_LOG(kInfo, __VA_ARGS__)
#define LOG_WARNING(...) FORKD_LOG(kWarning, __VA_ARGS__)
#define LOG_ERROR(...) FORKD_LOG(kError, __VA_ARGS__)
#define LOG_CRITICAL(...) FORKD_LOG(kCritical, __VA_ARGS__)

#endif  // FORKD_SERVER_COMMON_LOG_H_

// The access log: one line per request, in Gunicorn's format language
// (%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" and the other
// atoms) or, with format "json", one JSON object per line.
#ifndef FORKD_SERVER_ACCESSLOG_ACCESS_LOG_H_
#define FORKD_SERVER_ACCESSLOG_ACCESS_LOG_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/http1/message.h"

namespace forkd::accesslog {

// What one finished request contributes to its line. Views point into the
// caller's buffers and are only read during Format()/Log().
struct Entry {
  std::string_view remote_addr;  // "%(h)s": client IP (unix peers: "-")
  absl::Time start;              // "%(t)s"
  double duration_s = 0;         // "%(T)s" "%(M)s" "%(D)s" "%(L)s"
  double upstream_s = 0;         // time spent waiting for the app
  std::string_view method;       // "%(m)s"
  std::string_view target;       // "%(U)s" is its path, "%(q)s" its query
  std::string_view protocol;     // "%(H)s", e.g. "HTTP/1.1"
  int status = 0;                // "%(s)s"
  uint64_t body_bytes = 0;       // "%(B)s"; "%(b)s" prints "-" for 0
  std::string_view request_id;   // "%(rid)s" (forkd's addition)
  const std::vector<http1::Header>* request_headers = nullptr;   // %({x}i)s
  const std::vector<http1::Header>* response_headers = nullptr;  // %({x}o)s
};

// A parsed format: parsing happens once at start-up, so a bad format is a
// start-up error, and formatting a line does no parsing.
class Formatter {
 public:
  // The value of an environment variable, nullptr when unset.
  using EnvLookup = std::function<const char*(const std::string& name)>;

  // `format` is Gunicorn's format string or "json". Unknown atoms are an
  // InvalidArgument naming the atom. %({NAME}e)s takes its value from `env`
  // now, once (no lookup: every such atom prints "-"): workers read no
  // environment, so the master resolves these (ResolveEnvironment) before
  // it hands the format over.
  static absl::StatusOr<Formatter> Create(std::string_view format,
                                          const EnvLookup& env = nullptr);
  // The format again, with each %({NAME}e)s replaced by its value as a
  // literal: Create(ToFormat()) formats the same lines with no environment.
  std::string ToFormat() const;
  // Appends one line (with '\n') for `entry` to *out. Thread-safe (const).
  void Format(const Entry& entry, std::string* out) const;

 private:
  struct Piece {
    enum class Kind { kLiteral, kAtom, kRequestHeader, kResponseHeader, kEnv };
    Kind kind;
    std::string text;  // literal text, atom name, or header/env name
  };
  bool json_ = false;
  std::vector<Piece> pieces_;
};

// Formatter::Create(format, env).ToFormat(): what the master sends workers.
absl::StatusOr<std::string> ResolveEnvironment(std::string_view format,
                                               const Formatter::EnvLookup& env);

class AccessLog {
 public:
  // `path`: "-" for stdout, otherwise a file opened for append.
  static absl::StatusOr<std::unique_ptr<AccessLog>> Create(
      const std::string& path, std::string_view format);
  ~AccessLog();
  // Formats and writes one line with a single write(2). Any thread.
  void Log(const Entry& entry);
  // Reopens the file (USR1). Any thread.
  void Reopen();

 private:
  AccessLog(std::string path, Formatter formatter, int fd);
  std::string path_;
  Formatter formatter_;
  std::mutex mu_;  // guards fd_ swaps only
  int fd_;
};

}  // namespace forkd::accesslog

#endif  // FORKD_SERVER_ACCESSLOG_ACCESS_LOG_H_

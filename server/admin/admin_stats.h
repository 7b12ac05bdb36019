// Counts of admin API calls by RPC name and result, for the metrics plane
// (forkd_admin_calls_total{command,result}). Thread-safe: the admin service
// records from its gRPC threads; /metrics reads from its own.
#ifndef FORKD_SERVER_ADMIN_ADMIN_STATS_H_
#define FORKD_SERVER_ADMIN_ADMIN_STATS_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace forkd::admin {

class AdminStats {
 public:
  struct Entry {
    std::string command;  // RPC name: "ScaleWorkers", "Drain", ...
    std::string result;   // "ok", "invalid_argument", "permission_denied"...
    uint64_t count = 0;
    bool operator==(const Entry&) const = default;
  };

  // Any thread: counts one call of `command` that ended with `result`
  // (lower-case gRPC status code name, see ResultName()).
  void Record(const std::string& command, const std::string& result);

  // Any thread: every (command, result) pair seen so far with its count,
  // sorted by command then result. Counts never go down.
  std::vector<Entry> Counts() const;

  // Any thread: the count of one pair (0 if never seen).
  uint64_t Count(const std::string& command, const std::string& result) const;

  // "ok", "invalid_argument", ..., "unauthenticated" for a gRPC / absl
  // status code number (the two share their numbering); "unknown" for
  // numbers outside it.
  static std::string ResultName(int code);

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, uint64_t> counts_;
};

}  // namespace forkd::admin

#endif  // FORKD_SERVER_ADMIN_ADMIN_STATS_H_

#include "server/admin/admin_stats.h"

#include <array>

namespace forkd::admin {

void AdminStats::Record(const std::string& command, const std::string& result) {
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[{command, result}];
}

std::vector<AdminStats::Entry> AdminStats::Counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Entry> out;
  out.reserve(counts_.size());
  for (const auto& [key, n] : counts_) {
    out.push_back({key.first, key.second, n});
  }
  return out;
}

uint64_t AdminStats::Count(const std::string& command,
                           const std::string& result) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counts_.find({command, result});
  return it == counts_.end() ? 0 : it->second;
}

std::string AdminStats::ResultName(int code) {
  static constexpr std::array<const char*, 17> kNames = {
      "ok",
      "cancelled",
      "unknown",
      "invalid_argument",
      "deadline_exceeded",
      "not_found",
      "already_exists",
      "permission_denied",
      "resource_exhausted",
      "failed_precondition",
      "aborted",
      "out_of_range",
      "unimplemented",
      "internal",
      "unavailable",
      "data_loss",
      "unauthenticated",
  };
  if (code < 0 || code >= static_cast<int>(kNames.size())) return "unknown";
  return kNames[code];
}

}  // namespace forkd::admin

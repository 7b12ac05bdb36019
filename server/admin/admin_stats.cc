#include "server/admin/admin_stats.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"

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
  // absl's names of the canonical codes, which gRPC shares: "OK",
  // "INVALID_ARGUMENT"...; "" for a code outside them.
  std::string name =
      absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
  return name.empty() ? "unknown" : absl::AsciiStrToLower(name);
}

}  // namespace forkd::admin

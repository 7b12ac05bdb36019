// A list of IP networks, as operators write them in --forwarded-allow-ips
// and --proxy-allow-ips: "10.0.0.0/8, 192.0.2.7, 2001:db8::/32, ::1", or
// "*" for every client. Used to decide whose word forkd believes.
#ifndef FORKD_SERVER_COMMON_IP_NETWORKS_H_
#define FORKD_SERVER_COMMON_IP_NETWORKS_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace forkd {

class IpNetworks {
 public:
  // Nobody.
  IpNetworks() = default;

  // Parses a comma-separated list of addresses and CIDRs (IPv4 and IPv6;
  // blanks around entries are ignored; "" is nobody; "*" alone, or as an
  // entry, is everybody, unix-socket clients included). An error names the
  // bad entry and why.
  static absl::StatusOr<IpNetworks> Parse(std::string_view list);

  // True when `peer` (numeric IP text as the accept path gives it; "" for
  // a unix-socket client) is in one of the networks. An IPv4-mapped IPv6
  // peer (a dual-stack listener's "::ffff:192.0.2.7") matches IPv4
  // entries. Text that is not an IP matches only "*".
  bool Contains(std::string_view peer) const;

  bool everyone() const { return everyone_; }
  bool empty() const { return !everyone_ && networks_.empty(); }

 private:
  struct Network {
    bool v6 = false;
    std::array<uint8_t, 16> address{};  // v4 in the first 4 bytes
    int prefix = 0;                     // bits that must match
  };
  bool everyone_ = false;
  std::vector<Network> networks_;
};

}  // namespace forkd

#endif  // FORKD_SERVER_COMMON_IP_NETWORKS_H_

#include "server/common/ip_networks.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace forkd {
namespace {

// Parses numeric IPv4 or IPv6 text; false for anything else.
bool ParseIp(std::string_view text, bool* v6, std::array<uint8_t, 16>* out) {
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof(buf)) return false;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  out->fill(0);
  if (inet_pton(AF_INET, buf, out->data()) == 1) {
    *v6 = false;
    return true;
  }
  if (inet_pton(AF_INET6, buf, out->data()) == 1) {
    *v6 = true;
    return true;
  }
  return false;
}

bool PrefixMatches(const std::array<uint8_t, 16>& a,
                   const std::array<uint8_t, 16>& b, int bits) {
  int whole = bits / 8;
  if (std::memcmp(a.data(), b.data(), whole) != 0) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xFF << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

absl::StatusOr<IpNetworks> IpNetworks::Parse(std::string_view list) {
  IpNetworks n;
  // This absl's string_view is not std's: split and strip by hand.
  auto strip = [](std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
      v.remove_prefix(1);
    }
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) {
      v.remove_suffix(1);
    }
    return v;
  };
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string_view::npos) comma = list.size();
    std::string_view entry = strip(list.substr(start, comma - start));
    start = comma + 1;
    if (entry.empty()) continue;
    std::string shown(entry);
    if (entry == "*") {
      n.everyone_ = true;
      continue;
    }
    Network net;
    std::string_view address = entry;
    size_t slash = entry.find('/');
    if (slash != std::string_view::npos) address = entry.substr(0, slash);
    if (!ParseIp(address, &net.v6, &net.address)) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", shown, "\" is not an IP address or CIDR (such as ",
                       "10.0.0.0/8 or 2001:db8::/32)"));
    }
    int max_prefix = net.v6 ? 128 : 32;
    net.prefix = max_prefix;
    if (slash != std::string_view::npos) {
      std::string bits(entry.substr(slash + 1));
      int prefix = -1;
      if (bits.empty() || bits.size() > 3 ||
          bits.find_first_not_of("0123456789") != std::string::npos ||
          !absl::SimpleAtoi(bits, &prefix) || prefix > max_prefix) {
        return absl::InvalidArgumentError(absl::StrCat(
            "\"", shown, "\" has a bad prefix length (0..", max_prefix, ")"));
      }
      net.prefix = prefix;
    }
    n.networks_.push_back(net);
  }
  return n;
}

bool IpNetworks::Contains(std::string_view peer) const {
  if (everyone_) return true;
  if (networks_.empty()) return false;
  bool v6;
  std::array<uint8_t, 16> address;
  if (!ParseIp(peer, &v6, &address)) return false;
  // ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket.
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0,    0,
                                          0, 0, 0, 0, 0xFF, 0xFF};
  std::array<uint8_t, 16> v4{};
  bool mapped = v6 && std::memcmp(address.data(), kMapped, 12) == 0;
  if (mapped) std::memcpy(v4.data(), address.data() + 12, 4);
  for (const Network& net : networks_) {
    if (net.v6 == v6 && PrefixMatches(net.address, address, net.prefix)) {
      return true;
    }
    if (mapped && !net.v6 && PrefixMatches(net.address, v4, net.prefix)) {
      return true;
    }
  }
  return false;
}

}  // namespace forkd

#include "server/common/address.h"

#include <arpa/inet.h>

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace forkd::common {
namespace {

bool IsIpv4(absl::string_view host) {
  in_addr a;
  return inet_pton(AF_INET, std::string(host).c_str(), &a) == 1;
}

bool IsIpv6(absl::string_view host) {
  in6_addr a;
  return inet_pton(AF_INET6, std::string(host).c_str(), &a) == 1;
}

// RFC 1123 host name characters; the resolver decides whether it exists.
bool IsHostName(absl::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  return std::all_of(host.begin(), host.end(), [](char ch) {
    return absl::ascii_isalnum(static_cast<unsigned char>(ch)) || ch == '-' ||
           ch == '.';
  });
}

bool AllDigits(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char ch) {
    return absl::ascii_isdigit(static_cast<unsigned char>(ch));
  });
}

absl::Status Bad(absl::string_view why) {
  return absl::InvalidArgumentError(why);
}

absl::StatusOr<Address> ParseUnix(absl::string_view path, bool absolute) {
  if (path.empty()) return Bad("empty unix socket path");
  if (absolute && path[0] != '/') return Bad("the path must be absolute");
  if (path.size() > kMaxUnixPathBytes) {
    return Bad(absl::StrCat("the unix socket path is ", path.size(),
                            " bytes long (at most ", kMaxUnixPathBytes, ")"));
  }
  Address a;
  a.kind = Address::Kind::kUnix;
  a.path = std::string(path);
  return a;
}

// HOST:PORT, [V6]:PORT and :PORT; a bare HOST only when `default_port` > 0.
// `ip_or_localhost` refuses names (the upstream is dialled without a
// resolver on the request path).
absl::StatusOr<Address> ParseTcp(absl::string_view v, int min_port,
                                 int default_port, bool ip_or_localhost) {
  Address a;
  absl::string_view port;
  bool has_port = false;
  if (absl::StartsWith(v, "[")) {
    size_t close = v.find(']');
    if (close == absl::string_view::npos) return Bad("missing ']'");
    absl::string_view host = v.substr(1, close - 1);
    if (!IsIpv6(host)) return Bad("not an IPv6 address inside [...]");
    a.host = std::string(host);
    absl::string_view rest = v.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return Bad("expected ':' after ']'");
      port = rest.substr(1);
      has_port = true;
    }
  } else {
    size_t colon = v.rfind(':');
    absl::string_view host = v;
    if (colon != absl::string_view::npos) {
      host = v.substr(0, colon);
      port = v.substr(colon + 1);
      has_port = true;
      if (host.find(':') != absl::string_view::npos) {
        return Bad("IPv6 addresses need brackets, e.g. [::1]:8000");
      }
    }
    if (host.empty() && !ip_or_localhost) {
      if (!has_port) return Bad("empty address");
      // ":PORT" listens on every IPv4 interface, as Gunicorn's bind does.
      host = "0.0.0.0";
    } else if (ip_or_localhost) {
      if (!IsIpv4(host) && host != "localhost") {
        return Bad("the host must be an IP address or localhost");
      }
    } else if (!IsHostName(host)) {
      return Bad("bad host name");
    }
    a.host = std::string(host);
  }
  if (!has_port) {
    if (default_port <= 0) return Bad("missing :PORT");
    a.port = default_port;
    return a;
  }
  int p = 0;
  if (port.size() > 5 || !AllDigits(port) || !absl::SimpleAtoi(port, &p) ||
      p < min_port || p > 65535) {
    return Bad(absl::StrCat("bad port (expected ", min_port, "..65535)"));
  }
  a.port = p;
  return a;
}

}  // namespace

bool Address::IsIpv6Literal() const {
  return kind == Kind::kTcp && host.find(':') != std::string::npos;
}

std::string Address::HostPort() const {
  if (IsIpv6Literal()) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<Address> ParseAddress(absl::string_view text, AddressUse use) {
  switch (use) {
    case AddressUse::kListen:
      if (absl::ConsumePrefix(&text, "unix:")) {
        return ParseUnix(text, /*absolute=*/false);
      }
      if (absl::ConsumePrefix(&text, "fd://")) {
        Address a;
        a.kind = Address::Kind::kFd;
        if (!AllDigits(text) || !absl::SimpleAtoi(text, &a.fd)) {
          return Bad("fd://N needs a descriptor number");
        }
        return a;
      }
      return ParseTcp(text, 0, kDefaultListenPort, /*ip_or_localhost=*/false);
    case AddressUse::kPlane:
      if (absl::StartsWith(text, "unix:") || absl::StartsWith(text, "fd://")) {
        return Bad("only TCP addresses are supported here");
      }
      return ParseTcp(text, 0, 0, /*ip_or_localhost=*/false);
    case AddressUse::kUpstream:
      if (absl::ConsumePrefix(&text, "unix:")) {
        return ParseUnix(text, /*absolute=*/true);
      }
      if (absl::StartsWith(text, "https://")) {
        return Bad("TLS to the app is not supported");
      }
      if (!absl::ConsumePrefix(&text, "http://")) return Bad("unknown scheme");
      absl::ConsumeSuffix(&text, "/");
      if (text.find('/') != absl::string_view::npos) {
        return Bad("no path allowed");
      }
      return ParseTcp(text, 1, 0, /*ip_or_localhost=*/true);
  }
  return Bad("unknown address use");
}

const char* ExpectedAddressForms(AddressUse use) {
  switch (use) {
    case AddressUse::kListen:
      return "HOST:PORT, [IPv6]:PORT, :PORT, HOST, unix:PATH or fd://N";
    case AddressUse::kPlane:
      return "HOST:PORT, [IPv6]:PORT, :PORT, or empty for off";
    case AddressUse::kUpstream:
      return "unix:/abs/path or http://127.0.0.1:PORT";
  }
  return "";
}

}  // namespace forkd::common

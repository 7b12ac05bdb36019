// The PROXY protocol header (haproxy's proxy-protocol.txt, versions 1 and
// 2) that a load balancer sends at the start of a connection to say whom
// it accepted it from. Protocol code only: bytes in, a verdict out, no I/O.
// The accept path (proxy/proxy_protocol_transport.h) reads the socket and
// decides whether the sender may be believed (--proxy-allow-ips).
#ifndef FORKD_SERVER_PROXYPROTO_PROXY_HEADER_H_
#define FORKD_SERVER_PROXYPROTO_PROXY_HEADER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace forkd::proxyproto {

struct ProxyHeader {
  bool local = false;          // v2 LOCAL / v1 UNKNOWN: keep the real peer
  std::string source_address;  // numeric, "203.0.113.7" or "2001:db8::1"
  uint16_t source_port = 0;
  std::string destination_address;
  uint16_t destination_port = 0;

  friend bool operator==(const ProxyHeader&, const ProxyHeader&) = default;
};

enum class ParseStatus { kNeedMore, kDone, kError };

struct ParseResult {
  ParseStatus status = ParseStatus::kNeedMore;
  size_t consumed = 0;  // bytes of the header when kDone
  ProxyHeader header;
  std::string error;  // when kError: short reason for the log line
};

// The longest v1 header, CRLF included (proxy-protocol.txt 2.1).
inline constexpr size_t kMaxV1Length = 107;
// The longest v2 header: 16 fixed bytes and a 16-bit length.
inline constexpr size_t kMaxV2Length = 16 + 65535;

// Parses a PROXY v1 or v2 header at the start of `bytes` (stateless:
// call again with more bytes after kNeedMore). Never reads past `bytes`.
// A verdict is final: once a prefix of some input gives kDone or kError,
// the whole input gives the same result. Addresses come back in
// inet_ntop's form; a v2 AF_UNIX header gives empty addresses (a
// unix-socket client, as forkd names one) and AF_UNSPEC counts as local.
ParseResult ParseProxyHeader(std::string_view bytes);

}  // namespace forkd::proxyproto

#endif  // FORKD_SERVER_PROXYPROTO_PROXY_HEADER_H_

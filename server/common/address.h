// The one grammar for every address forkd reads: --bind, --admin-bind,
// --metrics-bind and --upstream. Config validation, the listeners, the
// planes and the upstream pool all parse through ParseAddress, so a value
// the config accepts is a value the code that uses it understands.
//
//   TCP       HOST:PORT   [IPV6]:PORT   :PORT (all IPv4 interfaces)
//   --bind    also HOST (port 8000, as Gunicorn), unix:PATH, fd://N
//   upstream  unix:/ABSOLUTE/PATH or http://HOST:PORT[/] with HOST an IP
//             literal or localhost and PORT 1..65535
//
// No I/O: names are not resolved here.
#ifndef FORKD_SERVER_COMMON_ADDRESS_H_
#define FORKD_SERVER_COMMON_ADDRESS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace forkd::common {

// Which flag the text came from: each accepts a subset of the grammar.
enum class AddressUse {
  kListen,    // --bind
  kPlane,     // --admin-bind, --metrics-bind (TCP forms only)
  kUpstream,  // --upstream
};

struct Address {
  enum class Kind { kTcp, kUnix, kFd };
  Kind kind = Kind::kTcp;
  std::string host;  // kTcp: IP literal or name, without brackets
  int port = 0;      // kTcp
  std::string path;  // kUnix
  int fd = -1;       // kFd

  bool IsIpv6Literal() const;
  // "HOST:PORT" or "[V6]:PORT" (kTcp only), as getaddrinfo's callers and
  // log lines want it.
  std::string HostPort() const;
};

// Gunicorn's default port for a --bind without one.
inline constexpr int kDefaultListenPort = 8000;
// sun_path holds 108 bytes with the terminating NUL.
inline constexpr size_t kMaxUnixPathBytes = 107;

// Parses `text` for `use`. On failure InvalidArgument whose message says
// only what is wrong ("missing :PORT", "bad port (expected 1..65535)"), so
// each caller can name its flag and value around it.
absl::StatusOr<Address> ParseAddress(absl::string_view text, AddressUse use);

// The forms `use` accepts, for "(expected ...)" in error messages.
const char* ExpectedAddressForms(AddressUse use);

}  // namespace forkd::common

#endif  // FORKD_SERVER_COMMON_ADDRESS_H_

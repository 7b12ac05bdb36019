// Whom forkd believes: which of a request's fields reach the app and which
// forkd writes itself. The client's proxy facts (X-Forwarded-*, Forwarded,
// X-Real-IP) pass only from a peer in --forwarded-allow-ips; from anyone
// else they are removed and forkd states its own. Field names with '_'
// follow --header-map, since WSGI/CGI apps map "X_Forwarded_For" and
// "X-Forwarded-For" onto one variable. Pure functions over header lists,
// used by the HTTP/1 path (ProxySession, which also serves HTTP/2 streams
// to an HTTP/1 app) and the h2c bridge (proxy/upstream_bridge.cc).
#ifndef FORKD_SERVER_PROXY_FORWARDING_H_
#define FORKD_SERVER_PROXY_FORWARDING_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "server/common/ip_networks.h"
#include "server/http1/message.h"

namespace forkd::proxy {

// --header-map, with Gunicorn's names and meanings: a request field whose
// name holds '_' is dropped, refused (400), or passed (dangerous).
enum class HeaderMap { kDrop, kRefuse, kDangerous };

// "drop", "refuse" or "dangerous"; InvalidArgument otherwise.
absl::StatusOr<HeaderMap> ParseHeaderMap(std::string_view text);

// Per worker, fixed at start.
struct ForwardingPolicy {
  IpNetworks forwarded_allow;  // --forwarded-allow-ips; empty: nobody
  HeaderMap header_map = HeaderMap::kDrop;
};

// What forkd knows of the client of one request.
struct ClientFacts {
  std::string_view peer;              // its IP ("" for a unix-socket client)
  std::string_view scheme;            // "http" or "https"
  const std::string* host = nullptr;  // Host / :authority; nullptr: none
  std::string_view request_id;        // the X-Request-Id forkd sends ("" none)
};

// What ForwardedFields did, for the counters and the debug log.
struct ForwardingCounts {
  uint32_t underscore_dropped = 0;  // names with '_' (--header-map drop)
  uint32_t untrusted_dropped = 0;   // proxy facts from an untrusted peer
};

// The first field of `fields` a --header-map of `map` refuses (a name
// with '_' under kRefuse), or nullptr. Request heads and trailers alike.
const http1::Header* RefusedField(HeaderMap map,
                                  const std::vector<http1::Header>& fields);

// What is logged and answered for a field RefusedField found, e.g.
// "header field name \"X_Id\" contains '_' (--header-map refuse)"
// ("trailer field name ..." for a trailer section).
std::string RefusalDetail(const http1::Header& field, bool trailer);

// True when `name` is one of the fields forkd writes or guards (the proxy
// facts and X-Request-Id), compared without case and with '_' taken as
// '-': such fields never come from a trailer section.
bool IsForwardingField(std::string_view name);

// Decides, for a request's fields as received (any case, in order), what
// the app gets: calls keep(i) for every field i that passes unchanged, in
// order, then add(name, value) for each field forkd writes:
// X-Forwarded-For (a trusted peer's list with the peer appended, else the
// peer alone), X-Forwarded-Proto and X-Forwarded-Host (unless a trusted
// peer sent its own) and X-Request-Id. The caller filters what else it
// must (hop-by-hop fields...) inside keep. Under HeaderMap::kRefuse, names
// with '_' are dropped here too: callers refuse first (RefusedField).
ForwardingCounts ForwardedFields(
    const ForwardingPolicy& policy, const ClientFacts& client,
    const std::vector<http1::Header>& fields,
    absl::FunctionRef<void(size_t)> keep,
    absl::FunctionRef<void(std::string_view, std::string_view)> add);

// The trailer fields of a request that reach the app, by the same rules:
// names with '_' dropped (unless dangerous) and forwarding fields never;
// keep(i) for each one that passes. Returns how many '_' names it dropped.
uint32_t ForwardedTrailers(const ForwardingPolicy& policy,
                           const std::vector<http1::Header>& trailers,
                           absl::FunctionRef<void(size_t)> keep);

}  // namespace forkd::proxy

#endif  // FORKD_SERVER_PROXY_FORWARDING_H_

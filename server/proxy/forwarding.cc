#include "server/proxy/forwarding.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace forkd::proxy {
namespace {

// `name` equals `lower` (lowercase, with '-') ignoring case, '_' counting
// as '-': WSGI/CGI apps see both spellings as one variable.
bool SameVariable(std::string_view name, std::string_view lower) {
  if (name.size() != lower.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i] == '_' ? '-' : absl::ascii_tolower(name[i]);
    if (c != lower[i]) return false;
  }
  return true;
}

enum class Kind {
  kOther,
  kForwardedFor,    // merged into forkd's X-Forwarded-For
  kForwardedProto,  // forkd writes its own unless a trusted peer did
  kForwardedHost,
  kProxyFact,  // other proxy facts: kept only from trusted peers
  kRequestId,  // forkd writes it (keeping the client's value)
};

Kind Classify(std::string_view name) {
  if (name.empty()) return Kind::kOther;
  char first = absl::ascii_tolower(name[0]);
  if (first != 'x' && first != 'f') return Kind::kOther;  // the usual case
  if (SameVariable(name, "x-forwarded-for")) return Kind::kForwardedFor;
  if (SameVariable(name, "x-forwarded-proto")) return Kind::kForwardedProto;
  if (SameVariable(name, "x-forwarded-host")) return Kind::kForwardedHost;
  if (SameVariable(name, "x-request-id")) return Kind::kRequestId;
  // Gunicorn's secure_scheme_headers, nginx's and RFC 7239's fields, and
  // the ones Werkzeug's ProxyFix and Rails read.
  for (std::string_view fact :
       {"x-forwarded-port", "x-forwarded-ssl", "x-forwarded-protocol",
        "x-forwarded-scheme", "x-forwarded-prefix", "x-real-ip", "forwarded"}) {
    if (SameVariable(name, fact)) return Kind::kProxyFact;
  }
  return Kind::kOther;
}

bool HasUnderscore(std::string_view name) {
  return name.find('_') != std::string_view::npos;
}

}  // namespace

absl::StatusOr<HeaderMap> ParseHeaderMap(std::string_view text) {
  if (text == "drop") return HeaderMap::kDrop;
  if (text == "refuse") return HeaderMap::kRefuse;
  if (text == "dangerous") return HeaderMap::kDangerous;
  return absl::InvalidArgumentError(absl::StrCat(
      "\"", std::string(text), "\" is not drop, refuse or dangerous"));
}

const http1::Header* RefusedField(HeaderMap map,
                                  const std::vector<http1::Header>& fields) {
  if (map != HeaderMap::kRefuse) return nullptr;
  for (const http1::Header& f : fields) {
    if (HasUnderscore(f.name)) return &f;
  }
  return nullptr;
}

std::string RefusalDetail(const http1::Header& field, bool trailer) {
  return absl::StrCat(trailer ? "trailer" : "header", " field name \"",
                      field.name, "\" contains '_' (--header-map refuse)");
}

bool IsForwardingField(std::string_view name) {
  return Classify(name) != Kind::kOther;
}

ForwardingCounts ForwardedFields(
    const ForwardingPolicy& policy, const ClientFacts& client,
    const std::vector<http1::Header>& fields,
    absl::FunctionRef<void(size_t)> keep,
    absl::FunctionRef<void(std::string_view, std::string_view)> add) {
  ForwardingCounts counts;
  const bool trusted = policy.forwarded_allow.Contains(client.peer);
  const bool dangerous = policy.header_map == HeaderMap::kDangerous;
  // A trusted peer's X-Forwarded-For lines, in order: several lines are
  // one comma-separated list (RFC 9110 5.3).
  std::string xff;
  bool client_proto = false;
  bool client_host = false;
  for (size_t i = 0; i < fields.size(); ++i) {
    const http1::Header& f = fields[i];
    Kind kind = Classify(f.name);
    if (HasUnderscore(f.name) && !dangerous) {
      ++counts.underscore_dropped;
      continue;
    }
    switch (kind) {
      case Kind::kOther:
        keep(i);
        break;
      case Kind::kRequestId:
        break;  // forkd sends client.request_id (the client's, or new)
      case Kind::kForwardedFor:
        if (!trusted) {
          ++counts.untrusted_dropped;
        } else if (!f.value.empty()) {
          if (!xff.empty()) xff.append(", ");
          xff.append(f.value);
        }
        break;
      case Kind::kForwardedProto:
      case Kind::kForwardedHost:
      case Kind::kProxyFact:
        if (!trusted) {
          ++counts.untrusted_dropped;
          break;
        }
        client_proto |= kind == Kind::kForwardedProto;
        client_host |= kind == Kind::kForwardedHost;
        keep(i);
        break;
    }
  }
  // nginx's $proxy_add_x_forwarded_for: the trusted list, then the peer.
  if (!client.peer.empty()) {
    if (xff.empty()) {
      add("X-Forwarded-For", client.peer);
    } else {
      xff.append(", ").append(client.peer);
      add("X-Forwarded-For", xff);
    }
  } else if (!xff.empty()) {
    add("X-Forwarded-For", xff);
  }
  if (!client_proto) add("X-Forwarded-Proto", client.scheme);
  if (!client_host && client.host != nullptr) {
    add("X-Forwarded-Host", *client.host);
  }
  if (!client.request_id.empty()) add("X-Request-Id", client.request_id);
  return counts;
}

uint32_t ForwardedTrailers(const ForwardingPolicy& policy,
                           const std::vector<http1::Header>& trailers,
                           absl::FunctionRef<void(size_t)> keep) {
  uint32_t dropped = 0;
  for (size_t i = 0; i < trailers.size(); ++i) {
    const http1::Header& f = trailers[i];
    if (HasUnderscore(f.name) && policy.header_map != HeaderMap::kDangerous) {
      ++dropped;
      continue;
    }
    if (IsForwardingField(f.name)) continue;
    keep(i);
  }
  return dropped;
}

}  // namespace forkd::proxy

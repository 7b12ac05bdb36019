// Field rules a proxy applies to HTTP messages, whatever their protocol:
// hop-by-hop fields, trailer permissions, Connection tokens, reason phrases.
#ifndef FORKD_SERVER_HTTP1_FIELDS_H_
#define FORKD_SERVER_HTTP1_FIELDS_H_

#include <string>
#include <string_view>
#include <vector>

#include "server/http1/message.h"

namespace forkd::http1 {

// True when `name` is a hop-by-hop field that a proxy must not forward
// (Connection, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding,
// Upgrade, Proxy-Authenticate, Proxy-Authorization), or is listed in the
// message's Connection header (`connection_tokens`, lowercase). Trailer is
// end-to-end (RFC 9110 6.6.2): it announces the trailer section, so a
// proxy keeps it where the trailers can go on (a chunked message).
bool IsHopByHop(std::string_view name,
                const std::vector<std::string>& connection_tokens);

// Whether a trailer field named `name` may be forwarded in a trailer
// section. False for the fields RFC 9110 6.5.1 says cannot be processed
// after the content: framing (Content-Length, Transfer-Encoding, Trailer),
// hop-by-hop fields, routing (Host), request modifiers (controls,
// conditionals, Accept*, Range), authentication (Authorization, Cookie,
// Set-Cookie, *-Authenticate), response controls (Age, Cache-Control,
// Date, Expires, Location, Retry-After, Vary), every Content-* field, and
// the forwarding fields forkd itself sets (X-Forwarded-*, Forwarded,
// X-Request-Id): an app that merges trailers into its headers must not be
// fooled by them.
bool IsAllowedInTrailer(std::string_view name);

// True when a TE field value lists the "trailers" keyword (RFC 9110
// 10.1.4): the client will not discard trailer fields.
bool TeAcceptsTrailers(std::string_view te_value);

// Lower-cased tokens of all Connection header values of `headers`.
std::vector<std::string> ConnectionTokens(const std::vector<Header>& headers);
// The same into *tokens (cleared first), reusing its capacity.
void ConnectionTokens(const std::vector<Header>& headers,
                      std::vector<std::string>* tokens);

// Case-insensitive ASCII comparison.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// Reason phrase for a status code ("OK", "Bad Gateway"...), "" if unknown.
std::string_view ReasonPhrase(int status);

}  // namespace forkd::http1

#endif  // FORKD_SERVER_HTTP1_FIELDS_H_

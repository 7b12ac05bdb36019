// Where an exchange's response goes when its client does not read HTTP/1.1
// bytes: an HTTP/2 stream. The exchange (ProxySession) parses the app's
// response once, into a status, a field list, body chunks and trailers, and
// hands them here; the HTTP/1 client side serializes the same pieces as
// HTTP/1.1 text itself. The sink submits them as HEADERS/DATA frames.
#ifndef FORKD_SERVER_PROXY_RESPONSE_SINK_H_
#define FORKD_SERVER_PROXY_RESPONSE_SINK_H_

#include <string_view>
#include <vector>

#include "server/http1/message.h"

namespace forkd::proxy {

// Called on the thread that drives the exchange, possibly from inside its
// Drive(): implementations queue, they never call back into the exchange.
class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  // An interim response (1xx other than 101), fields as the app sent them.
  virtual void OnInterim(int status,
                         const std::vector<http1::Header>& fields) = 0;
  // The final response head. `fields` are what the client may get (the
  // app's hop-by-hop fields are gone; the sink drops what its protocol
  // forbids). `end_stream`: the response has no body, nothing else follows.
  virtual void OnResponseHead(int status,
                              const std::vector<http1::Header>& fields,
                              bool end_stream) = 0;
  // Body bytes, decoded (no HTTP/1.1 framing).
  virtual void OnResponseBody(std::string_view data) = 0;
  // The body is complete; `trailers` (possibly empty) are the ones allowed
  // in a trailer section.
  virtual void OnResponseEnd(const std::vector<http1::Header>& trailers) = 0;
  // Backpressure: true while the client side holds as much of this
  // response as it may. The exchange then stops reading the app and waits
  // for ProxySession::OnResponseRoom().
  virtual bool ResponseBlocked() = 0;
  // The exchange let go of its client: a response that did not end (its
  // app failed after the head went out) must not look complete.
  virtual void OnExchangeClosed() = 0;
};

}  // namespace forkd::proxy

#endif  // FORKD_SERVER_PROXY_RESPONSE_SINK_H_

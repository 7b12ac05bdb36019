// Where an exchange's request comes from when its client does not send
// HTTP/1.1 bytes: an HTTP/2 stream. The client side hands ProxySession the
// request head already parsed (ProxySession::ServeRequest) and keeps the
// body here, decoded, until the exchange takes it; the exchange checks and
// forwards it as it does a body it decoded from HTTP/1.1 bytes. The mirror
// of ResponseSink.
#ifndef FORKD_SERVER_PROXY_REQUEST_SOURCE_H_
#define FORKD_SERVER_PROXY_REQUEST_SOURCE_H_

#include <cstddef>
#include <string_view>
#include <vector>

#include "server/http1/message.h"

namespace forkd::proxy {

// Called on the thread that drives the exchange, from inside its Drive():
// implementations never call back into the exchange.
class RequestSource {
 public:
  virtual ~RequestSource() = default;
  // Body bytes received and not taken yet (decoded: DATA payload). Valid
  // until the next call of any method here.
  virtual std::string_view PendingBody() = 0;
  // The exchange took the first `n` bytes of PendingBody(): the client may
  // send as many more (flow control follows what the exchange consumes,
  // so a slow app holds the client back, not forkd's memory).
  virtual void ConsumeBody(size_t n) = 0;
  // The client sent all of the request (END_STREAM): PendingBody() is the
  // rest of the body and TakeTrailers() has its trailers.
  virtual bool BodyComplete() const = 0;
  // The request's trailers (once BodyComplete(); may be empty).
  virtual std::vector<http1::Header> TakeTrailers() = 0;
};

}  // namespace forkd::proxy

#endif  // FORKD_SERVER_PROXY_REQUEST_SOURCE_H_

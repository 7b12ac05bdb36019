// forkd's own answers: every way a request can fail before or at the app,
// mapped to an HTTP status in one place, with a short plain-text body.
#ifndef FORKD_SERVER_PROXY_ERROR_RESPONSE_H_
#define FORKD_SERVER_PROXY_ERROR_RESPONSE_H_

#include <string>
#include <string_view>
#include <vector>

#include "server/http1/message.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::proxy {

enum class Failure {
  kBadRequest,           // client sent something the parser refused
  kUpstreamRefused,      // app socket missing or refusing
  kUpstreamReset,        // app closed or reset before a full response
  kUpstreamTimeout,      // app slower than --upstream-timeout
  kUpstreamBadResponse,  // app's response is not valid HTTP/1.1
  kOverCapacity,         // in-flight cap reached
  kDraining,             // worker or server is shutting down
  kHttp2Required,        // HTTP/1.x request while the app speaks only h2c
  kClientTimeout,        // request head or body slower than its timeout: 408
  kQueueTimeout,         // app mode: no free app process in --max-queue-time
};

// The HTTP status for a failure. For kBadRequest, `parse_error` decides
// (400, 413, 414, 431, 501, 505).
int StatusFor(Failure failure, http1::ErrorKind parse_error);

// The rejection counter a forkd-generated 4xx/503 falls under, or
// Rejection::kCount when the status is not a rejection (502, 504).
scoreboard::Rejection RejectionFor(int status, Failure failure);

// The upstream error counter for a failure, or UpstreamError::kCount.
scoreboard::UpstreamError UpstreamErrorFor(Failure failure);

// forkd's own answer as parts, for a client that takes a structured
// response (an HTTP/2 stream): Content-Type text/plain and Content-Length
// fields, and the body "<Reason>: <detail>\n".
struct ErrorAnswer {
  std::vector<http1::Header> fields;
  std::string body;
  // The head is the whole answer (HEAD, or a gRPC trailers-only answer).
  bool head_only = false;
};
ErrorAnswer BuildErrorAnswer(int status, std::string_view detail);

// The answer to a request that failed with `failure` (status = StatusFor
// it), as an HTTP/2 stream gets it: the plain answer above, with
// "Retry-After: 1" for a queue timeout (come back soon, the app did not
// fail) and no body for a HEAD request (`head_request`). For a gRPC call
// (`grpc`) a trailers-only answer instead: grpc-status 14 (UNAVAILABLE, as
// gRPC maps 502/503/504) and grpc-message "<status> <Reason>: <detail>";
// the HTTP status stays for logs and metrics.
ErrorAnswer BuildErrorAnswer(int status, Failure failure,
                             std::string_view detail, bool head_request,
                             bool grpc);

// The same answer as HTTP/1.1 text: with "Connection: close" when `close` is
// set, a text/plain body "<Reason>: <detail>\n". `extra_headers`: whole field
// lines ("Name: value\r\n") added to the head.
std::string BuildErrorResponse(int status, std::string_view detail, bool close,
                               std::string_view extra_headers = {});

}  // namespace forkd::proxy

#endif  // FORKD_SERVER_PROXY_ERROR_RESPONSE_H_

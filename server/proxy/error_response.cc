#include "server/proxy/error_response.h"

#include "absl/strings/str_cat.h"
#include "server/http1/fields.h"

namespace forkd::proxy {

int StatusFor(Failure failure, http1::ErrorKind parse_error) {
  switch (failure) {
    case Failure::kBadRequest:
      return http1::StatusForError(parse_error);
    case Failure::kUpstreamRefused:
    case Failure::kUpstreamReset:
    case Failure::kUpstreamBadResponse:
      return 502;
    case Failure::kUpstreamTimeout:
      return 504;
    case Failure::kOverCapacity:
    case Failure::kDraining:
    case Failure::kQueueTimeout:
      return 503;
    case Failure::kHttp2Required:
      return 505;
    case Failure::kClientTimeout:
      return 408;
  }
  return 500;
}

scoreboard::Rejection RejectionFor(int status, Failure failure) {
  using scoreboard::Rejection;
  switch (failure) {
    case Failure::kOverCapacity:
      return Rejection::kOverCapacity;
    case Failure::kQueueTimeout:
      return Rejection::kOverCapacity;
    case Failure::kDraining:
      return Rejection::kDraining;
    case Failure::kHttp2Required:
      return Rejection::kBadRequest;  // with the 505 parse errors
    case Failure::kBadRequest:
      switch (status) {
        case 413:
          return Rejection::kBodyTooLarge;
        case 414:
          return Rejection::kUriTooLong;
        case 431:
          return Rejection::kHeadersTooLarge;
        default:
          return Rejection::kBadRequest;
      }
    default:
      return Rejection::kCount;
  }
}

scoreboard::UpstreamError UpstreamErrorFor(Failure failure) {
  using scoreboard::UpstreamError;
  switch (failure) {
    case Failure::kUpstreamRefused:
      return UpstreamError::kRefused;
    case Failure::kUpstreamReset:
      return UpstreamError::kReset;
    case Failure::kUpstreamTimeout:
      return UpstreamError::kTimeout;
    case Failure::kUpstreamBadResponse:
      return UpstreamError::kBadResponse;
    default:
      return UpstreamError::kCount;
  }
}

ErrorAnswer BuildErrorAnswer(int status, std::string_view detail) {
  std::string reason(http1::ReasonPhrase(status));
  ErrorAnswer a;
  a.body = absl::StrCat(reason, ": ", std::string(detail), "\n");
  a.fields = {{"Content-Type", "text/plain; charset=utf-8"},
              {"Content-Length", absl::StrCat(a.body.size())}};
  return a;
}

ErrorAnswer BuildErrorAnswer(int status, Failure failure,
                             std::string_view detail, bool head_request,
                             bool grpc) {
  if (grpc) {
    // A gRPC client reads a status from grpc-status, not a text body;
    // saying so spares clients a content-type they reject.
    ErrorAnswer a;
    a.head_only = true;
    a.fields = {
        {"content-type", "application/grpc"},
        {"grpc-status", "14"},
        {"grpc-message",
         absl::StrCat(status, " ", std::string(http1::ReasonPhrase(status)),
                      ": ", std::string(detail))}};
    return a;
  }
  ErrorAnswer a = BuildErrorAnswer(status, detail);
  if (failure == Failure::kQueueTimeout) {
    a.fields.push_back({"Retry-After", "1"});
  }
  // A HEAD answer has the fields a GET would get but no body.
  if (head_request) {
    a.head_only = true;
    a.body.clear();
  }
  return a;
}

std::string BuildErrorResponse(int status, std::string_view detail, bool close,
                               std::string_view extra_headers) {
  // absl 20220623 here has its own string_view: pass std::string.
  std::string reason(http1::ReasonPhrase(status));
  std::string body = absl::StrCat(reason, ": ", std::string(detail), "\n");
  return absl::StrCat("HTTP/1.1 ", status, " ", reason,
                      "\r\nContent-Type: text/plain; charset=utf-8"
                      "\r\nContent-Length: ",
                      body.size(), close ? "\r\nConnection: close" : "", "\r\n",
                      std::string(extra_headers), "\r\n", body);
}

}  // namespace forkd::proxy

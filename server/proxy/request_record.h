// What every request leaves behind, whichever app side served it (an
// exchange of ProxySession for an HTTP/1.1 app, a stream forwarded to an
// h2c app by UpstreamBridge): its id, the slot's counters and histograms,
// the access log line and the max-requests count, and for forkd's own
// answers the failure counters and the one log line naming the cause.
#ifndef FORKD_SERVER_PROXY_REQUEST_RECORD_H_
#define FORKD_SERVER_PROXY_REQUEST_RECORD_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "server/accesslog/access_log.h"
#include "server/http1/message.h"
#include "server/proxy/error_response.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::proxy {

struct SessionContext;  // proxy_session.h, which holds a RequestRecord

// One request's facts for its counters and its access-log line, filled in
// as its exchange goes by the app side that serves it.
struct RequestRecord {
  std::string method;
  std::string target;
  std::string request_id;
  int64_t start_ns = 0;   // its first byte, on the serving side's clock
  absl::Time start_time;  // the same on the wall clock (with an access log)
  double upstream_s = 0;  // from asking the app to the app's response head
  int status = 0;         // the response's, 0 while there is none
  uint64_t bytes_in = 0;  // request bytes received
  uint64_t body_bytes_out = 0;
};

// The X-Request-Id to use: the client's value when it sent a usable one
// (1 to 200 bytes), else 128 random bits as 32 hex digits. Any thread.
std::string RequestIdFor(const std::string* client_value);

// Counts the finished request `r` in ctx->slot (unless ctx->record_metrics
// is off), writes its access log line (when there is an access log) and
// runs ctx->on_request_done. `peer` is the client's IP ("" for a unix
// socket), `protocol` the log's (e.g. "HTTP/2.0"), `family` the protocol
// label of the request metrics, `now_ns` the end on r.start_ns's clock;
// the field lists feed %({x}i)s and %({x}o)s. The calling worker thread's
// slot only.
void RecordFinishedRequest(SessionContext* ctx, const RequestRecord& r,
                           std::string_view peer, std::string_view protocol,
                           scoreboard::Protocol family, int64_t now_ns,
                           const std::vector<http1::Header>* request_headers,
                           const std::vector<http1::Header>* response_headers);

// forkd answers `status` for `failure`: counts it as a rejection when it is
// one (RejectionFor) and logs the one line that names the cause. `peer`
// as above. The calling worker thread's slot only.
void CountAndLogFailureAnswer(SessionContext* ctx, int status, Failure failure,
                              const RequestRecord& r, std::string_view peer,
                              std::string_view detail);

// Counts an app failure (refused, reset, timeout, bad response) in the
// upstream error counters; other failures count nothing here.
void CountUpstreamError(SessionContext* ctx, Failure failure);

// The client's address as log lines name it.
std::string_view PeerForLog(std::string_view peer);

}  // namespace forkd::proxy

#endif  // FORKD_SERVER_PROXY_REQUEST_RECORD_H_

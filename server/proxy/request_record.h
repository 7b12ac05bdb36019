// What every request leaves behind, whichever path served it (an HTTP/1
// exchange or an HTTP/2 stream in ProxySession, a stream forwarded to an
// h2c app by UpstreamBridge): its id, the slot's counters and
// histograms, the access log line and the max-requests count.
#ifndef FORKD_SERVER_PROXY_REQUEST_RECORD_H_
#define FORKD_SERVER_PROXY_REQUEST_RECORD_H_

#include <cstdint>
#include <string>

#include "server/accesslog/access_log.h"
#include "server/proxy/proxy_session.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::proxy {

// The X-Request-Id to use: the client's value when it sent a usable one
// (1 to 200 bytes), else 128 random bits as 32 hex digits. Any thread.
std::string RequestIdFor(const std::string* client_value);

// Counts a finished request in ctx->slot (unless ctx->record_metrics is
// off), writes its access log line (when there is an access log) and runs
// ctx->on_request_done. `entry` describes it; `family` is the protocol
// label of the request metrics, `bytes_in` the request bytes received.
// The calling worker thread's slot only.
void RecordFinishedRequest(SessionContext* ctx, const accesslog::Entry& entry,
                           scoreboard::Protocol family, uint64_t bytes_in);

}  // namespace forkd::proxy

#endif  // FORKD_SERVER_PROXY_REQUEST_RECORD_H_

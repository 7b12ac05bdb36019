#include "server/proxy/request_record.h"

#include <unistd.h>

#include <atomic>
#include <random>

#include "server/common/log.h"
#include "server/common/loop_clock.h"
#include "server/proxy/proxy_session.h"

namespace forkd::proxy {
namespace {

// Index into the per-status-class counters: 1xx..5xx, anything else as 5xx.
int StatusClass(int status) {
  int c = status / 100;
  return (c >= 1 && c <= 5) ? c - 1 : 4;
}

// 128 random bits as 32 hex digits. A per-thread generator keeps it cheap
// and free of locks; uniqueness, not secrecy, is what matters here.
std::string NewRequestId() {
  thread_local std::mt19937_64 gen([] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
           static_cast<uint64_t>(getpid()) ^
           static_cast<uint64_t>(loop_clock::NowNs());
  }());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (int half = 0; half < 2; ++half) {
    uint64_t v = gen();
    for (int i = 0; i < 16; ++i, v >>= 4) id[half * 16 + 15 - i] = kHex[v & 15];
  }
  return id;
}

}  // namespace

std::string RequestIdFor(const std::string* client_value) {
  if (client_value != nullptr && !client_value->empty() &&
      client_value->size() <= 200) {
    return *client_value;
  }
  return NewRequestId();
}

void RecordFinishedRequest(SessionContext* ctx, const RequestRecord& r,
                           std::string_view peer, std::string_view protocol,
                           scoreboard::Protocol family, int64_t now_ns,
                           const std::vector<http1::Header>* request_headers,
                           const std::vector<http1::Header>* response_headers) {
  const double duration_s = static_cast<double>(now_ns - r.start_ns) / 1e9;
  scoreboard::Slot* slot = ctx->slot;
  if (ctx->record_metrics) {
    auto method = scoreboard::MethodIndex(r.method.data(), r.method.size());
    int cls = StatusClass(r.status);
    slot->counters.requests[static_cast<size_t>(method)][cls].fetch_add(
        1, std::memory_order_relaxed);
    slot->counters.requests_by_protocol[static_cast<size_t>(family)][cls]
        .fetch_add(1, std::memory_order_relaxed);
    slot->counters.request_duration.Observe(duration_s);
    slot->counters.bytes_in.fetch_add(r.bytes_in, std::memory_order_relaxed);
    slot->counters.bytes_out.fetch_add(r.body_bytes_out,
                                       std::memory_order_relaxed);
  }
  slot->requests_served.fetch_add(1, std::memory_order_relaxed);
  if (ctx->access_log != nullptr) {
    accesslog::Entry e;
    e.remote_addr = peer.empty() ? std::string_view("-") : peer;
    e.start = r.start_time;
    e.duration_s = duration_s;
    e.upstream_s = r.upstream_s;
    e.method = r.method;
    e.target = r.target;
    e.protocol = protocol;
    e.status = r.status;
    e.body_bytes = r.body_bytes_out;
    e.request_id = r.request_id;
    e.request_headers = request_headers;
    e.response_headers = response_headers;
    ctx->access_log->Log(e);
  }
  if (ctx->on_request_done) ctx->on_request_done();
}

void CountAndLogFailureAnswer(SessionContext* ctx, int status, Failure failure,
                              const RequestRecord& r, std::string_view peer,
                              std::string_view detail) {
  auto rejection = RejectionFor(status, failure);
  if (rejection != scoreboard::Rejection::kCount && ctx->record_metrics) {
    ctx->slot->counters.rejected[static_cast<size_t>(rejection)].fetch_add(
        1, std::memory_order_relaxed);
  }
  auto or_dash = [](const std::string& s) {
    return s.empty() ? std::string_view("-") : std::string_view(s);
  };
  LOG_ERROR("%d for %s %s from %s (request %s): %s", status, or_dash(r.method),
            or_dash(r.target), PeerForLog(peer), or_dash(r.request_id), detail);
}

void CountUpstreamError(SessionContext* ctx, Failure failure) {
  auto kind = UpstreamErrorFor(failure);
  if (kind != scoreboard::UpstreamError::kCount && ctx->record_metrics) {
    ctx->slot->counters.upstream_errors[static_cast<size_t>(kind)].fetch_add(
        1, std::memory_order_relaxed);
  }
}

std::string_view PeerForLog(std::string_view peer) {
  return peer.empty() ? std::string_view("unix-socket client") : peer;
}

}  // namespace forkd::proxy

#include "server/proxy/request_record.h"

#include <unistd.h>

#include <atomic>
#include <random>

#include "server/common/loop_clock.h"

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

void RecordFinishedRequest(SessionContext* ctx, const accesslog::Entry& entry,
                           scoreboard::Protocol family, uint64_t bytes_in) {
  scoreboard::Slot* slot = ctx->slot;
  if (ctx->record_metrics) {
    auto method =
        scoreboard::MethodIndex(entry.method.data(), entry.method.size());
    int cls = StatusClass(entry.status);
    slot->counters.requests[static_cast<size_t>(method)][cls].fetch_add(
        1, std::memory_order_relaxed);
    slot->counters.requests_by_protocol[static_cast<size_t>(family)][cls]
        .fetch_add(1, std::memory_order_relaxed);
    slot->counters.request_duration.Observe(entry.duration_s);
    slot->counters.bytes_in.fetch_add(bytes_in, std::memory_order_relaxed);
    slot->counters.bytes_out.fetch_add(entry.body_bytes,
                                       std::memory_order_relaxed);
  }
  slot->requests_served.fetch_add(1, std::memory_order_relaxed);
  if (ctx->access_log != nullptr) ctx->access_log->Log(entry);
  if (ctx->on_request_done) ctx->on_request_done();
}

}  // namespace forkd::proxy

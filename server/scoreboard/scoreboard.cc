#include "server/scoreboard/scoreboard.h"

#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace forkd::scoreboard {
namespace {

constexpr uint64_t kMagic = 0x666f726b64534233ULL;  // "forkdSB3"

size_t HeaderSize() { return (sizeof(Header) + 63) / 64 * 64; }

size_t RegionSize(uint32_t capacity, uint32_t app_capacity) {
  return HeaderSize() + sizeof(Slot) * capacity +
         sizeof(AppSlot) * app_capacity;
}

template <typename T>
void Relaxed(std::atomic<T>& a, T v) {
  a.store(v, std::memory_order_relaxed);
}

}  // namespace

const char* AppStateName(AppState s) {
  switch (s) {
    case AppState::kEmpty:
      return "empty";
    case AppState::kStarting:
      return "starting";
    case AppState::kReady:
      return "ready";
    case AppState::kRetiring:
      return "retiring";
    case AppState::kStopping:
      return "stopping";
  }
  return "unknown";
}

const char* WorkerStateName(WorkerState s) {
  switch (s) {
    case WorkerState::kEmpty:
      return "empty";
    case WorkerState::kBooting:
      return "booting";
    case WorkerState::kReady:
      return "ready";
    case WorkerState::kDraining:
      return "draining";
    case WorkerState::kExiting:
      return "exiting";
  }
  return "unknown";
}

Method MethodIndex(const char* method, size_t len) {
  std::string_view m(method, len);
  if (m == "GET") return Method::kGet;
  if (m == "HEAD") return Method::kHead;
  if (m == "POST") return Method::kPost;
  if (m == "PUT") return Method::kPut;
  if (m == "DELETE") return Method::kDelete;
  if (m == "PATCH") return Method::kPatch;
  if (m == "OPTIONS") return Method::kOptions;
  return Method::kOther;
}

const char* MethodName(Method m) {
  static constexpr const char* kNames[] = {
      "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"};
  return kNames[static_cast<size_t>(m)];
}

const char* ProtocolName(Protocol p) {
  return p == Protocol::kHttp2 ? "http2" : "http1";
}

const char* ClientTimeoutName(ClientTimeout t) {
  switch (t) {
    case ClientTimeout::kHeader:
      return "header";
    case ClientTimeout::kBody:
      return "body";
    case ClientTimeout::kHttp2:
      return "h2";
    case ClientTimeout::kCount:
      break;
  }
  return "?";
}

void Histogram::Observe(double seconds) {
  size_t i = 0;
  while (i < kDurationBuckets.size() && seconds > kDurationBuckets[i]) ++i;
  buckets[i].fetch_add(1, std::memory_order_relaxed);
  sum_us.fetch_add(static_cast<uint64_t>(seconds * 1e6),
                   std::memory_order_relaxed);
}

uint64_t CounterTotals::TotalRequests() const {
  uint64_t total = 0;
  for (const auto& by_class : requests) {
    for (uint64_t v : by_class) total += v;
  }
  return total;
}

void CounterTotals::Add(const Counters& c) {
  auto load = [](const std::atomic<uint64_t>& a) {
    return a.load(std::memory_order_relaxed);
  };
  for (size_t m = 0; m < requests.size(); ++m) {
    for (size_t k = 0; k < 5; ++k) requests[m][k] += load(c.requests[m][k]);
  }
  for (size_t i = 0; i < rejected.size(); ++i)
    rejected[i] += load(c.rejected[i]);
  for (size_t i = 0; i < upstream_errors.size(); ++i) {
    upstream_errors[i] += load(c.upstream_errors[i]);
  }
  bytes_in += load(c.bytes_in);
  bytes_out += load(c.bytes_out);
  connections_accepted += load(c.connections_accepted);
  tls_handshakes += load(c.tls_handshakes);
  for (size_t i = 0; i < tls_handshake_failures.size(); ++i) {
    tls_handshake_failures[i] += load(c.tls_handshake_failures[i]);
  }
  for (size_t i = 0; i < client_timeouts.size(); ++i) {
    client_timeouts[i] += load(c.client_timeouts[i]);
  }
  auto add_hist = [&](Hist& h, const Histogram& src) {
    for (size_t i = 0; i < h.buckets.size(); ++i)
      h.buckets[i] += load(src.buckets[i]);
    h.sum_us += load(src.sum_us);
  };
  add_hist(request_duration, c.request_duration);
  add_hist(upstream_duration, c.upstream_duration);
  for (size_t p = 0; p < requests_by_protocol.size(); ++p) {
    for (size_t k = 0; k < 5; ++k) {
      requests_by_protocol[p][k] += load(c.requests_by_protocol[p][k]);
    }
  }
  const Http2Counters& h = c.http2;
  http2.connections += load(h.connections);
  http2.streams += load(h.streams);
  for (size_t i = 0; i < Http2Counters::kCodeSlots; ++i) {
    http2.rst_sent[i] += load(h.rst_sent[i]);
    http2.rst_received[i] += load(h.rst_received[i]);
    http2.goaway_sent[i] += load(h.goaway_sent[i]);
  }
  http2.rapid_resets += load(h.rapid_resets);
  http2.ping_floods += load(h.ping_floods);
  http2.settings_floods += load(h.settings_floods);
  http2.ack_floods += load(h.ack_floods);
  http2.continuation_floods += load(h.continuation_floods);
  http2.header_lists_too_large += load(h.header_lists_too_large);
  for (size_t i = 0; i < fields_dropped.size(); ++i) {
    fields_dropped[i] += load(c.fields_dropped[i]);
  }
  proxy_protocol_accepted += load(c.proxy_protocol_accepted);
  queue_timeouts += load(c.queue_timeouts);
  queue_waits += load(c.queue_waits);
  queue_wait_us += load(c.queue_wait_us);
  for (size_t i = 0; i < proxy_protocol_rejected.size(); ++i) {
    proxy_protocol_rejected[i] += load(c.proxy_protocol_rejected[i]);
  }
}

void CounterTotals::Add(const CounterTotals& o) {
  for (size_t m = 0; m < requests.size(); ++m) {
    for (size_t k = 0; k < 5; ++k) requests[m][k] += o.requests[m][k];
  }
  for (size_t i = 0; i < rejected.size(); ++i) rejected[i] += o.rejected[i];
  for (size_t i = 0; i < upstream_errors.size(); ++i) {
    upstream_errors[i] += o.upstream_errors[i];
  }
  bytes_in += o.bytes_in;
  bytes_out += o.bytes_out;
  connections_accepted += o.connections_accepted;
  tls_handshakes += o.tls_handshakes;
  for (size_t i = 0; i < tls_handshake_failures.size(); ++i) {
    tls_handshake_failures[i] += o.tls_handshake_failures[i];
  }
  for (size_t i = 0; i < client_timeouts.size(); ++i) {
    client_timeouts[i] += o.client_timeouts[i];
  }
  auto add_hist = [](Hist& h, const Hist& src) {
    for (size_t i = 0; i < h.buckets.size(); ++i)
      h.buckets[i] += src.buckets[i];
    h.sum_us += src.sum_us;
  };
  add_hist(request_duration, o.request_duration);
  add_hist(upstream_duration, o.upstream_duration);
  for (size_t p = 0; p < requests_by_protocol.size(); ++p) {
    for (size_t k = 0; k < 5; ++k) {
      requests_by_protocol[p][k] += o.requests_by_protocol[p][k];
    }
  }
  const Http2& h = o.http2;
  http2.connections += h.connections;
  http2.streams += h.streams;
  for (size_t i = 0; i < Http2Counters::kCodeSlots; ++i) {
    http2.rst_sent[i] += h.rst_sent[i];
    http2.rst_received[i] += h.rst_received[i];
    http2.goaway_sent[i] += h.goaway_sent[i];
  }
  http2.rapid_resets += h.rapid_resets;
  http2.ping_floods += h.ping_floods;
  http2.settings_floods += h.settings_floods;
  http2.ack_floods += h.ack_floods;
  http2.continuation_floods += h.continuation_floods;
  http2.header_lists_too_large += h.header_lists_too_large;
  for (size_t i = 0; i < fields_dropped.size(); ++i) {
    fields_dropped[i] += o.fields_dropped[i];
  }
  proxy_protocol_accepted += o.proxy_protocol_accepted;
  queue_timeouts += o.queue_timeouts;
  queue_waits += o.queue_waits;
  queue_wait_us += o.queue_wait_us;
  for (size_t i = 0; i < proxy_protocol_rejected.size(); ++i) {
    proxy_protocol_rejected[i] += o.proxy_protocol_rejected[i];
  }
}

int64_t MonotonicMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

absl::StatusOr<std::unique_ptr<Scoreboard>> Scoreboard::Create(
    uint32_t capacity, uint32_t app_capacity) {
  // Not close-on-exec: workers inherit it across exec on purpose.
  int fd = memfd_create("forkd-scoreboard", 0);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("memfd_create: ", std::strerror(errno)));
  }
  size_t size = RegionSize(capacity, app_capacity);
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int err = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("ftruncate: ", std::strerror(err)));
  }
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    int err = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("mmap: ", std::strerror(err)));
  }
  // The region is zero-filled; placement-new gives the atomics their
  // defaults so every field is a valid object.
  auto* header = new (base) Header{};
  header->magic = kMagic;
  header->capacity = capacity;
  header->app_capacity = app_capacity;
  auto* slots =
      reinterpret_cast<Slot*>(static_cast<char*>(base) + HeaderSize());
  for (uint32_t i = 0; i < capacity; ++i) new (&slots[i]) Slot();
  auto* app_slots = reinterpret_cast<AppSlot*>(slots + capacity);
  for (uint32_t i = 0; i < app_capacity; ++i) new (&app_slots[i]) AppSlot();
  return std::unique_ptr<Scoreboard>(new Scoreboard(fd, base, size));
}

absl::StatusOr<std::unique_ptr<Scoreboard>> Scoreboard::Attach(int fd) {
  // Header starts with these two plain fields; read them before mapping.
  struct {
    uint64_t magic;
    uint32_t capacity;
    uint32_t app_capacity;
  } probe;
  if (pread(fd, &probe, sizeof(probe), 0) != sizeof(probe) ||
      probe.magic != kMagic) {
    return absl::InvalidArgumentError(
        absl::StrCat("fd ", fd, " is not a forkd scoreboard"));
  }
  size_t size = RegionSize(probe.capacity, probe.app_capacity);
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    return absl::InternalError(absl::StrCat("mmap: ", std::strerror(errno)));
  }
  return std::unique_ptr<Scoreboard>(new Scoreboard(fd, base, size));
}

Scoreboard::Scoreboard(int fd, void* base, size_t size)
    : fd_(fd),
      base_(base),
      size_(size),
      header_(static_cast<Header*>(base)),
      slots_(reinterpret_cast<Slot*>(static_cast<char*>(base) + HeaderSize())),
      app_slots_(reinterpret_cast<AppSlot*>(slots_ + header_->capacity)) {}

Scoreboard::~Scoreboard() {
  munmap(base_, size_);
  close(fd_);
}

void Scoreboard::SetQueueHead(uint32_t index, int64_t since_ms) {
  int64_t old =
      slots_[index].queue_head_ms.exchange(since_ms, std::memory_order_relaxed);
  if (old == 0 && since_ms != 0) {
    header_->queue_heads.fetch_add(1, std::memory_order_relaxed);
  } else if (old != 0 && since_ms == 0) {
    header_->queue_heads.fetch_sub(1, std::memory_order_relaxed);
  }
}

void Scoreboard::ResetSlot(uint32_t index) {
  SetQueueHead(index, 0);
  Slot* s = &slots_[index];
  // A worker that died mid-request never gave its places back.
  uint32_t held = s->limit_held.exchange(0, std::memory_order_acq_rel);
  std::atomic<uint32_t>& in_flight = header_->app_limit.in_flight;
  uint32_t cur = in_flight.load(std::memory_order_relaxed);
  while (held > 0 &&
         !in_flight.compare_exchange_weak(cur, cur > held ? cur - held : 0,
                                          std::memory_order_acq_rel,
                                          std::memory_order_relaxed)) {
  }
  s->~Slot();
  new (s) Slot();
}

}  // namespace forkd::scoreboard

// The scoreboard: one shared-memory region, made by the master before any
// worker, with a slot per worker. Each worker writes only its own slot
// (heartbeat, state, gauges, counters, histogram buckets) with relaxed
// atomics, never locks; the master reads all slots to supervise and to
// report. The master also publishes live settings (threads, connections) in
// the header with a generation number that workers watch.
#ifndef FORKD_SERVER_SCOREBOARD_SCOREBOARD_H_
#define FORKD_SERVER_SCOREBOARD_SCOREBOARD_H_

#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"

namespace forkd::scoreboard {

enum class WorkerState : uint32_t {
  kEmpty = 0,  // slot unused
  kBooting,    // spawned, not yet accepting
  kReady,      // accepting and serving
  kDraining,   // told to stop: finishing in-flight work, not accepting
  kExiting,    // done, about to exit
};
const char* WorkerStateName(WorkerState s);

// Why a worker left on its own, written by the worker before it exits so the
// master can tell a recycle from a crash.
enum class ExitReason : uint32_t {
  kNone = 0,     // still running, or died without saying (a crash)
  kMaxRequests,  // served --max-requests (+ jitter): recycled
  kStopped,      // told to stop (TERM/QUIT from the master) and did
  kBootFailed,   // could not start (also exit code 3)
};

// Index of a request's method in the per-method counters.
enum class Method : uint32_t {
  kGet,
  kHead,
  kPost,
  kPut,
  kDelete,
  kPatch,
  kOptions,
  kOther,
  kCount
};
Method MethodIndex(const char* method, size_t len);
const char* MethodName(Method m);

// Why a request was answered by forkd itself instead of the app.
enum class Rejection : uint32_t {
  kBadRequest,       // 400 (and 501/505 parse errors)
  kBodyTooLarge,     // 413
  kUriTooLong,       // 414
  kHeadersTooLarge,  // 431
  kOverCapacity,     // 503: over the in-flight cap
  kDraining,         // 503: worker or server draining
  kCount
};

enum class UpstreamError : uint32_t {
  kRefused,      // connect failed: socket missing or refused
  kReset,        // connection reset / closed before a full response
  kTimeout,      // --upstream-timeout
  kBadResponse,  // unparsable response
  kCount
};

// The protocol a request arrived in, for the per-protocol request counter.
enum class Protocol : uint32_t {
  kHttp1,  // HTTP/1.0 and HTTP/1.1
  kHttp2,  // a stream of an HTTP/2 connection (h2c or h2)
  kCount
};
const char* ProtocolName(Protocol p);  // "http1", "http2"

// HTTP/2 connection counters. The worker's http2::Http2Session instances
// write them (through http2::Http2Context::counters) straight into the
// slot, so they are folded and exported like every other counter.
struct Http2Counters {
  // Slots 0x0..0xd are the RFC 9113 §7 error codes; unknown codes share
  // the last one.
  static constexpr size_t kCodeSlots = 15;
  static size_t Slot(uint32_t error_code) {
    return error_code < kCodeSlots - 1 ? error_code : kCodeSlots - 1;
  }
  using PerCode = std::array<std::atomic<uint64_t>, kCodeSlots>;

  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> streams{0};  // requests that reached the Handler
  PerCode rst_sent{};                // RST_STREAM frames we sent, by error code
  PerCode rst_received{};            // RST_STREAM frames the clients sent
  PerCode goaway_sent{};  // GOAWAY frames we sent (graceful ones: NO_ERROR)
  // Why a connection was ended with ENHANCE_YOUR_CALM, or a request
  // refused.
  std::atomic<uint64_t> rapid_resets{0};
  std::atomic<uint64_t> ping_floods{0};
  std::atomic<uint64_t> settings_floods{0};
  std::atomic<uint64_t> ack_floods{0};  // max_outbound_acks exceeded
  std::atomic<uint64_t> continuation_floods{0};
  // Header lists over max_header_list_size: answered 431 (trailers:
  // RST_STREAM(ENHANCE_YOUR_CALM)).
  std::atomic<uint64_t> header_lists_too_large{0};
};

// Why a TLS handshake failed (client connections with --certfile).
enum class TlsFailure : uint32_t {
  kClosed,       // the client closed or reset mid-handshake
  kProtocol,     // not TLS, no shared version/cipher/ALPN, a bad record
  kCertificate,  // --ca-certs: the client's certificate missing or rejected
  kCount
};

// Which deadline a slow client missed (--client-header-timeout,
// --client-body-timeout, and their HTTP/2 equivalents).
enum class ClientTimeout : uint32_t {
  kHeader,  // request head (or TLS handshake) not complete in time: 408
  kBody,    // no request body bytes for too long: 408
  kHttp2,   // HTTP/2: no SETTINGS, a stalled header block or request body
  kCount
};
const char* ClientTimeoutName(ClientTimeout t);  // "header", "body", "h2"

// Why a request field was removed before the app saw it (--header-map,
// --forwarded-allow-ips).
enum class FieldDrop : uint32_t {
  kUnderscore,           // a name with '_' (--header-map drop)
  kUntrustedForwarding,  // X-Forwarded-*, Forwarded... from an untrusted peer
  kCount
};

// Why a connection was closed before its PROXY protocol header was read
// (--proxy-protocol).
enum class ProxyProtocolReject : uint32_t {
  kUntrustedPeer,  // the peer is outside --proxy-allow-ips
  kMalformed,      // no header, or a bad one
  kTimeout,        // the header did not arrive in time
  kClosed,         // the peer closed or reset before the header
  kCount
};

// Histogram bucket upper bounds in seconds (Prometheus "le"), +Inf implied.
inline constexpr std::array<double, 14> kDurationBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};

// A histogram of durations: counts per bucket (+Inf last), sum in
// microseconds. Cumulation happens at read time.
struct Histogram {
  std::array<std::atomic<uint64_t>, kDurationBuckets.size() + 1> buckets{};
  std::atomic<uint64_t> sum_us{0};
  void Observe(double seconds);
};

// Monotonic counters: folded into the retired totals when a worker leaves.
struct Counters {
  // [method][status class 1xx..5xx]
  std::array<std::array<std::atomic<uint64_t>, 5>,
             static_cast<size_t>(Method::kCount)>
      requests{};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(Rejection::kCount)>
      rejected{};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(UpstreamError::kCount)>
      upstream_errors{};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<uint64_t> tls_handshakes{0};  // completed
  std::array<std::atomic<uint64_t>, static_cast<size_t>(TlsFailure::kCount)>
      tls_handshake_failures{};
  Histogram request_duration;
  Histogram upstream_duration;
  // The same requests as `requests`, by protocol instead of method.
  std::array<std::array<std::atomic<uint64_t>, 5>,
             static_cast<size_t>(Protocol::kCount)>
      requests_by_protocol{};
  Http2Counters http2;
  std::array<std::atomic<uint64_t>, static_cast<size_t>(ClientTimeout::kCount)>
      client_timeouts{};

  std::array<std::atomic<uint64_t>, static_cast<size_t>(FieldDrop::kCount)>
      fields_dropped{};
  std::atomic<uint64_t> proxy_protocol_accepted{0};  // headers read
  std::array<std::atomic<uint64_t>,
             static_cast<size_t>(ProxyProtocolReject::kCount)>
      proxy_protocol_rejected{};
  // App mode: requests that waited for a free app process (proxy::AppQueue).
  std::atomic<uint64_t> queue_timeouts{0};  // gave up: 503
  std::atomic<uint64_t> queue_waits{0};     // waited, then got a process
  std::atomic<uint64_t> queue_wait_us{0};   // their total wait
};

// A plain (non-atomic) copy of Counters for aggregation.
struct CounterTotals {
  std::array<std::array<uint64_t, 5>, static_cast<size_t>(Method::kCount)>
      requests{};
  std::array<uint64_t, static_cast<size_t>(Rejection::kCount)> rejected{};
  std::array<uint64_t, static_cast<size_t>(UpstreamError::kCount)>
      upstream_errors{};
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t connections_accepted = 0;
  uint64_t tls_handshakes = 0;
  std::array<uint64_t, static_cast<size_t>(TlsFailure::kCount)>
      tls_handshake_failures{};
  struct Hist {
    std::array<uint64_t, kDurationBuckets.size() + 1> buckets{};
    uint64_t sum_us = 0;
  } request_duration, upstream_duration;
  std::array<std::array<uint64_t, 5>, static_cast<size_t>(Protocol::kCount)>
      requests_by_protocol{};
  struct Http2 {
    using PerCode = std::array<uint64_t, Http2Counters::kCodeSlots>;
    uint64_t connections = 0;
    uint64_t streams = 0;
    PerCode rst_sent{}, rst_received{}, goaway_sent{};
    uint64_t rapid_resets = 0;
    uint64_t ping_floods = 0;
    uint64_t settings_floods = 0;
    uint64_t ack_floods = 0;
    uint64_t continuation_floods = 0;
    uint64_t header_lists_too_large = 0;
  } http2;
  std::array<uint64_t, static_cast<size_t>(ClientTimeout::kCount)>
      client_timeouts{};

  std::array<uint64_t, static_cast<size_t>(FieldDrop::kCount)> fields_dropped{};
  uint64_t proxy_protocol_accepted = 0;
  std::array<uint64_t, static_cast<size_t>(ProxyProtocolReject::kCount)>
      proxy_protocol_rejected{};
  uint64_t queue_timeouts = 0;
  uint64_t queue_waits = 0;
  uint64_t queue_wait_us = 0;

  uint64_t TotalRequests() const;
  void Add(const Counters& c);  // reads atomics relaxed
  void Add(const CounterTotals& other);
};

struct alignas(64) Slot {
  std::atomic<int32_t> pid{0};
  std::atomic<uint32_t> state{0};        // WorkerState
  std::atomic<uint64_t> generation{0};   // reload generation it serves
  std::atomic<int64_t> boot_ms{0};       // monotonic ms when spawned
  std::atomic<int64_t> heartbeat_ms{0};  // monotonic ms of last sign of life
  // Gauges.
  std::atomic<uint32_t> in_flight{0};  // requests at the app right now
  std::atomic<uint32_t> busy_threads{0};
  std::atomic<uint32_t> threads{0};             // request threads running now
  std::atomic<uint32_t> connection_cap{0};      // worker_connections applied
  std::atomic<uint32_t> connections_active{0};  // client conns with a request
  std::atomic<uint32_t> connections_idle{0};    // keep-alive, waiting
  std::atomic<uint32_t> queued{0};  // app mode: waiting for an app process
  // MonotonicMs() since which the head of this worker's app queue waits,
  // 0 when nobody does: the other workers let an older head go first
  // (proxy::QueueHeads).
  std::atomic<int64_t> queue_head_ms{0};
  std::atomic<uint64_t> requests_served{0};  // this process, all outcomes
  std::atomic<uint64_t> settings_generation_seen{0};
  std::atomic<uint32_t> exit_reason{0};  // ExitReason
  // Places of the shared AppLimit this worker holds now: the master gives
  // them back when the worker dies holding some (a crash mid-request).
  std::atomic<uint32_t> limit_held{0};
  Counters counters;
};

// App mode (design "Two modes"): one AppSlot per app process the master
// runs. The master writes the identity fields and `state`; every proxy
// worker reads them to route (the ready slot with the fewest requests in
// flight, never past `cap`) and moves `in_flight`, `requests` and
// `last_progress_ms`. The master reads those to supervise: a slot with
// requests in flight and no progress for --timeout is hung.
enum class AppState : uint32_t {
  kEmpty = 0,  // no process
  kStarting,   // spawned, not yet accepting (or not yet healthy)
  kReady,      // in the rotation
  kRetiring,   // out of the rotation: finishing its in-flight, then stopped
  kStopping,   // sent TERM (or KILL), waiting for its exit
};
const char* AppStateName(AppState s);

inline constexpr size_t kAppSocketPathMax = 108;  // sizeof(sun_path)

struct alignas(64) AppSlot {
  std::atomic<int32_t> pid{0};
  std::atomic<uint32_t> state{0};  // AppState; stored with release
  // Bumped each time the slot gets a new process (before `state` leaves
  // kEmpty): a worker holding pooled connections to an older incarnation
  // drops them instead of reusing them.
  std::atomic<uint64_t> incarnation{0};
  // Most requests this process takes at once (sync: 1, gthread: --threads,
  // async: --worker-connections); the master may change it live.
  std::atomic<uint32_t> cap{1};
  // Workers: fetch_add(1) before a request is sent, fetch_sub(1) when its
  // response is done (or failed). Never above `cap` (compare-exchange).
  // The master zeroes it with each new incarnation; a worker gives back
  // only reservations of the incarnation it reserved (upstream::AppRouter).
  std::atomic<uint32_t> in_flight{0};
  std::atomic<uint64_t> requests{0};  // finished requests, this incarnation
  // MonotonicMs() when a request to it last finished, or when in_flight
  // went 0 -> 1: the hang check is in_flight > 0 && now - this > --timeout.
  std::atomic<int64_t> last_progress_ms{0};
  std::atomic<int64_t> started_ms{0};  // MonotonicMs() at spawn
  std::atomic<uint32_t> restarts{0};   // replacements in this slot so far
  // Workers: connections to this incarnation refused (ECONNREFUSED/ENOENT)
  // while it was in the rotation. The master takes a process whose count
  // moved out of the rotation until it passes its readiness probe again.
  std::atomic<uint32_t> refused{0};
  // The app process's unix socket. Written by the master while the slot is
  // kEmpty and left alone until it is kEmpty again, so a worker that saw
  // any other state (acquire) reads it safely.
  char socket_path[kAppSocketPathMax] = {};
};

// Settings the master publishes to running workers.
struct Settings {
  std::atomic<uint64_t> generation{0};  // bumped after fields change
  std::atomic<uint32_t> threads{1};
  std::atomic<uint32_t> worker_connections{1000};
  std::atomic<uint32_t> draining{0};  // whole server draining (503s)
};

// --autotune limit: ONE limit on requests in flight to the app, shared by
// every proxy worker (proxy::SharedLimit takes and gives back places). The
// master's autotuner writes `limit`; workers move `in_flight` with a
// compare-exchange that never passes it. Counted in every mode (the
// autotuner reads it), limiting only when `limit` > 0.
struct AppLimit {
  std::atomic<uint32_t> limit{0};      // 0: no limit
  std::atomic<uint32_t> in_flight{0};  // places taken now
  std::atomic<uint64_t> refused{0};    // TryAcquire found the limit full
};

struct Header {
  uint64_t magic;
  uint32_t capacity;
  uint32_t app_capacity;  // AppSlots after the worker slots (0: sidecar)
  Settings settings;
  AppLimit app_limit;
  // Slots whose queue_head_ms is set: while 0, no worker needs to look at
  // the others' heads (the common case costs one load per request).
  std::atomic<uint32_t> queue_heads{0};
};

// Milliseconds on CLOCK_MONOTONIC, comparable between processes.
int64_t MonotonicMs();

class Scoreboard {
 public:
  // Master: creates a memfd-backed region for `capacity` worker slots and
  // `app_capacity` app slots (app mode; 0 in sidecar mode). The fd is
  // inherited by workers across exec. Fails only on OS errors.
  static absl::StatusOr<std::unique_ptr<Scoreboard>> Create(
      uint32_t capacity, uint32_t app_capacity = 0);
  // Worker: maps the region behind an inherited fd.
  static absl::StatusOr<std::unique_ptr<Scoreboard>> Attach(int fd);
  ~Scoreboard();

  int fd() const { return fd_; }
  uint32_t capacity() const { return header_->capacity; }
  Settings& settings() { return header_->settings; }
  AppLimit& app_limit() { return header_->app_limit; }
  std::atomic<uint32_t>& queue_heads() { return header_->queue_heads; }
  // Sets slot `index`'s queue_head_ms, keeping queue_heads() in step.
  // 0: its line is empty (or gone). Any process.
  void SetQueueHead(uint32_t index, int64_t since_ms);
  Slot& slot(uint32_t index) { return slots_[index]; }
  const Slot& slot(uint32_t index) const { return slots_[index]; }
  uint32_t app_capacity() const { return header_->app_capacity; }
  AppSlot& app_slot(uint32_t index) { return app_slots_[index]; }
  const AppSlot& app_slot(uint32_t index) const { return app_slots_[index]; }

  // Master: clears a slot's every field before a new worker uses it. The
  // places of app_limit() the slot's worker still held are given back.
  void ResetSlot(uint32_t index);

 private:
  Scoreboard(int fd, void* base, size_t size);
  int fd_;
  void* base_;
  size_t size_;
  Header* header_;
  Slot* slots_;
  AppSlot* app_slots_;
};

}  // namespace forkd::scoreboard

#endif  // FORKD_SERVER_SCOREBOARD_SCOREBOARD_H_

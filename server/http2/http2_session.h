// One HTTP/2 server connection (RFC 9113) on top of nghttp2. Protocol code
// only, no I/O: the caller feeds the bytes it read from the client into
// Receive(), writes what TakeOutput() appends, and answers the events a
// Handler gets with Submit*/Append*/End* calls. h2c with prior knowledge
// (Create) and the HTTP/1.1 "Upgrade: h2c" path (CreateFromUpgrade).
//
// Threading: a session and its Handler belong to one thread at a time (the
// connection's); nothing here locks. Only Http2Counters is shared between
// sessions and is atomic.
//
// Memory per connection stays bounded: request bodies by the windows we
// advertise (they reopen only when the caller says it has forwarded the
// bytes, ConsumeRequestData), header lists by max_header_list_size, response
// bodies by the caller, who stops reading the app while
// QueuedResponseBytes() is over its limit.
#ifndef FORKD_SERVER_HTTP2_HTTP2_SESSION_H_
#define FORKD_SERVER_HTTP2_HTTP2_SESSION_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/common/buffer.h"
#include "server/http1/message.h"
#include "server/scoreboard/scoreboard.h"

struct nghttp2_session;

namespace forkd::http2 {

// RFC 9113 §7 error codes, for ResetStream() and what OnStreamClosed() and
// Http2Counters report.
enum ErrorCode : uint32_t {
  kNoError = 0x0,
  kProtocolError = 0x1,
  kInternalError = 0x2,
  kFlowControlError = 0x3,
  kSettingsTimeout = 0x4,
  kStreamClosed = 0x5,
  kFrameSizeError = 0x6,
  kRefusedStream = 0x7,
  kCancel = 0x8,
  kCompressionError = 0x9,
  kConnectError = 0xa,
  kEnhanceYourCalm = 0xb,
  kInadequateSecurity = 0xc,
  kHttp11Required = 0xd,
};

// Whether the first bytes of a connection are the HTTP/2 client preface
// ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", RFC 9113 §3.4).
enum class PrefaceMatch {
  kNeedMore,  // a prefix of the preface so far: read more, then ask again
  kMatch,     // the full 24-byte preface: hand the connection to Create()
  kNoMatch,   // something else (HTTP/1.x): use the HTTP/1 path
};
PrefaceMatch LooksLikeH2Preface(std::string_view first_bytes);

// What we advertise in SETTINGS. The first four are the
// --http2-max-concurrent-streams, --http2-initial-window-size,
// --http2-max-frame-size and --http2-max-header-list-size flags.
struct Http2Settings {
  uint32_t max_concurrent_streams = 100;
  // Per-stream receive window: request body bytes a stream may have in
  // flight that the caller has not consumed yet.
  uint32_t initial_window_size = 65535;
  uint32_t max_frame_size = 16384;  // 16384 .. 16777215
  // Bytes of a request's header list (or trailers), counted as RFC 9113
  // §6.5.2 does (name + value + 32 per field). Larger lists are answered
  // with 431 by the session itself.
  uint32_t max_header_list_size = 65536;
  // Connection receive window: bounds the unconsumed request body bytes of
  // all streams together (raised to initial_window_size if smaller).
  uint32_t connection_window_size = 1 << 20;
};

// Abuse thresholds. Crossing one ends the connection with
// GOAWAY(ENHANCE_YOUR_CALM). Counts are per connection and per one-second
// window of the context's clock.
struct Http2Limits {
  // RST_STREAMs from the client plus streams we reset for protocol errors
  // or refused, plus requests answered 431 (rapid reset, CVE-2023-44487).
  uint32_t max_resets_per_second = 100;
  uint32_t max_pings_per_second = 100;     // PINGs without ACK
  uint32_t max_settings_per_second = 100;  // SETTINGS without ACK
  // SETTINGS/PING ACKs queued but not yet taken by TakeOutput (a peer that
  // does not read): past this, GOAWAY(ENHANCE_YOUR_CALM).
  uint32_t max_outbound_acks = 1000;
  // CONTINUATION frames after one HEADERS frame.
  uint32_t max_continuations = 8;
};

// Counters the metrics code reads, shared by all sessions of a worker
// (atomic, relaxed increments). They live in the worker's scoreboard slot
// so the master exports them (forkd_http2_*); see scoreboard.h.
using Http2Counters = scoreboard::Http2Counters;

// Per-worker state all sessions share; must outlive them.
struct Http2Context {
  Http2Limits limits;
  Http2Counters* counters = nullptr;  // nullptr: not counted
  // Monotonic milliseconds for the per-second abuse windows; empty uses
  // std::chrono::steady_clock. Tests pass a fake.
  std::function<int64_t()> now_ms;
};

class Http2Session {
 public:
  // Events of one connection. Called only from inside Receive() and
  // TakeOutput(), on the connection's thread. A Handler may call the
  // session's Submit*/Append*/End*/ResetStream/ConsumeRequestData/
  // QueuedResponseBytes/StartGracefulShutdown from a callback, but never
  // Receive()/TakeOutput() and never destroy the session there.
  class Handler {
   public:
    virtual ~Handler() = default;

    // A request head arrived on a new stream. Pseudo-headers were validated
    // by nghttp2 (RFC 9113 §8.3: :method, :scheme and :path present and
    // well formed, no connection-specific fields, "te" only "trailers",
    // lowercase names). `authority` is :authority, "" when the client sent
    // none (then a "host" field may be in `headers`). For CONNECT, scheme
    // and path are "". `headers` are the regular fields, names lowercase,
    // several "cookie" fields joined into one with "; " (§8.2.3).
    // `end_stream`: the request has no body and OnRequestEnd() will not
    // follow.
    virtual void OnRequestHeaders(int32_t stream_id, std::string_view method,
                                  std::string_view scheme,
                                  std::string_view authority,
                                  std::string_view path,
                                  std::vector<http1::Header> headers,
                                  bool end_stream) = 0;

    // Request body bytes (padding removed). The client's window for them
    // reopens only when the caller calls ConsumeRequestData().
    virtual void OnRequestData(int32_t stream_id, std::string_view data) = 0;

    // The request body ended; `trailers` (lowercase names) are empty unless
    // the client sent a trailer section. Not called when OnRequestHeaders()
    // had end_stream.
    virtual void OnRequestEnd(int32_t stream_id,
                              std::vector<http1::Header> trailers) = 0;

    // The stream is gone: the response was sent and the request ended
    // (error_code kNoError), or it was reset by the client, by us
    // (ResetStream) or by nghttp2 for a protocol error, or the connection
    // is being dropped (Abort). Called once for every stream that got
    // OnRequestHeaders() (and for stream 1 of CreateFromUpgrade). Free the
    // per-stream state here; calls about this stream after it return
    // NotFound or do nothing.
    virtual void OnStreamClosed(int32_t stream_id, uint32_t error_code) = 0;
  };

  // Prior-knowledge h2c (or h2 after ALPN): the client's 24-byte preface is
  // expected as the first bytes given to Receive() (pass them, do not strip
  // them). Queues our SETTINGS, so TakeOutput() has bytes at once.
  // `handler` and `ctx` (nullptr: default limits, no counters) must outlive
  // the session. Fails with InvalidArgument for settings out of RFC range.
  static absl::StatusOr<std::unique_ptr<Http2Session>> Create(
      const Http2Settings& settings, Handler* handler,
      const Http2Context* ctx = nullptr);

  // The HTTP/1.1 "Upgrade: h2c" path (RFC 7540 §3.2). The caller parsed a
  // request with "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c" and
  // exactly one HTTP2-Settings field, and no body (requests with a body are
  // served in HTTP/1.1 instead). It then:
  //   1. calls this with that field's value (base64url, padding optional)
  //      and whether the method is HEAD;
  //   2. writes "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n
  //      Upgrade: h2c\r\n\r\n", then TakeOutput() (our SETTINGS);
  //   3. gives every later client byte (starting with the preface) to
  //      Receive();
  //   4. serves the HTTP/1.1 request it already parsed as stream 1: no
  //      OnRequestHeaders() is called for it (the request is complete,
  //      stream 1 is half-closed (remote)); it answers with
  //      SubmitResponse(1, ...) like any stream and gets
  //      OnStreamClosed(1, ...).
  // Fails with InvalidArgument when the field is not valid base64url or not
  // a valid SETTINGS payload (answer the request in HTTP/1.1 then). A value
  // out of range is only seen once the session runs (it ends with
  // GOAWAY(PROTOCOL_ERROR)); CheckUpgradeSettings() finds it before.
  static absl::StatusOr<std::unique_ptr<Http2Session>> CreateFromUpgrade(
      const Http2Settings& settings, Handler* handler,
      std::string_view http2_settings_header, bool head_request,
      const Http2Context* ctx = nullptr);

  // Whether a session made by CreateFromUpgrade() from
  // `http2_settings_header` would work: the HTTP/1 path asks before it
  // answers 101 and gives up the connection. InvalidArgument for a bad
  // field or a setting out of range; counts nothing.
  static absl::Status CheckUpgradeSettings(
      std::string_view http2_settings_header);

  ~Http2Session();
  Http2Session(const Http2Session&) = delete;
  Http2Session& operator=(const Http2Session&) = delete;

  // Processes bytes read from the client; Handler events fire from inside.
  // Stream-level errors become RST_STREAM and OnStreamClosed(), not a
  // failed status. Returns an error when the connection is finished: a bad
  // preface, a fatal protocol error, or abuse (ResourceExhausted, after
  // queueing GOAWAY(ENHANCE_YOUR_CALM)). Then the caller stops reading,
  // flushes TakeOutput() for the GOAWAY (bounded by a write timeout) and
  // closes. Protocol errors nghttp2 answers on its own with GOAWAY (e.g.
  // FLOW_CONTROL_ERROR) may return OK: they show up as !WantRead() and
  // Done() once the GOAWAY is taken. Later calls return the same error.
  absl::Status Receive(const char* data, size_t len);

  // Appends frames to send to `out`: stops once at least `max_bytes` were
  // appended (it may exceed them by less than one frame) or nothing is
  // pending. Response data is taken from the per-stream queues within the
  // client's flow-control windows, so this is also where queues shrink and
  // where streams finish (OnStreamClosed may fire from inside).
  void TakeOutput(Buffer* out, size_t max_bytes = 64 * 1024);

  // Whether the caller should read from the client: false after a fatal
  // error, a GOAWAY we sent for abuse, or when the connection is over.
  bool WantRead() const;
  // Whether TakeOutput() has frames to give (call it until this is false).
  bool WantWrite() const;
  // Both directions are finished and nothing is left to send: after GOAWAY
  // (either side's) with all streams closed, or after a fatal error once
  // its GOAWAY was taken. The caller closes the connection.
  bool Done() const;

  // Sends the final response head for `stream_id`. `status` 200..999;
  // `headers` are sent with lowercase names, without connection-specific
  // fields (connection, keep-alive, proxy-connection, transfer-encoding,
  // upgrade, te, and those the Connection field names), pseudo-headers or
  // fields nghttp2 rejects as invalid. With `end_stream` the response has
  // no body (HEAD, 204, 304); otherwise the body follows through
  // AppendResponseData()/EndResponse(). If the request is still arriving
  // when the response ends, the stream is reset with NO_ERROR (§8.1).
  // Returns NotFound for an unknown or closed stream, FailedPrecondition
  // when a response was already submitted, InvalidArgument for a bad status.
  absl::Status SubmitResponse(int32_t stream_id, int status,
                              const std::vector<http1::Header>& headers,
                              bool end_stream);

  // Sends an interim response (100 Continue, 103 Early Hints) before the
  // final one. `status` 100..199 except 101 (InvalidArgument); NotFound /
  // FailedPrecondition as SubmitResponse.
  absl::Status SubmitInterim(int32_t stream_id, int status,
                             const std::vector<http1::Header>& headers);

  // Queues response body bytes (copied). They leave in DATA frames as the
  // client's windows allow. The queue is unbounded here: the caller stops
  // reading the app while QueuedResponseBytes() is over its limit. Returns
  // NotFound for an unknown or closed stream, FailedPrecondition without a
  // SubmitResponse(end_stream = false) or after EndResponse(); after
  // ResetStream() the bytes are dropped and OK is returned.
  absl::Status AppendResponseData(int32_t stream_id, std::string_view data);

  // Ends the response body once the queue is drained, followed by
  // `trailers` (filtered like headers) when they are given and not empty.
  // Errors as AppendResponseData.
  absl::Status EndResponse(
      int32_t stream_id,
      std::optional<std::vector<http1::Header>> trailers = std::nullopt);

  // Response body bytes queued for `stream_id` and not yet taken by
  // TakeOutput(); 0 for unknown streams.
  size_t QueuedResponseBytes(int32_t stream_id) const;

  // Says the caller has forwarded `n` request body bytes of `stream_id`
  // (received in OnRequestData) to the app: the stream and connection
  // windows reopen by that much (WINDOW_UPDATE when half a window is
  // consumed). Unknown or closed streams are ignored (bytes of streams
  // that close are given back to the connection window by the session).
  void ConsumeRequestData(int32_t stream_id, size_t n);

  // Resets the stream with `error_code` (e.g. kInternalError when the app
  // failed mid-response, kCancel) and drops its queued response data.
  // OnStreamClosed() follows once RST_STREAM is sent. Unknown streams are
  // ignored.
  void ResetStream(int32_t stream_id, uint32_t error_code);

  // Graceful close (RFC 9113 §6.8), for drain, reload and TERM: sends
  // GOAWAY(NO_ERROR, last id 2^31-1) and a PING; when the PING's ACK comes
  // back (a round trip, so requests already in flight are counted), sends
  // the final GOAWAY naming the last stream we accepted. Streams up to it
  // finish normally; later ones are ignored (the client retries them
  // elsewhere). Done() follows when they are all closed. A peer that never
  // answers is the caller's graceful timeout to cut. No-op when already
  // shutting down or failed.
  void StartGracefulShutdown();

  // Ends every open stream with OnStreamClosed(id, error_code) and stops
  // the session (no more input; Done() is true). Call it when the
  // connection is dropped with streams open (client EOF or error, a
  // timeout, after Done() following a fatal error) so per-stream state is
  // freed; the destructor does not call the Handler. Not from a callback.
  void Abort(uint32_t error_code = kCancel);

  // Ends the connection for a reason of the caller's (the client is too
  // slow): queues GOAWAY(`error_code`) after what is pending; Receive()
  // fails from now on. Flush TakeOutput() and close as after a failed
  // Receive(). No-op once the session failed.
  void Terminate(uint32_t error_code, std::string_view why);

  // The client's SETTINGS frame, which must follow its preface, arrived.
  bool settings_received() const { return settings_received_; }
  // A HEADERS frame arrived whose header block is not complete yet (the
  // CONTINUATION frames are missing): nothing else can be received until
  // it is.
  bool in_header_block() const { return header_block_stream_ != 0; }

  // Streams open now, including requests refused with 431 that the Handler
  // never saw.
  size_t OpenStreams() const { return streams_.size(); }

 private:
  friend struct Http2Callbacks;

  struct Stream {
    // Request.
    std::string method, scheme, authority, path;
    std::vector<http1::Header> headers;  // regular fields, then trailers
    size_t header_bytes = 0;             // of the block being received
    bool too_large = false;  // header list over the limit: answer 431
    bool delivered = false;  // the Handler knows this stream
    bool request_ended = false;
    size_t unconsumed = 0;  // request bytes given but not consumed
    // Response.
    bool response_submitted = false;
    bool has_body = false;     // a data provider is attached
    bool body_ended = false;   // EndResponse() called
    bool deferred = false;     // the data provider returned DEFERRED
    bool reset_by_us = false;  // ResetStream() from the caller
    Buffer queue;              // response body bytes not yet sent
    std::vector<http1::Header> trailers;
  };

  // A fixed one-second window counter; Hit() returns true once the count
  // in the current window passes `limit`.
  struct RateWindow {
    int64_t start_ms = -1;
    uint32_t count = 0;
    bool Hit(int64_t now_ms, uint32_t limit);
  };

  Http2Session(const Http2Settings& settings, Handler* handler,
               const Http2Context* ctx);
  absl::Status Init(const std::string* upgrade_settings, bool head_request);

  Stream* Find(int32_t stream_id) const;
  int64_t NowMs() const;
  // Queues GOAWAY(ENHANCE_YOUR_CALM) and fails the connection with
  // ResourceExhausted(`why`). Counts in `counter`.
  void Abuse(std::atomic<uint64_t>* counter, std::string_view why);
  // One more reset stream / refused request for the rapid-reset window.
  void CountReset();
  absl::Status Fail(absl::Status status, uint32_t goaway_code);
  void Answer431(int32_t stream_id, Stream* stream);
  void ResumeIfDeferred(int32_t stream_id, Stream* stream);

  Http2Settings settings_;
  Handler* handler_;
  const Http2Context* ctx_;
  Http2Counters* counters_;  // the context's, or a shared sink
  nghttp2_session* session_ = nullptr;
  absl::flat_hash_map<int32_t, std::unique_ptr<Stream>> streams_;
  absl::Status failed_;       // set once the connection is beyond saving
  bool send_failed_ = false;  // nghttp2_session_mem_send failed: stop
  bool aborted_ = false;
  bool shutdown_started_ = false;
  bool final_goaway_sent_ = false;
  bool settings_received_ = false;
  int32_t header_block_stream_ = 0;  // in_header_block(): its stream
  RateWindow resets_, pings_, settings_frames_;
};

}  // namespace forkd::http2

#endif  // FORKD_SERVER_HTTP2_HTTP2_SESSION_H_

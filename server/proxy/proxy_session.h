// One client connection's request path: read and parse requests, admit
// them, buffer the body, send them to the app over a pooled connection and
// stream the app's response back with bounded buffers. The session does
// non-blocking I/O on its two sockets but never waits: drivers (the async
// worker's epoll loop, or a gthread/sync thread's poll loop) tell it about
// readiness and call Drive(); it reports what it waits for.
//
// The code: proxy_session.cc (the client side: reading, request parsing,
// admission checks, deadlines), proxy_session_app.cc (the app connection:
// the head sent to the app, acquiring a connection, I/O, the retry rule),
// proxy_session_response.cc (the response to the client, error answers).
#ifndef FORKD_SERVER_PROXY_PROXY_SESSION_H_
#define FORKD_SERVER_PROXY_PROXY_SESSION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "server/accesslog/access_log.h"
#include "server/common/buffer.h"
#include "server/common/clock.h"
#include "server/http1/body_decoder.h"
#include "server/http1/message.h"
#include "server/http1/request_parser.h"
#include "server/http1/response_parser.h"
#include "server/http2/http2_session.h"
#include "server/proxy/app_transport.h"
#include "server/proxy/client_connection.h"
#include "server/proxy/error_response.h"
#include "server/proxy/forwarding.h"
#include "server/proxy/lingering_close.h"
#include "server/proxy/request_record.h"
#include "server/proxy/request_source.h"
#include "server/proxy/response_sink.h"
#include "server/scoreboard/scoreboard.h"
#include "server/transport/client_transport.h"
#include "server/upstream/h2_upstream.h"
#include "server/upstream/upstream_pool.h"

namespace forkd::proxy {

class Admission;
class AppQueue;

// Per-worker state every session of the worker shares. Owned by the worker;
// the pointers outlive all sessions.
struct SessionContext {
  http1::Limits limits;
  uint64_t request_buffer = 1 << 20;
  uint64_t response_buffer = 1 << 20;
  int64_t upstream_timeout_ms = 60000;
  int64_t client_timeout_ms = 30000;  // a request head or a write stalled
  int64_t keepalive_ms = 2000;        // idle keep-alive connection
  // --client-header-timeout: a request head (or TLS handshake) must be
  // complete this long after its first byte. 0: no limit.
  int64_t client_header_timeout_ms = 60000;
  // --client-body-timeout: the longest pause between two reads of a
  // request body. 0: no limit.
  int64_t client_body_timeout_ms = 60000;
  bool force_close = false;  // sync class: one request per conn
  upstream::Pool* pool = nullptr;
  // The app side of HTTP/1.1 requests; nullptr: `pool` over real sockets
  // (PoolAppTransport). Tests plug in an in-memory app.
  AppTransport* app = nullptr;
  // What sessions read the time from; nullptr: LoopClock.
  const Clock* clock = nullptr;
  // --upstream-protocol h2c (async class): HTTP/2 streams are forwarded
  // stream-to-stream on these connections; HTTP/1.1 requests get 505.
  upstream::H2Upstream* h2_upstream = nullptr;
  scoreboard::Slot* slot = nullptr;
  accesslog::AccessLog* access_log = nullptr;  // nullptr: no access log
  // Set when the worker stops: responses carry "Connection: close".
  std::atomic<bool>* stopping = nullptr;
  // Async class: requests past this many in flight in the worker get 503
  // (nullptr: no check; gthread/sync bound it by their threads).
  std::atomic<uint32_t>* in_flight_cap = nullptr;
  // gthread/sync: the FIFO line a request (HTTP/1.1 or an HTTP/2 stream)
  // joins before it talks to the app, so at most --threads (1 for sync) do
  // at once and the rest wait instead of being refused (nullptr: no line).
  Admission* admission = nullptr;
  // App mode (scoreboard with AppSlots). Each request waits in
  // `app_queue` for an app process once it is ready to send and talks to it
  // over `app_pools`; `pool` is then unused. nullptr: sidecar mode.
  AppQueue* app_queue = nullptr;
  upstream::AppPools* app_pools = nullptr;
  // The whole server is draining (admin Drain): new requests get 503.
  const std::atomic<uint32_t>* server_draining = nullptr;
  // Async class: registers a new upstream connection with the epoll.
  std::function<void(upstream::Connection*)> register_upstream;
  // Async class: calls the connection's OnBatchEnd() once the current batch
  // of events is handled (HTTP/2: one write for the responses of many
  // streams). Empty: the connection writes at once.
  std::function<void(ClientConnection*)> after_batch;
  // Called after each finished request (max-requests accounting).
  std::function<void()> on_request_done;
  // HTTP/2 (h2c with prior knowledge on the HTTP/1 port): on when set.
  bool http2 = false;
  http2::Http2Settings http2_settings;
  const http2::Http2Context* http2_context = nullptr;
  // false skips every counter, histogram and connection gauge write in the
  // slot: only bench/metrics_cost.sh turns it off, to measure their cost.
  bool record_metrics = true;
  // Whose proxy facts pass (--forwarded-allow-ips), fields with '_'
  // (--header-map).
  ForwardingPolicy forwarding;
};

// Counts what ForwardedFields/ForwardedTrailers removed in the slot's
// counters (when metrics are on) and logs it at debug level. Any thread.
void CountDroppedFields(SessionContext* ctx, const ForwardingCounts& counts,
                        std::string_view peer);

// A request that asked for "Upgrade: h2c" (RFC 7540 §3.2) and is to be
// answered as stream 1 of the HTTP/2 connection that takes over.
struct H2cUpgrade {
  std::string http2_settings;  // the HTTP2-Settings field
  std::string method;
  // The request, parsed and checked by the HTTP/1.1 parser, for stream 1
  // (ProxySession::ServeRequest): hop-by-hop fields (Upgrade,
  // HTTP2-Settings...) and Content-Length dropped; it has no body.
  http1::RequestHead head;
};

class ProxySession : public ClientConnection,
                     public upstream::Connection::Owner {
 public:
  // Takes ownership of `client_fd` (non-blocking). `peer` is the client's IP
  // for X-Forwarded-For and the access log ("" for unix-socket clients).
  ProxySession(SessionContext* ctx, int client_fd, std::string peer,
               int64_t now_ms);
  // Same over any transport (TLS, an HTTP/2 stream). `sink`: a client that
  // takes the response structured (an HTTP/2 stream) gets it there instead
  // of as HTTP/1.1 bytes (the transport's Write is then never called); it
  // must outlive the session. nullptr: the response goes out as bytes.
  ProxySession(SessionContext* ctx,
               std::unique_ptr<transport::ClientTransport> transport,
               std::string peer, int64_t now_ms, ResponseSink* sink = nullptr);
  ~ProxySession() override;

  // Serves one request that its client delivered parsed (an HTTP/2 stream,
  // the h2c upgrade's stream 1) instead of as HTTP/1.1 bytes: `head` has
  // the method, the target (:path) and the fields (Host first, from
  // :authority; version_minor 1). The same checks as an HTTP/1.1 head get
  // (http1/request_checks.h: target, limits, Host, Content-Length) answer
  // a bad one; then it is this connection's only request. `body_follows`:
  // the head did not end the request; without a content-length the body
  // then runs to the end of the stream. The body and trailers come from
  // `source`, which must outlive the session, as they arrive (Drive()).
  // Call once, right after construction. The driving thread.
  void ServeRequest(http1::RequestHead head, bool body_follows,
                    RequestSource* source);

  // Readiness from the driver (EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP bits);
  // both run Drive().
  void OnClientEvents(uint32_t events) override;
  void OnUpstreamEvents(uint32_t events) override;

  // Makes all progress possible without blocking.
  void Drive();
  // App mode: an app process may be free now; a request waiting in the
  // app queue tries for one at once instead of at its next re-check.
  void RetryAppQueue();

  // The client's ResponseSink (an HTTP/2 stream) has room again after it
  // reported ResponseBlocked(): reads the app on. The driving thread.
  void OnResponseRoom();

  // Called when now_ms passed deadline_ms(): answers 504 or closes.
  void OnTimeout(int64_t now_ms) override;

  // Closes at once, cutting whatever is in flight (quick shutdown).
  void Abort() override;

  // For poll-based drivers: readiness that poll() reported.
  void SetReadiness(bool client_readable, bool client_writable,
                    bool upstream_readable, bool upstream_writable);

  // For poll-based drivers: what to wait for.
  struct Wait {
    bool client_read = false;
    bool client_write = false;
    int upstream_fd = -1;
    bool upstream_read = false;
    bool upstream_write = false;
  };
  Wait wait() const;

  Phase phase() const override;
  int64_t deadline_ms() const override { return deadline_ms_; }

  // The connection opened with the HTTP/2 preface, or its request asked
  // for "Upgrade: h2c" (then TakeH2cUpgrade() has it): the driver hands it
  // to an Http2Connection with ReleaseForHttp2().
  bool wants_http2() const override { return wants_http2_; }
  std::optional<H2cUpgrade> TakeH2cUpgrade() {
    return std::exchange(h2c_upgrade_, std::nullopt);
  }
  const std::string& peer() const { return peer_; }
  // Gives up the client transport and the bytes read so far; the session is
  // closed afterwards (and counts as no connection).
  void ReleaseForHttp2(std::unique_ptr<transport::ClientTransport>* transport,
                       std::string* received);
  int client_fd() const { return client_fd_; }
  bool in_request() const { return req_state_ != ReqState::kWaitHead; }
  // Waits for nothing but client bytes (a request head or body being read,
  // a new connection's first byte, a lingering close), with nothing to
  // write and no app connection: a thread-per-connection driver hands it
  // back to its poller instead of holding a thread while a slow client
  // trickles. The driver's thread, after Drive().
  bool ParkedOnClient() const;

 private:
  enum class ReqState { kWaitHead, kHead, kBody, kDone };
  enum class RespState { kNotStarted, kHead, kBody, kDone };
  enum class UpstreamFraming { kNone, kLength, kChunked };

  // Steps of Drive(); each returns true when it made progress.
  bool ReadClient();
  bool ProcessClientInput();
  bool StartUpstream();
  bool WriteUpstream();
  bool ReadUpstream();
  bool ProcessUpstreamInput();
  bool ProcessUpstreamBody();
  bool WriteClient();
  bool MaybeFinishRequest();

  bool WantClientRead() const;
  // Response bytes wait for the client: out_ holds some, or the sink is
  // blocked. The client, not the app, is then what the exchange waits for.
  bool OutputPending() const { return !out_.empty() || sink_blocked_; }
  // The client holds as much of the response as it may: stop reading the
  // app (out_ at --response-buffer, or the sink blocked).
  bool ClientBackedUp();
  void RetryCrossedDirections(bool readable, bool writable);
  bool WaitingForApp() const;
  // App mode: gives back the app process (app mode) and the queue place.
  void ReleaseAppProcess(bool finished);
  // App mode: a connect the reserved process refused (or whose socket is
  // gone) reached nothing, so the request gives the process back and asks
  // the queue again after a short pause, a few times per request. False:
  // not such a failure, or out of tries; the caller answers 502.
  bool RetryOnAnotherAppProcess(int err);
  // App mode: this exchange holds a reservation of one app process (in
  // sidecar limit mode a reservation names no process).
  bool OnAppProcess() const;
  void StartHead();
  void BeginRequest();
  // The current request's head: parsed here from the client's bytes, or
  // given by ServeRequest().
  const http1::RequestHead& request_head() const {
    return source_ != nullptr ? given_head_ : req_parser_.head();
  }
  // ServeRequest()'s body: takes up to `max` bytes from source_ into
  // scratch_ through req_body_ (its limits), and ends the body once the
  // source has all of it. Returns the bytes taken.
  size_t TakeGivenBody(size_t max);
  // Takes a request asking for "Upgrade: h2c" that can be served as
  // HTTP/2 (bodiless, valid HTTP2-Settings...); false leaves it to
  // HTTP/1.1.
  bool MaybeUpgradeToH2c(const http1::RequestHead& h);
  void BuildUpstreamHead(UpstreamFraming framing, uint64_t length);
  void OnResponseHead();
  void CompleteUpstream();
  // The trailer lines to forward, or a 400 under --header-map refuse
  // (false: the request failed).
  bool TrailersToForward(std::string* lines);
  // Answers with forkd's own error response (see error_response.h).
  void Fail(Failure failure, const std::string& detail,
            http1::ErrorKind parse_error = http1::ErrorKind::kNone);
  // `unread`: the app reset the connection with request bytes unread
  // (ECONNRESET), which app mode may retry on another process.
  void UpstreamFailed(Failure failure, const std::string& detail,
                      bool unread = false);
  void ReleaseUpstream(bool reusable);
  void FinishRequest();
  void CloseClient(bool linger);
  // Lingering close: drops what the client sends; closes once done.
  bool DrainLinger();
  // The client's EOF, once the bytes read before it were processed.
  void HandleClientEof();
  // The request body waits for buffer room (the app is slow), not for
  // the client.
  bool BodyWaitsForRoom() const;
  // When the request head (or TLS handshake) / the next body bytes are due
  // (kNever: no such deadline now).
  int64_t HeaderDeadline() const;
  int64_t BodyDeadline() const;
  // --client-header-timeout / --client-body-timeout passed: counts it,
  // logs one line and answers 408 (or closes when no answer can be sent).
  void ClientTimedOut(scoreboard::ClientTimeout kind);
  void LeaveInFlight();
  void UpdateDeadline();
  // Moves this connection between the slot's active and idle gauges as its
  // phase changes; `gone` takes it out of both (destructor).
  void UpdateConnectionGauge(bool gone);
  std::string_view PeerForLog() const;
  int64_t NowNs() const { return clock_->NowNs(); }
  int64_t NowMs() const { return clock_->NowMs(); }

  SessionContext* ctx_;
  PoolAppTransport pool_app_;  // the app when ctx_->app is nullptr
  // App mode: the reserved app process; app_ points here while one is held.
  AppProcessTransport app_process_transport_;
  AppTransport* app_;  // ctx_->app, &pool_app_ or &app_process_transport_
  const Clock* clock_;
  std::unique_ptr<transport::ClientTransport> client_;  // reset when closed
  // The constructor's `sink`: the response goes there structured instead
  // of into out_ as HTTP/1.1 (an HTTP/2 stream). nullptr for HTTP/1.
  ResponseSink* sink_ = nullptr;
  bool sink_blocked_ = false;  // ResponseBlocked() said so; until room
  bool sink_ended_ = false;    // the sink has the whole response
  int client_fd_;              // client_->fd(), for drivers
  std::string peer_;

  // Client side.
  Buffer in_;                    // bytes from the client not yet consumed
  Buffer out_;                   // bytes for the client
  bool client_readable_ = true;  // optimistic until EAGAIN
  bool client_writable_ = true;
  bool client_eof_ = false;
  bool first_request_ = true;  // no request finished on this connection yet
  bool wants_http2_ = false;
  std::optional<H2cUpgrade> h2c_upgrade_;
  bool counts_as_connection_ = true;  // false for HTTP/2 streams
  bool http2_stream_ = false;         // logged as HTTP/2.0, counted as http2
  bool client_hup_ = false;           // the peer hung up: read on to the EOF
  bool close_after_response_ = false;
  bool unread_input_ = false;  // closing with request bytes unread
  bool closed_ = false;
  LingeringClose linger_;       // active(): half-closed, discarding input
  int64_t last_client_ms_ = 0;  // last read or write on the client side
  int64_t last_read_ms_ = 0;    // last request bytes read
  int64_t accepted_ms_ = 0;
  int64_t head_start_ms_ = 0;  // first byte of the current request head

  // The current request.
  ReqState req_state_ = ReqState::kWaitHead;
  http1::RequestParser req_parser_;
  // ServeRequest(): where the body comes from, and the head given.
  RequestSource* source_ = nullptr;
  http1::RequestHead given_head_;
  std::optional<http1::BodyDecoder> req_body_;
  Buffer body_buf_;  // body while buffering (up to --request-buffer)
  bool req_body_chunked_upstream_ = false;  // streaming chunked to the app
  // Method, target, id, times, status and byte counts: what the counters
  // and the access log take (request_record.h).
  RequestRecord rec_;
  int version_minor_ = 1;
  bool keep_alive_ = true;
  bool head_request_ = false;
  std::string scratch_;  // decoder output, reused
  // Scratch for building heads and the Connection tokens: members so a
  // keep-alive connection allocates them once, not per request.
  std::string head_scratch_;
  std::vector<std::string> tokens_;

  // Upstream side.
  std::unique_ptr<upstream::Connection> up_;
  Buffer up_out_;  // request bytes for the app (head + body so far)
  Buffer up_in_;   // bytes from the app not yet consumed
  Buffer replay_;  // a copy of a fully-buffered request, for one retry
  bool can_replay_ = false;
  bool up_wrote_ = false;  // request bytes reached the current connection
  bool up_write_closed_ = false;  // the app stopped reading the request
  bool upstream_wanted_ = false;  // request admitted, needs the app
  bool in_flight_ = false;
  bool admitted_ = false;  // holds a slot of ctx_->admission
  bool in_line_ = false;   // waits in ctx_->admission's line
  // App mode: the app process this request holds (app mode), and whether
  // it waits in ctx_->app_queue for one.
  std::optional<upstream::AppReservation> app_process_;
  bool app_waiting_ = false;
  int app_connect_retries_ = 0;  // RetryOnAnotherAppProcess, this request
  // The app process that last refused this request's connect: not asked
  // again (with 2 processes a blind retry picks it half the time).
  std::optional<upstream::AppReservation> refused_app_;
  bool sent_to_client_ = false;  // a response head is on its way
  bool up_eof_ = false;
  int64_t connect_started_ms_ = 0;
  int64_t retry_connect_at_ms_ = 0;
  int64_t last_upstream_ms_ = 0;
  int64_t up_start_ns_ = 0;
  RespState resp_state_ = RespState::kNotStarted;
  http1::ResponseParser resp_parser_;
  std::optional<http1::BodyDecoder> resp_body_;
  bool resp_chunked_to_client_ = false;
  bool resp_keep_alive_ = true;  // the app allows reusing its connection
  std::vector<http1::Header> resp_headers_;  // for the access log

  int64_t deadline_ms_ = 0;
  Phase gauge_phase_ = Phase::kClosed;  // where the slot's gauges count it
};

}  // namespace forkd::proxy

#endif  // FORKD_SERVER_PROXY_PROXY_SESSION_H_

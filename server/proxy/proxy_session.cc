#include "server/proxy/proxy_session.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/common/log.h"
#include "server/common/loop_clock.h"
#include "server/common/readiness.h"
#include "server/http1/request_checks.h"
#include "server/proxy/admission.h"
#include "server/proxy/app_queue.h"
#include "server/proxy/proxy_session_internal.h"
#include "server/proxy/request_record.h"

namespace forkd::proxy {
namespace {

using session_internal::AppendChunk;
using session_internal::AppendHeader;
using session_internal::AppendLastChunk;
using session_internal::kReadChunk;
using session_internal::ReadChunk;

// Unparsed request bytes kept before the parser must have decided; the
// parser's own limits are smaller, this only stops a runaway buffer.
constexpr size_t kMaxPendingInput = 256 * 1024;
constexpr int64_t kNever = loop_clock::kNoDeadlineMs;

}  // namespace

void CountDroppedFields(SessionContext* ctx, const ForwardingCounts& counts,
                        std::string_view peer) {
  if (counts.underscore_dropped == 0 && counts.untrusted_dropped == 0) return;
  LOG_DEBUG(
      "from %s: dropped %u request field(s) with '_' in the name "
      "(--header-map) and %u forwarding field(s) of an untrusted peer "
      "(--forwarded-allow-ips)",
      peer.empty() ? std::string_view("unix-socket client") : peer,
      counts.underscore_dropped, counts.untrusted_dropped);
  if (!ctx->record_metrics) return;
  auto& dropped = ctx->slot->counters.fields_dropped;
  using scoreboard::FieldDrop;
  if (counts.underscore_dropped > 0) {
    dropped[static_cast<size_t>(FieldDrop::kUnderscore)].fetch_add(
        counts.underscore_dropped, std::memory_order_relaxed);
  }
  if (counts.untrusted_dropped > 0) {
    dropped[static_cast<size_t>(FieldDrop::kUntrustedForwarding)].fetch_add(
        counts.untrusted_dropped, std::memory_order_relaxed);
  }
}

ProxySession::ProxySession(SessionContext* ctx, int client_fd, std::string peer,
                           int64_t now_ms)
    : ProxySession(ctx, std::make_unique<transport::SocketTransport>(client_fd),
                   std::move(peer), now_ms) {}

ProxySession::ProxySession(
    SessionContext* ctx, std::unique_ptr<transport::ClientTransport> transport,
    std::string peer, int64_t now_ms, ResponseSink* sink)
    : ctx_(ctx),
      pool_app_(ctx->pool),
      app_process_transport_(ctx->app_pools),
      app_(ctx->app != nullptr ? ctx->app : &pool_app_),
      clock_(ctx->clock != nullptr ? ctx->clock : LoopClock::Get()),
      client_(std::move(transport)),
      client_fd_(client_->fd()),
      sink_(sink),
      peer_(std::move(peer)),
      req_parser_(ctx->limits) {
  // An HTTP/2 stream's virtual connection has no socket and is no client
  // connection of its own.
  counts_as_connection_ = client_fd_ >= 0;
  http2_stream_ = client_->is_http2_stream();
  last_client_ms_ = now_ms;
  last_read_ms_ = now_ms;
  accepted_ms_ = now_ms;
  deadline_ms_ = now_ms + ctx_->client_timeout_ms;
  UpdateConnectionGauge(false);
}

ProxySession::~ProxySession() {
  if (!closed_) {
    ReleaseUpstream(false);
    LeaveInFlight();
    client_.reset();
  }
  UpdateConnectionGauge(true);
}

void ProxySession::UpdateConnectionGauge(bool gone) {
  if (!ctx_->record_metrics || !counts_as_connection_) return;
  MoveConnectionGauge(ctx_->slot, &gauge_phase_,
                      gone ? Phase::kClosed : phase());
}

void ProxySession::OnClientEvents(uint32_t events) {
  const Readiness ready = Readiness::From(events);
  if (ready.readable) client_readable_ = true;
  if (ready.writable) client_writable_ = true;
  if (ready.hup) client_hup_ = true;
  RetryCrossedDirections(ready.in, ready.out);
  Drive();
}

void ProxySession::RetryCrossedDirections(bool readable, bool writable) {
  // A TLS read that had to write first waits for writability, and a write
  // that had to read for readability.
  if (!client_) return;
  if (writable && client_->ReadNeedsWritable()) client_readable_ = true;
  if (readable && client_->WriteNeedsReadable()) client_writable_ = true;
}

void ProxySession::OnUpstreamEvents(uint32_t events) {
  if (!up_) return;
  const Readiness ready = Readiness::From(events);
  if (ready.readable) up_->readable = true;
  if (ready.writable) up_->writable = true;
  if (ready.hup) up_->hup = true;
  Drive();
}

void ProxySession::Drive() {
  while (!closed_) {
    bool progress = ReadClient();
    progress |= ProcessClientInput();
    if (closed_) break;
    progress |= StartUpstream();
    progress |= WriteUpstream();
    progress |= ReadUpstream();
    progress |= ProcessUpstreamInput();
    if (closed_) break;
    progress |= WriteClient();
    progress |= MaybeFinishRequest();
    if (!progress) break;
  }
  if (!closed_ && client_eof_ && !linger_.active()) HandleClientEof();
  if (!closed_) UpdateDeadline();
  UpdateConnectionGauge(false);
}

bool ProxySession::WantClientRead() const {
  // A request given parsed (ServeRequest) has nothing to read.
  if (closed_ || client_eof_ || wants_http2_ || source_ != nullptr) {
    return false;
  }
  if (linger_.active()) return true;
  switch (req_state_) {
    case ReqState::kWaitHead:
    case ReqState::kHead:
      return in_.size() < kMaxPendingInput && out_.empty();
    case ReqState::kBody:
      return in_.size() < kReadChunk * 4;
    case ReqState::kDone:
      return false;
  }
  return false;
}

bool ProxySession::ReadClient() {
  if (linger_.active()) return DrainLinger();
  if (!client_readable_ || !WantClientRead()) return false;
  ssize_t n = ReadChunk(
      &in_, [this](char* buf, size_t len) { return client_->Read(buf, len); });
  if (n > 0) {
    // A short read drained the socket: wait for the next readiness event
    // instead of paying a read that returns EAGAIN (new data raises a new
    // edge, and poll() sees it too). Not after a hang-up: the EOF behind
    // the data raises no new edge. Nor while the transport holds bytes the
    // socket no longer shows (TLS).
    if (static_cast<size_t>(n) < kReadChunk && !client_hup_ &&
        !client_->HasPendingInput()) {
      client_readable_ = false;
    }
    last_client_ms_ = NowMs();
    last_read_ms_ = last_client_ms_;
    if (rec_.bytes_in == 0) {
      // The first bytes after a PROXY header: the client is whom it named.
      if (const std::string* p = client_->proxied_peer()) peer_ = *p;
    }
    rec_.bytes_in += static_cast<uint64_t>(n);
    if (req_state_ == ReqState::kWaitHead) StartHead();
    return true;
  }
  if (n == 0) {
    // Not acted on here: the bytes read before the EOF (a whole request
    // sent with a half-close) are processed first; HandleClientEof() then
    // decides.
    client_eof_ = true;
    return true;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    client_readable_ = false;
    return false;
  }
  if (errno == EINTR) return true;
  // EPROTO: the TLS session failed, and its alert (or the hint for a plain
  // HTTP client) is on its way: linger so unread bytes cannot reset it.
  // ECONNRESET and friends: the client is gone.
  CloseClient(errno == EPROTO);
  return true;
}

bool ProxySession::DrainLinger() {
  if (!client_readable_) return false;
  client_readable_ = false;  // Drain() reads until the socket would block
  if (linger_.Drain(client_.get(), NowMs()) == LingeringClose::State::kDone) {
    CloseClient(false);
  }
  return true;
}

void ProxySession::HandleClientEof() {
  switch (req_state_) {
    case ReqState::kWaitHead:
    case ReqState::kHead:
      // Closed between requests, or gave up mid-head: nothing to answer.
      // (A connection that turned out to speak HTTP/2 is the driver's.)
      if (!wants_http2_) CloseClient(false);
      return;
    case ReqState::kBody:
      if (BodyWaitsForRoom()) return;  // the rest is decoded as room opens
      LOG_INFO("client %s closed the connection during the request body",
               PeerForLog());
      CloseClient(false);
      return;
    case ReqState::kDone:
      return;  // the answer goes out, then the connection closes
  }
}

bool ProxySession::BodyWaitsForRoom() const {
  if (in_.empty()) return false;
  size_t pending = upstream_wanted_ ? up_out_.size() : body_buf_.size();
  return pending >= ctx_->request_buffer;
}

void ProxySession::StartHead() {
  req_state_ = ReqState::kHead;
  rec_.start_ns = NowNs();
  head_start_ms_ = rec_.start_ns / 1000000;
  // Wall-clock time only feeds the access log's %(t)s.
  if (ctx_->access_log != nullptr) rec_.start_time = absl::Now();
}

bool ProxySession::ProcessClientInput() {
  if (linger_.active()) {
    in_.Clear();
    return false;
  }
  if (req_state_ == ReqState::kHead && source_ == nullptr) {
    if (in_.empty() || wants_http2_) return false;
    if (first_request_ && ctx_->http2 && counts_as_connection_) {
      switch (http2::LooksLikeH2Preface(in_.View())) {
        case http2::PrefaceMatch::kNeedMore:
          return false;
        case http2::PrefaceMatch::kMatch:
          wants_http2_ = true;  // the driver takes it from here
          return false;
        case http2::PrefaceMatch::kNoMatch:
          break;
      }
    }
    size_t consumed = 0;
    switch (req_parser_.Parse(in_.View(), &consumed)) {
      case http1::ParseStatus::kNeedMore:
        return false;
      case http1::ParseStatus::kError:
        // Whatever of the request line parsed names the request in the
        // error and access logs ("" when the line itself was bad).
        rec_.method = req_parser_.head().method;
        rec_.target = req_parser_.head().target;
        Fail(Failure::kBadRequest, req_parser_.error().detail);
        return true;
      case http1::ParseStatus::kDone:
        in_.Consume(consumed);
        BeginRequest();
        return true;
    }
  }
  // A body can be complete with no bytes to read: "Content-Length: 0".
  if (req_state_ != ReqState::kBody ||
      (source_ == nullptr && in_.empty() && !req_body_->done())) {
    return false;
  }

  // Decode no more than the buffers may take: up to --request-buffer while
  // buffering, and while streaming only what the app has drained.
  size_t pending = upstream_wanted_ ? up_out_.size() : body_buf_.size();
  if (pending >= ctx_->request_buffer) return false;
  size_t room = ctx_->request_buffer - pending;
  scratch_.clear();
  size_t used;
  if (source_ != nullptr) {
    used = TakeGivenBody(room + 64);
  } else {
    std::string_view input = in_.View();
    if (input.size() > room + 64) input = input.substr(0, room + 64);
    used = req_body_->Decode(input, &scratch_);
    in_.Consume(used);
  }
  if (req_body_->failed()) {
    ReleaseUpstream(false);
    Fail(Failure::kBadRequest, req_body_->error().detail,
         req_body_->error().kind);
    return true;
  }
  if (upstream_wanted_) {
    if (up_write_closed_) {
      // The app stopped reading this body: drop the rest.
    } else if (req_body_chunked_upstream_) {
      AppendChunk(&up_out_, scratch_);
    } else {
      up_out_.Append(scratch_);
    }
  } else {
    body_buf_.Append(scratch_);
  }
  if (req_body_->done()) {
    std::string trailers;
    if (!TrailersToForward(&trailers)) return true;
    req_state_ = ReqState::kDone;
    if (!upstream_wanted_) {
      // The whole body fit in the buffer: send it with a Content-Length,
      // even if the client chunked it, and keep a copy for one retry. Only
      // trailers to pass on keep it chunked (as one chunk): a body with a
      // Content-Length cannot carry them.
      if (trailers.empty()) {
        BuildUpstreamHead(UpstreamFraming::kLength, body_buf_.size());
        up_out_.Append(body_buf_.View());
      } else {
        BuildUpstreamHead(UpstreamFraming::kChunked, 0);
        AppendChunk(&up_out_, body_buf_.View());
        AppendLastChunk(&up_out_, trailers);
      }
      body_buf_.Clear();
      body_buf_.Shrink(64 * 1024);
      can_replay_ = true;
      upstream_wanted_ = true;
    } else if (req_body_chunked_upstream_ && !up_write_closed_) {
      AppendLastChunk(&up_out_, trailers);
    }
  } else if (!upstream_wanted_ && body_buf_.size() >= ctx_->request_buffer) {
    // Larger than --request-buffer: stream the rest as it comes.
    const http1::RequestHead& h = request_head();
    if (h.framing == http1::Framing::kChunked) {
      BuildUpstreamHead(UpstreamFraming::kChunked, 0);
      req_body_chunked_upstream_ = true;
      AppendChunk(&up_out_, body_buf_.View());
    } else {
      BuildUpstreamHead(UpstreamFraming::kLength, h.content_length);
      up_out_.Append(body_buf_.View());
    }
    body_buf_.Clear();
    upstream_wanted_ = true;
  }
  return used > 0 || req_body_->done();
}

void ProxySession::ServeRequest(http1::RequestHead head, bool body_follows,
                                RequestSource* source) {
  source_ = source;
  given_head_ = std::move(head);
  http1::RequestHead& h = given_head_;
  StartHead();
  size_t head_bytes = 0;
  http1::Error e = http1::CheckMethodAndTarget(h.method, h.target);
  std::string absolute_authority;
  if (e.kind == http1::ErrorKind::kNone) {
    e = http1::CheckTargetForm(h.method, h.target, &absolute_authority);
  }
  if (e.kind == http1::ErrorKind::kNone) {
    e = http1::CheckHeadLimits(ctx_->limits, h, &head_bytes);
  }
  if (e.kind == http1::ErrorKind::kNone) {
    e = http1::CheckRequestHead(ctx_->limits, &h);
  }
  // The head as the HTTP/1.1 bytes it stands for, then the body as taken.
  rec_.bytes_in += head_bytes;
  if (e.kind != http1::ErrorKind::kNone) {
    rec_.method = h.method;
    rec_.target = h.target;
    Fail(Failure::kBadRequest, e.detail, e.kind);
  } else {
    // A body without a content-length runs to the end of the stream: the
    // decoder counts it as a chunked one (the limits of its payload and
    // trailers).
    if (body_follows && h.framing == http1::Framing::kNone) {
      h.framing = http1::Framing::kChunked;
    }
    BeginRequest();
  }
  Drive();
}

size_t ProxySession::TakeGivenBody(size_t max) {
  std::string_view data = source_->PendingBody();
  if (data.size() > max) data = data.substr(0, max);
  size_t used = req_body_->AcceptDecoded(data, &scratch_);
  if (used > 0) {
    source_->ConsumeBody(used);
    rec_.bytes_in += used;
  }
  if (!req_body_->failed() && !req_body_->done() && source_->BodyComplete() &&
      source_->PendingBody().empty()) {
    std::vector<http1::Header> trailers = source_->TakeTrailers();
    size_t count = trailers.size();
    if (!req_body_->EndDecoded(std::move(trailers))) {
      // A body sent with its content-length goes to the app with it, and
      // an HTTP/1.1 body so framed cannot carry trailers (RFC 9112 7.1.2
      // lets them go).
      LOG_DEBUG(
          "%s %s: %zu request trailer fields dropped after a content-length "
          "body",
          rec_.method, rec_.target, count);
    }
  }
  return used;
}

void ProxySession::BeginRequest() {
  const http1::RequestHead& h = request_head();
  if (MaybeUpgradeToH2c(h)) return;  // the driver takes it from here
  rec_.method = h.method;
  rec_.target = h.target;
  version_minor_ = h.version_minor;
  // A request given parsed (an HTTP/2 stream) is its connection's only one.
  keep_alive_ = h.keep_alive && !ctx_->force_close && source_ == nullptr;
  head_request_ = rec_.method == "HEAD";
  const std::string* rid = h.Find("X-Request-Id");
  rec_.request_id = RequestIdFor(rid);
  if (const http1::Header* f =
          RefusedField(ctx_->forwarding.header_map, h.headers)) {
    Fail(Failure::kBadRequest, RefusalDetail(*f, /*trailer=*/false),
         http1::ErrorKind::kBadRequest);
    return;
  }

  if (std::optional<Refusal> r = RefuseWhileDraining(*ctx_)) {
    Fail(r->failure, r->detail);
    return;
  }
  if (ctx_->h2_upstream != nullptr) {
    // The app speaks only HTTP/2 (--upstream-protocol h2c) and HTTP/2
    // clients are bridged stream to stream; HTTP/1.1 is not translated.
    Fail(Failure::kHttp2Required,
         "the app behind this server speaks HTTP/2 (h2c) only; use HTTP/2 "
         "(prior knowledge, or TLS with ALPN h2)");
    return;
  }
  if (std::optional<Refusal> r = RefuseOverInFlightCap(*ctx_)) {
    Fail(r->failure, r->detail);
    return;
  }
  in_flight_ = true;
  ctx_->slot->in_flight.fetch_add(1, std::memory_order_relaxed);

  if (h.framing == http1::Framing::kNone) {
    req_state_ = ReqState::kDone;
    BuildUpstreamHead(UpstreamFraming::kNone, 0);
    can_replay_ = true;
    upstream_wanted_ = true;
    return;
  }
  req_body_.emplace(h.framing, h.content_length, ctx_->limits.max_body,
                    http1::TrailerLimits{ctx_->limits.max_fields,
                                         ctx_->limits.max_field_size});
  req_state_ = ReqState::kBody;
  last_read_ms_ = NowMs();  // the body's clock starts with the head
  if (h.expect_continue && version_minor_ == 1) {
    if (sink_ != nullptr) {
      sink_->OnInterim(100, {});
    } else {
      out_.Append("HTTP/1.1 100 Continue\r\n\r\n");
    }
  }
}

bool ProxySession::MaybeUpgradeToH2c(const http1::RequestHead& h) {
  // Only a bodiless HTTP/1.1 request with nothing pipelined behind it (the
  // client must wait for the 101 before it sends HTTP/2), on a worker that
  // is not stopping: its answer must say "Connection: close".
  // With an h2c app the upgraded stream 1 would arrive as HTTP/1.1 text:
  // such clients get the 505 that asks for prior knowledge instead.
  if (!ctx_->http2 || !counts_as_connection_ || h.version_minor != 1 ||
      !in_.empty() || ctx_->h2_upstream != nullptr) {
    return false;
  }
  if (h.framing != http1::Framing::kNone &&
      !(h.framing == http1::Framing::kContentLength && h.content_length == 0)) {
    return false;
  }
  if (ctx_->stopping != nullptr && ctx_->stopping->load()) return false;
  // h2c is HTTP/2 over cleartext; over TLS, HTTP/2 is chosen by ALPN.
  if (std::string_view(client_->scheme()) != "http") return false;
  // RFC 7540 §3.2.1: HTTP2-Settings is a connection option, and there is
  // exactly one.
  if (h.Find("HTTP2-Settings") == nullptr) return false;  // the usual case
  std::vector<std::string>& tokens = tokens_;  // BuildUpstreamHead refills it
  http1::ConnectionTokens(h.headers, &tokens);
  auto listed = [&tokens](std::string_view t) {
    return std::find(tokens.begin(), tokens.end(), t) != tokens.end();
  };
  if (!listed("upgrade") || !listed("http2-settings")) return false;
  const std::string* settings = nullptr;
  bool h2c = false;
  for (const http1::Header& f : h.headers) {
    if (http1::EqualsIgnoreCase(f.name, "HTTP2-Settings")) {
      if (settings != nullptr) return false;
      settings = &f.value;
    } else if (http1::EqualsIgnoreCase(f.name, "Upgrade")) {
      for (absl::string_view p : absl::StrSplit(f.value, ',')) {
        p = absl::StripAsciiWhitespace(p);
        h2c |= http1::EqualsIgnoreCase(std::string_view(p.data(), p.size()),
                                       "h2c");
      }
    }
  }
  if (!h2c || settings == nullptr) return false;
  absl::Status valid = http2::Http2Session::CheckUpgradeSettings(*settings);
  if (!valid.ok()) {
    LOG_INFO("not upgrading %s to h2c, serving HTTP/1.1: %s", PeerForLog(),
             std::string(valid.message()));
    return false;
  }
  H2cUpgrade up;
  up.http2_settings = *settings;
  up.method = h.method;
  up.head.method = h.method;
  up.head.target = h.target;
  for (const http1::Header& f : h.headers) {
    if (!http1::EqualsIgnoreCase(f.name, "Host") &&
        (http1::IsHopByHop(f.name, tokens) ||
         http1::EqualsIgnoreCase(f.name, "Content-Length"))) {
      continue;
    }
    up.head.headers.push_back(f);
  }
  h2c_upgrade_ = std::move(up);
  wants_http2_ = true;
  return true;
}

bool ProxySession::TrailersToForward(std::string* lines) {
  const std::vector<http1::Header>& trailers = req_body_->trailers();
  if (const http1::Header* f =
          RefusedField(ctx_->forwarding.header_map, trailers)) {
    // The head may be at the app already: it must not take this request.
    ReleaseUpstream(false);
    Fail(Failure::kBadRequest, RefusalDetail(*f, /*trailer=*/true),
         http1::ErrorKind::kBadRequest);
    return false;
  }
  ForwardingCounts counts;
  counts.underscore_dropped =
      ForwardedTrailers(ctx_->forwarding, trailers, [&](size_t i) {
        const http1::Header& f = trailers[i];
        if (http1::IsAllowedInTrailer(f.name)) {
          AppendHeader(lines, f.name, f.value);
        }
      });
  CountDroppedFields(ctx_, counts, peer_);
  return true;
}

bool ProxySession::MaybeFinishRequest() {
  if (resp_state_ != RespState::kDone || OutputPending() || linger_.active()) {
    return false;
  }
  if (req_state_ != ReqState::kDone) {
    // The app answered before taking the whole body: the rest is unread.
    close_after_response_ = true;
    unread_input_ = true;
  }
  FinishRequest();
  return true;
}

void ProxySession::FinishRequest() {
  RecordFinishedRequest(ctx_, rec_, peer_,
                        http2_stream_         ? "HTTP/2.0"
                        : version_minor_ == 0 ? "HTTP/1.0"
                                              : "HTTP/1.1",
                        http2_stream_ ? scoreboard::Protocol::kHttp2
                                      : scoreboard::Protocol::kHttp1,
                        NowNs(), &request_head().headers, &resp_headers_);

  if (close_after_response_ || !keep_alive_ || client_eof_) {
    CloseClient(unread_input_);
    return;
  }
  // Ready for the next request on this connection.
  first_request_ = false;
  req_parser_.Reset();
  resp_parser_.Reset();
  req_body_.reset();
  resp_body_.reset();
  req_body_chunked_upstream_ = false;
  rec_.request_id.clear();
  rec_.method.clear();
  rec_.target.clear();
  resp_headers_.clear();
  up_out_.Clear();
  up_in_.Clear();
  replay_.Clear();
  can_replay_ = false;
  upstream_wanted_ = false;
  sent_to_client_ = false;
  sink_ended_ = false;
  up_eof_ = false;
  connect_started_ms_ = 0;
  app_connect_retries_ = 0;
  refused_app_.reset();
  rec_.upstream_s = 0;
  rec_.status = 0;
  rec_.body_bytes_out = 0;
  resp_state_ = RespState::kNotStarted;
  req_state_ = ReqState::kWaitHead;
  rec_.start_ns = 0;
  rec_.bytes_in = in_.size();
  in_.Shrink(64 * 1024);
  out_.Shrink(64 * 1024);
  if (!in_.empty()) StartHead();  // pipelined request already here
}

void ProxySession::ReleaseForHttp2(
    std::unique_ptr<transport::ClientTransport>* transport,
    std::string* received) {
  UpdateConnectionGauge(true);
  counts_as_connection_ = false;  // the HTTP/2 connection counts itself
  received->assign(in_.View());
  in_.Clear();
  *transport = std::move(client_);
  closed_ = true;
}

void ProxySession::LeaveInFlight() {
  ReleaseAppProcess(/*finished=*/false);
  if ((admitted_ || in_line_) && ctx_->admission != nullptr) {
    ctx_->admission->Leave(this, admitted_);
    admitted_ = false;
    in_line_ = false;
  }
  if (!in_flight_) return;
  in_flight_ = false;
  ctx_->slot->in_flight.fetch_sub(1, std::memory_order_relaxed);
}

void ProxySession::CloseClient(bool linger) {
  ReleaseUpstream(false);
  LeaveInFlight();
  // An HTTP/2 stream's virtual connection has no socket to reset.
  if (linger && !client_eof_ && client_fd_ >= 0) {
    // Our answer is written: half-close and drop what the client still
    // sends, so unread bytes cannot turn our close into a reset that
    // destroys the answer before the client reads it.
    linger_.Start(client_.get(), NowMs());
    client_readable_ = true;  // drain what is already there
    in_.Clear();
    out_.Clear();
    UpdateConnectionGauge(false);
    return;
  }
  if (sink_ != nullptr) {
    sink_->OnExchangeClosed();
    sink_ = nullptr;  // it may go with the transport
  }
  client_.reset();
  closed_ = true;
  UpdateConnectionGauge(false);
}

void ProxySession::Abort() {
  if (closed_) return;
  CloseClient(false);
}

void ProxySession::OnTimeout(int64_t now_ms) {
  if (closed_ || now_ms < deadline_ms_) return;
  if (client_ && client_->setup_deadline_ms() != kNever) {
    client_->OnSetupTimeout();  // no HTTP yet: nothing to answer
    Abort();
    return;
  }
  if (linger_.active()) {
    Abort();
    return;
  }
  if (now_ms >= BodyDeadline()) {
    ClientTimedOut(scoreboard::ClientTimeout::kBody);
    return;
  }
  if (now_ms >= HeaderDeadline()) {
    ClientTimedOut(scoreboard::ClientTimeout::kHeader);
    return;
  }
  if (WaitingForApp()) {
    // A request waiting for an app process (app mode) is bounded by
    // --max-queue-time (AppQueue), not by --upstream-timeout.
    if (up_ == nullptr && retry_connect_at_ms_ != 0 &&
        (app_waiting_ ||
         now_ms < connect_started_ms_ + ctx_->upstream_timeout_ms)) {
      Drive();  // time to retry a connect the app's full queue refused
      return;
    }
    UpstreamFailed(
        Failure::kUpstreamTimeout,
        in_line_ ? absl::StrFormat("waited %.3gs in line for a free thread",
                                   ctx_->upstream_timeout_ms / 1000.0)
                 : absl::StrFormat("app did not answer within %.3gs",
                                   ctx_->upstream_timeout_ms / 1000.0));
    Drive();
    return;
  }
  if (req_state_ == ReqState::kHead || req_state_ == ReqState::kBody ||
      OutputPending()) {
    LOG_INFO("closing connection from %s: client stalled for %.3gs",
             PeerForLog(), ctx_->client_timeout_ms / 1000.0);
  }
  Abort();
}

int64_t ProxySession::HeaderDeadline() const {
  // An HTTP/2 stream's head arrives whole; its connection times the
  // frames (Http2Connection).
  if (ctx_->client_header_timeout_ms <= 0 || http2_stream_ || closed_) {
    return kNever;
  }
  if (req_state_ == ReqState::kHead) {
    return head_start_ms_ + ctx_->client_header_timeout_ms;
  }
  if (req_state_ == ReqState::kWaitHead && client_->InHandshake()) {
    return accepted_ms_ + ctx_->client_header_timeout_ms;
  }
  return kNever;
}

int64_t ProxySession::BodyDeadline() const {
  if (ctx_->client_body_timeout_ms <= 0 || http2_stream_ || closed_ ||
      req_state_ != ReqState::kBody || client_eof_ || BodyWaitsForRoom() ||
      !WantClientRead()) {
    return kNever;
  }
  return last_read_ms_ + ctx_->client_body_timeout_ms;
}

void ProxySession::ClientTimedOut(scoreboard::ClientTimeout kind) {
  if (ctx_->record_metrics) {
    ctx_->slot->counters.client_timeouts[static_cast<size_t>(kind)].fetch_add(
        1, std::memory_order_relaxed);
  }
  bool header = kind == scoreboard::ClientTimeout::kHeader;
  double limit_s =
      (header ? ctx_->client_header_timeout_ms : ctx_->client_body_timeout_ms) /
      1000.0;
  if (req_state_ == ReqState::kWaitHead) {
    // A TLS handshake: there is no HTTP to answer in.
    LOG_ERROR(
        "closing connection from %s: TLS handshake not complete within "
        "%.3gs (--client-header-timeout)",
        PeerForLog(), limit_s);
    CloseClient(false);
    return;
  }
  std::string detail = header ? absl::StrFormat(
                                    "request head not complete within %.3gs "
                                    "(--client-header-timeout)",
                                    limit_s)
                              : absl::StrFormat(
                                    "no request body bytes for %.3gs "
                                    "(--client-body-timeout)",
                                    limit_s);
  if (sent_to_client_) {
    // The app's answer is already on its way: it cannot become a 408.
    LOG_ERROR("%s %s from %s (request %s): %s; connection closed", rec_.method,
              rec_.target, PeerForLog(), rec_.request_id, detail);
    CloseClient(false);
    return;
  }
  if (header) {
    rec_.method = req_parser_.head().method;
    rec_.target = req_parser_.head().target;
  }
  ReleaseUpstream(false);  // a body streamed to the app stops here
  Fail(Failure::kClientTimeout, detail);
  Drive();
}

bool ProxySession::WaitingForApp() const {
  return upstream_wanted_ && resp_state_ != RespState::kDone &&
         !OutputPending();
}

bool ProxySession::ClientBackedUp() {
  if (sink_ == nullptr) return out_.size() >= ctx_->response_buffer;
  sink_blocked_ = sink_->ResponseBlocked();
  return sink_blocked_;
}

void ProxySession::OnResponseRoom() {
  if (closed_) return;
  sink_blocked_ = false;
  last_client_ms_ = NowMs();  // the client took response bytes
  Drive();
}

void ProxySession::UpdateDeadline() {
  if (linger_.active()) {
    deadline_ms_ = linger_.deadline_ms();
    return;
  }
  // A preamble of the transport's (a PROXY header) still being read:
  // nothing else happens before it, and it has its own bound, which the
  // keep-alive timeout of a connection that sent nothing must not cut.
  if (client_ && client_->setup_deadline_ms() != kNever) {
    deadline_ms_ = client_->setup_deadline_ms();
    return;
  }
  int64_t d;
  if (WaitingForApp()) {
    if (up_ == nullptr && retry_connect_at_ms_ != 0) {
      d = std::min(retry_connect_at_ms_,
                   connect_started_ms_ + ctx_->upstream_timeout_ms);
    } else {
      d = last_upstream_ms_ + ctx_->upstream_timeout_ms;
    }
  } else if (req_state_ == ReqState::kWaitHead && out_.empty()) {
    // A TLS handshake under way has the head's deadline instead.
    d = HeaderDeadline() != kNever ? kNever
                                   : last_client_ms_ + ctx_->keepalive_ms;
  } else if (!OutputPending() &&
             ((req_state_ == ReqState::kHead && HeaderDeadline() != kNever) ||
              (req_state_ == ReqState::kBody &&
               (BodyDeadline() != kNever || http2_stream_)))) {
    // Reading the request: its own deadlines below (an HTTP/2 stream's
    // body is timed by its connection).
    d = kNever;
  } else {
    d = last_client_ms_ + ctx_->client_timeout_ms;  // a write stalled
  }
  deadline_ms_ = std::min({d, HeaderDeadline(), BodyDeadline()});
}

bool ProxySession::ParkedOnClient() const {
  if (closed_ || wants_http2_ || client_readable_ || !out_.empty()) {
    return false;
  }
  if (linger_.active()) return true;
  if (up_ || upstream_wanted_ || in_line_ || admitted_ || client_eof_ ||
      client_->ReadNeedsWritable()) {
    return false;
  }
  return req_state_ != ReqState::kDone && WantClientRead();
}

ProxySession::Wait ProxySession::wait() const {
  Wait w;
  if (closed_) return w;
  bool read = WantClientRead() && !client_readable_;
  bool write = !out_.empty() && !linger_.active() && !client_writable_;
  // TLS may need the other direction of the socket first.
  bool read_crossed = read && client_->ReadNeedsWritable();
  bool write_crossed = write && client_->WriteNeedsReadable();
  w.client_read = (read && !read_crossed) || write_crossed;
  w.client_write = (write && !write_crossed) || read_crossed;
  if (up_) {
    w.upstream_fd = up_->fd;
    w.upstream_write = (up_->connecting || !up_out_.empty()) &&
                       !up_->writable && !up_write_closed_;
    w.upstream_read =
        !up_->connecting &&
        (resp_state_ == RespState::kHead || resp_state_ == RespState::kBody) &&
        out_.size() < ctx_->response_buffer && !up_->readable;
  }
  return w;
}

ProxySession::Phase ProxySession::phase() const {
  if (closed_) return Phase::kClosed;
  // A TLS handshake blocked on writing its flight is no idle connection:
  // a poller waiting for its next request would never resume it.
  if (req_state_ == ReqState::kWaitHead && in_.empty() && out_.empty() &&
      !linger_.active() && !client_->ReadNeedsWritable()) {
    return Phase::kIdle;
  }
  return Phase::kActive;
}

void ProxySession::SetReadiness(bool client_readable, bool client_writable,
                                bool upstream_readable,
                                bool upstream_writable) {
  client_readable_ |= client_readable;
  client_writable_ |= client_writable;
  RetryCrossedDirections(client_readable, client_writable);
  if (up_) {
    up_->readable |= upstream_readable;
    up_->writable |= upstream_writable;
  }
}

std::string_view ProxySession::PeerForLog() const {
  return proxy::PeerForLog(peer_);
}

}  // namespace forkd::proxy

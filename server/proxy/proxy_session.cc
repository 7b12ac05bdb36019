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
#include "server/proxy/admission.h"
#include "server/proxy/app_queue.h"
#include "server/proxy/request_record.h"

namespace forkd::proxy {
namespace {

constexpr size_t kReadChunk = 16 * 1024;
// Unparsed request bytes kept before the parser must have decided; the
// parser's own limits are smaller, this only stops a runaway buffer.
constexpr size_t kMaxPendingInput = 256 * 1024;
constexpr int64_t kNever = loop_clock::kNoDeadlineMs;
// A request waiting in the admission line is woken when a slot is handed
// to it; this recheck is only a safety net.
constexpr int64_t kAdmissionRecheckMs = 100;

// The async loop's time of the current batch of events (loop_clock.h).
int64_t NowNs() { return loop_clock::NowNs(); }
int64_t NowMs() { return loop_clock::NowMs(); }

// Reads up to kReadChunk bytes with `read_fn` (read(2) semantics) and
// appends them to *buf. Unless *buf already has room for a whole chunk (a
// big transfer, read in place), the bytes land in a per-thread scratch area
// first: a 40-byte request then costs its connection a few hundred bytes of
// buffer instead of a 16 KiB chunk with a dirty page, and the kernel copies
// into one cache-hot area instead of a cold one per connection.
template <typename ReadFn>
ssize_t ReadChunk(Buffer* buf, ReadFn&& read_fn) {
  if (buf->room() >= kReadChunk) {
    ssize_t n = read_fn(buf->Reserve(kReadChunk), kReadChunk);
    if (n > 0) buf->Commit(static_cast<size_t>(n));
    return n;
  }
  thread_local char scratch[kReadChunk];
  ssize_t n = read_fn(scratch, kReadChunk);
  if (n > 0) buf->Append({scratch, static_cast<size_t>(n)});
  return n;
}

void AppendChunk(Buffer* out, std::string_view data) {
  if (data.empty()) return;
  char size[24];
  int n = snprintf(size, sizeof(size), "%zx\r\n", data.size());
  out->Append(std::string_view(size, n));
  out->Append(data);
  out->Append("\r\n");
}

void AppendHeader(std::string* out, std::string_view name,
                  std::string_view value) {
  out->append(name);
  out->append(": ");
  out->append(value);
  out->append("\r\n");
}

// The trailer fields of `trailers` that may be forwarded, as field lines
// ("" when none may).
std::string ForwardableTrailers(const std::vector<http1::Header>& trailers) {
  std::string lines;
  for (const http1::Header& f : trailers) {
    if (!http1::IsAllowedInTrailer(f.name)) continue;
    AppendHeader(&lines, f.name, f.value);
  }
  return lines;
}

// The last chunk of a chunked message and its trailer section (RFC 9112
// 7.1): `trailer_lines` from ForwardableTrailers().
void AppendLastChunk(Buffer* out, std::string_view trailer_lines) {
  if (trailer_lines.empty()) {
    out->Append("0\r\n\r\n");
    return;
  }
  out->Append("0\r\n");
  out->Append(trailer_lines);
  out->Append("\r\n");
}

// RFC 9110 9.2.2: methods a proxy may repeat when it cannot tell whether
// the app acted on the first attempt.
bool IsIdempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" ||
         method == "TRACE" || method == "PUT" || method == "DELETE";
}

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
    : ProxySession(ctx, std::make_unique<SocketTransport>(client_fd),
                   std::move(peer), now_ms) {}

ProxySession::ProxySession(SessionContext* ctx,
                           std::unique_ptr<ClientTransport> transport,
                           std::string peer, int64_t now_ms)
    : ctx_(ctx),
      client_(std::move(transport)),
      client_fd_(client_->fd()),
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
  // EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP/EPOLLRDHUP use poll's bit values.
  if (events & (0x001 | 0x008 | 0x010 | 0x2000)) client_readable_ = true;
  if (events & (0x004 | 0x008 | 0x010)) client_writable_ = true;
  if (events & (0x010 | 0x2000)) client_hup_ = true;
  RetryCrossedDirections((events & 0x001) != 0, (events & 0x004) != 0);
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
  if (events & (0x001 | 0x008 | 0x010 | 0x2000)) up_->readable = true;
  if (events & (0x004 | 0x008 | 0x010)) up_->writable = true;
  if (events & (0x010 | 0x2000)) up_->hup = true;
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
  if (closed_ || client_eof_ || wants_http2_) return false;
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
    if (bytes_in_ == 0) {
      // The first bytes after a PROXY header: the client is whom it named.
      if (const std::string* p = client_->proxied_peer()) peer_ = *p;
    }
    bytes_in_ += static_cast<uint64_t>(n);
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
  req_start_ns_ = NowNs();
  head_start_ms_ = req_start_ns_ / 1000000;
  // Wall-clock time only feeds the access log's %(t)s.
  if (ctx_->access_log != nullptr) req_start_time_ = absl::Now();
}

bool ProxySession::ProcessClientInput() {
  if (linger_.active()) {
    in_.Clear();
    return false;
  }
  if (req_state_ == ReqState::kHead) {
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
        method_ = req_parser_.head().method;
        target_ = req_parser_.head().target;
        Fail(Failure::kBadRequest, req_parser_.error().detail);
        return true;
      case http1::ParseStatus::kDone:
        in_.Consume(consumed);
        BeginRequest();
        return true;
    }
  }
  // A body can be complete with no bytes to read: "Content-Length: 0".
  if (req_state_ != ReqState::kBody || (in_.empty() && !req_body_->done())) {
    return false;
  }

  // Decode no more than the buffers may take: up to --request-buffer while
  // buffering, and while streaming only what the app has drained.
  size_t pending = upstream_wanted_ ? up_out_.size() : body_buf_.size();
  if (pending >= ctx_->request_buffer) return false;
  size_t room = ctx_->request_buffer - pending;
  std::string_view input = in_.View();
  if (input.size() > room + 64) input = input.substr(0, room + 64);
  scratch_.clear();
  size_t used = req_body_->Decode(input, &scratch_);
  in_.Consume(used);
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
    const http1::RequestHead& h = req_parser_.head();
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

void ProxySession::BeginRequest() {
  const http1::RequestHead& h = req_parser_.head();
  if (MaybeUpgradeToH2c(h)) return;  // the driver takes it from here
  method_ = h.method;
  target_ = h.target;
  version_minor_ = h.version_minor;
  keep_alive_ = h.keep_alive && !ctx_->force_close;
  head_request_ = method_ == "HEAD";
  const std::string* rid = h.Find("X-Request-Id");
  request_id_ = RequestIdFor(rid);
  if (const http1::Header* f =
          RefusedField(ctx_->forwarding.header_map, h.headers)) {
    Fail(Failure::kBadRequest, RefusalDetail(*f, /*trailer=*/false),
         http1::ErrorKind::kBadRequest);
    return;
  }

  // A worker that is stopping serves what reached it (with "Connection:
  // close"); the 503 is for a drained server whose workers keep running.
  bool stopping = ctx_->stopping != nullptr && ctx_->stopping->load();
  if (!stopping && ctx_->server_draining != nullptr &&
      ctx_->server_draining->load(std::memory_order_relaxed) != 0) {
    Fail(Failure::kDraining, "server is draining");
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
  if (ctx_->in_flight_cap != nullptr) {
    uint32_t cap = ctx_->in_flight_cap->load(std::memory_order_relaxed);
    if (cap > 0 &&
        ctx_->slot->in_flight.load(std::memory_order_relaxed) >= cap) {
      Fail(Failure::kOverCapacity,
           absl::StrCat("worker at its cap of ", cap, " requests in flight"));
      return;
    }
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
    out_.Append("HTTP/1.1 100 Continue\r\n\r\n");
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
  absl::StrAppend(&up.request, h.method, " ", h.target, " HTTP/1.1\r\n");
  for (const http1::Header& f : h.headers) {
    if (!http1::EqualsIgnoreCase(f.name, "Host") &&
        (http1::IsHopByHop(f.name, tokens) ||
         http1::EqualsIgnoreCase(f.name, "Content-Length"))) {
      continue;
    }
    AppendHeader(&up.request, f.name, f.value);
  }
  up.request.append("Connection: close\r\n\r\n");
  h2c_upgrade_ = std::move(up);
  wants_http2_ = true;
  return true;
}

void ProxySession::BuildUpstreamHead(UpstreamFraming framing, uint64_t length) {
  const http1::RequestHead& h = req_parser_.head();
  // Members reused across requests: no allocation once warm.
  std::vector<std::string>& tokens = tokens_;
  http1::ConnectionTokens(h.headers, &tokens);
  std::string& head = head_scratch_;
  head.clear();
  head.append(h.method).append(" ").append(h.target).append(" HTTP/1.1\r\n");
  // TE is hop-by-hop, but its "trailers" says the client takes trailer
  // fields, and forkd passes them on to an HTTP/1.1 client (the response
  // to it is chunked when the app's is) and to an HTTP/2 one: so forkd says
  // it too, on its own hop (RFC 9110 10.1.4).
  bool te_trailers = false;
  ClientFacts facts{.peer = peer_,
                    .scheme = client_->scheme(),
                    .host = h.Find("Host"),
                    .request_id = request_id_};
  // Which client fields pass and what forkd adds (X-Forwarded-*,
  // X-Request-Id) is forwarding.h's decision; the rest is this hop's.
  ForwardingCounts dropped = ForwardedFields(
      ctx_->forwarding, facts, h.headers,
      [&](size_t i) {
        const http1::Header& f = h.headers[i];
        std::string_view n = f.name;
        if (http1::EqualsIgnoreCase(n, "TE")) {
          te_trailers |=
              version_minor_ == 1 && http1::TeAcceptsTrailers(f.value);
          return;
        }
        // Announces the trailers only where they go on: a chunked request.
        if (http1::EqualsIgnoreCase(n, "Trailer") &&
            framing != UpstreamFraming::kChunked) {
          return;
        }
        // Host stays whatever the Connection header lists: the app needs
        // it (RFC 9112 3.2), and X-Forwarded-Host is taken from it.
        if (!http1::EqualsIgnoreCase(n, "Host") &&
            (http1::IsHopByHop(n, tokens) ||
             http1::EqualsIgnoreCase(n, "Content-Length") ||
             http1::EqualsIgnoreCase(n, "Expect"))) {
          return;
        }
        AppendHeader(&head, f.name, f.value);
      },
      [&](std::string_view name, std::string_view value) {
        AppendHeader(&head, name, value);
      });
  CountDroppedFields(ctx_, dropped, peer_);
  if (te_trailers) {
    AppendHeader(&head, "TE", "trailers");
    AppendHeader(&head, "Connection", "TE");
  }
  switch (framing) {
    case UpstreamFraming::kNone:
      break;
    case UpstreamFraming::kLength:
      AppendHeader(&head, "Content-Length", absl::StrCat(length));
      break;
    case UpstreamFraming::kChunked:
      AppendHeader(&head, "Transfer-Encoding", "chunked");
      break;
  }
  head.append("\r\n");
  up_out_.Append(head);
}

bool ProxySession::StartUpstream() {
  if (!upstream_wanted_ || up_ || resp_state_ != RespState::kNotStarted) {
    return false;
  }
  int64_t now = NowMs();
  if (connect_started_ms_ == 0) connect_started_ms_ = now;
  if (ctx_->admission != nullptr && !admitted_) {
    if (!ctx_->admission->TryEnter(this)) {
      // Over the cap: wait in line, not refused. The connect-retry deadline
      // rechecks, and bounds the wait by --upstream-timeout (then 504).
      in_line_ = true;
      retry_connect_at_ms_ = now + kAdmissionRecheckMs;
      return false;
    }
    in_line_ = false;
    admitted_ = true;
    retry_connect_at_ms_ = 0;
  }
  // app-route: app mode picks the app process here, once the request is
  // ready to send, so a slow client never holds one.
  if (ctx_->app_queue != nullptr && !app_) {
    if (app_waiting_ && retry_connect_at_ms_ > now) return false;
    upstream::AppReservation r;
    switch (ctx_->app_queue->TryEnter(this, now, &r)) {
      case AppQueue::Result::kReserved:
        app_ = r;
        app_waiting_ = false;
        retry_connect_at_ms_ = 0;
        connect_started_ms_ = now;  // --upstream-timeout counts from here
        break;
      case AppQueue::Result::kWaiting:
        app_waiting_ = true;
        retry_connect_at_ms_ = now + AppQueue::kRecheckMs;
        return false;
      case AppQueue::Result::kTimedOut:
        app_waiting_ = false;
        retry_connect_at_ms_ = 0;
        LeaveInFlight();
        Fail(Failure::kQueueTimeout,
             absl::StrFormat("no free app process within --max-queue-time "
                             "(%.3gs)",
                             ctx_->app_queue->max_wait_ms() / 1000.0));
        return true;
    }
  }
  if (retry_connect_at_ms_ > now) return false;
  retry_connect_at_ms_ = 0;

  std::unique_ptr<upstream::Connection> conn =
      app_ ? ctx_->app_pools->TakeIdle(*app_) : ctx_->pool->TakeIdle();
  if (conn) {
    if (can_replay_) {
      replay_.Clear();
      replay_.Append(up_out_.View());
    }
  } else {
    int err = 0;
    switch (app_ ? ctx_->app_pools->Connect(*app_, &conn, &err)
                 : ctx_->pool->Connect(&conn, &err)) {
      case upstream::ConnectResult::kConnected:
      case upstream::ConnectResult::kInProgress:
        break;
      case upstream::ConnectResult::kRetryLater:
        // The app's accept queue is full; it is busy, not gone.
        retry_connect_at_ms_ = now + 5;
        return false;
      case upstream::ConnectResult::kFailed:
        UpstreamFailed(
            Failure::kUpstreamRefused,
            absl::StrCat("connect to ", UpstreamDisplay(), ": ",
                         std::strerror(err)));
        return true;
    }
  }
  up_ = std::move(conn);
  up_wrote_ = false;
  up_write_closed_ = false;
  up_->owner = this;
  if (ctx_->register_upstream && !up_->registered) {
    ctx_->register_upstream(up_.get());
  }
  up_start_ns_ = NowNs();
  last_upstream_ms_ = now;
  resp_state_ = RespState::kHead;
  return true;
}

bool ProxySession::WriteUpstream() {
  if (!up_ || !up_->writable || up_write_closed_ ||
      (up_out_.empty() && !up_->connecting)) {
    return false;
  }
  if (up_->connecting) {
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(up_->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    up_->connecting = false;
    if (err != 0) {
      UpstreamFailed(Failure::kUpstreamRefused,
                     absl::StrCat("connect to ", UpstreamDisplay(),
                                  ": ", std::strerror(err)));
      return true;
    }
    if (up_out_.empty()) return true;
  }
  std::string_view data = up_out_.View();
  ssize_t n = send(up_->fd, data.data(), data.size(), MSG_NOSIGNAL);
  if (n > 0) {
    if (static_cast<size_t>(n) < data.size()) up_->writable = false;
    up_out_.Consume(static_cast<size_t>(n));
    up_wrote_ = true;
    last_upstream_ms_ = NowMs();
    return true;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    up_->writable = false;
    return false;
  }
  if (n < 0 && errno == EINTR) return true;
  if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
    // The app stopped reading: it may have answered from the head alone
    // (413, 401...) and closed. Read its answer instead of answering 502;
    // if there is none, the read fails the request (or retries it) as any
    // close without a response does. The rest of the body is dropped.
    LOG_DEBUG("write to app: %s; reading its answer", std::strerror(errno));
    up_write_closed_ = true;
    up_out_.Clear();
    up_->readable = true;
    return true;
  }
  UpstreamFailed(Failure::kUpstreamReset,
                 absl::StrCat("write to app: ", std::strerror(errno)));
  return true;
}

bool ProxySession::ReadUpstream() {
  if (!up_ || !up_->readable || up_->connecting) return false;
  if (resp_state_ != RespState::kHead && resp_state_ != RespState::kBody) {
    return false;
  }
  // A response with an empty body (Content-Length: 0, 204, HEAD) is whole
  // once its head is parsed: an app that closes right after it must not
  // read as one that closed mid-response.
  if (resp_state_ == RespState::kBody && resp_body_->done()) return false;
  if (out_.size() >= ctx_->response_buffer) return false;  // client is slow
  // Decode the body bytes already here before reading on: once the app
  // closes with request bytes unread, a unix socket's next read fails with
  // ECONNRESET, which must not cost the response the app sent before.
  if (resp_state_ == RespState::kBody && !up_in_.empty()) return false;
  int fd = up_->fd;
  ssize_t n = ReadChunk(&up_in_, [fd](char* buf, size_t len) {
    return recv(fd, buf, len, 0);  // not read(): see SocketTransport
  });
  if (n > 0) {
    if (static_cast<size_t>(n) < kReadChunk && !up_->hup) {
      up_->readable = false;  // drained; see ReadClient()
    }
    last_upstream_ms_ = NowMs();
    return true;
  }
  if (n == 0) {
    if (resp_state_ == RespState::kBody && resp_body_ && !resp_body_->done() &&
        up_in_.empty()) {
      resp_body_->OnEof();  // completes an until-close body
      if (resp_body_->done()) {
        up_eof_ = true;
        return true;
      }
    }
    if (resp_state_ == RespState::kBody && !up_in_.empty()) {
      up_eof_ = true;  // let the decoder take what is buffered first
      return true;
    }
    UpstreamFailed(Failure::kUpstreamReset,
                   resp_state_ == RespState::kHead
                       ? "app closed the connection without a response"
                       : "app closed the connection mid-response");
    return true;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    up_->readable = false;
    return false;
  }
  if (errno == EINTR) return true;
  UpstreamFailed(Failure::kUpstreamReset,
                 absl::StrCat("read from app: ", std::strerror(errno)));
  return true;
}

bool ProxySession::ProcessUpstreamInput() {
  if (resp_state_ == RespState::kHead) {
    if (up_in_.empty()) return false;
    size_t consumed = 0;
    switch (resp_parser_.Parse(up_in_.View(), method_, &consumed)) {
      case http1::ParseStatus::kNeedMore:
        return false;
      case http1::ParseStatus::kError:
        UpstreamFailed(Failure::kUpstreamBadResponse,
                       absl::StrCat("invalid response from app: ",
                                    resp_parser_.error().detail));
        return true;
      case http1::ParseStatus::kDone:
        break;
    }
    const http1::ResponseHead& rh = resp_parser_.head();
    if (rh.status < 200) {
      if (rh.status == 101) {
        UpstreamFailed(Failure::kUpstreamBadResponse,
                       "app switched protocols, which forkd does not proxy");
        return true;
      }
      // Interim responses (100, 103...) go to HTTP/1.1 clients as they are.
      if (version_minor_ == 1) out_.Append(up_in_.View().substr(0, consumed));
      up_in_.Consume(consumed);
      resp_parser_.Reset();
      return true;
    }
    up_in_.Consume(consumed);
    OnResponseHead();
    // The body bytes that came with the head join it in out_, so both leave
    // in one write: one packet and one wake-up of the client, not two.
    ProcessUpstreamBody();
    return true;
  }
  return ProcessUpstreamBody();
}

bool ProxySession::ProcessUpstreamBody() {
  if (resp_state_ != RespState::kBody || closed_) return false;
  if (!resp_body_->done() && !up_in_.empty()) {
    if (out_.size() >= ctx_->response_buffer) return false;
    scratch_.clear();
    size_t used = resp_body_->Decode(up_in_.View(), &scratch_);
    up_in_.Consume(used);
    if (resp_body_->failed()) {
      UpstreamFailed(Failure::kUpstreamBadResponse,
                     absl::StrCat("invalid response body from app: ",
                                  resp_body_->error().detail));
      return true;
    }
    body_bytes_out_ += scratch_.size();
    if (resp_chunked_to_client_) {
      AppendChunk(&out_, scratch_);
    } else {
      out_.Append(scratch_);
    }
    if (!resp_body_->done() && up_eof_ && up_in_.empty()) {
      resp_body_->OnEof();
      if (!resp_body_->done()) {
        UpstreamFailed(Failure::kUpstreamReset,
                       "app closed the connection mid-response");
        return true;
      }
    }
    if (!resp_body_->done()) return used > 0;
  }
  if (!resp_body_->done()) return false;
  // Trailers go on in a chunked response; otherwise (an HTTP/1.0 client)
  // they are dropped, as RFC 9112 7.1.2 allows.
  if (resp_chunked_to_client_) {
    AppendLastChunk(&out_, ForwardableTrailers(resp_body_->trailers()));
  }
  CompleteUpstream();
  return true;
}

void ProxySession::OnResponseHead() {
  const http1::ResponseHead& rh = resp_parser_.head();
  status_ = rh.status;
  resp_keep_alive_ = rh.keep_alive;
  if (ctx_->stopping != nullptr && ctx_->stopping->load()) keep_alive_ = false;
  bool streamed = rh.framing == http1::Framing::kChunked ||
                  rh.framing == http1::Framing::kUntilClose;
  // HTTP/1.0 clients cannot take chunks: the body ends with the connection.
  if (streamed && version_minor_ == 0) keep_alive_ = false;
  resp_chunked_to_client_ = streamed && version_minor_ == 1;

  std::vector<std::string>& tokens = tokens_;
  http1::ConnectionTokens(rh.headers, &tokens);
  std::string& head = head_scratch_;
  head.clear();
  absl::StrAppend(&head, "HTTP/1.1 ", rh.status, " ",
                  rh.reason.empty()
                      ? std::string(http1::ReasonPhrase(rh.status))
                      : rh.reason,
                  "\r\n");
  for (const http1::Header& f : rh.headers) {
    if (http1::IsHopByHop(f.name, tokens)) continue;
    if (streamed && http1::EqualsIgnoreCase(f.name, "Content-Length")) {
      continue;
    }
    // Announces trailers only to a client that can get them.
    if (!resp_chunked_to_client_ &&
        http1::EqualsIgnoreCase(f.name, "Trailer")) {
      continue;
    }
    AppendHeader(&head, f.name, f.value);
  }
  if (resp_chunked_to_client_) {
    AppendHeader(&head, "Transfer-Encoding", "chunked");
  }
  if (!keep_alive_) {
    AppendHeader(&head, "Connection", "close");
  } else if (version_minor_ == 0) {
    AppendHeader(&head, "Connection", "keep-alive");
  }
  head.append("\r\n");
  out_.Append(head);
  sent_to_client_ = true;
  if (ctx_->access_log != nullptr) resp_headers_ = rh.headers;
  resp_body_.emplace(rh.framing, rh.content_length, /*max_body=*/0);
  resp_state_ = RespState::kBody;
}

void ProxySession::CompleteUpstream() {
  resp_state_ = RespState::kDone;
  upstream_s_ = static_cast<double>(NowNs() - up_start_ns_) / 1e9;
  if (ctx_->record_metrics) {
    ctx_->slot->counters.upstream_duration.Observe(upstream_s_);
  }
  // Reusable only after a complete exchange with nothing left over.
  bool reusable = resp_keep_alive_ && !up_eof_ && up_in_.empty() &&
                  req_state_ == ReqState::kDone && up_out_.empty();
  ReleaseUpstream(reusable);
  ReleaseAppProcess(/*finished=*/true);  // app-route: the response is read
  LeaveInFlight();
}

void ProxySession::UpstreamFailed(Failure failure, const std::string& detail) {
  // A pooled connection the app closed while idle fails at once: retry the
  // request once on a fresh connection when nothing of it was answered.
  // Once request bytes reached the app, it may have acted on them before
  // closing, so only idempotent methods are repeated (RFC 9110 9.2.2): a
  // POST must not be delivered twice.
  if (up_ && up_->reused && can_replay_ && failure == Failure::kUpstreamReset &&
      resp_state_ == RespState::kHead && up_in_.empty() &&
      (!up_wrote_ || IsIdempotent(method_))) {
    ReleaseUpstream(false);
    up_out_.Clear();
    up_out_.Append(replay_.View());
    replay_.Clear();
    can_replay_ = false;
    resp_state_ = RespState::kNotStarted;
    LOG_DEBUG("retrying on a fresh connection after: %s", detail);
    return;
  }
  auto kind = UpstreamErrorFor(failure);
  if (kind != scoreboard::UpstreamError::kCount && ctx_->record_metrics) {
    ctx_->slot->counters.upstream_errors[static_cast<size_t>(kind)].fetch_add(
        1, std::memory_order_relaxed);
  }
  ReleaseUpstream(false);
  LeaveInFlight();
  if (!sent_to_client_) {
    Fail(failure, detail);
    return;
  }
  LOG_ERROR("%s %s (request %s): %s; response cut short", method_, target_,
            request_id_, detail);
  CloseClient(false);
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

void ProxySession::Fail(Failure failure, const std::string& detail,
                        http1::ErrorKind parse_error) {
  if (parse_error == http1::ErrorKind::kNone &&
      failure == Failure::kBadRequest) {
    parse_error = req_parser_.error().kind;
  }
  int status = StatusFor(failure, parse_error);
  auto rejection = RejectionFor(status, failure);
  if (rejection != scoreboard::Rejection::kCount && ctx_->record_metrics) {
    ctx_->slot->counters.rejected[static_cast<size_t>(rejection)].fetch_add(
        1, std::memory_order_relaxed);
  }
  // After an app failure a fully-read request leaves the connection usable;
  // anything else may have unread bytes, so the connection ends.
  bool is_upstream = failure == Failure::kUpstreamRefused ||
                     failure == Failure::kUpstreamReset ||
                     failure == Failure::kUpstreamTimeout ||
                     failure == Failure::kUpstreamBadResponse ||
                     failure == Failure::kQueueTimeout;
  bool close = !(is_upstream && req_state_ == ReqState::kDone && keep_alive_);
  LOG_ERROR("%d for %s %s from %s (request %s): %s", status,
            method_.empty() ? "-" : method_, target_.empty() ? "-" : target_,
            PeerForLog(), request_id_.empty() ? "-" : request_id_, detail);
  // app-route: a client told to come back soon, not that the app failed.
  std::string response =
      BuildErrorResponse(status, detail, close,
                         failure == Failure::kQueueTimeout ? "Retry-After: 1\r\n"
                                                           : "");
  size_t head_end = response.find("\r\n\r\n") + 4;
  // A HEAD answer has the headers a GET would get but no body (RFC 9110
  // 9.3.2): on a kept-alive connection the client would read the body as
  // the start of the next response.
  if (method_ == "HEAD") response.resize(head_end);
  out_.Append(response);
  body_bytes_out_ = response.size() - head_end;
  status_ = status;
  sent_to_client_ = true;
  LeaveInFlight();
  if (close) {
    keep_alive_ = false;
    close_after_response_ = true;
    // Unread request bytes stay unread, and more may be on their way (a
    // pipelined request, the rest of a body): every answer of our own that
    // ends the connection lingers (CloseClient), so no reset caused by
    // them overtakes it.
    unread_input_ = true;
    req_state_ = ReqState::kDone;
  }
  upstream_wanted_ = false;
  resp_state_ = RespState::kDone;
  if (req_start_ns_ == 0) StartHead();
}

bool ProxySession::WriteClient() {
  if (out_.empty() || !client_writable_ || linger_.active()) return false;
  std::string_view data = out_.View();
  ssize_t n = client_->Write(data.data(), data.size());
  if (n > 0) {
    if (static_cast<size_t>(n) < data.size()) client_writable_ = false;
    out_.Consume(static_cast<size_t>(n));
    last_client_ms_ = NowMs();
    return true;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    client_writable_ = false;
    return false;
  }
  if (n < 0 && errno == EINTR) return true;
  LOG_DEBUG("client %s went away: %s", PeerForLog(), std::strerror(errno));
  CloseClient(false);
  return true;
}

bool ProxySession::MaybeFinishRequest() {
  if (resp_state_ != RespState::kDone || !out_.empty() || linger_.active()) {
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
  accesslog::Entry e;
  e.remote_addr = peer_.empty() ? std::string_view("-") : peer_;
  e.start = req_start_time_;
  e.duration_s = static_cast<double>(NowNs() - req_start_ns_) / 1e9;
  e.upstream_s = upstream_s_;
  e.method = method_;
  e.target = target_;
  e.protocol = http2_stream_         ? "HTTP/2.0"
               : version_minor_ == 0 ? "HTTP/1.0"
                                     : "HTTP/1.1";
  e.status = status_;
  e.body_bytes = body_bytes_out_;
  e.request_id = request_id_;
  e.request_headers = &req_parser_.head().headers;
  e.response_headers = &resp_headers_;
  RecordFinishedRequest(ctx_, e,
                        http2_stream_ ? scoreboard::Protocol::kHttp2
                                      : scoreboard::Protocol::kHttp1,
                        bytes_in_);

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
  request_id_.clear();
  method_.clear();
  target_.clear();
  resp_headers_.clear();
  up_out_.Clear();
  up_in_.Clear();
  replay_.Clear();
  can_replay_ = false;
  upstream_wanted_ = false;
  sent_to_client_ = false;
  up_eof_ = false;
  connect_started_ms_ = 0;
  upstream_s_ = 0;
  status_ = 0;
  body_bytes_out_ = 0;
  resp_state_ = RespState::kNotStarted;
  req_state_ = ReqState::kWaitHead;
  req_start_ns_ = 0;
  bytes_in_ = in_.size();
  in_.Shrink(64 * 1024);
  out_.Shrink(64 * 1024);
  if (!in_.empty()) StartHead();  // pipelined request already here
}

void ProxySession::ReleaseForHttp2(std::unique_ptr<ClientTransport>* transport,
                                   std::string* received) {
  UpdateConnectionGauge(true);
  counts_as_connection_ = false;  // the HTTP/2 connection counts itself
  received->assign(in_.View());
  in_.Clear();
  *transport = std::move(client_);
  closed_ = true;
}

void ProxySession::ReleaseUpstream(bool reusable) {
  if (!up_) return;
  up_->owner = nullptr;
  if (app_) {  // app-route
    if (reusable) {
      ctx_->app_pools->Release(*app_, std::move(up_));
    } else {
      ctx_->app_pools->Discard(std::move(up_));
    }
    return;
  }
  if (reusable) {
    ctx_->pool->Release(std::move(up_));
  } else {
    ctx_->pool->Discard(std::move(up_));
  }
}

// app-route
void ProxySession::ReleaseAppProcess(bool finished) {
  if (ctx_->app_queue == nullptr) return;
  if (app_waiting_) {
    ctx_->app_queue->Leave(this);
    app_waiting_ = false;
  }
  if (app_) {
    ReleaseUpstream(false);  // a connection is never kept without its process
    ctx_->app_queue->Release(*app_, finished);
    app_.reset();
  }
}

std::string ProxySession::UpstreamDisplay() {
  return app_ ? ctx_->app_pools->Display(*app_) : ctx_->pool->address().display;
}

void ProxySession::LeaveInFlight() {
  ReleaseAppProcess(/*finished=*/false);  // app-route
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
    // app-route: a request waiting for an app process is bounded by
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
      !out_.empty()) {
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
    LOG_ERROR("%s %s from %s (request %s): %s; connection closed", method_,
              target_, PeerForLog(), request_id_, detail);
    CloseClient(false);
    return;
  }
  if (header) {
    method_ = req_parser_.head().method;
    target_ = req_parser_.head().target;
  }
  ReleaseUpstream(false);  // a body streamed to the app stops here
  Fail(Failure::kClientTimeout, detail);
  Drive();
}

bool ProxySession::WaitingForApp() const {
  return upstream_wanted_ && resp_state_ != RespState::kDone && out_.empty();
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
  } else if (out_.empty() &&
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
  return peer_.empty() ? std::string_view("unix-socket client") : peer_;
}

}  // namespace forkd::proxy

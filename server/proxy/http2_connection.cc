#include "server/proxy/http2_connection.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "server/common/log.h"
#include "server/common/loop_clock.h"
#include "server/common/readiness.h"
#include "server/http1/fields.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::proxy {

// The HTTP/2 protocol this client and app side speak.
using http2::Http2Session;
using http2::kCancel;
using http2::kEnhanceYourCalm;
using http2::kHttp11Required;
using http2::kInternalError;
using http2::kNoError;
using http2::kProtocolError;
using http2::kRefusedStream;
namespace {

constexpr size_t kReadChunk = 16 * 1024;
// Response bytes a stream may have queued for the client before its
// session stops reading the app: bounded memory per stream.
constexpr size_t kStreamQueueLimit = 256 * 1024;
// An HTTP/2 connection with no stream open is closed after this long.
constexpr int64_t kMinIdleMs = 60 * 1000;

// The async loop's time of the current batch of events (loop_clock.h).
int64_t NowMs() { return loop_clock::NowMs(); }

}  // namespace

// The per-stream virtual connection of a ProxySession: it says what the
// client is (scheme, an HTTP/2 stream) and carries no bytes. The request
// reaches the session parsed (ServeRequest, the stream as RequestSource)
// and the response leaves it parsed (the stream as ResponseSink).
class Http2Connection::StreamTransport final
    : public transport::ClientTransport {
 public:
  explicit StreamTransport(const char* scheme) : scheme_(scheme) {}

  // Never called: a session serving a given request reads nothing.
  ssize_t Read(char*, size_t) override {
    errno = EAGAIN;
    return -1;
  }
  // The response goes to the stream (the session's ResponseSink),
  // structured; nothing is written.
  ssize_t Write(const char*, size_t len) override {
    return static_cast<ssize_t>(len);
  }
  void ShutdownWrite() override {}
  int fd() const override { return -1; }
  const char* scheme() const override { return scheme_; }
  bool is_http2_stream() const override { return true; }

 private:
  const char* scheme_;
};

// One stream: the source of its request's body for the ProxySession, and
// the sink its response comes back through as HEADERS/DATA/trailers.
struct Http2Connection::Stream final : public ResponseSink,
                                       public RequestSource {
  explicit Stream(Http2Connection* c) : conn(c) {}

  // RequestSource
  std::string_view PendingBody() override { return body.View(); }
  void ConsumeBody(size_t n) override;
  bool BodyComplete() const override { return request_ended; }
  std::vector<http1::Header> TakeTrailers() override {
    return std::move(trailers);
  }

  // ResponseSink
  void OnInterim(int status, const std::vector<http1::Header>& fields) override;
  void OnResponseHead(int status, const std::vector<http1::Header>& fields,
                      bool end_stream) override;
  void OnResponseBody(std::string_view data) override;
  void OnResponseEnd(const std::vector<http1::Header>& trailers) override;
  bool ResponseBlocked() override;
  void OnExchangeClosed() override { conn->OnStreamTransportGone(this); }

  Http2Connection* conn;
  int32_t id = 0;
  // DATA payload the session has not taken yet; its window reopens as the
  // session takes it (ConsumeBody).
  Buffer body;
  std::vector<http1::Header> trailers;  // of END_STREAM, until taken
  bool h2_closed = false;               // nghttp2 closed the stream
  bool transport_gone = false;          // the session closed its connection
  bool write_blocked = false;           // ResponseBlocked() said so
  bool abort_pending = false;  // reset by the client: abort the session
  bool ended = false;          // the response ended (or the stream was reset)
  // The request: all of it arrived (END_STREAM), and when its last bytes
  // did (--client-body-timeout).
  bool request_ended = false;
  bool body_timed_out = false;  // --client-body-timeout reset it
  int64_t last_input_ms = 0;
  std::unique_ptr<proxy::ProxySession> session;
};

// The response, parsed once by the stream's session, becomes frames here.
// Http2Session lowercases the names and leaves out the HTTP/1.1 connection
// fields (OutgoingFields). Inside Drive() (and so maybe inside nghttp2's
// receive callbacks) the loop there flushes; from an app event, soon.
void Http2Connection::Stream::OnInterim(
    int status, const std::vector<http1::Header>& fields) {
  if (h2_closed || ended) return;
  conn->session_->SubmitInterim(id, status, fields).IgnoreError();
  conn->FlushSoon();
}

void Http2Connection::Stream::OnResponseHead(
    int status, const std::vector<http1::Header>& fields, bool end_stream) {
  if (h2_closed || ended) return;
  conn->session_->SubmitResponse(id, status, fields, end_stream).IgnoreError();
  ended = end_stream;
  conn->FlushSoon();
}

void Http2Connection::Stream::OnResponseBody(std::string_view data) {
  if (h2_closed || ended) return;  // nobody listens
  conn->session_->AppendResponseData(id, data).IgnoreError();
  conn->FlushSoon();
}

void Http2Connection::Stream::OnResponseEnd(
    const std::vector<http1::Header>& trailers) {
  if (h2_closed || ended) return;
  // The app's trailers go in a HEADERS frame with END_STREAM after the
  // last DATA; none: DATA ends the stream.
  conn->session_->EndResponse(id, trailers).IgnoreError();
  ended = true;
  conn->FlushSoon();
}

bool Http2Connection::Stream::ResponseBlocked() {
  if (h2_closed) return false;  // what comes is dropped
  write_blocked = conn->session_->QueuedResponseBytes(id) >= kStreamQueueLimit;
  return write_blocked;
}

void Http2Connection::Stream::ConsumeBody(size_t n) {
  body.Consume(n);
  if (h2_closed) return;
  conn->session_->ConsumeRequestData(id, n);
  // The session took the body because the app drained it (maybe an app
  // event, outside Drive()): send the WINDOW_UPDATE now. The client, out
  // of window, sends nothing that would make us flush it later.
  conn->FlushSoon();
}

absl::StatusOr<std::unique_ptr<Http2Connection>> Http2Connection::Create(
    proxy::SessionContext* ctx, std::unique_ptr<transport::ClientTransport> t,
    std::string peer, std::string received, int64_t now_ms) {
  std::unique_ptr<Http2Connection> c(
      new Http2Connection(ctx, std::move(t), std::move(peer), now_ms));
  auto session =
      Http2Session::Create(ctx->http2_settings, c.get(), ctx->http2_context);
  if (!session.ok()) return session.status();
  c->session_ = std::move(*session);  // it counts the connection itself
  if (ctx->h2_upstream != nullptr) {
    Http2Connection* raw = c.get();
    c->bridge_ = std::make_unique<UpstreamBridge>(
        ctx, c->session_.get(), c->peer_, c->client_->scheme(),
        [raw] { raw->FlushSoon(); });
  }
  c->Start(received);
  return c;
}

absl::StatusOr<std::unique_ptr<Http2Connection>>
Http2Connection::CreateFromUpgrade(
    proxy::SessionContext* ctx, std::unique_ptr<transport::ClientTransport> t,
    std::string peer, const proxy::H2cUpgrade& upgrade, std::string received,
    int64_t now_ms) {
  std::unique_ptr<Http2Connection> c(
      new Http2Connection(ctx, std::move(t), std::move(peer), now_ms));
  auto session = Http2Session::CreateFromUpgrade(
      ctx->http2_settings, c.get(), upgrade.http2_settings,
      upgrade.method == "HEAD", ctx->http2_context);
  if (!session.ok()) return session.status();
  c->session_ = std::move(*session);
  // Goes out before the session's SETTINGS (FlushOutput sends out_ first).
  c->out_.Append(
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
      "Upgrade: h2c\r\n\r\n");
  ++c->depth_;  // streams are reaped only by Drive()
  // The HTTP/1.1 request was whole and bodiless.
  c->StartStream(1, upgrade.head, /*body_follows=*/false);
  --c->depth_;
  c->Start(received);
  return c;
}

void Http2Connection::Start(std::string_view received) {
  absl::Status st = session_->Receive(received.data(), received.size());
  if (!st.ok()) {
    Finish();  // the GOAWAY that says why
  }
  Drive();
}

Http2Connection::Http2Connection(
    proxy::SessionContext* ctx,
    std::unique_ptr<transport::ClientTransport> transport, std::string peer,
    int64_t now_ms)
    : ctx_(ctx),
      client_(std::move(transport)),
      peer_(std::move(peer)),
      last_activity_ms_(now_ms),
      created_ms_(now_ms) {}

Http2Connection::Handoff Http2Connection::TakeFrom(proxy::ProxySession* h1) {
  Handoff h;
  h.peer = h1->peer();
  h.upgrade = h1->TakeH2cUpgrade();
  h1->ReleaseForHttp2(&h.transport, &h.received);
  return h;
}

absl::StatusOr<std::unique_ptr<Http2Connection>> Http2Connection::Start(
    proxy::SessionContext* ctx, Handoff handoff, int64_t now_ms) {
  auto h2 =
      handoff.upgrade.has_value()
          ? CreateFromUpgrade(ctx, std::move(handoff.transport),
                              std::move(handoff.peer), *handoff.upgrade,
                              std::move(handoff.received), now_ms)
          : Create(ctx, std::move(handoff.transport), std::move(handoff.peer),
                   std::move(handoff.received), now_ms);
  if (!h2.ok()) {
    LOG_ERROR("cannot start an HTTP/2 connection: %s",
              std::string(h2.status().message()));
  }
  return h2;
}

Http2Connection::~Http2Connection() {
  closing_ = true;  // transports going away must not touch the maps
  bridge_.reset();
  streams_.clear();
  finished_.clear();
  UpdateConnectionGauge(true);
}

void Http2Connection::UpdateConnectionGauge(bool gone) {
  if (!ctx_->record_metrics) return;
  MoveConnectionGauge(ctx_->slot, &gauge_phase_,
                      gone ? Phase::kClosed : phase());
}

void Http2Connection::OnClientEvents(uint32_t events) {
  const Readiness ready = Readiness::From(events);
  if (ready.readable) client_readable_ = true;
  if (ready.writable) client_writable_ = true;
  if (ready.hup) client_hup_ = true;
  // TLS: a read that had to write first, or a write that had to read.
  if (client_ && ready.out && client_->ReadNeedsWritable()) {
    client_readable_ = true;
  }
  if (client_ && ready.in && client_->WriteNeedsReadable()) {
    client_writable_ = true;
  }
  Drive();
}

void Http2Connection::Drive() {
  if (closed_) return;
  ++depth_;
  if (GoawayDue()) {
    // Reload, recycle, TERM or drain: GOAWAY, and open streams finish; the
    // client sends new requests on a new connection (to another worker).
    stopping_seen_ = true;
    session_->StartGracefulShutdown();
  }
  bool progress = true;
  while (progress && !closed_) {
    progress = ReadClient();
    if (closed_) break;
    progress |= FlushOutput();
    if (finishing_ && !linger_.active() && out_.empty() && !closed_) {
      // The last frames are written: FIN, then drop what still comes.
      linger_.Start(client_.get(), NowMs());
      client_readable_ = true;
      progress = true;
    }
    WakeBlockedStreams();
  }
  if (bridge_ && !closed_) bridge_->AfterClientFlush();
  --depth_;
  if (depth_ == 0) ReapStreams();
  if (!closed_ && !finishing_ && session_->Done() && out_.empty()) {
    Finish();
    Drive();
    return;
  }
  UpdateDeadline();
  UpdateConnectionGauge(false);
}

bool Http2Connection::ReadClient() {
  if (linger_.active()) {
    if (!client_readable_) return false;
    client_readable_ = false;  // Drain() reads until the socket would block
    if (linger_.Drain(client_.get(), NowMs()) ==
        proxy::LingeringClose::State::kDone) {
      Close();
    }
    return true;
  }
  if (finishing_ || !client_readable_ || !session_->WantRead()) return false;
  char buf[kReadChunk];
  ssize_t n = client_->Read(buf, sizeof(buf));
  if (n > 0) {
    if (static_cast<size_t>(n) < sizeof(buf) && !client_hup_ &&
        !client_->HasPendingInput()) {
      client_readable_ = false;  // drained (see ProxySession::ReadClient)
    }
    last_activity_ms_ = NowMs();
    absl::Status st = session_->Receive(buf, static_cast<size_t>(n));
    if (!st.ok()) {
      LOG_INFO("HTTP/2 connection from %s ended: %s",
               peer_.empty() ? "unix-socket client" : peer_,
               std::string(st.message()));
      Finish();  // the GOAWAY that says why
      return true;
    }
    return true;
  }
  if (n == 0) {
    // The client left: cut its streams, but first write what the session
    // has queued (a GOAWAY nghttp2 sent for a protocol error).
    Finish();
    return true;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    client_readable_ = false;
    return false;
  }
  if (errno == EINTR) return true;
  Close();
  return true;
}

void Http2Connection::FlushSoon() {
  if (depth_ > 0 || closed_) return;  // the Drive() on the stack flushes
  if (!ctx_->after_batch) {
    FlushOutput();
    return;
  }
  if (!flush_scheduled_) {
    flush_scheduled_ = true;
    ctx_->after_batch(this);
  }
}

void Http2Connection::OnBatchEnd() {
  flush_scheduled_ = false;
  Drive();
}

bool Http2Connection::FlushOutput() {
  bool progress = false;
  while (!closed_) {
    if (out_.empty()) session_->TakeOutput(&out_);
    if (out_.empty() || !client_writable_) return progress;
    std::string_view data = out_.View();
    ssize_t n = client_->Write(data.data(), data.size());
    if (n > 0) {
      out_.Consume(static_cast<size_t>(n));
      last_activity_ms_ = NowMs();
      progress = true;
      if (static_cast<size_t>(n) < data.size()) client_writable_ = false;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      client_writable_ = false;
      return progress;
    }
    if (n < 0 && errno == EINTR) continue;
    Close();
    return true;
  }
  return progress;
}

void Http2Connection::OnRequestHeaders(
    int32_t stream_id, std::string_view method, std::string_view scheme,
    std::string_view authority, std::string_view path,
    std::vector<http1::Header> headers, bool end_stream) {
  if (bridge_) {
    bridge_->OnRequestHeaders(stream_id, method, scheme, authority, path,
                              std::move(headers), end_stream);
    return;
  }
  // The request as the exchange takes it, whatever the client protocol:
  // the Host field is the :authority (the client's own host field goes,
  // RFC 9113 8.3.1), then the client's fields. Connection-specific fields
  // never get here: nghttp2 refuses a request carrying one (RFC 9113
  // 8.2.2).
  http1::RequestHead head;
  head.method.assign(method);
  head.target.assign(path);
  head.headers.reserve(headers.size() + 1);
  if (!authority.empty())
    head.headers.push_back({"Host", std::string(authority)});
  for (http1::Header& h : headers) {
    if (!authority.empty() && http1::EqualsIgnoreCase(h.name, "host")) continue;
    head.headers.push_back(std::move(h));
  }
  StartStream(stream_id, std::move(head), /*body_follows=*/!end_stream);
}

void Http2Connection::StartStream(int32_t stream_id, http1::RequestHead head,
                                  bool body_follows) {
  auto stream = std::make_unique<Stream>(this);
  Stream* s = stream.get();
  s->id = stream_id;
  s->request_ended = !body_follows;
  s->last_input_ms = NowMs();
  s->session = std::make_unique<proxy::ProxySession>(
      ctx_, std::make_unique<StreamTransport>(client_->scheme()), peer_,
      NowMs(), /*sink=*/s);
  streams_[stream_id] = std::move(stream);
  s->session->ServeRequest(std::move(head), body_follows, /*source=*/s);
}

void Http2Connection::OnRequestData(int32_t stream_id, std::string_view data) {
  if (bridge_) return bridge_->OnRequestData(stream_id, data);
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  Stream* s = it->second.get();
  s->last_input_ms = NowMs();
  if (s->transport_gone) {
    session_->ConsumeRequestData(stream_id, data.size());  // nobody reads
    return;
  }
  s->body.Append(data);
  DriveStream(s);
}

void Http2Connection::OnRequestEnd(int32_t stream_id,
                                   std::vector<http1::Header> trailers) {
  if (bridge_) return bridge_->OnRequestEnd(stream_id, std::move(trailers));
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  Stream* s = it->second.get();
  s->request_ended = true;
  if (s->transport_gone) return;
  // The session checks the trailers against the limits and passes on the
  // ones allowed in trailers, as for an HTTP/1.1 client.
  s->trailers = std::move(trailers);
  DriveStream(s);
}

void Http2Connection::OnStreamClosed(int32_t stream_id, uint32_t error_code) {
  if (bridge_) {
    bridge_->OnStreamClosed(stream_id, error_code);
    deadline_ms_ = 0;  // reap soon even if no event comes
    return;
  }
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  Stream* s = it->second.get();
  s->h2_closed = true;
  // Reset before its answer ended: the request is cancelled, which frees
  // its app connection. Aborting waits for the top of Drive(): the
  // session may be on the stack right now.
  if (!s->transport_gone && !s->ended) s->abort_pending = true;
  finished_.push_back(std::move(it->second));
  streams_.erase(it);
  deadline_ms_ = 0;  // reap soon even if no event comes
}

void Http2Connection::OnStreamTransportGone(Stream* s) {
  if (closing_) return;
  s->transport_gone = true;
  // The body nobody takes now still reopens the window it holds.
  if (!s->h2_closed && !s->body.empty()) {
    session_->ConsumeRequestData(s->id, s->body.size());
  }
  s->body.Clear();
  if (!s->ended && !s->h2_closed) {
    // The exchange ended without a whole response (the app failed after
    // the head went out): the client must not take it as complete.
    session_->ResetStream(s->id, kInternalError);
    s->ended = true;
  }
  deadline_ms_ = 0;  // reap it soon
}

void Http2Connection::DriveStream(Stream* s) {
  if (s->transport_gone) return;
  s->session->SetReadiness(true, true, false, false);
  s->session->Drive();
}

void Http2Connection::WakeBlockedStreams() {
  for (auto& [id, s] : streams_) {
    if (s->write_blocked && !s->transport_gone &&
        session_->QueuedResponseBytes(id) < kStreamQueueLimit / 2) {
      s->write_blocked = false;
      s->session->OnResponseRoom();
    }
  }
}

void Http2Connection::ReapStreams() {
  // Sessions are freed here, at the top of Drive(), never while one of
  // them is on the stack.
  if (bridge_) bridge_->Reap();
  for (auto& s : finished_) {
    if (s->abort_pending && !s->transport_gone) s->session->Abort();
  }
  finished_.clear();
}

void Http2Connection::OnTimeout(int64_t now_ms) {
  if (closed_) return;
  if (finishing_) {
    // The last frames did not leave in time, or the linger is over.
    if (now_ms >= deadline_ms_) Close();
    return;
  }
  ReapStreams();
  if (CheckClientTimeouts(now_ms)) {
    Drive();
    return;
  }
  // A timeout answers (504) or ends a stream; the Drive() below flushes
  // that. Flushing from inside this loop (OnStreamResponse at depth 0)
  // could close streams, erasing from streams_ while it is iterated.
  ++depth_;
  for (auto& [id, s] : streams_) {
    if (!s->transport_gone && now_ms >= s->session->deadline_ms()) {
      s->session->OnTimeout(now_ms);
    }
  }
  if (bridge_) bridge_->OnTimeout(now_ms);
  --depth_;
  bool no_streams = streams_.empty() && (!bridge_ || bridge_->empty());
  if (no_streams && now_ms >= last_activity_ms_ + IdleMs()) {
    session_->StartGracefulShutdown();
    Finish();
  }
  Drive();
}

bool Http2Connection::CheckClientTimeouts(int64_t now_ms) {
  const int64_t head_ms = ctx_->client_header_timeout_ms;
  const int64_t body_ms = ctx_->client_body_timeout_ms;
  std::string_view peer = peer_.empty() ? "unix-socket client" : peer_;
  auto count = [this] {
    if (!ctx_->record_metrics) return;
    ctx_->slot->counters
        .client_timeouts[static_cast<size_t>(scoreboard::ClientTimeout::kHttp2)]
        .fetch_add(1, std::memory_order_relaxed);
  };
  const char* why = nullptr;
  if (head_ms > 0 && !session_->settings_received() &&
      now_ms >= created_ms_ + head_ms) {
    why = "no SETTINGS frame after the preface";
  } else if (head_ms > 0 && header_block_since_ms_ != 0 &&
             now_ms >= header_block_since_ms_ + head_ms) {
    why = "header block (HEADERS + CONTINUATION) not complete";
  }
  if (why != nullptr) {
    count();
    LOG_ERROR(
        "HTTP/2 connection from %s: %s within %.3gs "
        "(--client-header-timeout); GOAWAY",
        peer, why, head_ms / 1000.0);
    session_->Terminate(kProtocolError, why);
    Finish();
    return true;
  }
  if (body_ms <= 0) return false;
  for (auto& [id, s] : streams_) {
    // All request bytes given to the stream's session were read: the
    // client, not the app, is what the body waits for.
    if (s->request_ended || s->body_timed_out || s->h2_closed ||
        !s->body.empty() || now_ms < s->last_input_ms + body_ms) {
      continue;
    }
    count();
    LOG_ERROR(
        "HTTP/2 stream %d from %s: no request body bytes for %.3gs "
        "(--client-body-timeout); RST_STREAM",
        id, peer, body_ms / 1000.0);
    s->body_timed_out = true;  // once
    session_->ResetStream(id, kCancel);
  }
  return false;
}

int64_t Http2Connection::ClientDeadline() const {
  int64_t d = loop_clock::kNoDeadlineMs;
  const int64_t head_ms = ctx_->client_header_timeout_ms;
  const int64_t body_ms = ctx_->client_body_timeout_ms;
  if (head_ms > 0 && !session_->settings_received()) {
    d = std::min(d, created_ms_ + head_ms);
  }
  if (head_ms > 0 && header_block_since_ms_ != 0) {
    d = std::min(d, header_block_since_ms_ + head_ms);
  }
  if (body_ms > 0) {
    for (auto& [id, s] : streams_) {
      if (!s->request_ended && !s->body_timed_out && !s->h2_closed &&
          s->body.empty()) {
        d = std::min(d, s->last_input_ms + body_ms);
      }
    }
  }
  return d;
}

void Http2Connection::Finish() {
  if (closed_ || finishing_) return;
  finishing_ = true;
  // Every frame the session still has (the GOAWAY) goes into out_ before
  // its streams are cut: after Abort() it gives nothing more.
  for (int i = 0; i < 64 && session_->WantWrite(); ++i) {
    size_t before = out_.size();
    session_->TakeOutput(&out_);
    if (out_.size() == before) break;
  }
  session_->Abort(kCancel);
  FlushOutput();
}

int64_t Http2Connection::IdleMs() const {
  return std::max<int64_t>(kMinIdleMs, ctx_->keepalive_ms);
}

bool Http2Connection::GoawayDue() const {
  if (stopping_seen_) return false;
  return (ctx_->stopping != nullptr && ctx_->stopping->load()) ||
         (ctx_->server_draining != nullptr &&
          ctx_->server_draining->load(std::memory_order_relaxed) != 0);
}

void Http2Connection::UpdateDeadline() {
  if (closed_) return;
  // Bytes reach the session here and in Start() (those read before the
  // handoff): a header block left open by either starts the clock.
  if (!session_->in_header_block()) {
    header_block_since_ms_ = 0;
  } else if (header_block_since_ms_ == 0) {
    header_block_since_ms_ = NowMs();
  }
  if (linger_.active()) {
    deadline_ms_ = linger_.deadline_ms();
    return;
  }
  if (finishing_) {
    deadline_ms_ = last_activity_ms_ + ctx_->client_timeout_ms;
    return;
  }
  if (!finished_.empty() || GoawayDue()) {
    deadline_ms_ = 0;  // due now
    return;
  }
  int64_t d = last_activity_ms_ + IdleMs();
  for (auto& [id, s] : streams_) {
    if (!s->transport_gone) d = std::min(d, s->session->deadline_ms());
  }
  if (bridge_) d = std::min(d, bridge_->deadline_ms());
  deadline_ms_ = std::min(d, ClientDeadline());
}

void Http2Connection::Abort() {
  if (closed_) return;
  Close();
}

void Http2Connection::Close() {
  if (closed_) return;
  closed_ = true;
  // Tells every open stream it is cut. Their sessions may be on the stack
  // (a failed flush inside a stream's write): they are destroyed with this
  // connection, after the driver's event batch, which frees their app
  // connections.
  session_->Abort(kCancel);
  client_.reset();
  UpdateConnectionGauge(false);
}

proxy::ClientConnection::Phase Http2Connection::phase() const {
  if (closed_) return Phase::kClosed;
  if (finishing_) return Phase::kActive;  // its own deadlines end it
  bool idle = streams_.empty() && (!bridge_ || bridge_->empty());
  return idle ? Phase::kIdle : Phase::kActive;
}

}  // namespace forkd::proxy

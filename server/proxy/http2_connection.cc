#include "server/proxy/http2_connection.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "server/common/log.h"
#include "server/common/loop_clock.h"
#include "server/common/readiness.h"
#include "server/proxy/exchange_streams.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::proxy {

using http2::Http2Session;
using http2::kCancel;
using http2::kProtocolError;

namespace {

constexpr size_t kReadChunk = 16 * 1024;
// An HTTP/2 connection with no stream open is closed after this long.
constexpr int64_t kMinIdleMs = 60 * 1000;

// The async loop's time of the current batch of events (loop_clock.h).
int64_t NowMs() { return loop_clock::NowMs(); }

}  // namespace

absl::StatusOr<std::unique_ptr<Http2Connection>> Http2Connection::Create(
    proxy::SessionContext* ctx, std::unique_ptr<transport::ClientTransport> t,
    std::string peer, std::string received, int64_t now_ms) {
  std::unique_ptr<Http2Connection> c(
      new Http2Connection(ctx, std::move(t), std::move(peer), now_ms));
  auto session =
      Http2Session::Create(ctx->http2_settings, c.get(), ctx->http2_context);
  if (!session.ok()) return session.status();
  c->session_ = std::move(*session);  // it counts the connection itself
  c->backend_ = MakeStreamBackend(c->BackendClient());
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
  // Only an HTTP/1.1 app side upgrades (ProxySession::MaybeUpgradeToH2c
  // declines with an h2c app): stream 1 is an exchange of the request.
  auto exchanges = std::make_unique<ExchangeStreams>(c->BackendClient());
  ExchangeStreams* raw = exchanges.get();
  c->backend_ = std::move(exchanges);
  ++c->depth_;  // streams are reaped only by Drive()
  // The HTTP/1.1 request was whole and bodiless.
  raw->StartStream(1, upgrade.head, /*body_follows=*/false);
  --c->depth_;
  c->Start(received);
  return c;
}

StreamClient Http2Connection::BackendClient() {
  return StreamClient{.ctx = ctx_,
                      .session = session_.get(),
                      .peer = peer_,
                      .scheme = client_->scheme(),
                      .flush_soon = [this] { FlushSoon(); }};
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
  backend_.reset();  // before the session its streams use
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
    backend_->AfterClientFlush();
  }
  --depth_;
  // Streams are freed here, at the top of Drive(), never while one of
  // them is on the stack.
  if (depth_ == 0) backend_->Reap();
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

// The request events go to the app side as they come.
void Http2Connection::OnRequestHeaders(
    int32_t stream_id, std::string_view method, std::string_view scheme,
    std::string_view authority, std::string_view path,
    std::vector<http1::Header> headers, bool end_stream) {
  backend_->OnRequestHeaders(stream_id, method, scheme, authority, path,
                             std::move(headers), end_stream);
}

void Http2Connection::OnRequestData(int32_t stream_id, std::string_view data) {
  backend_->OnRequestData(stream_id, data);
}

void Http2Connection::OnRequestEnd(int32_t stream_id,
                                   std::vector<http1::Header> trailers) {
  backend_->OnRequestEnd(stream_id, std::move(trailers));
}

void Http2Connection::OnStreamClosed(int32_t stream_id, uint32_t error_code) {
  backend_->OnStreamClosed(stream_id, error_code);
  deadline_ms_ = 0;  // reap soon even if no event comes
}

void Http2Connection::OnTimeout(int64_t now_ms) {
  if (closed_) return;
  if (finishing_) {
    // The last frames did not leave in time, or the linger is over.
    if (now_ms >= deadline_ms_) Close();
    return;
  }
  backend_->Reap();
  if (CheckClientTimeouts(now_ms)) {
    Drive();
    return;
  }
  // A timeout answers (504) or ends a stream; the Drive() below flushes
  // that. Flushing from inside the backend's loop over its streams could
  // close streams, erasing from the map it iterates.
  ++depth_;
  backend_->OnTimeout(now_ms);
  --depth_;
  if (backend_->empty() && now_ms >= last_activity_ms_ + IdleMs()) {
    session_->StartGracefulShutdown();
    Finish();
  }
  Drive();
}

bool Http2Connection::CheckClientTimeouts(int64_t now_ms) {
  const int64_t head_ms = ctx_->client_header_timeout_ms;
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
  return false;
}

int64_t Http2Connection::ClientDeadline() const {
  int64_t d = loop_clock::kNoDeadlineMs;
  const int64_t head_ms = ctx_->client_header_timeout_ms;
  if (head_ms > 0 && !session_->settings_received()) {
    d = std::min(d, created_ms_ + head_ms);
  }
  if (head_ms > 0 && header_block_since_ms_ != 0) {
    d = std::min(d, header_block_since_ms_ + head_ms);
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
  if (GoawayDue()) {
    deadline_ms_ = 0;  // due now
    return;
  }
  // The backend's is 0 while finished streams await Reap().
  int64_t d = std::min(last_activity_ms_ + IdleMs(), backend_->deadline_ms());
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
  return backend_->empty() ? Phase::kIdle : Phase::kActive;
}

}  // namespace forkd::proxy

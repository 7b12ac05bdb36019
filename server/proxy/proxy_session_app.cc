// ProxySession, the app side: the HTTP/1.1 head built once from the
// request's fields, admission, acquiring a pooled or new app connection
// (the one place: StartUpstream), request bytes out, response bytes in,
// and the retry rule.
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/common/log.h"
#include "server/proxy/admission.h"
#include "server/proxy/app_queue.h"
#include "server/proxy/proxy_session.h"
#include "server/proxy/proxy_session_internal.h"
#include "server/proxy/request_record.h"

namespace forkd::proxy {
namespace {

using session_internal::AppendHeader;
using session_internal::kReadChunk;
using session_internal::ReadChunk;

// A request waiting in the admission line is woken when a slot is handed
// to it; this recheck is only a safety net.
constexpr int64_t kAdmissionRecheckMs = 100;

// An app process that refuses connections has died (or closed its
// socket) and the master has not yet taken its slot out of the rotation;
// it does within a tick. A few short pauses cover that without letting a
// process that keeps refusing hold requests for long.
constexpr int kAppConnectRetries = 5;
constexpr int64_t kAppConnectRetryMs = 20;

// RFC 9110 9.2.2: methods a proxy may repeat when it cannot tell whether
// the app acted on the first attempt.
bool IsIdempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" ||
         method == "TRACE" || method == "PUT" || method == "DELETE";
}

}  // namespace

void ProxySession::BuildUpstreamHead(UpstreamFraming framing, uint64_t length) {
  const http1::RequestHead& h = request_head();
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
                    .request_id = rec_.request_id};
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
  // App mode picks the app process here, once the request is ready to
  // send, so a slow client never holds one.
  if (ctx_->app_queue != nullptr && !app_process_) {
    if (retry_connect_at_ms_ > now) return false;
    upstream::AppReservation r;
    switch (ctx_->app_queue->TryEnter(
        this, now, &r, refused_app_ ? &*refused_app_ : nullptr)) {
      case AppQueue::Result::kReserved:
        app_process_ = r;
        // Sidecar mode: the reservation is only a place under the shared
        // limit; the request goes on to --upstream.
        if (ctx_->app_queue->routes()) {
          app_process_transport_.Reserve(r);
          app_ = &app_process_transport_;
        }
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
             absl::StrFormat(ctx_->app_queue->routes()
                                 ? "no free app process within "
                                   "--max-queue-time (%.3gs)"
                                 : "no place under the --autotune limit "
                                   "within --max-queue-time (%.3gs)",
                             ctx_->app_queue->max_wait_ms() / 1000.0));
        return true;
    }
  }
  if (retry_connect_at_ms_ > now) return false;
  retry_connect_at_ms_ = 0;

  std::unique_ptr<upstream::Connection> conn = app_->TakeIdle();
  if (conn) {
    if (can_replay_) {
      replay_.Clear();
      replay_.Append(up_out_.View());
    }
  } else {
    int err = 0;
    switch (app_->Connect(&conn, &err)) {
      case upstream::ConnectResult::kConnected:
      case upstream::ConnectResult::kInProgress:
        break;
      case upstream::ConnectResult::kRetryLater:
        // The app's accept queue is full; it is busy, not gone.
        retry_connect_at_ms_ = now + 5;
        return false;
      case upstream::ConnectResult::kFailed:
        if (RetryOnAnotherAppProcess(err)) return true;
        UpstreamFailed(Failure::kUpstreamRefused,
                       absl::StrCat("connect to ", app_->display(), ": ",
                                    std::strerror(err)));
        return true;
    }
  }
  if (!conn->reused && can_replay_ && OnAppProcess()) {
    // A fresh connection to an app process may be reset unread (its
    // listener closed with this connection in the backlog): keep a copy to
    // send to another process (UpstreamFailed).
    replay_.Clear();
    replay_.Append(up_out_.View());
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
    int err = app_->ConnectError(*up_);
    up_->connecting = false;
    if (err != 0) {
      if (RetryOnAnotherAppProcess(err)) return true;
      UpstreamFailed(Failure::kUpstreamRefused,
                     absl::StrCat("connect to ", app_->display(), ": ",
                                  std::strerror(err)));
      return true;
    }
    if (up_out_.empty()) return true;
  }
  std::string_view data = up_out_.View();
  ssize_t n = app_->Write(*up_, data.data(), data.size());
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
  if (ClientBackedUp()) return false;  // the client is slow
  // Decode the body bytes already here before reading on: once the app
  // closes with request bytes unread, a unix socket's next read fails with
  // ECONNRESET, which must not cost the response the app sent before.
  if (resp_state_ == RespState::kBody && !up_in_.empty()) return false;
  upstream::Connection& conn = *up_;
  ssize_t n = ReadChunk(&up_in_, [this, &conn](char* buf, size_t len) {
    return app_->Read(conn, buf, len);
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
  // ECONNRESET: the app closed with request bytes unread; as the first
  // read of a fresh connection, the backlog of a listener that closed.
  UpstreamFailed(Failure::kUpstreamReset,
                 absl::StrCat("read from app: ", std::strerror(errno)),
                 /*unread=*/errno == ECONNRESET);
  return true;
}

void ProxySession::CompleteUpstream() {
  resp_state_ = RespState::kDone;
  rec_.upstream_s = static_cast<double>(NowNs() - up_start_ns_) / 1e9;
  if (ctx_->record_metrics) {
    ctx_->slot->counters.upstream_duration.Observe(rec_.upstream_s);
  }
  // Reusable only after a complete exchange with nothing left over.
  bool reusable = resp_keep_alive_ && !up_eof_ && up_in_.empty() &&
                  req_state_ == ReqState::kDone && up_out_.empty();
  ReleaseUpstream(reusable);
  ReleaseAppProcess(/*finished=*/true);  // the response is read
  LeaveInFlight();
}

void ProxySession::UpstreamFailed(Failure failure, const std::string& detail,
                                  bool unread) {
  // A pooled connection the app closed while idle fails at once: retry the
  // request once on a fresh connection when nothing of it was answered.
  // Once request bytes reached the app, it may have acted on them before
  // closing, so only idempotent methods are repeated (RFC 9110 9.2.2): a
  // POST must not be delivered twice.
  // In app mode the same holds for a fresh connection reset with the request
  // unread: an app process that closes its listener (exiting, or deaf)
  // resets the connections still in its backlog; another process gets the
  // request. One that closed after reading it (it crashed on it) does not:
  // the request is not sent on to crash another.
  // There each try counts against the app-mode connect retries instead of
  // the single replay, so a reused connection that fails and then a fresh
  // one that is reset both get another try.
  bool app_mode = OnAppProcess();
  bool budget = !app_mode || app_connect_retries_ < kAppConnectRetries;
  if (up_ && (up_->reused || (app_mode && unread)) && can_replay_ && budget &&
      failure == Failure::kUpstreamReset && resp_state_ == RespState::kHead &&
      up_in_.empty() && (!up_wrote_ || IsIdempotent(rec_.method))) {
    bool fresh = !up_->reused;
    ReleaseUpstream(false);
    up_out_.Clear();
    up_out_.Append(replay_.View());
    replay_.Clear();
    resp_state_ = RespState::kNotStarted;
    can_replay_ = app_mode;  // the next connection copies it again
    if (app_mode) ++app_connect_retries_;
    if (app_mode && fresh) {
      ctx_->app_queue->ReportRefused(*app_process_);
      refused_app_ = *app_process_;
      ReleaseAppProcess(/*finished=*/false);
      retry_connect_at_ms_ = NowMs() + kAppConnectRetryMs;
    }
    LOG_DEBUG("retrying on a fresh connection after: %s", detail);
    return;
  }
  CountUpstreamError(ctx_, failure);
  ReleaseUpstream(false);
  LeaveInFlight();
  if (!sent_to_client_) {
    Fail(failure, detail);
    return;
  }
  LOG_ERROR("%s %s (request %s): %s; response cut short", rec_.method,
            rec_.target, rec_.request_id, detail);
  CloseClient(false);
}

void ProxySession::ReleaseUpstream(bool reusable) {
  if (!up_) return;
  up_->owner = nullptr;
  if (reusable) {
    app_->Release(std::move(up_));
  } else {
    app_->Discard(std::move(up_));
  }
}

void ProxySession::RetryAppQueue() {
  if (!app_waiting_ || closed_) return;
  retry_connect_at_ms_ = 0;
  Drive();
}

bool ProxySession::OnAppProcess() const {
  return app_process_.has_value() && ctx_->app_queue->routes();
}

bool ProxySession::RetryOnAnotherAppProcess(int err) {
  if (!OnAppProcess() || (err != ECONNREFUSED && err != ENOENT)) {
    return false;
  }
  // Dead and not yet reaped, or alive with its listener gone or full: the
  // master takes it out of the rotation until it answers its probe again.
  ctx_->app_queue->ReportRefused(*app_process_);
  if (app_connect_retries_ >= kAppConnectRetries) return false;
  ++app_connect_retries_;
  refused_app_ = *app_process_;
  LOG_DEBUG("connect to %s: %s; asking for another app process",
            app_->display(), std::strerror(err));
  ReleaseAppProcess(/*finished=*/false);
  resp_state_ = RespState::kNotStarted;
  retry_connect_at_ms_ = NowMs() + kAppConnectRetryMs;
  return true;
}

void ProxySession::ReleaseAppProcess(bool finished) {
  if (ctx_->app_queue == nullptr) return;
  if (app_waiting_) {
    ctx_->app_queue->Leave(this);
    app_waiting_ = false;
  }
  if (app_process_) {
    const bool routed = ctx_->app_queue->routes();
    // A connection is never kept without its process (app mode; in sidecar
    // mode the reservation is only a place under the limit).
    if (routed) ReleaseUpstream(false);
    ctx_->app_queue->Release(*app_process_, finished);
    app_process_.reset();
    if (routed) app_ = ctx_->app != nullptr ? ctx_->app : &pool_app_;
  }
}

}  // namespace forkd::proxy

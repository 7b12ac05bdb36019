// ProxySession, the response to the client: the app's response parsed
// once (head, body, trailers) and written as HTTP/1.1, and forkd's own
// error answers.
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/proxy/admission.h"
#include "server/proxy/proxy_session.h"
#include "server/proxy/proxy_session_internal.h"
#include "server/proxy/request_record.h"

namespace forkd::proxy {
namespace {

using session_internal::AppendChunk;
using session_internal::AppendHeader;
using session_internal::AppendLastChunk;
using session_internal::ForwardableTrailerFields;
using session_internal::ForwardableTrailers;

}  // namespace

bool ProxySession::ProcessUpstreamInput() {
  if (resp_state_ == RespState::kHead) {
    if (up_in_.empty()) return false;
    size_t consumed = 0;
    switch (resp_parser_.Parse(up_in_.View(), rec_.method, &consumed)) {
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
      if (sink_ != nullptr) {
        sink_->OnInterim(rh.status, rh.headers);
      } else if (version_minor_ == 1) {
        out_.Append(up_in_.View().substr(0, consumed));
      }
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
    if (ClientBackedUp()) return false;
    scratch_.clear();
    size_t used = resp_body_->Decode(up_in_.View(), &scratch_);
    up_in_.Consume(used);
    if (resp_body_->failed()) {
      UpstreamFailed(Failure::kUpstreamBadResponse,
                     absl::StrCat("invalid response body from app: ",
                                  resp_body_->error().detail));
      return true;
    }
    rec_.body_bytes_out += scratch_.size();
    if (sink_ != nullptr) {
      if (!scratch_.empty()) {
        sink_->OnResponseBody(scratch_);
        last_client_ms_ = NowMs();  // as a write to the client would
      }
    } else if (resp_chunked_to_client_) {
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
  // they are dropped, as RFC 9112 7.1.2 allows. A sink takes them as they
  // are (HTTP/2 sends them in a HEADERS frame after the last DATA).
  if (sink_ != nullptr) {
    if (!sink_ended_) {
      sink_ended_ = true;
      sink_->OnResponseEnd(ForwardableTrailerFields(resp_body_->trailers()));
    }
  } else if (resp_chunked_to_client_) {
    AppendLastChunk(&out_, ForwardableTrailers(resp_body_->trailers()));
  }
  CompleteUpstream();
  return true;
}

void ProxySession::OnResponseHead() {
  const http1::ResponseHead& rh = resp_parser_.head();
  rec_.status = rh.status;
  resp_keep_alive_ = rh.keep_alive;
  if (ctx_->stopping != nullptr && ctx_->stopping->load()) keep_alive_ = false;
  bool streamed = rh.framing == http1::Framing::kChunked ||
                  rh.framing == http1::Framing::kUntilClose;
  // HTTP/1.0 clients cannot take chunks: the body ends with the connection.
  if (streamed && version_minor_ == 0) keep_alive_ = false;
  resp_chunked_to_client_ = streamed && version_minor_ == 1;

  std::vector<std::string>& tokens = tokens_;
  http1::ConnectionTokens(rh.headers, &tokens);
  if (ctx_->access_log != nullptr) resp_headers_ = rh.headers;
  resp_body_.emplace(rh.framing, rh.content_length, /*max_body=*/0);
  resp_state_ = RespState::kBody;
  sent_to_client_ = true;
  if (sink_ != nullptr) {
    // The same fields an HTTP/1.1 client gets, minus its framing: the sink
    // frames the body itself.
    std::vector<http1::Header> fields;
    fields.reserve(rh.headers.size());
    for (const http1::Header& f : rh.headers) {
      if (http1::IsHopByHop(f.name, tokens)) continue;
      if (streamed && http1::EqualsIgnoreCase(f.name, "Content-Length")) {
        continue;
      }
      if (!streamed && http1::EqualsIgnoreCase(f.name, "Trailer")) continue;
      fields.push_back(f);
    }
    sink_ended_ = rh.framing == http1::Framing::kNone;
    sink_->OnResponseHead(rh.status, fields, sink_ended_);
    return;
  }
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
}

void ProxySession::Fail(Failure failure, const std::string& detail,
                        http1::ErrorKind parse_error) {
  if (parse_error == http1::ErrorKind::kNone &&
      failure == Failure::kBadRequest) {
    parse_error = req_parser_.error().kind;
  }
  int status = StatusFor(failure, parse_error);
  CountAndLogFailureAnswer(ctx_, status, failure, rec_, peer_, detail);
  // After an app failure a fully-read request leaves the connection usable;
  // anything else may have unread bytes, so the connection ends.
  bool is_upstream = failure == Failure::kUpstreamRefused ||
                     failure == Failure::kUpstreamReset ||
                     failure == Failure::kUpstreamTimeout ||
                     failure == Failure::kUpstreamBadResponse ||
                     failure == Failure::kQueueTimeout;
  bool close = !(is_upstream && req_state_ == ReqState::kDone && keep_alive_);
  if (sink_ != nullptr) {
    if (sent_to_client_) {
      // The app's head went out already: the stream is cut instead.
      CloseClient(false);
      return;
    }
    ErrorAnswer answer =
        BuildErrorAnswer(status, failure, detail, rec_.method == "HEAD",
                         /*grpc=*/false);
    sink_ended_ = true;
    sink_->OnResponseHead(status, answer.fields, answer.head_only);
    if (!answer.head_only) {
      sink_->OnResponseBody(answer.body);
      sink_->OnResponseEnd({});
    }
    rec_.body_bytes_out = answer.body.size();
    close = true;  // a stream carries one request
  } else {
    // A queue timeout tells the client to come back soon, not that the app
    // failed.
    std::string response = BuildErrorResponse(
        status, detail, close,
        failure == Failure::kQueueTimeout ? "Retry-After: 1\r\n" : "");
    size_t head_end = response.find("\r\n\r\n") + 4;
    // A HEAD answer has the headers a GET would get but no body (RFC 9110
    // 9.3.2): on a kept-alive connection the client would read the body as
    // the start of the next response.
    if (rec_.method == "HEAD") response.resize(head_end);
    out_.Append(response);
    rec_.body_bytes_out = response.size() - head_end;
  }
  rec_.status = status;
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
  if (rec_.start_ns == 0) StartHead();
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

}  // namespace forkd::proxy

#include "server/proxy/exchange_streams.h"

#include <errno.h>

#include <algorithm>
#include <string>
#include <utility>

#include "server/common/buffer.h"
#include "server/common/log.h"
#include "server/common/loop_clock.h"
#include "server/http1/fields.h"
#include "server/proxy/proxy_session.h"
#include "server/proxy/request_record.h"
#include "server/proxy/request_source.h"
#include "server/proxy/response_sink.h"
#include "server/scoreboard/scoreboard.h"
#include "server/transport/client_transport.h"

namespace forkd::proxy {
namespace {

// Response bytes a stream may have queued for the client before its
// session stops reading the app: bounded memory per stream.
constexpr size_t kStreamQueueLimit = 256 * 1024;

// The async loop's time of the current batch of events (loop_clock.h).
int64_t NowMs() { return loop_clock::NowMs(); }

}  // namespace

// The per-stream virtual connection of a ProxySession: it says what the
// client is (scheme, an HTTP/2 stream) and carries no bytes. The request
// reaches the session parsed (ServeRequest, the stream as RequestSource)
// and the response leaves it parsed (the stream as ResponseSink).
class ExchangeStreams::StreamTransport final
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
struct ExchangeStreams::Stream final : public ResponseSink,
                                       public RequestSource {
  explicit Stream(ExchangeStreams* o) : owner(o) {}

  http2::Http2Session* client() { return owner->client_.session; }

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
  void OnExchangeClosed() override { owner->OnStreamTransportGone(this); }

  ExchangeStreams* owner;
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
  std::unique_ptr<ProxySession> session;
};

// The response, parsed once by the stream's session, becomes frames here.
// Http2Session lowercases the names and leaves out the HTTP/1.1 connection
// fields (OutgoingFields). Inside the connection's Drive() (and so maybe
// inside nghttp2's receive callbacks) the loop there flushes; from an app
// event, soon.
void ExchangeStreams::Stream::OnInterim(
    int status, const std::vector<http1::Header>& fields) {
  if (h2_closed || ended) return;
  client()->SubmitInterim(id, status, fields).IgnoreError();
  owner->client_.flush_soon();
}

void ExchangeStreams::Stream::OnResponseHead(
    int status, const std::vector<http1::Header>& fields, bool end_stream) {
  if (h2_closed || ended) return;
  client()->SubmitResponse(id, status, fields, end_stream).IgnoreError();
  ended = end_stream;
  owner->client_.flush_soon();
}

void ExchangeStreams::Stream::OnResponseBody(std::string_view data) {
  if (h2_closed || ended) return;  // nobody listens
  client()->AppendResponseData(id, data).IgnoreError();
  owner->client_.flush_soon();
}

void ExchangeStreams::Stream::OnResponseEnd(
    const std::vector<http1::Header>& trailers) {
  if (h2_closed || ended) return;
  // The app's trailers go in a HEADERS frame with END_STREAM after the
  // last DATA; none: DATA ends the stream.
  client()->EndResponse(id, trailers).IgnoreError();
  ended = true;
  owner->client_.flush_soon();
}

bool ExchangeStreams::Stream::ResponseBlocked() {
  if (h2_closed) return false;  // what comes is dropped
  write_blocked = client()->QueuedResponseBytes(id) >= kStreamQueueLimit;
  return write_blocked;
}

void ExchangeStreams::Stream::ConsumeBody(size_t n) {
  body.Consume(n);
  if (h2_closed) return;
  client()->ConsumeRequestData(id, n);
  // The session took the body because the app drained it (maybe an app
  // event, outside Drive()): send the WINDOW_UPDATE now. The client, out
  // of window, sends nothing that would make us flush it later.
  owner->client_.flush_soon();
}

ExchangeStreams::ExchangeStreams(StreamClient client)
    : client_(std::move(client)) {}

ExchangeStreams::~ExchangeStreams() {
  closing_ = true;  // transports going away must not touch the maps
  streams_.clear();
  finished_.clear();
}

void ExchangeStreams::OnRequestHeaders(
    int32_t stream_id, std::string_view method, std::string_view /*scheme*/,
    std::string_view authority, std::string_view path,
    std::vector<http1::Header> headers, bool end_stream) {
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

void ExchangeStreams::StartStream(int32_t stream_id, http1::RequestHead head,
                                  bool body_follows) {
  auto stream = std::make_unique<Stream>(this);
  Stream* s = stream.get();
  s->id = stream_id;
  s->request_ended = !body_follows;
  s->last_input_ms = NowMs();
  s->session = std::make_unique<ProxySession>(
      client_.ctx, std::make_unique<StreamTransport>(client_.scheme),
      client_.peer, NowMs(), /*sink=*/s);
  streams_[stream_id] = std::move(stream);
  s->session->ServeRequest(std::move(head), body_follows, /*source=*/s);
}

void ExchangeStreams::OnRequestData(int32_t stream_id, std::string_view data) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  Stream* s = it->second.get();
  s->last_input_ms = NowMs();
  if (s->transport_gone) {
    // nobody reads it
    client_.session->ConsumeRequestData(stream_id, data.size());
    return;
  }
  s->body.Append(data);
  DriveStream(s);
}

void ExchangeStreams::OnRequestEnd(int32_t stream_id,
                                   std::vector<http1::Header> trailers) {
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

void ExchangeStreams::OnStreamClosed(int32_t stream_id,
                                     uint32_t /*error_code*/) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  Stream* s = it->second.get();
  s->h2_closed = true;
  // Reset before its answer ended: the request is cancelled, which frees
  // its app connection. Aborting waits for Reap(): the session may be on
  // the stack right now.
  if (!s->transport_gone && !s->ended) s->abort_pending = true;
  finished_.push_back(std::move(it->second));
  streams_.erase(it);
}

void ExchangeStreams::OnStreamTransportGone(Stream* s) {
  if (closing_) return;
  s->transport_gone = true;
  // The body nobody takes now still reopens the window it holds.
  if (!s->h2_closed && !s->body.empty()) {
    client_.session->ConsumeRequestData(s->id, s->body.size());
  }
  s->body.Clear();
  if (!s->ended && !s->h2_closed) {
    // The exchange ended without a whole response (the app failed after
    // the head went out): the client must not take it as complete.
    client_.session->ResetStream(s->id, http2::kInternalError);
    s->ended = true;
  }
}

void ExchangeStreams::DriveStream(Stream* s) {
  if (s->transport_gone) return;
  s->session->SetReadiness(true, true, false, false);
  s->session->Drive();
}

void ExchangeStreams::AfterClientFlush() {
  for (auto& [id, s] : streams_) {
    if (s->write_blocked && !s->transport_gone &&
        client_.session->QueuedResponseBytes(id) < kStreamQueueLimit / 2) {
      s->write_blocked = false;
      s->session->OnResponseRoom();
    }
  }
}

void ExchangeStreams::Reap() {
  // Sessions are freed here, never while one of them is on the stack.
  for (auto& s : finished_) {
    if (s->abort_pending && !s->transport_gone) s->session->Abort();
  }
  finished_.clear();
}

void ExchangeStreams::CheckBodyTimeouts(int64_t now_ms) {
  const int64_t body_ms = client_.ctx->client_body_timeout_ms;
  if (body_ms <= 0) return;
  for (auto& [id, s] : streams_) {
    // All request bytes given to the stream's session were read: the
    // client, not the app, is what the body waits for.
    if (s->request_ended || s->body_timed_out || s->h2_closed ||
        !s->body.empty() || now_ms < s->last_input_ms + body_ms) {
      continue;
    }
    if (client_.ctx->record_metrics) {
      client_.ctx->slot->counters
          .client_timeouts[static_cast<size_t>(
              scoreboard::ClientTimeout::kHttp2)]
          .fetch_add(1, std::memory_order_relaxed);
    }
    LOG_ERROR(
        "HTTP/2 stream %d from %s: no request body bytes for %.3gs "
        "(--client-body-timeout); RST_STREAM",
        id, PeerForLog(client_.peer), body_ms / 1000.0);
    s->body_timed_out = true;  // once
    client_.session->ResetStream(id, http2::kCancel);
  }
}

void ExchangeStreams::OnTimeout(int64_t now_ms) {
  CheckBodyTimeouts(now_ms);
  // A timeout answers (504) or ends a stream; the connection's Drive()
  // after this flushes that. Flushing from inside this loop could close
  // streams, erasing from streams_ while it is iterated: the connection
  // holds its Drive() depth up meanwhile.
  for (auto& [id, s] : streams_) {
    if (!s->transport_gone && now_ms >= s->session->deadline_ms()) {
      s->session->OnTimeout(now_ms);
    }
  }
}

int64_t ExchangeStreams::deadline_ms() const {
  if (!finished_.empty()) return 0;  // due now: Reap()
  int64_t d = loop_clock::kNoDeadlineMs;
  const int64_t body_ms = client_.ctx->client_body_timeout_ms;
  for (auto& [id, s] : streams_) {
    if (!s->transport_gone) d = std::min(d, s->session->deadline_ms());
    if (body_ms > 0 && !s->request_ended && !s->body_timed_out &&
        !s->h2_closed && s->body.empty()) {
      d = std::min(d, s->last_input_ms + body_ms);
    }
  }
  return d;
}

}  // namespace forkd::proxy

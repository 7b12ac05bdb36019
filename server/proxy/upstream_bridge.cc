#include "server/proxy/upstream_bridge.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/log.h"
#include "server/common/loop_clock.h"
#include "server/http1/fields.h"
#include "server/proxy/admission.h"
#include "server/proxy/error_response.h"
#include "server/proxy/proxy_session.h"
#include "server/proxy/request_record.h"
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

using proxy::Failure;

// The async loop's time of the current batch of events (loop_clock.h).
int64_t NowNs() { return loop_clock::NowNs(); }
int64_t NowMs() { return loop_clock::NowMs(); }

// What the client's stream is reset with when the app resets ours: codes
// that say something to the client pass; the app's own troubles become
// INTERNAL_ERROR.
uint32_t MapAppReset(uint32_t code) {
  switch (code) {
    case kNoError:
    case kCancel:
    case kRefusedStream:
    case kEnhanceYourCalm:
    case kHttp11Required:
      return code;
    default:
      return kInternalError;
  }
}

// A client that left before any answer: nginx's 499, for the log and the
// status-class counters.
constexpr int kClientClosedRequest = 499;
// Request bytes kept to send a stream again when the app refuses it
// unprocessed (REFUSED_STREAM, e.g. racing its GOAWAY); past this the
// request is not repeated.
constexpr size_t kReplayLimit = 64 * 1024;

}  // namespace

class UpstreamBridge::Stream final : public upstream::H2StreamOwner {
 public:
  Stream(UpstreamBridge* bridge, int32_t id) : b_(bridge), id_(id) {}
  ~Stream() override {
    if (ref_) b_->ctx_->h2_upstream->Cancel(ref_, kCancel);
    LeaveInFlight();
  }

  void Start(std::string_view method, std::string_view scheme,
             std::string_view authority, std::string_view path,
             std::vector<http1::Header> headers, bool end_stream);
  void OnClientData(std::string_view data);
  void OnClientEnd(std::vector<http1::Header> trailers);
  // The client's stream is gone.
  void OnClientClosed(uint32_t error_code);
  void AfterClientFlush();
  void OnTimeout(int64_t now_ms);
  int64_t deadline_ms() const {
    if (!ref_) return INT64_MAX;
    return last_activity_ms_ + b_->ctx_->upstream_timeout_ms;
  }

  // upstream::H2StreamOwner
  void OnUpstreamHeaders(int status, std::vector<http1::Header> headers,
                         bool end_stream) override;
  void OnUpstreamData(std::string_view data) override;
  void OnUpstreamEnd(std::vector<http1::Header> trailers) override;
  void OnUpstreamDataSent(size_t n) override;
  void OnUpstreamClosed(const upstream::H2StreamEnd& end) override;
  // Sends the request again on a (new) stream after REFUSED_STREAM.
  bool Replay();

  // For the counters and the access log line, once the client stream ends.
  void Record();

 private:
  Http2Session* client() { return b_->session_; }
  // forkd's own answer (502/503/504...) when no head went out yet,
  // otherwise a reset of the client's stream.
  void Fail(Failure failure, const std::string& detail, uint32_t rst_code);
  void LeaveInFlight() {
    if (!in_flight_) return;
    in_flight_ = false;
    b_->ctx_->slot->in_flight.fetch_sub(1, std::memory_order_relaxed);
  }

  UpstreamBridge* b_;
  int32_t id_;
  upstream::H2StreamRef ref_;
  // Method, target, id, times, status, byte counts (request_record.h).
  proxy::RequestRecord rec_;
  std::vector<http1::Header> request_headers_;   // for the access log
  std::vector<http1::Header> response_headers_;  // for the access log
  bool in_flight_ = false;
  bool head_sent_ = false;       // a final response head went to the client
  bool response_ended_ = false;  // the client's response is complete
  bool request_ended_ = false;
  bool grpc_ = false;  // a gRPC call: our own answers carry grpc-status
  // App response bytes given to the client session, and how many of them
  // the app's window was reopened for.
  uint64_t to_client_ = 0;
  uint64_t consumed_ = 0;
  int64_t last_activity_ms_ = 0;
  // What Replay() needs: the request as sent to the app so far.
  // (rec_.method and rec_.target are the method and path.)
  std::string up_scheme_, up_authority_;
  std::vector<http1::Header> up_headers_, up_trailers_;
  std::string replay_;
  bool up_end_stream_ = false;  // the request head was the whole request
  bool replayable_ = true;
  bool replayed_ = false;
  // Request bytes the app's streams took (again after a replay), and how
  // many of them reopened the client's window: each byte reopens it once.
  uint64_t sent_to_app_ = 0;
  uint64_t client_consumed_ = 0;
};

void UpstreamBridge::Stream::Start(std::string_view method,
                                   std::string_view scheme,
                                   std::string_view authority,
                                   std::string_view path,
                                   std::vector<http1::Header> headers,
                                   bool end_stream) {
  proxy::SessionContext* ctx = b_->ctx_;
  rec_.start_ns = NowNs();
  if (ctx->access_log != nullptr) rec_.start_time = absl::Now();
  last_activity_ms_ = NowMs();
  rec_.method = std::string(method);
  rec_.target = std::string(path);
  request_ended_ = end_stream;
  std::string host(authority);
  const std::string* rid = nullptr;
  for (const http1::Header& h : headers) {
    if (h.name == "x-request-id") rid = &h.value;
    if (h.name == "host" && host.empty()) host = h.value;
    if (h.name == "content-type") {
      grpc_ = std::string_view(h.value).substr(0, 16) == "application/grpc";
    }
  }
  rec_.request_id = proxy::RequestIdFor(rid);
  if (ctx->access_log != nullptr) request_headers_ = headers;

  if (const http1::Header* f =
          proxy::RefusedField(ctx->forwarding.header_map, headers)) {
    Fail(Failure::kBadRequest, proxy::RefusalDetail(*f, /*trailer=*/false),
         kRefusedStream);
    return;
  }
  // The same admission rules as the HTTP/1.1 app side (admission.h).
  std::optional<proxy::Refusal> refusal = proxy::RefuseWhileDraining(*ctx);
  if (!refusal) refusal = proxy::RefuseOverInFlightCap(*ctx);
  if (refusal) {
    Fail(refusal->failure, refusal->detail, kRefusedStream);
    return;
  }
  in_flight_ = true;
  ctx->slot->in_flight.fetch_add(1, std::memory_order_relaxed);

  // The app gets what the HTTP/1 path gives it (proxy/forwarding.h): the
  // client's proxy facts only from a trusted peer, forkd's X-Forwarded-*
  // and X-Request-Id, no names with '_' unless --header-map dangerous.
  std::vector<http1::Header> up;
  up.reserve(headers.size() + 4);
  proxy::ClientFacts facts{.peer = b_->peer_,
                           .scheme = b_->scheme_,
                           .host = host.empty() ? nullptr : &host,
                           .request_id = rec_.request_id};
  proxy::ForwardingCounts dropped = proxy::ForwardedFields(
      ctx->forwarding, facts, headers,
      [&](size_t i) {
        // The authority goes as :authority (RFC 9113 8.3.1).
        if (headers[i].name != "host") up.push_back(std::move(headers[i]));
      },
      [&](std::string_view name, std::string_view value) {
        std::string lower(name);
        absl::AsciiStrToLower(&lower);  // HTTP/2 field names (RFC 9113 8.2)
        up.push_back({std::move(lower), std::string(value)});
      });
  proxy::CountDroppedFields(ctx, dropped, b_->peer_);

  up_scheme_ = std::string(scheme.empty() ? b_->scheme_ : scheme);
  up_authority_ = host;
  up_end_stream_ = end_stream;
  absl::StatusOr<upstream::H2StreamRef> ref =
      ctx->h2_upstream->Open(this, rec_.method, up_scheme_, up_authority_,
                             rec_.target, up, end_stream);
  up_headers_ = std::move(up);
  if (!ref.ok()) {
    Fail(Failure::kUpstreamRefused, std::string(ref.status().message()),
         kRefusedStream);
    return;
  }
  ref_ = *ref;
}

bool UpstreamBridge::Stream::Replay() {
  if (!replayable_ || replayed_ || head_sent_) return false;
  replayed_ = true;
  absl::StatusOr<upstream::H2StreamRef> ref =
      b_->ctx_->h2_upstream->Open(this, rec_.method, up_scheme_, up_authority_,
                                  rec_.target, up_headers_, up_end_stream_);
  if (!ref.ok()) return false;
  ref_ = *ref;
  sent_to_app_ = 0;
  if (!up_end_stream_) {
    if (!replay_.empty()) {
      b_->ctx_->h2_upstream->Append(ref_, replay_).IgnoreError();
    }
    if (request_ended_) {
      b_->ctx_->h2_upstream->End(ref_, up_trailers_).IgnoreError();
    }
  }
  LOG_DEBUG("HTTP/2 stream %d (request %s) refused by the app; sent again", id_,
            rec_.request_id);
  return true;
}

void UpstreamBridge::Stream::OnClientData(std::string_view data) {
  rec_.bytes_in += data.size();
  if (!ref_) {
    client()->ConsumeRequestData(id_, data.size());  // nobody reads it
    return;
  }
  last_activity_ms_ = NowMs();
  if (replayable_ && !head_sent_ &&
      replay_.size() + data.size() <= kReplayLimit) {
    replay_.append(data);
  } else {
    replayable_ = false;
    replay_.clear();
  }
  if (!b_->ctx_->h2_upstream->Append(ref_, data).ok()) {
    client()->ConsumeRequestData(id_, data.size());
  }
}

void UpstreamBridge::Stream::OnClientEnd(std::vector<http1::Header> trailers) {
  request_ended_ = true;
  if (!ref_) return;
  last_activity_ms_ = NowMs();
  const proxy::ForwardingPolicy& policy = b_->ctx_->forwarding;
  if (const http1::Header* f =
          proxy::RefusedField(policy.header_map, trailers)) {
    // The app has the head: it must not take this request.
    std::string detail = proxy::RefusalDetail(*f, /*trailer=*/true);
    b_->ctx_->h2_upstream->Cancel(ref_, kCancel);
    ref_ = {};
    Fail(Failure::kBadRequest, detail, kProtocolError);
    return;
  }
  std::vector<http1::Header> pass;
  proxy::ForwardingCounts counts;
  counts.underscore_dropped = proxy::ForwardedTrailers(
      policy, trailers,
      [&](size_t i) { pass.push_back(std::move(trailers[i])); });
  proxy::CountDroppedFields(b_->ctx_, counts, b_->peer_);
  trailers = std::move(pass);
  if (replayable_) up_trailers_ = trailers;
  b_->ctx_->h2_upstream->End(ref_, std::move(trailers)).IgnoreError();
}

void UpstreamBridge::Stream::OnClientClosed(uint32_t error_code) {
  if (ref_) {
    // The client reset the stream (or left): the app stops working on it.
    b_->ctx_->h2_upstream->Cancel(ref_, kCancel);
    ref_ = {};
    if (!response_ended_ && error_code != kNoError) {
      LOG_DEBUG("HTTP/2 stream %d (request %s) cancelled by the client", id_,
                rec_.request_id);
    }
  }
  LeaveInFlight();
  if (rec_.status == 0) rec_.status = kClientClosedRequest;
  Record();
}

void UpstreamBridge::Stream::AfterClientFlush() {
  if (!ref_ || to_client_ == consumed_) return;
  uint64_t taken = to_client_ - client()->QueuedResponseBytes(id_);
  if (taken > consumed_) {
    b_->ctx_->h2_upstream->Consume(ref_, taken - consumed_);
    consumed_ = taken;
    // A client reading slowly keeps the app waiting; that is not the app
    // being idle.
    last_activity_ms_ = NowMs();
  }
}

void UpstreamBridge::Stream::OnTimeout(int64_t now_ms) {
  if (!ref_ || now_ms < deadline_ms()) return;
  if (client()->QueuedResponseBytes(id_) > 0) {
    last_activity_ms_ = now_ms;  // waiting for the client, not the app
    return;
  }
  b_->ctx_->h2_upstream->Cancel(ref_, kCancel);
  ref_ = {};
  LeaveInFlight();
  double secs = static_cast<double>(b_->ctx_->upstream_timeout_ms) / 1000;
  Fail(Failure::kUpstreamTimeout,
       head_sent_
           ? absl::StrCat("app idle for more than ", secs, "s mid-response")
           : absl::StrCat("no response from the app within ", secs, "s"),
       kInternalError);
}

void UpstreamBridge::Stream::OnUpstreamHeaders(
    int status, std::vector<http1::Header> headers, bool end_stream) {
  last_activity_ms_ = NowMs();
  if (status < 200) {
    if (status != 101) {
      client()->SubmitInterim(id_, status, headers).IgnoreError();
    }
    b_->flush_soon_();
    return;
  }
  if (head_sent_) return;
  head_sent_ = true;
  rec_.status = status;
  // Answered: the request is never sent again.
  replayable_ = false;
  std::string().swap(replay_);
  up_headers_.clear();
  up_trailers_.clear();
  rec_.upstream_s = static_cast<double>(NowNs() - rec_.start_ns) / 1e9;
  if (b_->ctx_->record_metrics) {
    b_->ctx_->slot->counters.upstream_duration.Observe(rec_.upstream_s);
  }
  if (b_->ctx_->access_log != nullptr) response_headers_ = headers;
  if (end_stream) response_ended_ = true;
  client()->SubmitResponse(id_, status, headers, end_stream).IgnoreError();
  b_->flush_soon_();
}

void UpstreamBridge::Stream::OnUpstreamData(std::string_view data) {
  last_activity_ms_ = NowMs();
  to_client_ += data.size();
  rec_.body_bytes_out += data.size();
  client()->AppendResponseData(id_, data).IgnoreError();
  b_->flush_soon_();
}

void UpstreamBridge::Stream::OnUpstreamEnd(
    std::vector<http1::Header> trailers) {
  last_activity_ms_ = NowMs();
  response_ended_ = true;
  client()->EndResponse(id_, std::move(trailers)).IgnoreError();
  b_->flush_soon_();
}

void UpstreamBridge::Stream::OnUpstreamDataSent(size_t n) {
  last_activity_ms_ = NowMs();
  // The bytes are on their way to the app: the client may send more (a
  // replay sends bytes whose window was reopened already).
  sent_to_app_ += n;
  if (sent_to_app_ <= client_consumed_) return;
  client()->ConsumeRequestData(id_, sent_to_app_ - client_consumed_);
  client_consumed_ = sent_to_app_;
  b_->flush_soon_();
}

void UpstreamBridge::Stream::OnUpstreamClosed(
    const upstream::H2StreamEnd& end) {
  ref_ = {};
  if (response_ended_) {  // a normal end (or a reset after it)
    LeaveInFlight();
    return;
  }
  // RFC 9113 §8.7: a refused stream was not processed; send it again once.
  if (end.error_code == kRefusedStream && !end.connection_lost && Replay()) {
    return;
  }
  LeaveInFlight();
  if (end.refused) {
    Fail(Failure::kUpstreamRefused, end.detail, kRefusedStream);
  } else if (end.connection_lost || !head_sent_) {
    Fail(Failure::kUpstreamReset,
         end.detail.empty() ? std::string("the app ended the stream early")
                            : end.detail,
         end.connection_lost ? kInternalError : MapAppReset(end.error_code));
  } else {
    // The app reset a stream it was answering: so is the client's.
    proxy::CountUpstreamError(b_->ctx_, Failure::kUpstreamReset);
    LOG_INFO("%s %s (request %s): %s; stream reset", rec_.method, rec_.target,
             rec_.request_id, end.detail);
    response_ended_ = true;
    client()->ResetStream(id_, MapAppReset(end.error_code));
    b_->flush_soon_();
  }
}

void UpstreamBridge::Stream::Fail(Failure failure, const std::string& detail,
                                  uint32_t rst_code) {
  proxy::CountUpstreamError(b_->ctx_, failure);
  LeaveInFlight();
  response_ended_ = true;
  if (head_sent_) {
    LOG_ERROR("%s %s from %s (request %s): %s; stream reset", rec_.method,
              rec_.target, proxy::PeerForLog(b_->peer_), rec_.request_id,
              detail);
    client()->ResetStream(id_, rst_code);
    b_->flush_soon_();
    return;
  }
  int status = proxy::StatusFor(failure, http1::ErrorKind::kNone);
  proxy::CountAndLogFailureAnswer(b_->ctx_, status, failure, rec_, b_->peer_,
                                  detail);
  head_sent_ = true;
  rec_.status = status;
  // The same answer as the exchange's for a stream (Http2Session lowercases
  // the field names); a gRPC call's carries grpc-status.
  proxy::ErrorAnswer answer = proxy::BuildErrorAnswer(
      status, failure, detail, rec_.method == "HEAD", grpc_);
  if (client()
          ->SubmitResponse(id_, status, answer.fields, answer.head_only)
          .ok() &&
      !answer.head_only) {
    client()->AppendResponseData(id_, answer.body).IgnoreError();
    client()->EndResponse(id_).IgnoreError();
    rec_.body_bytes_out += answer.body.size();
  }
  b_->flush_soon_();
}

void UpstreamBridge::Stream::Record() {
  proxy::RecordFinishedRequest(b_->ctx_, rec_, b_->peer_, "HTTP/2.0",
                               scoreboard::Protocol::kHttp2, NowNs(),
                               &request_headers_, &response_headers_);
}

UpstreamBridge::UpstreamBridge(StreamClient client)
    : ctx_(client.ctx),
      session_(client.session),
      peer_(std::move(client.peer)),
      scheme_(client.scheme),
      flush_soon_(std::move(client.flush_soon)) {}

UpstreamBridge::~UpstreamBridge() = default;

void UpstreamBridge::OnRequestHeaders(
    int32_t stream_id, std::string_view method, std::string_view scheme,
    std::string_view authority, std::string_view path,
    std::vector<http1::Header> headers, bool end_stream) {
  auto s = std::make_unique<Stream>(this, stream_id);
  Stream* raw = s.get();
  streams_[stream_id] = std::move(s);
  raw->Start(method, scheme, authority, path, std::move(headers), end_stream);
}

void UpstreamBridge::OnRequestData(int32_t stream_id, std::string_view data) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) {
    session_->ConsumeRequestData(stream_id, data.size());
    return;
  }
  it->second->OnClientData(data);
}

void UpstreamBridge::OnRequestEnd(int32_t stream_id,
                                  std::vector<http1::Header> trailers) {
  auto it = streams_.find(stream_id);
  if (it != streams_.end()) it->second->OnClientEnd(std::move(trailers));
}

void UpstreamBridge::OnStreamClosed(int32_t stream_id, uint32_t error_code) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  it->second->OnClientClosed(error_code);
  // Freed by Reap(): this may run inside one of the stream's own calls.
  finished_.push_back(std::move(it->second));
  streams_.erase(it);
}

void UpstreamBridge::Reap() { finished_.clear(); }

void UpstreamBridge::AfterClientFlush() {
  for (auto& [id, s] : streams_) s->AfterClientFlush();
}

void UpstreamBridge::OnTimeout(int64_t now_ms) {
  for (auto& [id, s] : streams_) s->OnTimeout(now_ms);
}

int64_t UpstreamBridge::deadline_ms() const {
  if (!finished_.empty()) return 0;
  int64_t d = INT64_MAX;
  for (auto& [id, s] : streams_) d = std::min(d, s->deadline_ms());
  return d;
}

}  // namespace forkd::proxy

#include "server/http2/http2_session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/http2/outgoing_fields.h"

namespace forkd::http2 {
namespace {

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// Opaque data of the PING that times the graceful shutdown's round trip.
constexpr uint8_t kShutdownPing[8] = {'f', 'o', 'r', 'k', 'd', 'b', 'y', 'e'};
constexpr uint32_t kMaxWindow = (1u << 31) - 1;

const Http2Context& DefaultContext() {
  static const Http2Context* ctx = new Http2Context();
  return *ctx;
}

// Where counts go when the context has no counters.
Http2Counters& DiscardedCounters() {
  static Http2Counters* counters = new Http2Counters();
  return *counters;
}

void Inc(std::atomic<uint64_t>& counter) {
  counter.fetch_add(1, std::memory_order_relaxed);
}

std::string_view View(const uint8_t* data, size_t len) {
  return {reinterpret_cast<const char*>(data), len};
}

absl::string_view AbslView(std::string_view s) { return {s.data(), s.size()}; }

// Joins several "cookie" fields into the first one (RFC 9113 §8.2.3), as
// an HTTP/1.1 app expects a single Cookie header.
void JoinCookies(std::vector<http1::Header>* headers) {
  http1::Header* first = nullptr;
  bool joined = false;
  for (http1::Header& h : *headers) {
    if (h.name != "cookie") continue;
    if (first == nullptr) {
      first = &h;
    } else {
      absl::StrAppend(&first->value, "; ", h.value);
      h.name.clear();
      joined = true;
    }
  }
  if (joined) {
    headers->erase(
        std::remove_if(headers->begin(), headers->end(),
                       [](const http1::Header& h) { return h.name.empty(); }),
        headers->end());
  }
}

}  // namespace

PrefaceMatch LooksLikeH2Preface(std::string_view first_bytes) {
  size_t n = std::min(first_bytes.size(), kPreface.size());
  if (first_bytes.substr(0, n) != kPreface.substr(0, n)) {
    return PrefaceMatch::kNoMatch;
  }
  return n == kPreface.size() ? PrefaceMatch::kMatch : PrefaceMatch::kNeedMore;
}

bool Http2Session::RateWindow::Hit(int64_t now_ms, uint32_t limit) {
  if (start_ms < 0 || now_ms - start_ms >= 1000) {
    start_ms = now_ms;
    count = 0;
  }
  return ++count > limit;
}

// nghttp2's C callbacks, forwarding to the session (user_data).
struct Http2Callbacks {
  static Http2Session* Self(void* user_data) {
    return static_cast<Http2Session*>(user_data);
  }

  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame,
                            void* user_data) {
    Http2Session* self = Self(user_data);
    if (!self->failed_.ok()) return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    int32_t id = frame->hd.stream_id;
    self->header_block_stream_ = id;
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      self->streams_[id] = std::make_unique<Http2Session::Stream>();
    } else if (Http2Session::Stream* s = self->Find(id)) {
      s->header_bytes = 0;
      s->headers.clear();
    }
    return 0;
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame,
                      const uint8_t* name, size_t namelen, const uint8_t* value,
                      size_t valuelen, uint8_t, void* user_data) {
    Http2Session* self = Self(user_data);
    if (!self->failed_.ok()) return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    Http2Session::Stream* s = self->Find(frame->hd.stream_id);
    if (s == nullptr || s->too_large) return 0;
    // Once over the limit nothing more is stored, so a header-list bomb
    // (small HPACK references to a large table entry) costs callbacks but
    // no memory.
    s->header_bytes += namelen + valuelen + 32;
    if (s->header_bytes > self->settings_.max_header_list_size) {
      s->too_large = true;
      s->headers.clear();
      s->headers.shrink_to_fit();
      return 0;
    }
    std::string_view n = View(name, namelen), v = View(value, valuelen);
    if (!n.empty() && n[0] == ':') {
      // nghttp2 has checked the set of pseudo-headers (no duplicates, none
      // in trailers).
      if (n == ":method") {
        s->method = v;
      } else if (n == ":scheme") {
        s->scheme = v;
      } else if (n == ":authority") {
        s->authority = v;
      } else if (n == ":path") {
        s->path = v;
      }
      return 0;
    }
    s->headers.push_back({std::string(n), std::string(v)});
    return 0;
  }

  static int OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame,
                         void* user_data) {
    Http2Session* self = Self(user_data);
    if (!self->failed_.ok()) return NGHTTP2_ERR_CALLBACK_FAILURE;
    int32_t id = frame->hd.stream_id;
    bool end_stream = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    // A whole HEADERS (with its CONTINUATIONs) arrives here only after
    // END_HEADERS, and no other frame may come in a header block: either
    // way no block is open now.
    self->header_block_stream_ = 0;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS: {
        Http2Session::Stream* s = self->Find(id);
        if (s == nullptr) break;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
          s->request_ended = end_stream;
          if (s->too_large) {
            self->Answer431(id, s);
            break;
          }
          JoinCookies(&s->headers);
          s->delivered = true;
          Inc(self->counters_->streams);
          self->handler_->OnRequestHeaders(id, s->method, s->scheme,
                                           s->authority, s->path,
                                           std::move(s->headers), end_stream);
        } else if (s->delivered && !s->request_ended) {
          // Trailers; nghttp2 insists they end the stream.
          s->request_ended = true;
          if (s->too_large) {
            Inc(self->counters_->header_lists_too_large);
            self->ResetStream(id, kEnhanceYourCalm);
            self->CountReset();
            break;
          }
          JoinCookies(&s->headers);
          self->handler_->OnRequestEnd(id, std::move(s->headers));
        }
        break;
      }
      case NGHTTP2_DATA: {
        Http2Session::Stream* s = self->Find(id);
        if (s != nullptr && end_stream && !s->request_ended) {
          s->request_ended = true;
          if (s->delivered) self->handler_->OnRequestEnd(id, {});
        }
        break;
      }
      case NGHTTP2_RST_STREAM:
        Inc(self->counters_->rst_received[Http2Counters::Slot(
            frame->rst_stream.error_code)]);
        self->CountReset();
        break;
      case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) {
          if (self->shutdown_started_ && !self->final_goaway_sent_ &&
              memcmp(frame->ping.opaque_data, kShutdownPing, 8) == 0) {
            self->final_goaway_sent_ = true;
            nghttp2_submit_goaway(
                session, NGHTTP2_FLAG_NONE,
                nghttp2_session_get_last_proc_stream_id(session),
                NGHTTP2_NO_ERROR, nullptr, 0);
          }
        } else if (self->pings_.Hit(self->NowMs(),
                                    self->ctx_->limits.max_pings_per_second)) {
          self->Abuse(&self->counters_->ping_floods, "PING flood");
        }
        break;
      case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
          self->settings_received_ = true;
        }
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) &&
            self->settings_frames_.Hit(
                self->NowMs(), self->ctx_->limits.max_settings_per_second)) {
          self->Abuse(&self->counters_->settings_floods, "SETTINGS flood");
        }
        break;
      default:
        break;
    }
    // Stops nghttp2 from processing the rest of the input after abuse.
    return self->failed_.ok() ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
  }

  static int OnDataChunkRecv(nghttp2_session* session, uint8_t,
                             int32_t stream_id, const uint8_t* data, size_t len,
                             void* user_data) {
    Http2Session* self = Self(user_data);
    if (!self->failed_.ok()) return NGHTTP2_ERR_CALLBACK_FAILURE;
    Http2Session::Stream* s = self->Find(stream_id);
    if (s == nullptr || !s->delivered || s->reset_by_us) {
      // Nobody forwards these bytes: give the window back at once.
      nghttp2_session_consume(session, stream_id, len);
      return 0;
    }
    s->unconsumed += len;  // before the Handler may consume them
    self->handler_->OnRequestData(stream_id, View(data, len));
    return 0;
  }

  static int OnStreamClose(nghttp2_session* session, int32_t stream_id,
                           uint32_t error_code, void* user_data) {
    Http2Session* self = Self(user_data);
    if (self->header_block_stream_ == stream_id) self->header_block_stream_ = 0;
    auto it = self->streams_.find(stream_id);
    if (it == self->streams_.end()) return 0;
    std::unique_ptr<Http2Session::Stream> s = std::move(it->second);
    self->streams_.erase(it);
    // The stream's window is gone with it, but the connection window still
    // counts the bytes the caller never consumed.
    if (s->unconsumed > 0) {
      nghttp2_session_consume_connection(session, s->unconsumed);
    }
    if (s->delivered) self->handler_->OnStreamClosed(stream_id, error_code);
    return 0;
  }

  static int OnFrameSend(nghttp2_session* session, const nghttp2_frame* frame,
                         void* user_data) {
    Http2Session* self = Self(user_data);
    int32_t id = frame->hd.stream_id;
    switch (frame->hd.type) {
      case NGHTTP2_RST_STREAM: {
        uint32_t code = frame->rst_stream.error_code;
        Inc(self->counters_->rst_sent[Http2Counters::Slot(code)]);
        Http2Session::Stream* s = self->Find(id);
        // Streams nghttp2 reset or refused count toward the rapid-reset
        // window; the caller's own resets (app failures) do not.
        if (code != NGHTTP2_NO_ERROR && (s == nullptr || !s->reset_by_us)) {
          self->CountReset();
        }
        break;
      }
      case NGHTTP2_GOAWAY:
        Inc(self->counters_
                ->goaway_sent[Http2Counters::Slot(frame->goaway.error_code)]);
        break;
      case NGHTTP2_HEADERS:
      case NGHTTP2_DATA:
        // The response is complete while the request is still arriving:
        // tell the client to stop sending (RFC 9113 §8.1).
        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
            nghttp2_session_get_stream_remote_close(session, id) == 0) {
          nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id,
                                    NGHTTP2_NO_ERROR);
        }
        break;
      default:
        break;
    }
    return 0;
  }

  static int OnFrameNotSend(nghttp2_session* session,
                            const nghttp2_frame* frame, int lib_error_code,
                            void* user_data) {
    // A response head nghttp2 could not send (e.g. over its header block
    // limit) would leave the stream hanging.
    if (frame->hd.type == NGHTTP2_HEADERS &&
        lib_error_code != NGHTTP2_ERR_STREAM_CLOSED &&
        lib_error_code != NGHTTP2_ERR_STREAM_CLOSING) {
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                NGHTTP2_INTERNAL_ERROR);
    }
    return 0;
  }

  static ssize_t ReadResponse(nghttp2_session* session, int32_t stream_id,
                              uint8_t* buf, size_t length, uint32_t* data_flags,
                              nghttp2_data_source*, void* user_data) {
    Http2Session* self = Self(user_data);
    Http2Session::Stream* s = self->Find(stream_id);
    if (s == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return ReadQueuedBody(session, stream_id, s, buf, length, data_flags);
  }
};

Http2Session::Http2Session(const Http2Settings& settings, Handler* handler,
                           const Http2Context* ctx)
    : settings_(settings),
      handler_(handler),
      ctx_(ctx != nullptr ? ctx : &DefaultContext()),
      counters_(ctx_->counters != nullptr ? ctx_->counters
                                          : &DiscardedCounters()) {}

Http2Session::~Http2Session() {
  if (session_ != nullptr) nghttp2_session_del(session_);
}

absl::StatusOr<std::unique_ptr<Http2Session>> Http2Session::Create(
    const Http2Settings& settings, Handler* handler, const Http2Context* ctx) {
  std::unique_ptr<Http2Session> session(
      new Http2Session(settings, handler, ctx));
  absl::Status status = session->Init(nullptr, false);
  if (!status.ok()) return status;
  return session;
}

absl::StatusOr<std::unique_ptr<Http2Session>> Http2Session::CreateFromUpgrade(
    const Http2Settings& settings, Handler* handler,
    std::string_view http2_settings_header, bool head_request,
    const Http2Context* ctx) {
  std::string payload;
  if (!absl::WebSafeBase64Unescape(AbslView(http2_settings_header), &payload)) {
    return absl::InvalidArgumentError("HTTP2-Settings is not base64url");
  }
  std::unique_ptr<Http2Session> session(
      new Http2Session(settings, handler, ctx));
  absl::Status status = session->Init(&payload, head_request);
  if (!status.ok()) return status;
  return session;
}

absl::Status Http2Session::CheckUpgradeSettings(
    std::string_view http2_settings_header) {
  // The very checks of CreateFromUpgrade, on a session thrown away (one
  // upgrade request per connection at most). A well-formed payload with a
  // value out of range (ENABLE_PUSH 2, MAX_FRAME_SIZE below 16384...) is
  // not refused by nghttp2: it queues GOAWAY(PROTOCOL_ERROR), and the
  // session stops reading once that is sent.
  struct NoHandler final : Handler {
    void OnRequestHeaders(int32_t, std::string_view, std::string_view,
                          std::string_view, std::string_view,
                          std::vector<http1::Header>, bool) override {}
    void OnRequestData(int32_t, std::string_view) override {}
    void OnRequestEnd(int32_t, std::vector<http1::Header>) override {}
    void OnStreamClosed(int32_t, uint32_t) override {}
  } no_handler;
  auto session =
      CreateFromUpgrade(Http2Settings(), &no_handler, http2_settings_header,
                        /*head_request=*/false);
  if (!session.ok()) return session.status();
  Buffer scratch;
  (*session)->TakeOutput(&scratch);
  if (!(*session)->WantRead()) {
    return absl::InvalidArgumentError(
        "HTTP2-Settings: a setting's value is out of range");
  }
  return absl::OkStatus();
}

absl::Status Http2Session::Init(const std::string* upgrade_settings,
                                bool head_request) {
  const Http2Settings& s = settings_;
  if (s.max_concurrent_streams == 0 || s.initial_window_size > kMaxWindow ||
      s.connection_window_size > kMaxWindow || s.max_frame_size < 16384 ||
      s.max_frame_size > 16777215) {
    return absl::InvalidArgumentError("HTTP/2 settings out of range");
  }
  const Http2Limits& limits = ctx_->limits;

  nghttp2_session_callbacks* cbs;
  if (nghttp2_session_callbacks_new(&cbs) != 0) {
    return absl::ResourceExhaustedError("nghttp2_session_callbacks_new");
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(
      cbs, &Http2Callbacks::OnBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs,
                                                   &Http2Callbacks::OnHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(
      cbs, &Http2Callbacks::OnFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
      cbs, &Http2Callbacks::OnDataChunkRecv);
  nghttp2_session_callbacks_set_on_stream_close_callback(
      cbs, &Http2Callbacks::OnStreamClose);
  nghttp2_session_callbacks_set_on_frame_send_callback(
      cbs, &Http2Callbacks::OnFrameSend);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(
      cbs, &Http2Callbacks::OnFrameNotSend);

  nghttp2_option* opt;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cbs);
    return absl::ResourceExhaustedError("nghttp2_option_new");
  }
  // Request windows reopen only as the caller forwards the bytes.
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_outbound_ack(opt, limits.max_outbound_acks);
  nghttp2_option_set_max_continuations(opt, limits.max_continuations);
  // nghttp2's own token bucket (Debian's CVE-2023-44487 backport) answers
  // with INTERNAL_ERROR; keep it as a backstop behind our window, which
  // answers ENHANCE_YOUR_CALM.
  uint64_t rate = std::max<uint64_t>(limits.max_resets_per_second, 1);
  nghttp2_option_set_stream_reset_rate_limit(
      opt, std::max<uint64_t>(1000, 10 * rate), rate);
  nghttp2_option_set_no_closed_streams(opt, 1);
  int rv = nghttp2_session_server_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) {
    session_ = nullptr;
    return absl::ResourceExhaustedError(
        absl::StrCat("nghttp2_session_server_new2: ", nghttp2_strerror(rv)));
  }
  Inc(counters_->connections);

  const nghttp2_settings_entry entries[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, s.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, s.initial_window_size},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, s.max_frame_size},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, s.max_header_list_size},
      // No RFC 7540 priority tree: nothing to build from PRIORITY frames.
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
  };
  rv = nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, entries,
                               std::size(entries));
  if (rv != 0) {
    return absl::InternalError(
        absl::StrCat("nghttp2_submit_settings: ", nghttp2_strerror(rv)));
  }
  int32_t window = static_cast<int32_t>(
      std::max(s.connection_window_size, s.initial_window_size));
  if (window > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE) {
    rv = nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                               window);
    if (rv != 0) {
      return absl::InternalError(absl::StrCat(
          "nghttp2_session_set_local_window_size: ", nghttp2_strerror(rv)));
    }
  }

  if (upgrade_settings != nullptr) {
    rv = nghttp2_session_upgrade2(
        session_, reinterpret_cast<const uint8_t*>(upgrade_settings->data()),
        upgrade_settings->size(), head_request ? 1 : 0, nullptr);
    if (rv != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("HTTP2-Settings: ", nghttp2_strerror(rv)));
    }
    auto stream = std::make_unique<Stream>();
    stream->method = head_request ? "HEAD" : "";
    stream->request_ended = true;
    stream->delivered = true;
    streams_[1] = std::move(stream);
    Inc(counters_->streams);
  }
  return absl::OkStatus();
}

Http2Session::Stream* Http2Session::Find(int32_t stream_id) const {
  auto it = streams_.find(stream_id);
  return it == streams_.end() ? nullptr : it->second.get();
}

int64_t Http2Session::NowMs() const {
  if (ctx_->now_ms) return ctx_->now_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

absl::Status Http2Session::Fail(absl::Status status, uint32_t goaway_code) {
  if (failed_.ok()) {
    failed_ = std::move(status);
    // Queued after whatever is pending; the caller flushes it and closes.
    nghttp2_session_terminate_session(session_, goaway_code);
  }
  return failed_;
}

void Http2Session::Terminate(uint32_t error_code, std::string_view why) {
  if (!failed_.ok()) return;
  Fail(absl::DeadlineExceededError(AbslView(why)), error_code).IgnoreError();
}

void Http2Session::Abuse(std::atomic<uint64_t>* counter, std::string_view why) {
  if (!failed_.ok()) return;
  Inc(*counter);
  Fail(absl::ResourceExhaustedError(AbslView(why)), kEnhanceYourCalm)
      .IgnoreError();
}

void Http2Session::CountReset() {
  if (resets_.Hit(NowMs(), ctx_->limits.max_resets_per_second)) {
    Abuse(&counters_->rapid_resets, "too many streams reset (rapid reset)");
  }
}

void Http2Session::Answer431(int32_t stream_id, Stream* stream) {
  Inc(counters_->header_lists_too_large);
  bool head = stream->method == "HEAD";
  std::vector<http1::Header> headers = {
      {"content-type", "text/plain; charset=utf-8"}};
  SubmitResponse(stream_id, 431, headers, head).IgnoreError();
  if (!head) {
    AppendResponseData(stream_id, "request header fields too large\n")
        .IgnoreError();
    EndResponse(stream_id).IgnoreError();
  }
  // Each refusal costs us a decoded header block: bound their rate like
  // resets.
  CountReset();
}

absl::Status Http2Session::Receive(const char* data, size_t len) {
  if (!failed_.ok()) return failed_;
  ssize_t rv = nghttp2_session_mem_recv(
      session_, reinterpret_cast<const uint8_t*>(data), len);
  if (!failed_.ok()) return failed_;  // abuse seen in a callback
  if (rv >= 0) return absl::OkStatus();
  switch (rv) {
    case NGHTTP2_ERR_FLOODED:
      Inc(counters_->ack_floods);
      return Fail(absl::ResourceExhaustedError(
                      "too many SETTINGS/PING ACKs pending (peer not reading)"),
                  kEnhanceYourCalm);
    case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS:
      Inc(counters_->continuation_floods);
      return Fail(absl::ResourceExhaustedError("CONTINUATION flood"),
                  kEnhanceYourCalm);
    case NGHTTP2_ERR_BAD_CLIENT_MAGIC:
      return Fail(absl::InvalidArgumentError("bad HTTP/2 connection preface"),
                  kProtocolError);
    default:
      return Fail(absl::InternalError(
                      absl::StrCat("nghttp2_session_mem_recv: ",
                                   nghttp2_strerror(static_cast<int>(rv)))),
                  kInternalError);
  }
}

void Http2Session::TakeOutput(Buffer* out, size_t max_bytes) {
  size_t taken = 0;
  while (!send_failed_ && taken < max_bytes) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      send_failed_ = true;
      if (failed_.ok()) {
        failed_ = absl::InternalError(
            absl::StrCat("nghttp2_session_mem_send: ",
                         nghttp2_strerror(static_cast<int>(n))));
      }
      break;
    }
    if (n == 0) break;
    out->Append(View(data, static_cast<size_t>(n)));
    taken += static_cast<size_t>(n);
  }
}

bool Http2Session::WantRead() const {
  return failed_.ok() && nghttp2_session_want_read(session_);
}

bool Http2Session::WantWrite() const {
  return !send_failed_ && !aborted_ && nghttp2_session_want_write(session_);
}

bool Http2Session::Done() const {
  if (WantWrite()) return false;
  return !failed_.ok() || !nghttp2_session_want_read(session_);
}

absl::Status Http2Session::SubmitResponse(
    int32_t stream_id, int status, const std::vector<http1::Header>& headers,
    bool end_stream) {
  Stream* s = Find(stream_id);
  if (s == nullptr) return absl::NotFoundError("no such HTTP/2 stream");
  if (s->response_submitted) {
    return absl::FailedPreconditionError("response already submitted");
  }
  if (status < 200 || status > 999) {
    return absl::InvalidArgumentError(absl::StrCat("bad status ", status));
  }
  OutgoingFields fields;
  fields.AddPseudo(":status", std::to_string(status));
  fields.AddRegular(headers, /*keep_te_trailers=*/false);
  nghttp2_data_provider provider;
  provider.source.ptr = nullptr;
  provider.read_callback = &Http2Callbacks::ReadResponse;
  int rv =
      nghttp2_submit_response(session_, stream_id, fields.data(), fields.size(),
                              end_stream ? nullptr : &provider);
  if (rv != 0) {
    return absl::InternalError(
        absl::StrCat("nghttp2_submit_response: ", nghttp2_strerror(rv)));
  }
  s->response_submitted = true;
  s->has_body = !end_stream;
  return absl::OkStatus();
}

absl::Status Http2Session::SubmitInterim(
    int32_t stream_id, int status, const std::vector<http1::Header>& headers) {
  Stream* s = Find(stream_id);
  if (s == nullptr) return absl::NotFoundError("no such HTTP/2 stream");
  if (s->response_submitted) {
    return absl::FailedPreconditionError("final response already submitted");
  }
  if (status < 100 || status > 199 || status == 101) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad interim status ", status));
  }
  OutgoingFields fields;
  fields.AddPseudo(":status", std::to_string(status));
  fields.AddRegular(headers, /*keep_te_trailers=*/false);
  int32_t rv =
      nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, stream_id, nullptr,
                             fields.data(), fields.size(), nullptr);
  if (rv != 0) {
    return absl::InternalError(
        absl::StrCat("nghttp2_submit_headers: ", nghttp2_strerror(rv)));
  }
  return absl::OkStatus();
}

void Http2Session::ResumeIfDeferred(int32_t stream_id, Stream* stream) {
  if (stream->deferred) {
    stream->deferred = false;
    nghttp2_session_resume_data(session_, stream_id);
  }
}

absl::Status Http2Session::AppendResponseData(int32_t stream_id,
                                              std::string_view data) {
  Stream* s = Find(stream_id);
  if (s == nullptr) return absl::NotFoundError("no such HTTP/2 stream");
  if (s->reset_by_us) return absl::OkStatus();  // dropped, see ResetStream
  if (!s->has_body || s->body_ended) {
    return absl::FailedPreconditionError("no response body open");
  }
  if (data.empty()) return absl::OkStatus();
  s->queue.Append(data);
  ResumeIfDeferred(stream_id, s);
  return absl::OkStatus();
}

absl::Status Http2Session::EndResponse(
    int32_t stream_id, std::optional<std::vector<http1::Header>> trailers) {
  Stream* s = Find(stream_id);
  if (s == nullptr) return absl::NotFoundError("no such HTTP/2 stream");
  if (s->reset_by_us) return absl::OkStatus();
  if (!s->has_body || s->body_ended) {
    return absl::FailedPreconditionError("no response body open");
  }
  s->body_ended = true;
  if (trailers.has_value()) s->trailers = std::move(*trailers);
  ResumeIfDeferred(stream_id, s);
  return absl::OkStatus();
}

size_t Http2Session::QueuedResponseBytes(int32_t stream_id) const {
  Stream* s = Find(stream_id);
  return s == nullptr ? 0 : s->queue.size();
}

void Http2Session::ConsumeRequestData(int32_t stream_id, size_t n) {
  Stream* s = Find(stream_id);
  if (s == nullptr) return;
  n = std::min(n, s->unconsumed);
  if (n == 0) return;
  s->unconsumed -= n;
  nghttp2_session_consume(session_, stream_id, n);
}

void Http2Session::ResetStream(int32_t stream_id, uint32_t error_code) {
  Stream* s = Find(stream_id);
  if (s == nullptr || s->reset_by_us) return;
  s->reset_by_us = true;
  s->queue.Clear();
  s->queue.Shrink(0);
  s->trailers.clear();
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, error_code);
}

void Http2Session::StartGracefulShutdown() {
  if (shutdown_started_ || !failed_.ok()) return;
  shutdown_started_ = true;
  if (nghttp2_submit_shutdown_notice(session_) != 0) {
    // A GOAWAY went out already (ours or after the peer's): nothing to add.
    final_goaway_sent_ = true;
    return;
  }
  nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, kShutdownPing);
}

void Http2Session::Abort(uint32_t error_code) {
  if (failed_.ok()) failed_ = absl::CancelledError("HTTP/2 connection aborted");
  aborted_ = true;
  std::vector<int32_t> ids;
  ids.reserve(streams_.size());
  for (const auto& [id, stream] : streams_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (int32_t id : ids) {
    auto it = streams_.find(id);
    if (it == streams_.end()) continue;
    std::unique_ptr<Stream> s = std::move(it->second);
    streams_.erase(it);
    if (s->delivered) handler_->OnStreamClosed(id, error_code);
  }
}

}  // namespace forkd::http2

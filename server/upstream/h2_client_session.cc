#include "server/upstream/h2_client_session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/http2/outgoing_fields.h"

namespace forkd::upstream {
namespace {

// Used until the app's SETTINGS say otherwise (RFC 9113 §6.5.2 leaves it
// unlimited; a bound keeps the first burst of streams from piling onto a
// connection the app may then refuse).
constexpr uint32_t kDefaultMaxConcurrentStreams = 100;

std::string_view View(const uint8_t* p, size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

}  // namespace

struct H2ClientCallbacks {
  static H2ClientSession* Self(void* p) {
    return static_cast<H2ClientSession*>(p);
  }

  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame,
                            void* user_data) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    if (H2ClientSession::Stream* s =
            Self(user_data)->Find(frame->hd.stream_id)) {
      s->fields.clear();
      s->header_bytes = 0;
      s->too_large = false;
      s->status = 0;
    }
    return 0;
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame,
                      const uint8_t* name, size_t namelen, const uint8_t* value,
                      size_t valuelen, uint8_t, void* user_data) {
    H2ClientSession* self = Self(user_data);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    H2ClientSession::Stream* s = self->Find(frame->hd.stream_id);
    if (s == nullptr || s->too_large) return 0;
    s->header_bytes += namelen + valuelen + 32;
    if (s->header_bytes > self->settings_.max_header_list_size) {
      s->too_large = true;  // stop storing: a header bomb costs no memory
      s->fields.clear();
      return 0;
    }
    std::string_view n = View(name, namelen), v = View(value, valuelen);
    if (n == ":status") {
      int st = 0;
      for (char c : v) st = st * 10 + (c - '0');  // nghttp2 checked 3 digits
      s->status = st;
      return 0;
    }
    if (!n.empty() && n[0] == ':') return 0;
    s->fields.push_back({std::string(n), std::string(v)});
    return 0;
  }

  static int OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame,
                         void* user_data) {
    H2ClientSession* self = Self(user_data);
    int32_t id = frame->hd.stream_id;
    bool end_stream = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS: {
        H2ClientSession::Stream* s = self->Find(id);
        if (s == nullptr || s->response_ended) break;
        if (s->too_large) {
          nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id,
                                    NGHTTP2_INTERNAL_ERROR);
          break;
        }
        if (!s->response_head_done) {
          if (s->status < 100) {
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id,
                                      NGHTTP2_PROTOCOL_ERROR);
            break;
          }
          if (s->status >= 200) s->response_head_done = true;
          if (end_stream) s->response_ended = true;
          self->handler_->OnResponseHeaders(id, s->status, std::move(s->fields),
                                            end_stream);
        } else {
          // Trailers: nghttp2 makes sure they end the stream.
          s->response_ended = true;
          self->handler_->OnResponseEnd(id, std::move(s->fields));
        }
        s->fields.clear();
        break;
      }
      case NGHTTP2_DATA: {
        H2ClientSession::Stream* s = self->Find(id);
        if (s != nullptr && end_stream && !s->response_ended) {
          s->response_ended = true;
          self->handler_->OnResponseEnd(id, {});
        }
        break;
      }
      case NGHTTP2_GOAWAY:
        self->goaway_received_ = true;
        break;
      case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
          self->settings_received_ = true;
        }
        break;
      default:
        break;
    }
    return 0;
  }

  static int OnDataChunkRecv(nghttp2_session* session, uint8_t,
                             int32_t stream_id, const uint8_t* data, size_t len,
                             void* user_data) {
    H2ClientSession* self = Self(user_data);
    H2ClientSession::Stream* s = self->Find(stream_id);
    if (s == nullptr || !s->response_head_done) {
      nghttp2_session_consume(session, stream_id, len);  // nobody takes them
      return 0;
    }
    s->unconsumed += len;
    self->handler_->OnResponseData(stream_id, View(data, len));
    return 0;
  }

  static int OnStreamClose(nghttp2_session* session, int32_t stream_id,
                           uint32_t error_code, void* user_data) {
    H2ClientSession* self = Self(user_data);
    auto it = self->streams_.find(stream_id);
    if (it == self->streams_.end()) return 0;
    std::unique_ptr<H2ClientSession::Stream> s = std::move(it->second);
    self->streams_.erase(it);
    // The stream's window is gone, but the connection's still counts the
    // bytes the caller never consumed.
    if (s->unconsumed > 0) {
      nghttp2_session_consume_connection(session, s->unconsumed);
    }
    self->handler_->OnStreamClosed(stream_id, error_code);
    return 0;
  }

  static ssize_t ReadRequest(nghttp2_session* session, int32_t stream_id,
                             uint8_t* buf, size_t length, uint32_t* data_flags,
                             nghttp2_data_source*, void* user_data) {
    H2ClientSession* self = Self(user_data);
    H2ClientSession::Stream* s = self->Find(stream_id);
    if (s == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    ssize_t n = http2::ReadQueuedBody(session, stream_id, s, buf, length,
                                      data_flags);
    if (n > 0) self->handler_->OnRequestDataSent(stream_id, n);
    return n;
  }
};

H2ClientSession::H2ClientSession(const Settings& settings, Handler* handler)
    : settings_(settings),
      handler_(handler),
      assumed_max_streams_(kDefaultMaxConcurrentStreams) {}

H2ClientSession::~H2ClientSession() {
  if (session_ != nullptr) nghttp2_session_del(session_);
}

absl::StatusOr<std::unique_ptr<H2ClientSession>> H2ClientSession::Create(
    const Settings& settings, Handler* handler) {
  std::unique_ptr<H2ClientSession> s(new H2ClientSession(settings, handler));
  absl::Status st = s->Init();
  if (!st.ok()) return st;
  return s;
}

absl::Status H2ClientSession::Init() {
  nghttp2_session_callbacks* cbs;
  if (nghttp2_session_callbacks_new(&cbs) != 0) {
    return absl::ResourceExhaustedError("nghttp2_session_callbacks_new");
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(
      cbs, &H2ClientCallbacks::OnBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(
      cbs, &H2ClientCallbacks::OnHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(
      cbs, &H2ClientCallbacks::OnFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
      cbs, &H2ClientCallbacks::OnDataChunkRecv);
  nghttp2_session_callbacks_set_on_stream_close_callback(
      cbs, &H2ClientCallbacks::OnStreamClose);
  nghttp2_option* opt;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cbs);
    return absl::ResourceExhaustedError("nghttp2_option_new");
  }
  // Windows reopen only when the bytes went on to the client.
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_no_closed_streams(opt, 1);
  int rv = nghttp2_session_client_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) {
    return absl::InternalError(
        absl::StrCat("nghttp2_session_client_new2: ", nghttp2_strerror(rv)));
  }
  const nghttp2_settings_entry entries[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, settings_.initial_window_size},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings_.max_header_list_size},
  };
  rv = nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, entries,
                               sizeof(entries) / sizeof(entries[0]));
  if (rv != 0) {
    return absl::InternalError(
        absl::StrCat("nghttp2_submit_settings: ", nghttp2_strerror(rv)));
  }
  uint32_t conn_window =
      std::max(settings_.connection_window_size, settings_.initial_window_size);
  if (conn_window > 65535) {
    rv = nghttp2_session_set_local_window_size(
        session_, NGHTTP2_FLAG_NONE, 0, static_cast<int32_t>(conn_window));
    if (rv != 0) {
      return absl::InternalError(absl::StrCat(
          "nghttp2_session_set_local_window_size: ", nghttp2_strerror(rv)));
    }
  }
  return absl::OkStatus();
}

H2ClientSession::Stream* H2ClientSession::Find(int32_t stream_id) const {
  auto it = streams_.find(stream_id);
  return it == streams_.end() ? nullptr : it->second.get();
}

absl::Status H2ClientSession::Receive(const char* data, size_t len) {
  if (!failed_.ok()) return failed_;
  if (aborted_) return absl::FailedPreconditionError("session aborted");
  ssize_t rv = nghttp2_session_mem_recv(
      session_, reinterpret_cast<const uint8_t*>(data), len);
  if (rv < 0) {
    failed_ = absl::InternalError(absl::StrCat(
        "HTTP/2 from the app: ", nghttp2_strerror(static_cast<int>(rv))));
  }
  return failed_;
}

void H2ClientSession::TakeOutput(Buffer* out, size_t max_bytes) {
  size_t taken = 0;
  while (failed_.ok() && !aborted_ && taken < max_bytes) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      failed_ = absl::InternalError(absl::StrCat(
          "nghttp2_session_mem_send: ", nghttp2_strerror(static_cast<int>(n))));
      break;
    }
    if (n == 0) break;
    out->Append(View(data, static_cast<size_t>(n)));
    taken += static_cast<size_t>(n);
  }
  if (failed_.ok() && !aborted_ && !goaway_received_ &&
      !nghttp2_session_want_read(session_)) {
    // nghttp2 answered a protocol error of the app with its own GOAWAY,
    // now taken: nothing more will come on this connection.
    failed_ = absl::InternalError("the app broke the HTTP/2 protocol (does it speak h2c?)");
  }
}

bool H2ClientSession::WantWrite() const {
  return failed_.ok() && !aborted_ && nghttp2_session_want_write(session_);
}

bool H2ClientSession::Done() const {
  if (!failed_.ok() || aborted_) return true;
  if (WantWrite()) return false;
  if (goaway_received_ && streams_.empty()) return true;
  return !nghttp2_session_want_read(session_) && streams_.empty();
}

uint32_t H2ClientSession::RemoteMaxConcurrentStreams() const {
  if (!settings_received_) return assumed_max_streams_;
  return nghttp2_session_get_remote_settings(
      session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

bool H2ClientSession::CanOpenStream() const {
  return failed_.ok() && !aborted_ && !goaway_received_ &&
         nghttp2_session_get_next_stream_id(session_) < (1u << 30) &&
         streams_.size() < RemoteMaxConcurrentStreams();
}

absl::StatusOr<int32_t> H2ClientSession::SubmitRequest(
    std::string_view method, std::string_view scheme,
    std::string_view authority, std::string_view path,
    const std::vector<http1::Header>& headers, bool end_stream) {
  if (!failed_.ok() || aborted_ || goaway_received_) {
    return absl::UnavailableError("the app connection takes no new streams");
  }
  http2::OutgoingFields fields;
  fields.AddPseudo(":method", method);
  fields.AddPseudo(":scheme", scheme);
  if (!authority.empty()) fields.AddPseudo(":authority", authority);
  fields.AddPseudo(":path", path);
  fields.AddRegular(headers, /*keep_te_trailers=*/true);
  nghttp2_data_provider provider;
  provider.source.ptr = nullptr;
  provider.read_callback = &H2ClientCallbacks::ReadRequest;
  int32_t id =
      nghttp2_submit_request(session_, nullptr, fields.data(), fields.size(),
                             end_stream ? nullptr : &provider, this);
  if (id < 0) {
    return absl::UnavailableError(absl::StrCat(
        "nghttp2_submit_request: ", nghttp2_strerror(static_cast<int>(id))));
  }
  auto s = std::make_unique<Stream>();
  s->has_body = !end_stream;
  s->body_ended = end_stream;
  streams_[id] = std::move(s);
  return id;
}

void H2ClientSession::Resume(int32_t stream_id, Stream* s) {
  if (s->deferred) {
    s->deferred = false;
    nghttp2_session_resume_data(session_, stream_id);
  }
}

absl::Status H2ClientSession::AppendRequestData(int32_t stream_id,
                                                std::string_view data) {
  Stream* s = Find(stream_id);
  if (s == nullptr) return absl::NotFoundError("no such upstream stream");
  if (!s->has_body || s->body_ended) {
    return absl::FailedPreconditionError("request body already ended");
  }
  if (data.empty()) return absl::OkStatus();
  s->queue.Append(data);
  Resume(stream_id, s);
  return absl::OkStatus();
}

absl::Status H2ClientSession::EndRequest(int32_t stream_id,
                                         std::vector<http1::Header> trailers) {
  Stream* s = Find(stream_id);
  if (s == nullptr) return absl::NotFoundError("no such upstream stream");
  if (!s->has_body || s->body_ended) {
    return absl::FailedPreconditionError("request body already ended");
  }
  s->body_ended = true;
  s->trailers = std::move(trailers);
  Resume(stream_id, s);
  return absl::OkStatus();
}

size_t H2ClientSession::QueuedRequestBytes(int32_t stream_id) const {
  Stream* s = Find(stream_id);
  return s == nullptr ? 0 : s->queue.size();
}

void H2ClientSession::ConsumeResponseData(int32_t stream_id, size_t n) {
  Stream* s = Find(stream_id);
  if (s == nullptr || n == 0) return;
  n = std::min(n, s->unconsumed);
  s->unconsumed -= n;
  nghttp2_session_consume(session_, stream_id, n);
}

void H2ClientSession::ResetStream(int32_t stream_id, uint32_t error_code) {
  Stream* s = Find(stream_id);
  if (s == nullptr) return;
  s->queue.Clear();
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, error_code);
}

void H2ClientSession::Abort(uint32_t error_code) {
  if (aborted_) return;
  aborted_ = true;
  std::vector<int32_t> ids;
  ids.reserve(streams_.size());
  for (auto& [id, s] : streams_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  streams_.clear();
  for (int32_t id : ids) handler_->OnStreamClosed(id, error_code);
}

}  // namespace forkd::upstream

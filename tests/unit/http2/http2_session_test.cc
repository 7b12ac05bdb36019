#include "server/http2/http2_session.h"

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace forkd::http2 {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

std::string Find(const std::vector<http1::Header>& headers,
                 std::string_view name) {
  for (const auto& h : headers) {
    if (h.name == name) return h.value;
  }
  return "<none>";
}

// ---------------------------------------------------------------------------
// What the server session reported to its Handler.

struct Req {
  std::string method, scheme, authority, path;
  std::vector<http1::Header> headers;
  bool end_stream = false;
  std::string body;
  bool ended = false;
  std::vector<http1::Header> trailers;
  bool closed = false;
  uint32_t close_code = 0;
};

class RecordingHandler : public Http2Session::Handler {
 public:
  void OnRequestHeaders(int32_t stream_id, std::string_view method,
                        std::string_view scheme, std::string_view authority,
                        std::string_view path,
                        std::vector<http1::Header> headers,
                        bool end_stream) override {
    EXPECT_EQ(reqs.count(stream_id), 0u) << stream_id;
    Req& r = reqs[stream_id];
    r.method = method;
    r.scheme = scheme;
    r.authority = authority;
    r.path = path;
    r.headers = std::move(headers);
    r.end_stream = end_stream;
  }
  void OnRequestData(int32_t stream_id, std::string_view data) override {
    reqs[stream_id].body.append(data);
    if (auto_consume) session->ConsumeRequestData(stream_id, data.size());
  }
  void OnRequestEnd(int32_t stream_id,
                    std::vector<http1::Header> trailers) override {
    Req& r = reqs[stream_id];
    EXPECT_FALSE(r.end_stream);
    EXPECT_FALSE(r.ended);
    r.ended = true;
    r.trailers = std::move(trailers);
  }
  void OnStreamClosed(int32_t stream_id, uint32_t error_code) override {
    Req& r = reqs[stream_id];
    EXPECT_FALSE(r.closed) << "closed twice: " << stream_id;
    r.closed = true;
    r.close_code = error_code;
    closed.push_back(stream_id);
  }

  std::map<int32_t, Req> reqs;
  std::vector<int32_t> closed;
  Http2Session* session = nullptr;
  bool auto_consume = false;
};

// ---------------------------------------------------------------------------
// An nghttp2 client session talking to the server in memory.

struct ClientOptions {
  bool manual_window = false;  // consume DATA only on Client::Consume()
  bool submit_settings = true;
  std::vector<nghttp2_settings_entry> settings;
};

class Client {
 public:
  using Fields = std::vector<std::pair<std::string, std::string>>;
  struct Response {
    int status = 0;
    std::vector<int> interim;
    Fields headers, trailers;
    std::string body;
    bool in_trailers = false;
    bool closed = false;
    uint32_t close_code = 0;
    std::optional<uint32_t> rst_code;
  };
  struct Goaway {
    uint32_t code;
    int32_t last_stream_id;
  };
  explicit Client(ClientOptions options = {}) : options_(std::move(options)) {
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &BeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &Header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &FrameRecv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Close);
    nghttp2_option* opt;
    nghttp2_option_new(&opt);
    if (options_.manual_window)
      nghttp2_option_set_no_auto_window_update(opt, 1);
    // Room for the header-list bombs below (nghttp2 bounds what it sends
    // by the uncompressed size).
    nghttp2_option_set_max_send_header_block_length(opt, 4 << 20);
    nghttp2_session_client_new2(&session_, cbs, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (options_.submit_settings) {
      nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE,
                              options_.settings.data(),
                              options_.settings.size());
    }
  }
  ~Client() { nghttp2_session_del(session_); }

  nghttp2_session* session() { return session_; }

  int32_t Get(std::string path, const Fields& extra = {}) {
    return Submit("GET", std::move(path), extra, nullptr);
  }
  int32_t Post(std::string path, std::string body, Fields trailers = {},
               const Fields& extra = {}) {
    auto b = std::make_unique<Body>();
    b->data = std::move(body);
    b->trailers = std::move(trailers);
    return Submit("POST", std::move(path), extra, std::move(b));
  }

  std::string Output() {
    std::string out;
    for (;;) {
      const uint8_t* data;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      EXPECT_GE(n, 0);
      if (n <= 0) break;
      out.append(reinterpret_cast<const char*>(data), n);
    }
    return out;
  }
  void Input(std::string_view bytes) {
    ssize_t n = nghttp2_session_mem_recv(
        session_, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    EXPECT_EQ(n, static_cast<ssize_t>(bytes.size())) << nghttp2_strerror(n);
  }
  // Reopens the windows for all DATA received so far (manual_window).
  void Consume() {
    for (auto& [id, n] : unconsumed_) {
      if (n > 0) nghttp2_session_consume(session_, id, n);
      n = 0;
    }
  }

  std::map<int32_t, Response> responses;
  std::vector<Goaway> goaways;

 private:
  struct Body {
    std::string data;
    size_t offset = 0;
    Fields trailers;
  };

  static std::vector<nghttp2_nv> Nv(const Fields& fields) {
    std::vector<nghttp2_nv> nv;
    for (const auto& [name, value] : fields) {
      nv.push_back({(uint8_t*)name.data(), (uint8_t*)value.data(), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE});
    }
    return nv;
  }

  int32_t Submit(std::string method, std::string path, const Fields& extra,
                 std::unique_ptr<Body> body) {
    Fields fields = {{":method", method},
                     {":scheme", "http"},
                     {":authority", "example.com"},
                     {":path", path}};
    fields.insert(fields.end(), extra.begin(), extra.end());
    std::vector<nghttp2_nv> nv = Nv(fields);
    nghttp2_data_provider provider;
    provider.source.ptr = body.get();
    provider.read_callback = &ReadBody;
    int32_t id = nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(),
                                        body ? &provider : nullptr, nullptr);
    EXPECT_GT(id, 0) << nghttp2_strerror(id);
    if (body) bodies_.push_back(std::move(body));
    return id;
  }

  static ssize_t ReadBody(nghttp2_session* session, int32_t stream_id,
                          uint8_t* buf, size_t length, uint32_t* flags,
                          nghttp2_data_source* source, void*) {
    auto* b = static_cast<Body*>(source->ptr);
    size_t n = std::min(length, b->data.size() - b->offset);
    memcpy(buf, b->data.data() + b->offset, n);
    b->offset += n;
    if (b->offset == b->data.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!b->trailers.empty()) {
        std::vector<nghttp2_nv> nv = Nv(b->trailers);
        nghttp2_submit_trailer(session, stream_id, nv.data(), nv.size());
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
    }
    return static_cast<ssize_t>(n);
  }
  static Client* Self(void* p) { return static_cast<Client*>(p); }
  static int BeginHeaders(nghttp2_session*, const nghttp2_frame* frame,
                          void* p) {
    Response& r = Self(p)->responses[frame->hd.stream_id];
    r.in_trailers = r.status >= 200;
    return 0;
  }
  static int Header(nghttp2_session*, const nghttp2_frame* frame,
                    const uint8_t* name, size_t namelen, const uint8_t* value,
                    size_t valuelen, uint8_t, void* p) {
    Response& r = Self(p)->responses[frame->hd.stream_id];
    std::string n(reinterpret_cast<const char*>(name), namelen);
    std::string v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") {
      int status = std::stoi(v);
      if (status < 200) {
        r.interim.push_back(status);
      } else {
        r.status = status;
      }
    } else {
      (r.in_trailers ? r.trailers : r.headers).emplace_back(n, v);
    }
    return 0;
  }
  static int Data(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data,
                  size_t len, void* p) {
    Self(p)->responses[id].body.append(reinterpret_cast<const char*>(data),
                                       len);
    Self(p)->unconsumed_[id] += len;
    return 0;
  }
  static int FrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* p) {
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      Self(p)->goaways.push_back(
          {frame->goaway.error_code, frame->goaway.last_stream_id});
    } else if (frame->hd.type == NGHTTP2_RST_STREAM) {
      Self(p)->responses[frame->hd.stream_id].rst_code =
          frame->rst_stream.error_code;
    }
    return 0;
  }
  static int Close(nghttp2_session*, int32_t id, uint32_t code, void* p) {
    Response& r = Self(p)->responses[id];
    r.closed = true;
    r.close_code = code;
    return 0;
  }

  ClientOptions options_;
  nghttp2_session* session_ = nullptr;
  std::vector<std::unique_ptr<Body>> bodies_;
  std::map<int32_t, size_t> unconsumed_;
};

// ---------------------------------------------------------------------------
// Raw frames, for peers nghttp2's client would refuse to be.

enum FrameType : uint8_t {
  kData = 0,
  kHeaders = 1,
  kRstStream = 3,
  kSettings = 4,
  kPing = 6,
  kGoaway = 7,
  kWindowUpdate = 8,
  kContinuation = 9,
};
constexpr uint8_t kEndStream = 0x1, kEndHeaders = 0x4;

std::string U32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
          static_cast<char>(v >> 8), static_cast<char>(v)};
}
uint32_t ReadU32(std::string_view p) {
  auto b = [&](size_t i) { return static_cast<uint32_t>(uint8_t(p[i])); };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

std::string Frame(uint8_t type, uint8_t flags, uint32_t stream,
                  std::string_view payload) {
  size_t len = payload.size();
  std::string f = {static_cast<char>(len >> 16), static_cast<char>(len >> 8),
                   static_cast<char>(len), static_cast<char>(type),
                   static_cast<char>(flags)};
  f += U32(stream & 0x7fffffff);
  f += payload;
  return f;
}

struct RawFrame {
  uint8_t type;
  uint8_t flags;
  uint32_t stream;
  std::string payload;
};

std::vector<RawFrame> ParseFrames(std::string_view b) {
  std::vector<RawFrame> frames;
  while (b.size() >= 9) {
    size_t len = uint8_t(b[0]) << 16 | uint8_t(b[1]) << 8 | uint8_t(b[2]);
    if (b.size() < 9 + len) break;
    frames.push_back({uint8_t(b[3]), uint8_t(b[4]),
                      ReadU32(b.substr(5)) & 0x7fffffff,
                      std::string(b.substr(9, len))});
    b.remove_prefix(9 + len);
  }
  EXPECT_TRUE(b.empty()) << "trailing partial frame";
  return frames;
}

// The error code of the last GOAWAY in `frames`, if any.
std::optional<uint32_t> GoawayCode(const std::vector<RawFrame>& frames) {
  std::optional<uint32_t> code;
  for (const RawFrame& f : frames) {
    if (f.type == kGoaway) code = ReadU32(f.payload.substr(4));
  }
  return code;
}

std::optional<uint32_t> RstCode(const std::vector<RawFrame>& frames,
                                uint32_t stream) {
  for (const RawFrame& f : frames) {
    if (f.type == kRstStream && f.stream == stream) return ReadU32(f.payload);
  }
  return std::nullopt;
}

// An HPACK header block from a private encoder. Fields are never indexed,
// so the server's decoding table is left as the real client's encoder
// expects it.
std::string HeaderBlock(const Client::Fields& fields) {
  nghttp2_hd_deflater* deflater;
  nghttp2_hd_deflate_new(&deflater, 4096);
  std::vector<nghttp2_nv> nv;
  for (const auto& [name, value] : fields) {
    nv.push_back({(uint8_t*)name.data(), (uint8_t*)value.data(), name.size(),
                  value.size(), NGHTTP2_NV_FLAG_NO_INDEX});
  }
  std::string block(nghttp2_hd_deflate_bound(deflater, nv.data(), nv.size()),
                    '\0');
  ssize_t n = nghttp2_hd_deflate_hd(deflater, (uint8_t*)block.data(),
                                    block.size(), nv.data(), nv.size());
  nghttp2_hd_deflate_del(deflater);
  EXPECT_GT(n, 0);
  block.resize(n);
  return block;
}

const Client::Fields kGetFields = {{":method", "GET"},
                                   {":scheme", "http"},
                                   {":authority", "example.com"},
                                   {":path", "/raw"}};

std::string RawStart() {
  return std::string(kPreface) + Frame(kSettings, 0, 0, "");
}

// ---------------------------------------------------------------------------

class Http2SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ctx_.counters = &counters_;
    ctx_.now_ms = [this] { return now_ms_; };
  }

  std::unique_ptr<Http2Session> NewSession() {
    auto session = Http2Session::Create(settings_, &handler_, &ctx_);
    EXPECT_TRUE(session.ok()) << session.status();
    handler_.session = session->get();
    return std::move(*session);
  }

  // Everything the server has to send.
  static std::string Drain(Http2Session& server) {
    Buffer out;
    for (int i = 0; i < 10000 && server.WantWrite(); ++i) {
      server.TakeOutput(&out);
    }
    return std::string(out.View());
  }

  // Moves bytes both ways until neither side has more.
  void Pump(Client& client, Http2Session& server) {
    for (int i = 0; i < 10000; ++i) {
      std::string up = client.Output();
      if (!up.empty()) last_receive_ = server.Receive(up.data(), up.size());
      std::string down = Drain(server);
      if (!down.empty()) client.Input(down);
      if (up.empty() && down.empty()) return;
    }
    ADD_FAILURE() << "no quiescence";
  }

  Http2Settings settings_;
  Http2Context ctx_;
  Http2Counters counters_;
  int64_t now_ms_ = 1000;
  RecordingHandler handler_;
  absl::Status last_receive_;
};

TEST(Http2PrefaceTest, TriState) {
  EXPECT_EQ(LooksLikeH2Preface(""), PrefaceMatch::kNeedMore);
  EXPECT_EQ(LooksLikeH2Preface("PRI * HTTP/2"), PrefaceMatch::kNeedMore);
  EXPECT_EQ(LooksLikeH2Preface(kPreface), PrefaceMatch::kMatch);
  EXPECT_EQ(LooksLikeH2Preface(std::string(kPreface) + "\0\0\x12\x04"),
            PrefaceMatch::kMatch);
  EXPECT_EQ(LooksLikeH2Preface("GET / HTTP/1.1\r\n"), PrefaceMatch::kNoMatch);
  EXPECT_EQ(LooksLikeH2Preface("POST"), PrefaceMatch::kNoMatch);
  EXPECT_EQ(LooksLikeH2Preface("PRI * HTTP/1.1\r\n"), PrefaceMatch::kNoMatch);
}

TEST_F(Http2SessionTest, RejectsSettingsOutOfRange) {
  settings_.max_frame_size = 1000;
  EXPECT_EQ(Http2Session::Create(settings_, &handler_).status().code(),
            absl::StatusCode::kInvalidArgument);
  settings_ = Http2Settings();
  settings_.initial_window_size = 1u << 31;
  EXPECT_EQ(Http2Session::Create(settings_, &handler_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(Http2SessionTest, GetRoundTrip) {
  auto server = NewSession();
  Client client;
  int32_t id = client.Get(
      "/hello?x=1",
      {{"accept", "text/plain"}, {"cookie", "a=1"}, {"cookie", "b=2"}});
  Pump(client, *server);
  ASSERT_TRUE(last_receive_.ok()) << last_receive_;
  ASSERT_EQ(handler_.reqs.count(id), 1u);
  const Req& req = handler_.reqs[id];
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.scheme, "http");
  EXPECT_EQ(req.authority, "example.com");
  EXPECT_EQ(req.path, "/hello?x=1");
  EXPECT_TRUE(req.end_stream);
  EXPECT_EQ(Find(req.headers, "accept"), "text/plain");
  EXPECT_EQ(Find(req.headers, "cookie"), "a=1; b=2");
  EXPECT_EQ(req.headers.size(), 2u);

  ASSERT_TRUE(server
                  ->SubmitResponse(id, 200,
                                   {{"Content-Type", "text/plain"},
                                    {"Connection", "close, X-Hop"},
                                    {"X-Hop", "1"},
                                    {"Keep-Alive", "timeout=5"},
                                    {"Transfer-Encoding", "chunked"},
                                    {"Upgrade", "h2c"},
                                    {"Bad", "line\r\nbreak"},
                                    {"X-Upper", "V"}},
                                   false)
                  .ok());
  ASSERT_TRUE(server->AppendResponseData(id, "hello ").ok());
  ASSERT_TRUE(server->AppendResponseData(id, "world").ok());
  ASSERT_TRUE(server->EndResponse(id).ok());
  Pump(client, *server);
  const Client::Response& resp = client.responses[id];
  EXPECT_EQ(resp.status, 200);
  EXPECT_THAT(resp.headers, ElementsAre(Pair("content-type", "text/plain"),
                                        Pair("x-upper", "V")));
  EXPECT_EQ(resp.body, "hello world");
  EXPECT_TRUE(resp.closed);
  EXPECT_EQ(resp.close_code, 0u);
  EXPECT_THAT(handler_.closed, ElementsAre(id));
  EXPECT_EQ(handler_.reqs[id].close_code, 0u);
  EXPECT_EQ(server->OpenStreams(), 0u);
  EXPECT_EQ(counters_.streams.load(), 1u);
  EXPECT_EQ(counters_.connections.load(), 1u);
  EXPECT_FALSE(server->Done());
  EXPECT_TRUE(server->WantRead());
}

TEST_F(Http2SessionTest, ResponseCallsValidateTheirStream) {
  auto server = NewSession();
  Client client;
  int32_t id = client.Get("/");
  Pump(client, *server);
  EXPECT_EQ(server->SubmitResponse(99, 200, {}, true).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(server->SubmitResponse(id, 42, {}, true).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server->SubmitInterim(id, 101, {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server->AppendResponseData(id, "x").code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(server->SubmitResponse(id, 204, {}, true).ok());
  EXPECT_EQ(server->SubmitResponse(id, 200, {}, true).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(server->EndResponse(id).code(),
            absl::StatusCode::kFailedPrecondition);
  Pump(client, *server);
  EXPECT_EQ(client.responses[id].status, 204);
  EXPECT_EQ(server->AppendResponseData(id, "x").code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(server->QueuedResponseBytes(id), 0u);
}

TEST_F(Http2SessionTest, RequestBodyWindowReopensOnlyOnConsume) {
  settings_.initial_window_size = 16384;
  auto server = NewSession();
  Client client;
  Pump(client, *server);  // the client learns our window first
  std::string body(100000, 'b');
  for (size_t i = 0; i < body.size(); ++i) body[i] = 'a' + i % 26;
  int32_t id = client.Post("/upload", body);
  Pump(client, *server);
  ASSERT_EQ(handler_.reqs.count(id), 1u);
  EXPECT_FALSE(handler_.reqs[id].end_stream);
  EXPECT_EQ(handler_.reqs[id].body.size(), 16384u);
  Pump(client, *server);  // nothing consumed: nothing more arrives
  EXPECT_EQ(handler_.reqs[id].body.size(), 16384u);

  server->ConsumeRequestData(id, 1000);  // under half a window: no update
  Pump(client, *server);
  EXPECT_EQ(handler_.reqs[id].body.size(), 16384u);

  for (int i = 0; i < 100 && !handler_.reqs[id].ended; ++i) {
    server->ConsumeRequestData(id, 1 << 20);  // clamped to what arrived
    size_t before = handler_.reqs[id].body.size();
    Pump(client, *server);
    EXPECT_LE(handler_.reqs[id].body.size() - before, 16384u);
  }
  EXPECT_TRUE(handler_.reqs[id].ended);
  EXPECT_EQ(handler_.reqs[id].body, body);
  EXPECT_THAT(handler_.reqs[id].trailers, IsEmpty());
}

TEST_F(Http2SessionTest, ConnectionWindowBoundsAllStreamsTogether) {
  settings_.connection_window_size = 4 * 65536;
  auto server = NewSession();
  Client client;
  Pump(client, *server);
  std::vector<int32_t> ids;
  for (int i = 0; i < 6; ++i)
    ids.push_back(client.Post("/up", std::string(65535, 'u')));
  Pump(client, *server);
  size_t total = 0;
  for (int32_t id : ids) total += handler_.reqs[id].body.size();
  // More than one default window (65535) but never past ours.
  EXPECT_EQ(total, 4u * 65536);
}

TEST_F(Http2SessionTest, ConcurrentStreams) {
  auto server = NewSession();
  Client client;
  std::vector<int32_t> ids = {client.Get("/a"), client.Get("/b"),
                              client.Post("/c", "payload")};
  handler_.auto_consume = true;
  Pump(client, *server);
  ASSERT_EQ(handler_.reqs.size(), 3u);
  EXPECT_EQ(handler_.reqs[ids[2]].body, "payload");
  EXPECT_EQ(server->OpenStreams(), 3u);
  for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
    ASSERT_TRUE(server->SubmitResponse(*it, 200, {}, false).ok());
    ASSERT_TRUE(server->AppendResponseData(*it, handler_.reqs[*it].path).ok());
    ASSERT_TRUE(server->EndResponse(*it).ok());
  }
  Pump(client, *server);
  EXPECT_EQ(client.responses[ids[0]].body, "/a");
  EXPECT_EQ(client.responses[ids[1]].body, "/b");
  EXPECT_EQ(client.responses[ids[2]].body, "/c");
  EXPECT_EQ(handler_.closed.size(), 3u);
  EXPECT_EQ(server->OpenStreams(), 0u);
}

TEST_F(Http2SessionTest, ResponseLargerThanWindowIsDeferredAndResumed) {
  auto server = NewSession();
  Client client(
      {.manual_window = true, .submit_settings = true, .settings = {}});
  int32_t id = client.Get("/big");
  Pump(client, *server);
  ASSERT_TRUE(server->SubmitResponse(id, 200, {}, false).ok());
  Pump(client, *server);  // no data queued yet: the provider defers
  EXPECT_EQ(client.responses[id].status, 200);
  EXPECT_EQ(client.responses[id].body, "");

  std::string body(200000, 'x');
  ASSERT_TRUE(server->AppendResponseData(id, body).ok());
  EXPECT_EQ(server->QueuedResponseBytes(id), body.size());
  Pump(client, *server);
  // The client's windows (65535) allow that much and no more.
  EXPECT_EQ(client.responses[id].body.size(), 65535u);
  EXPECT_EQ(server->QueuedResponseBytes(id), body.size() - 65535);
  for (int i = 0; i < 20 && server->QueuedResponseBytes(id) > 0; ++i) {
    client.Consume();
    Pump(client, *server);
  }
  EXPECT_EQ(server->QueuedResponseBytes(id), 0u);
  EXPECT_EQ(client.responses[id].body.size(), body.size());
  EXPECT_FALSE(client.responses[id].closed);

  // Drained and not ended: deferred again, resumed by more data and the end.
  client.Consume();
  Pump(client, *server);
  ASSERT_TRUE(server->AppendResponseData(id, "tail").ok());
  Pump(client, *server);
  EXPECT_EQ(client.responses[id].body.size(), body.size() + 4);
  ASSERT_TRUE(server->EndResponse(id).ok());
  Pump(client, *server);
  EXPECT_TRUE(client.responses[id].closed);
  EXPECT_THAT(handler_.closed, ElementsAre(id));
}

TEST_F(Http2SessionTest, TakeOutputIsBoundedPerCall) {
  auto server = NewSession();
  Client client(
      {.settings = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (1u << 31) - 1}}});
  nghttp2_session_set_local_window_size(client.session(), NGHTTP2_FLAG_NONE, 0,
                                        INT32_MAX);
  int32_t id = client.Get("/big");
  Pump(client, *server);
  ASSERT_TRUE(server->SubmitResponse(id, 200, {}, false).ok());
  ASSERT_TRUE(server->AppendResponseData(id, std::string(500000, 'y')).ok());
  ASSERT_TRUE(server->EndResponse(id).ok());
  Buffer out;
  server->TakeOutput(&out, 64 * 1024);
  EXPECT_GE(out.size(), 64u * 1024);
  EXPECT_LT(out.size(), 64u * 1024 + 16384 + 9);
  EXPECT_TRUE(server->WantWrite());
  client.Input(out.View());
  Pump(client, *server);
  EXPECT_EQ(client.responses[id].body.size(), 500000u);
}

TEST_F(Http2SessionTest, TrailersBothWays) {
  auto server = NewSession();
  handler_.auto_consume = true;
  Client client;
  int32_t id =
      client.Post("/grpc", "abc", {{"x-checksum", "42"}}, {{"te", "trailers"}});
  Pump(client, *server);
  ASSERT_TRUE(handler_.reqs[id].ended);
  EXPECT_EQ(handler_.reqs[id].body, "abc");
  EXPECT_EQ(Find(handler_.reqs[id].headers, "te"), "trailers");
  ASSERT_EQ(handler_.reqs[id].trailers.size(), 1u);
  EXPECT_EQ(Find(handler_.reqs[id].trailers, "x-checksum"), "42");

  ASSERT_TRUE(server
                  ->SubmitResponse(
                      id, 200, {{"content-type", "application/grpc"}}, false)
                  .ok());
  ASSERT_TRUE(server->AppendResponseData(id, "reply").ok());
  ASSERT_TRUE(
      server
          ->EndResponse(id, std::vector<http1::Header>{{"Grpc-Status", "0"},
                                                       {"Connection", "close"},
                                                       {"grpc-message", "ok"}})
          .ok());
  Pump(client, *server);
  const Client::Response& resp = client.responses[id];
  EXPECT_EQ(resp.body, "reply");
  EXPECT_THAT(resp.trailers, ElementsAre(Pair("grpc-status", "0"),
                                         Pair("grpc-message", "ok")));
  EXPECT_TRUE(resp.closed);
  EXPECT_EQ(resp.close_code, 0u);
}

TEST_F(Http2SessionTest, InterimResponseBeforeFinal) {
  auto server = NewSession();
  Client client;
  int32_t id = client.Get("/early");
  Pump(client, *server);
  ASSERT_TRUE(server->SubmitInterim(id, 103, {{"Link", "</s.css>"}}).ok());
  ASSERT_TRUE(server->SubmitResponse(id, 200, {}, true).ok());
  Pump(client, *server);
  EXPECT_THAT(client.responses[id].interim, ElementsAre(103));
  EXPECT_EQ(client.responses[id].status, 200);
  EXPECT_TRUE(client.responses[id].closed);
}

TEST_F(Http2SessionTest, ClientResetClosesStream) {
  auto server = NewSession();
  Client client;
  int32_t id = client.Get("/slow");
  Pump(client, *server);
  ASSERT_EQ(handler_.reqs.count(id), 1u);
  nghttp2_submit_rst_stream(client.session(), NGHTTP2_FLAG_NONE, id,
                            NGHTTP2_CANCEL);
  Pump(client, *server);
  EXPECT_THAT(handler_.closed, ElementsAre(id));
  EXPECT_EQ(handler_.reqs[id].close_code, kCancel);
  EXPECT_EQ(counters_.rst_received[kCancel].load(), 1u);
  EXPECT_EQ(server->SubmitResponse(id, 200, {}, true).code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(server->WantRead());
}

TEST_F(Http2SessionTest, CallerResetIsNotCountedAsAbuse) {
  auto server = NewSession();
  Client client;
  int32_t id = client.Get("/");
  Pump(client, *server);
  ASSERT_TRUE(server->SubmitResponse(id, 200, {}, false).ok());
  ASSERT_TRUE(server->AppendResponseData(id, "partial").ok());
  server->ResetStream(id, kInternalError);
  EXPECT_EQ(server->QueuedResponseBytes(id), 0u);
  EXPECT_TRUE(server->AppendResponseData(id, "dropped").ok());
  Pump(client, *server);
  EXPECT_EQ(client.responses[id].rst_code, kInternalError);
  EXPECT_EQ(handler_.reqs[id].close_code, kInternalError);
  EXPECT_EQ(counters_.rst_sent[kInternalError].load(), 1u);
  EXPECT_EQ(counters_.rapid_resets.load(), 0u);
}

TEST_F(Http2SessionTest, UnconsumedBytesOfClosedStreamReturnToConnection) {
  settings_.connection_window_size = 65535;
  auto server = NewSession();
  Client client;
  int32_t first = client.Post("/a", std::string(65535, 'a'));
  Pump(client, *server);
  ASSERT_EQ(handler_.reqs[first].body.size(), 65535u);  // window full
  nghttp2_submit_rst_stream(client.session(), NGHTTP2_FLAG_NONE, first,
                            NGHTTP2_CANCEL);
  Pump(client, *server);
  ASSERT_TRUE(handler_.reqs[first].closed);
  int32_t second = client.Post("/b", std::string(65535, 'b'));
  Pump(client, *server);
  EXPECT_EQ(handler_.reqs[second].body.size(), 65535u);
  EXPECT_TRUE(handler_.reqs[second].ended);
}

TEST_F(Http2SessionTest, EarlyResponseResetsUnfinishedRequestWithNoError) {
  settings_.initial_window_size = 16384;
  auto server = NewSession();
  Client client;
  int32_t id = client.Post("/too-big", std::string(100000, 'z'));
  Pump(client, *server);
  ASSERT_EQ(handler_.reqs.count(id), 1u);
  ASSERT_TRUE(server->SubmitResponse(id, 413, {}, true).ok());
  Pump(client, *server);
  EXPECT_EQ(client.responses[id].status, 413);
  EXPECT_EQ(client.responses[id].rst_code, kNoError);
  EXPECT_TRUE(handler_.reqs[id].closed);
  EXPECT_EQ(handler_.reqs[id].close_code, kNoError);
  EXPECT_EQ(counters_.rapid_resets.load(), 0u);
}

TEST_F(Http2SessionTest, GracefulShutdownFinishesOpenStreamsRefusesNewOnes) {
  auto server = NewSession();
  Client client;
  Pump(client, *server);
  int32_t a = client.Get("/a");
  int32_t b = client.Get("/b");
  std::string in_flight = client.Output();  // sent before the notice

  server->StartGracefulShutdown();
  client.Input(Drain(*server));
  ASSERT_EQ(client.goaways.size(), 1u);
  EXPECT_EQ(client.goaways[0].last_stream_id, INT32_MAX);
  EXPECT_EQ(client.goaways[0].code, kNoError);

  ASSERT_TRUE(server->Receive(in_flight.data(), in_flight.size()).ok());
  EXPECT_EQ(handler_.reqs.size(), 2u);  // both accepted
  Pump(client, *server);                // PING ACK comes back: final GOAWAY
  ASSERT_EQ(client.goaways.size(), 2u);
  EXPECT_EQ(client.goaways[1].last_stream_id, b);
  EXPECT_EQ(client.goaways[1].code, kNoError);
  EXPECT_FALSE(server->Done());

  // A stream opened after the GOAWAY is ignored.
  std::string late =
      Frame(kHeaders, kEndHeaders | kEndStream, b + 2, HeaderBlock(kGetFields));
  ASSERT_TRUE(server->Receive(late.data(), late.size()).ok());
  EXPECT_EQ(handler_.reqs.count(b + 2), 0u);

  ASSERT_TRUE(server->SubmitResponse(a, 200, {}, true).ok());
  Pump(client, *server);
  EXPECT_FALSE(server->Done());
  ASSERT_TRUE(server->SubmitResponse(b, 200, {}, true).ok());
  Pump(client, *server);
  EXPECT_EQ(client.responses[a].status, 200);
  EXPECT_EQ(client.responses[b].status, 200);
  EXPECT_TRUE(server->Done());
  EXPECT_FALSE(server->WantRead());
  EXPECT_EQ(counters_.goaway_sent[kNoError].load(), 2u);
}

TEST_F(Http2SessionTest, GracefulShutdownWhenIdle) {
  auto server = NewSession();
  std::string start = RawStart();
  ASSERT_TRUE(server->Receive(start.data(), start.size()).ok());
  Drain(*server);
  server->StartGracefulShutdown();
  server->StartGracefulShutdown();  // no-op
  std::vector<RawFrame> frames = ParseFrames(Drain(*server));
  // PING (urgent in nghttp2's queue) and the GOAWAY notice.
  ASSERT_EQ(frames.size(), 2u);
  ASSERT_EQ(frames[0].type, kPing);
  EXPECT_EQ(frames[1].type, kGoaway);
  EXPECT_EQ(ReadU32(frames[1].payload), uint32_t{INT32_MAX});
  EXPECT_FALSE(server->Done());
  // The client answers the PING: the final GOAWAY names no stream.
  std::string ack = Frame(kPing, /*ACK*/ 0x1, 0, frames[0].payload);
  ASSERT_TRUE(server->Receive(ack.data(), ack.size()).ok());
  frames = ParseFrames(Drain(*server));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, kGoaway);
  EXPECT_EQ(ReadU32(frames[0].payload), 0u);
  EXPECT_EQ(ReadU32(frames[0].payload.substr(4)), kNoError);
  EXPECT_TRUE(server->Done());
}

TEST_F(Http2SessionTest, UpgradeFromHttp11) {
  nghttp2_settings_entry entries[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 65535}};
  uint8_t payload[64];
  ssize_t n = nghttp2_pack_settings_payload(payload, sizeof(payload), entries,
                                            std::size(entries));
  ASSERT_GT(n, 0);
  std::string header = absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<char*>(payload), n));

  auto created = Http2Session::CreateFromUpgrade(settings_, &handler_, header,
                                                 false, &ctx_);
  ASSERT_TRUE(created.ok()) << created.status();
  Http2Session& server = **created;
  Client client(
      {.manual_window = false, .submit_settings = false, .settings = {}});
  ASSERT_EQ(nghttp2_session_upgrade2(client.session(), payload, n, 0, nullptr),
            0);
  // After "101 Switching Protocols" the server's preface goes first.
  std::string settings = Drain(server);
  std::vector<RawFrame> frames = ParseFrames(settings);
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames[0].type, kSettings);
  client.Input(settings);

  ASSERT_TRUE(server.SubmitResponse(1, 200, {{"x-proto", "h2c"}}, false).ok());
  ASSERT_TRUE(server.AppendResponseData(1, "upgraded").ok());
  ASSERT_TRUE(server.EndResponse(1).ok());
  Pump(client, server);
  ASSERT_TRUE(last_receive_.ok()) << last_receive_;
  EXPECT_EQ(client.responses[1].status, 200);
  EXPECT_EQ(client.responses[1].body, "upgraded");
  EXPECT_TRUE(client.responses[1].closed);
  EXPECT_THAT(handler_.closed, ElementsAre(1));
  EXPECT_EQ(handler_.reqs[1].method, "");  // no OnRequestHeaders for it

  // The connection goes on with ordinary streams.
  int32_t id = client.Get("/next");
  Pump(client, server);
  EXPECT_EQ(id, 3);
  EXPECT_EQ(handler_.reqs[3].path, "/next");
}

TEST_F(Http2SessionTest, UpgradeRejectsBadSettingsHeader) {
  EXPECT_EQ(Http2Session::CreateFromUpgrade(settings_, &handler_, "!!!", false)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  // Valid base64url, but not a multiple of 6 bytes.
  EXPECT_EQ(
      Http2Session::CreateFromUpgrade(settings_, &handler_, "AAMAAA", false)
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(Http2SessionTest, UpgradeRejectsSettingValuesOutOfRange) {
  // Packed by hand: nghttp2_pack_settings_payload refuses bad values.
  auto header_for = [](nghttp2_settings_entry entry) {
    const char payload[6] = {static_cast<char>(entry.settings_id >> 8),
                             static_cast<char>(entry.settings_id),
                             static_cast<char>(entry.value >> 24),
                             static_cast<char>(entry.value >> 16),
                             static_cast<char>(entry.value >> 8),
                             static_cast<char>(entry.value)};
    return absl::WebSafeBase64Escape(absl::string_view(payload, 6));
  };
  std::string push2 = header_for({NGHTTP2_SETTINGS_ENABLE_PUSH, 2});
  std::string tiny_frames = header_for({NGHTTP2_SETTINGS_MAX_FRAME_SIZE, 100});
  std::string fine = header_for({NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 10});
  EXPECT_EQ(Http2Session::CheckUpgradeSettings(push2).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Http2Session::CheckUpgradeSettings(tiny_frames).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Http2Session::CheckUpgradeSettings("!!!").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Http2Session::CheckUpgradeSettings(fine).ok());
  EXPECT_TRUE(Http2Session::CheckUpgradeSettings("").ok());  // no settings
  EXPECT_TRUE(handler_.closed.empty());
}

TEST_F(Http2SessionTest, BadPrefaceFailsTheConnection) {
  auto server = NewSession();
  std::string http1 = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  absl::Status status = server->Receive(http1.data(), http1.size());
  EXPECT_FALSE(status.ok());
  EXPECT_FALSE(server->WantRead());
  EXPECT_EQ(GoawayCode(ParseFrames(Drain(*server))), kProtocolError);
  EXPECT_TRUE(server->Done());
  EXPECT_FALSE(server->Receive("x", 1).ok());
}

// --- Abuse -----------------------------------------------------------------

TEST_F(Http2SessionTest, RapidResetWithinLimitSpreadOverTime) {
  ctx_.limits.max_resets_per_second = 10;
  auto server = NewSession();
  Client client;
  for (int second = 0; second < 3; ++second) {
    std::string burst;
    for (int i = 0; i < 10; ++i) {
      int32_t id = client.Get("/");
      burst += client.Output();
      nghttp2_submit_rst_stream(client.session(), NGHTTP2_FLAG_NONE, id,
                                NGHTTP2_CANCEL);
      burst += client.Output();
    }
    ASSERT_TRUE(server->Receive(burst.data(), burst.size()).ok());
    client.Input(Drain(*server));
    now_ms_ += 1000;
  }
  EXPECT_EQ(handler_.closed.size(), 30u);
  EXPECT_TRUE(client.goaways.empty());
  EXPECT_EQ(counters_.rst_received[kCancel].load(), 30u);
}

TEST_F(Http2SessionTest, RapidResetEndsWithEnhanceYourCalm) {
  ctx_.limits.max_resets_per_second = 10;
  auto server = NewSession();
  Client client;
  std::string burst;
  for (int i = 0; i < 50; ++i) {
    int32_t id = client.Get("/");
    burst += client.Output();
    nghttp2_submit_rst_stream(client.session(), NGHTTP2_FLAG_NONE, id,
                              NGHTTP2_CANCEL);
    burst += client.Output();
  }
  absl::Status status = server->Receive(burst.data(), burst.size());
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_FALSE(server->WantRead());
  EXPECT_EQ(GoawayCode(ParseFrames(Drain(*server))), kEnhanceYourCalm);
  EXPECT_TRUE(server->Done());
  EXPECT_EQ(counters_.rapid_resets.load(), 1u);
  EXPECT_EQ(counters_.goaway_sent[kEnhanceYourCalm].load(), 1u);
  EXPECT_LE(handler_.reqs.size(), 11u);  // stopped at the threshold
  server->Abort();
  for (const auto& [id, req] : handler_.reqs) EXPECT_TRUE(req.closed) << id;
}

TEST_F(Http2SessionTest, PingFloodEndsWithEnhanceYourCalm) {
  ctx_.limits.max_pings_per_second = 20;
  auto server = NewSession();
  std::string ok = RawStart();
  for (int i = 0; i < 20; ++i) ok += Frame(kPing, 0, 0, "12345678");
  ASSERT_TRUE(server->Receive(ok.data(), ok.size()).ok());
  now_ms_ += 1000;  // a new second: 20 more are fine
  std::string flood;
  for (int i = 0; i < 21; ++i) flood += Frame(kPing, 0, 0, "12345678");
  EXPECT_EQ(server->Receive(flood.data(), flood.size()).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(GoawayCode(ParseFrames(Drain(*server))), kEnhanceYourCalm);
  EXPECT_TRUE(server->Done());
  EXPECT_EQ(counters_.ping_floods.load(), 1u);
}

TEST_F(Http2SessionTest, UnreadAcksEndWithEnhanceYourCalm) {
  ctx_.limits.max_pings_per_second = 1000000;
  ctx_.limits.max_outbound_acks = 10;
  auto server = NewSession();
  std::string flood = RawStart();
  for (int i = 0; i < 50; ++i) flood += Frame(kPing, 0, 0, "12345678");
  EXPECT_EQ(server->Receive(flood.data(), flood.size()).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(GoawayCode(ParseFrames(Drain(*server))), kEnhanceYourCalm);
  EXPECT_EQ(counters_.ack_floods.load(), 1u);
}

TEST_F(Http2SessionTest, SettingsFloodEndsWithEnhanceYourCalm) {
  ctx_.limits.max_settings_per_second = 20;
  auto server = NewSession();
  std::string flood = std::string(kPreface);
  for (int i = 0; i < 30; ++i) flood += Frame(kSettings, 0, 0, "");
  EXPECT_EQ(server->Receive(flood.data(), flood.size()).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(GoawayCode(ParseFrames(Drain(*server))), kEnhanceYourCalm);
  EXPECT_EQ(counters_.settings_floods.load(), 1u);
}

// A header block cut into one HEADERS frame and `continuations` more.
std::string SplitHeaderBlock(uint32_t stream, const std::string& block,
                             size_t continuations) {
  size_t pieces = continuations + 1;
  EXPECT_GE(block.size(), pieces);
  std::string out;
  size_t step = block.size() / pieces, pos = 0;
  for (size_t i = 0; i < pieces; ++i) {
    size_t len = i + 1 == pieces ? block.size() - pos : step;
    uint8_t flags = i + 1 == pieces ? kEndHeaders : 0;
    if (i == 0) flags |= kEndStream;
    out += Frame(i == 0 ? kHeaders : kContinuation, flags, stream,
                 block.substr(pos, len));
    pos += len;
  }
  return out;
}

TEST_F(Http2SessionTest, ContinuationsUpToTheLimitAreFine) {
  ctx_.limits.max_continuations = 12;
  auto server = NewSession();
  Client::Fields fields = kGetFields;
  fields.emplace_back("x-pad", std::string(64, 'p'));
  std::string in = RawStart() + SplitHeaderBlock(1, HeaderBlock(fields), 12);
  ASSERT_TRUE(server->Receive(in.data(), in.size()).ok());
  ASSERT_EQ(handler_.reqs.count(1), 1u);
  EXPECT_EQ(handler_.reqs[1].path, "/raw");
  EXPECT_EQ(Find(handler_.reqs[1].headers, "x-pad"), std::string(64, 'p'));
}

TEST_F(Http2SessionTest, ContinuationFloodEndsWithEnhanceYourCalm) {
  ctx_.limits.max_continuations = 4;
  auto server = NewSession();
  Client::Fields fields = kGetFields;
  fields.emplace_back("x-pad", std::string(64, 'p'));
  std::string in = RawStart() + SplitHeaderBlock(1, HeaderBlock(fields), 5);
  EXPECT_EQ(server->Receive(in.data(), in.size()).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(GoawayCode(ParseFrames(Drain(*server))), kEnhanceYourCalm);
  EXPECT_TRUE(server->Done());
  EXPECT_EQ(counters_.continuation_floods.load(), 1u);
  EXPECT_TRUE(handler_.reqs.empty());
}

TEST_F(Http2SessionTest, HeaderListBombIsAnswered431AndConnectionGoesOn) {
  settings_.max_header_list_size = 16384;
  auto server = NewSession();
  Client client;
  // 1000 references to one indexed 1 KB field: ~1 KB on the wire, ~1 MB
  // decoded.
  Client::Fields bomb;
  for (int i = 0; i < 1000; ++i)
    bomb.emplace_back("x-bomb", std::string(1000, 'b'));
  int32_t id = client.Get("/bomb", bomb);
  Pump(client, *server);
  ASSERT_TRUE(last_receive_.ok()) << last_receive_;
  EXPECT_EQ(handler_.reqs.count(id), 0u);  // never reached the app
  EXPECT_EQ(client.responses[id].status, 431);
  EXPECT_EQ(client.responses[id].body, "request header fields too large\n");
  EXPECT_TRUE(client.responses[id].closed);
  EXPECT_EQ(counters_.header_lists_too_large.load(), 1u);

  int32_t next = client.Get("/after", {{"x-small", "1"}});
  Pump(client, *server);
  ASSERT_EQ(handler_.reqs.count(next), 1u);
  ASSERT_TRUE(server->SubmitResponse(next, 200, {}, true).ok());
  Pump(client, *server);
  EXPECT_EQ(client.responses[next].status, 200);
  EXPECT_EQ(server->OpenStreams(), 0u);
}

TEST_F(Http2SessionTest, RepeatedHeaderBombsEndTheConnection) {
  settings_.max_header_list_size = 4096;
  ctx_.limits.max_resets_per_second = 5;
  auto server = NewSession();
  Client client;
  Client::Fields bomb;
  for (int i = 0; i < 100; ++i)
    bomb.emplace_back("x-bomb", std::string(100, 'b'));
  for (int i = 0; i < 10; ++i) client.Get("/bomb", bomb);
  Pump(client, *server);
  EXPECT_EQ(last_receive_.code(), absl::StatusCode::kResourceExhausted);
  ASSERT_FALSE(client.goaways.empty());
  EXPECT_EQ(client.goaways.back().code, kEnhanceYourCalm);
  EXPECT_TRUE(handler_.reqs.empty());
}

TEST_F(Http2SessionTest, TrailersOverTheLimitResetTheStream) {
  settings_.max_header_list_size = 4096;
  auto server = NewSession();
  handler_.auto_consume = true;
  Client client;
  int32_t id =
      client.Post("/t", "body", {{"x-big-trailer", std::string(5000, 't')}});
  Pump(client, *server);
  ASSERT_EQ(handler_.reqs.count(id), 1u);
  EXPECT_FALSE(handler_.reqs[id].ended);
  EXPECT_TRUE(handler_.reqs[id].closed);
  EXPECT_EQ(handler_.reqs[id].close_code, kEnhanceYourCalm);
  EXPECT_EQ(client.responses[id].rst_code, kEnhanceYourCalm);
}

TEST_F(Http2SessionTest, ConnectionWindowOverflowIsFlowControlError) {
  auto server = NewSession();
  std::string in = RawStart() + Frame(kWindowUpdate, 0, 0, U32((1u << 31) - 1));
  server->Receive(in.data(), in.size()).IgnoreError();
  EXPECT_EQ(GoawayCode(ParseFrames(Drain(*server))), kFlowControlError);
  EXPECT_TRUE(server->Done());
  EXPECT_EQ(counters_.goaway_sent[kFlowControlError].load(), 1u);
}

TEST_F(Http2SessionTest, StreamWindowOverflowResetsTheStream) {
  auto server = NewSession();
  std::string in = RawStart() +
                   Frame(kHeaders, kEndHeaders, 1, HeaderBlock(kGetFields)) +
                   Frame(kWindowUpdate, 0, 1, U32((1u << 31) - 1));
  ASSERT_TRUE(server->Receive(in.data(), in.size()).ok());
  std::vector<RawFrame> frames = ParseFrames(Drain(*server));
  EXPECT_EQ(RstCode(frames, 1), kFlowControlError);
  EXPECT_EQ(GoawayCode(frames), std::nullopt);
  EXPECT_TRUE(handler_.reqs[1].closed);
  EXPECT_EQ(handler_.reqs[1].close_code, kFlowControlError);
  EXPECT_EQ(counters_.rst_sent[kFlowControlError].load(), 1u);
  EXPECT_TRUE(server->WantRead());
}

TEST_F(Http2SessionTest, MalformedRequestIsResetWithProtocolError) {
  auto server = NewSession();
  Client::Fields fields = kGetFields;
  fields.emplace_back("connection", "keep-alive");  // forbidden in HTTP/2
  std::string in = RawStart() + Frame(kHeaders, kEndHeaders | kEndStream, 1,
                                      HeaderBlock(fields));
  ASSERT_TRUE(server->Receive(in.data(), in.size()).ok());
  EXPECT_EQ(RstCode(ParseFrames(Drain(*server)), 1), kProtocolError);
  EXPECT_TRUE(handler_.reqs.empty());
  EXPECT_EQ(server->OpenStreams(), 0u);
}

TEST_F(Http2SessionTest, AbortClosesOpenStreams) {
  auto server = NewSession();
  Client client;
  int32_t a = client.Get("/a");
  int32_t b = client.Post("/b", "x");
  Pump(client, *server);
  server->Abort();
  EXPECT_THAT(handler_.closed, ElementsAre(a, b));
  EXPECT_EQ(handler_.reqs[a].close_code, kCancel);
  EXPECT_TRUE(server->Done());
  EXPECT_FALSE(server->WantRead());
  EXPECT_FALSE(server->Receive("x", 1).ok());
  EXPECT_EQ(server->OpenStreams(), 0u);
}

}  // namespace
}  // namespace forkd::http2

// H2ClientSession against forkd's own HTTP/2 server session (Http2Session),
// bytes passed in memory: no sockets, no threads.
#include "server/upstream/h2_client_session.h"

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "server/http2/http2_session.h"

namespace forkd::upstream {
namespace {

std::string Find(const std::vector<http1::Header>& headers,
                 std::string_view name) {
  for (const auto& h : headers) {
    if (h.name == name) return h.value;
  }
  return "<none>";
}

// The app side: records requests, answers on demand.
struct ServerHandler : http2::Http2Session::Handler {
  struct Req {
    std::string method, path, authority;
    std::vector<http1::Header> headers, trailers;
    std::string body;
    bool ended = false;
    bool closed = false;
    uint32_t close_code = 0;
  };
  void OnRequestHeaders(int32_t id, std::string_view method, std::string_view,
                        std::string_view authority, std::string_view path,
                        std::vector<http1::Header> headers,
                        bool end_stream) override {
    Req& r = reqs[id];
    r.method = method;
    r.path = path;
    r.authority = authority;
    r.headers = std::move(headers);
    r.ended = end_stream;
  }
  void OnRequestData(int32_t id, std::string_view data) override {
    reqs[id].body.append(data);
    if (auto_consume) session->ConsumeRequestData(id, data.size());
  }
  void OnRequestEnd(int32_t id, std::vector<http1::Header> trailers) override {
    reqs[id].ended = true;
    reqs[id].trailers = std::move(trailers);
  }
  void OnStreamClosed(int32_t id, uint32_t code) override {
    reqs[id].closed = true;
    reqs[id].close_code = code;
  }
  std::map<int32_t, Req> reqs;
  http2::Http2Session* session = nullptr;
  bool auto_consume = true;
};

// forkd's side: records responses.
struct ClientHandler : H2ClientSession::Handler {
  struct Resp {
    int status = 0;
    std::vector<http1::Header> headers, trailers;
    std::string body;
    bool head_end_stream = false;
    bool ended = false;
    bool closed = false;
    uint32_t close_code = 0;
    size_t sent = 0;
  };
  void OnResponseHeaders(int32_t id, int status,
                         std::vector<http1::Header> headers,
                         bool end_stream) override {
    Resp& r = resps[id];
    r.status = status;
    r.headers = std::move(headers);
    r.head_end_stream = end_stream;
  }
  void OnResponseData(int32_t id, std::string_view data) override {
    resps[id].body.append(data);
    if (auto_consume) session->ConsumeResponseData(id, data.size());
  }
  void OnResponseEnd(int32_t id, std::vector<http1::Header> trailers) override {
    resps[id].ended = true;
    resps[id].trailers = std::move(trailers);
  }
  void OnRequestDataSent(int32_t id, size_t n) override { resps[id].sent += n; }
  void OnStreamClosed(int32_t id, uint32_t code) override {
    EXPECT_FALSE(resps[id].closed) << "closed twice: " << id;
    resps[id].closed = true;
    resps[id].close_code = code;
  }
  std::map<int32_t, Resp> resps;
  H2ClientSession* session = nullptr;
  bool auto_consume = true;
};

class H2ClientSessionTest : public ::testing::Test {
 protected:
  void SetUp() override { Make({}); }

  void Make(http2::Http2Settings server_settings,
            H2ClientSession::Settings client_settings = {}) {
    auto s = http2::Http2Session::Create(server_settings, &server_);
    ASSERT_TRUE(s.ok()) << s.status();
    app_ = std::move(*s);
    server_.session = app_.get();
    auto c = H2ClientSession::Create(client_settings, &client_);
    ASSERT_TRUE(c.ok()) << c.status();
    fk_ = std::move(*c);
    client_.session = fk_.get();
  }

  // Moves bytes both ways until neither side has anything to say.
  void Pump() {
    for (int i = 0; i < 1000; ++i) {
      Buffer a, b;
      fk_->TakeOutput(&a);
      if (!a.empty()) {
        ASSERT_TRUE(app_->Receive(a.View().data(), a.size()).ok());
      }
      app_->TakeOutput(&b);
      if (!b.empty()) {
        ASSERT_TRUE(fk_->Receive(b.View().data(), b.size()).ok());
      }
      if (a.empty() && b.empty()) return;
    }
    FAIL() << "pump did not settle";
  }

  int32_t Open(bool end_stream, std::vector<http1::Header> headers = {}) {
    auto id = fk_->SubmitRequest("POST", "http", "app.local", "/svc/Method",
                                 headers, end_stream);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : -1;
  }

  ServerHandler server_;
  ClientHandler client_;
  std::unique_ptr<http2::Http2Session> app_;
  std::unique_ptr<H2ClientSession> fk_;
};

TEST_F(H2ClientSessionTest,
       RequestHeadersKeepTeTrailersAndDropConnectionFields) {
  int32_t id = Open(true, {{"Content-Type", "application/grpc"},
                           {"te", "trailers"},
                           {"connection", "keep-alive"},
                           {"keep-alive", "5"},
                           {"host", "ignored"},
                           {"x-request-id", "abc"}});
  Pump();
  ASSERT_EQ(server_.reqs.count(id), 1u);
  const auto& r = server_.reqs[id];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/svc/Method");
  EXPECT_EQ(r.authority, "app.local");
  EXPECT_EQ(Find(r.headers, "content-type"), "application/grpc");
  EXPECT_EQ(Find(r.headers, "te"), "trailers");
  EXPECT_EQ(Find(r.headers, "x-request-id"), "abc");
  EXPECT_EQ(Find(r.headers, "connection"), "<none>");
  EXPECT_EQ(Find(r.headers, "keep-alive"), "<none>");
  EXPECT_TRUE(r.ended);
}

TEST_F(H2ClientSessionTest, ResponseWithBodyAndTrailers) {
  int32_t id = Open(true);
  Pump();
  ASSERT_TRUE(app_->SubmitResponse(
                      id, 200, {{"content-type", "application/grpc"}}, false)
                  .ok());
  ASSERT_TRUE(app_->AppendResponseData(id, "hello").ok());
  ASSERT_TRUE(app_->EndResponse(
                      id, std::vector<http1::Header>{{"grpc-status", "9"},
                                                     {"grpc-message", "nope"}})
                  .ok());
  Pump();
  const auto& r = client_.resps[id];
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Find(r.headers, "content-type"), "application/grpc");
  EXPECT_FALSE(r.head_end_stream);
  EXPECT_EQ(r.body, "hello");
  EXPECT_TRUE(r.ended);
  EXPECT_EQ(Find(r.trailers, "grpc-status"), "9");
  EXPECT_EQ(Find(r.trailers, "grpc-message"), "nope");
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.close_code, 0u);
  EXPECT_EQ(fk_->OpenStreams(), 0u);
}

TEST_F(H2ClientSessionTest, TrailersOnlyResponseEndsWithTheHead) {
  int32_t id = Open(true);
  Pump();
  ASSERT_TRUE(app_->SubmitResponse(id, 200, {{"grpc-status", "5"}}, true).ok());
  Pump();
  const auto& r = client_.resps[id];
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.head_end_stream);
  EXPECT_EQ(Find(r.headers, "grpc-status"), "5");
  EXPECT_FALSE(r.ended);  // no OnResponseEnd after an end_stream head
  EXPECT_TRUE(r.closed);
}

TEST_F(H2ClientSessionTest, StreamedRequestBodyAndTrailers) {
  int32_t id = Open(false);
  ASSERT_TRUE(fk_->AppendRequestData(id, "part1,").ok());
  Pump();
  EXPECT_EQ(server_.reqs[id].body, "part1,");
  EXPECT_FALSE(server_.reqs[id].ended);
  EXPECT_EQ(client_.resps[id].sent, 6u);
  ASSERT_TRUE(fk_->AppendRequestData(id, "part2").ok());
  ASSERT_TRUE(fk_->EndRequest(id, {{"x-checksum", "42"}}).ok());
  Pump();
  EXPECT_EQ(server_.reqs[id].body, "part1,part2");
  EXPECT_TRUE(server_.reqs[id].ended);
  EXPECT_EQ(Find(server_.reqs[id].trailers, "x-checksum"), "42");
  EXPECT_EQ(client_.resps[id].sent, 11u);
  EXPECT_FALSE(fk_->AppendRequestData(id, "late").ok());
}

TEST_F(H2ClientSessionTest, RequestDataWaitsForTheAppsWindow) {
  server_.auto_consume = false;  // the app does not read
  int32_t id = Open(false);
  ASSERT_TRUE(fk_->AppendRequestData(id, std::string(200000, 'a')).ok());
  Pump();
  // The app's default window is 65535: the rest waits here.
  EXPECT_EQ(server_.reqs[id].body.size(), 65535u);
  EXPECT_EQ(client_.resps[id].sent, 65535u);
  EXPECT_EQ(fk_->QueuedRequestBytes(id), 200000u - 65535u);
  app_->ConsumeRequestData(id, 65535);
  Pump();
  EXPECT_GT(server_.reqs[id].body.size(), 65535u);
}

TEST_F(H2ClientSessionTest, ResponseDataWaitsUntilConsumed) {
  Make({}, {.initial_window_size = 65535, .connection_window_size = 1 << 20});
  client_.auto_consume = false;
  int32_t id = Open(true);
  Pump();
  ASSERT_TRUE(app_->SubmitResponse(id, 200, {}, false).ok());
  ASSERT_TRUE(app_->AppendResponseData(id, std::string(300000, 'b')).ok());
  ASSERT_TRUE(app_->EndResponse(id).ok());
  Pump();
  EXPECT_EQ(client_.resps[id].body.size(), 65535u);  // one window, no more
  EXPECT_GT(app_->QueuedResponseBytes(id), 0u);
  // Passing bytes on reopens the window: the rest flows.
  for (int i = 0; i < 20 && !client_.resps[id].ended; ++i) {
    fk_->ConsumeResponseData(id, client_.resps[id].body.size());
    Pump();
  }
  EXPECT_EQ(client_.resps[id].body.size(), 300000u);
  EXPECT_TRUE(client_.resps[id].ended);
}

TEST_F(H2ClientSessionTest, AppResetReachesTheHandler) {
  int32_t id = Open(false);
  Pump();
  app_->ResetStream(id, http2::kCancel);
  Pump();
  EXPECT_TRUE(client_.resps[id].closed);
  EXPECT_EQ(client_.resps[id].close_code, http2::kCancel);
  EXPECT_EQ(fk_->OpenStreams(), 0u);
}

TEST_F(H2ClientSessionTest, OurResetReachesTheApp) {
  int32_t id = Open(false);
  Pump();
  fk_->ResetStream(id, http2::kCancel);
  Pump();
  EXPECT_TRUE(server_.reqs[id].closed);
  EXPECT_EQ(server_.reqs[id].close_code, http2::kCancel);
  EXPECT_TRUE(client_.resps[id].closed);
}

TEST_F(H2ClientSessionTest, AppsMaxConcurrentStreamsBoundsNewStreams) {
  http2::Http2Settings s;
  s.max_concurrent_streams = 2;
  Make(s);
  Pump();  // SETTINGS exchanged
  EXPECT_EQ(fk_->RemoteMaxConcurrentStreams(), 2u);
  EXPECT_TRUE(fk_->CanOpenStream());
  int32_t a = Open(true);
  Open(true);
  EXPECT_FALSE(fk_->CanOpenStream());
  Pump();
  ASSERT_TRUE(app_->SubmitResponse(a, 204, {}, true).ok());
  Pump();
  EXPECT_TRUE(fk_->CanOpenStream());
}

TEST_F(H2ClientSessionTest, GoawayStopsNewStreamsAndOpenOnesFinish) {
  int32_t id = Open(true);
  Pump();
  app_->StartGracefulShutdown();
  Pump();
  EXPECT_TRUE(fk_->going_away());
  EXPECT_FALSE(fk_->CanOpenStream());
  EXPECT_FALSE(fk_->SubmitRequest("GET", "http", "a", "/", {}, true).ok());
  EXPECT_FALSE(fk_->Done());  // the open stream still runs
  ASSERT_TRUE(app_->SubmitResponse(id, 200, {}, false).ok());
  ASSERT_TRUE(app_->AppendResponseData(id, "late but whole").ok());
  ASSERT_TRUE(app_->EndResponse(id).ok());
  Pump();
  EXPECT_EQ(client_.resps[id].body, "late but whole");
  EXPECT_TRUE(client_.resps[id].closed);
  EXPECT_EQ(client_.resps[id].close_code, 0u);
  EXPECT_TRUE(fk_->Done());
}

TEST_F(H2ClientSessionTest, GarbageFromTheAppFailsTheSession) {
  Open(true);
  Buffer out;
  fk_->TakeOutput(&out);
  std::string junk = "HTTP/1.1 200 OK\r\n\r\n";
  fk_->Receive(junk.data(), junk.size()).IgnoreError();
  fk_->TakeOutput(&out);  // nghttp2's GOAWAY(PROTOCOL_ERROR)
  EXPECT_TRUE(fk_->Done());
  EXPECT_FALSE(fk_->Receive("x", 1).ok());
  fk_->Abort(http2::kInternalError);
  EXPECT_TRUE(client_.resps.begin()->second.closed);
  EXPECT_EQ(client_.resps.begin()->second.close_code,
            static_cast<uint32_t>(http2::kInternalError));
}

}  // namespace
}  // namespace forkd::upstream

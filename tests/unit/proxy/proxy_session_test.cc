// ProxySession against an in-memory client and an in-memory app: the
// HTTP/1.1 request path's rules without sockets, threads or sleeps.
#include "server/proxy/proxy_session.h"

#include <errno.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "server/common/clock.h"
#include "server/common/readiness.h"
#include "server/proxy/app_queue.h"
#include "server/proxy/app_transport.h"
#include "server/proxy/shared_limit.h"
#include "server/scoreboard/scoreboard.h"
#include "server/transport/client_transport.h"
#include "server/upstream/app_router.h"
#include "server/upstream/upstream_pool.h"

namespace forkd::proxy {
namespace {

class FakeClock final : public Clock {
 public:
  int64_t NowNs() const override { return now_ns; }
  void AdvanceMs(int64_t ms) { now_ns += ms * 1000000; }
  int64_t now_ns = 1000LL * 1000000;
};

// The client's side of the connection, owned by the test; the transport
// the session holds reads and writes it.
struct ClientEnd {
  std::string to_proxy;  // bytes the client sent, not yet read
  bool eof = false;      // the client shut down its side
  std::string received;  // everything the session wrote
  bool closed = false;   // the session let go of the transport
};

class FakeClientTransport final : public transport::ClientTransport {
 public:
  explicit FakeClientTransport(ClientEnd* end) : end_(end) {}
  ~FakeClientTransport() override { end_->closed = true; }
  ssize_t Read(char* buf, size_t len) override {
    if (end_->to_proxy.empty()) {
      if (end_->eof) return 0;
      errno = EAGAIN;
      return -1;
    }
    size_t n = std::min(len, end_->to_proxy.size());
    std::memcpy(buf, end_->to_proxy.data(), n);
    end_->to_proxy.erase(0, n);
    return static_cast<ssize_t>(n);
  }
  ssize_t Write(const char* data, size_t len) override {
    end_->received.append(data, len);
    return static_cast<ssize_t>(len);
  }
  void ShutdownWrite() override {}
  // No socket: the session closes at once instead of lingering.
  int fd() const override { return -1; }

 private:
  ClientEnd* end_;
};

// An HTTP/2 stream as the session sees it: the response arrives parsed,
// each call recorded as one line.
class RecordingSink final : public ResponseSink {
 public:
  void OnInterim(int status,
                 const std::vector<http1::Header>& fields) override {
    events.push_back("interim " + std::to_string(status) + Fields(fields));
  }
  void OnResponseHead(int status, const std::vector<http1::Header>& fields,
                      bool end_stream) override {
    events.push_back("head " + std::to_string(status) + Fields(fields) +
                     (end_stream ? " END" : ""));
  }
  void OnResponseBody(std::string_view data) override {
    events.push_back("body " + std::string(data));
    queued += data.size();
  }
  void OnResponseEnd(const std::vector<http1::Header>& trailers) override {
    events.push_back("end" + Fields(trailers));
  }
  bool ResponseBlocked() override { return queued >= limit; }
  void OnExchangeClosed() override { closed = true; }

  static std::string Fields(const std::vector<http1::Header>& fields) {
    std::string s;
    for (const http1::Header& f : fields) s += " " + f.name + "=" + f.value;
    return s;
  }

  std::vector<std::string> events;
  size_t queued = 0;  // body bytes taken
  size_t limit = SIZE_MAX;
  bool closed = false;
};

class FakeStreamTransport final : public transport::ClientTransport {
 public:
  explicit FakeStreamTransport(ClientEnd* end) : bytes_(end) {}
  ssize_t Read(char* buf, size_t len) override { return bytes_.Read(buf, len); }
  ssize_t Write(const char*, size_t len) override {
    ADD_FAILURE() << "a stream's response must go to its sink, not as bytes";
    return static_cast<ssize_t>(len);
  }
  void ShutdownWrite() override {}
  int fd() const override { return -1; }
  bool is_http2_stream() const override { return true; }

 private:
  FakeClientTransport bytes_;
};

// An HTTP/2 stream's request body as the session takes it: DATA payload
// held until consumed, END_STREAM and trailers.
class FakeSource final : public RequestSource {
 public:
  std::string_view PendingBody() override { return pending; }
  void ConsumeBody(size_t n) override {
    pending.erase(0, n);
    consumed += n;
  }
  bool BodyComplete() const override { return ended; }
  std::vector<http1::Header> TakeTrailers() override {
    return std::move(trailers);
  }

  std::string pending;
  size_t consumed = 0;  // what the window reopened by
  bool ended = false;
  std::vector<http1::Header> trailers;
};

// One connection as the app sees it.
struct AppEnd {
  std::string received;  // request bytes the app got
  std::string to_proxy;  // response bytes the app sends next
  bool eof = false;      // the app closes after to_proxy
  // Writes fail with ECONNRESET: the app closed before any byte arrived.
  bool reset_writes = false;
  bool released = false;  // handed back for reuse
  bool discarded = false;
};

class FakeApp final : public AppTransport {
 public:
  std::unique_ptr<upstream::Connection> TakeIdle() override {
    if (idle_.empty()) return nullptr;
    std::unique_ptr<upstream::Connection> c = std::move(idle_.back());
    idle_.pop_back();
    c->reused = true;
    c->writable = true;
    c->readable = false;
    ends_[c.get()]->released = false;
    return c;
  }
  upstream::ConnectResult Connect(std::unique_ptr<upstream::Connection>* out,
                                  int* err) override {
    ++connects;
    if (refuse) {
      *err = ECONNREFUSED;
      return upstream::ConnectResult::kFailed;
    }
    auto c = std::make_unique<upstream::Connection>();
    c->writable = true;
    auto end = std::make_unique<AppEnd>();
    ends_[c.get()] = end.get();
    all.push_back(std::move(end));
    *out = std::move(c);
    return upstream::ConnectResult::kConnected;
  }
  int ConnectError(upstream::Connection&) override { return 0; }
  ssize_t Read(upstream::Connection& c, char* buf, size_t len) override {
    AppEnd* end = ends_[&c];
    if (end->to_proxy.empty()) {
      if (end->eof) return 0;
      errno = EAGAIN;
      return -1;
    }
    size_t n = std::min(len, end->to_proxy.size());
    std::memcpy(buf, end->to_proxy.data(), n);
    end->to_proxy.erase(0, n);
    return static_cast<ssize_t>(n);
  }
  ssize_t Write(upstream::Connection& c, const char* data,
                size_t len) override {
    AppEnd* end = ends_[&c];
    if (stall_writes) {
      errno = EAGAIN;
      return -1;
    }
    if (end->reset_writes) {
      errno = ECONNRESET;
      return -1;
    }
    end->received.append(data, len);
    return static_cast<ssize_t>(len);
  }
  void Release(std::unique_ptr<upstream::Connection> c) override {
    ends_[c.get()]->released = true;
    idle_.push_back(std::move(c));
  }
  void Discard(std::unique_ptr<upstream::Connection> c) override {
    ends_[c.get()]->discarded = true;
    ends_.erase(c.get());
  }
  const std::string& display() const override { return display_; }

  // Makes the first idle connection one the app has closed meanwhile
  // (the request's bytes may or may not reach it first).
  AppEnd* idle_end(size_t i) { return ends_[idle_[i].get()]; }
  size_t idle_count() const { return idle_.size(); }

  int connects = 0;
  bool refuse = false;
  bool stall_writes = false;  // the app takes no request bytes for now
  std::vector<std::unique_ptr<AppEnd>> all;  // in connect order

 private:
  std::string display_ = "unix:/fake/app.sock";
  std::vector<std::unique_ptr<upstream::Connection>> idle_;
  std::map<upstream::Connection*, AppEnd*> ends_;
};

class ProxySessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto board = scoreboard::Scoreboard::Create(1);
    ASSERT_TRUE(board.ok()) << board.status();
    board_ = std::move(*board);
    ctx_.slot = &board_->slot(0);
    ctx_.app = &app_;
    ctx_.clock = &clock_;
    ctx_.request_buffer = 64;
    ctx_.upstream_timeout_ms = 5000;
  }

  void Open() {
    session_ = std::make_unique<ProxySession>(
        &ctx_, std::make_unique<FakeClientTransport>(&client_), "10.0.0.1",
        clock_.NowMs());
  }
  // An HTTP/2 stream's exchange: the response goes to sink_.
  void OpenStream() {
    session_ = std::make_unique<ProxySession>(
        &ctx_, std::make_unique<FakeStreamTransport>(&client_), "10.0.0.1",
        clock_.NowMs(), &sink_);
  }
  void ClientSends(std::string_view bytes) {
    client_.to_proxy.append(bytes);
    session_->OnClientEvents(kReadyIn);
  }
  // The app's connection number `i` (in connect order) sends `bytes`.
  void AppSends(size_t i, std::string_view bytes, bool eof = false) {
    ASSERT_LT(i, app_.all.size());
    app_.all[i]->to_proxy.append(bytes);
    app_.all[i]->eof = eof;
    // As epoll reports an app that sent its last bytes and closed.
    session_->OnUpstreamEvents(eof ? kReadyIn | kReadyRdHup : kReadyIn);
  }
  int64_t in_flight() const {
    return ctx_.slot->in_flight.load(std::memory_order_relaxed);
  }

  FakeClock clock_;
  FakeApp app_;
  ClientEnd client_;
  RecordingSink sink_;
  std::unique_ptr<scoreboard::Scoreboard> board_;
  SessionContext ctx_;
  std::unique_ptr<ProxySession> session_;
};

constexpr std::string_view kOk =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

TEST_F(ProxySessionTest, ForwardsARequestAndItsAnswer) {
  Open();
  ClientSends("GET /a?b=1 HTTP/1.1\r\nHost: example\r\nX-Test: yes\r\n\r\n");
  ASSERT_EQ(app_.all.size(), 1u);
  const std::string& sent = app_.all[0]->received;
  EXPECT_TRUE(sent.starts_with("GET /a?b=1 HTTP/1.1\r\n")) << sent;
  EXPECT_NE(sent.find("X-Test: yes\r\n"), std::string::npos) << sent;
  EXPECT_NE(sent.find("X-Forwarded-For: 10.0.0.1\r\n"), std::string::npos)
      << sent;
  EXPECT_EQ(in_flight(), 1);
  AppSends(0, kOk);
  EXPECT_TRUE(client_.received.starts_with("HTTP/1.1 200 OK\r\n"))
      << client_.received;
  EXPECT_TRUE(client_.received.ends_with("\r\n\r\nok")) << client_.received;
  EXPECT_EQ(in_flight(), 0);
  EXPECT_FALSE(client_.closed);
}

TEST_F(ProxySessionTest, KeepAliveReusesTheAppConnection) {
  Open();
  ClientSends("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n");
  AppSends(0, kOk);
  ASSERT_TRUE(app_.all[0]->released);
  EXPECT_EQ(app_.idle_count(), 1u);
  ClientSends("GET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(app_.connects, 1);  // the pooled connection took it
  EXPECT_NE(app_.all[0]->received.find("GET /2 HTTP/1.1\r\n"),
            std::string::npos);
  AppSends(0, kOk);
  size_t first = client_.received.find("HTTP/1.1 200 OK");
  ASSERT_NE(first, std::string::npos);
  EXPECT_NE(client_.received.find("HTTP/1.1 200 OK", first + 1),
            std::string::npos)
      << client_.received;
  EXPECT_FALSE(client_.closed);
}

TEST_F(ProxySessionTest, AnAppThatClosesTheConnectionIsNotReused) {
  Open();
  ClientSends("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n");
  AppSends(0,
           "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2"
           "\r\n\r\nok");
  EXPECT_TRUE(app_.all[0]->discarded);
  ClientSends("GET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(app_.connects, 2);
}

// A pooled connection the app closed while idle: an idempotent request is
// sent again once on a fresh connection.
TEST_F(ProxySessionTest, RetriesAnIdempotentRequestOnAFreshConnection) {
  Open();
  ClientSends("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n");
  AppSends(0, kOk);
  app_.idle_end(0)->eof = true;  // closed while idle; the write still lands
  ClientSends("GET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  session_->OnUpstreamEvents(kReadyIn);
  ASSERT_EQ(app_.connects, 2);
  EXPECT_TRUE(app_.all[1]->received.starts_with("GET /2 HTTP/1.1\r\n"));
  AppSends(1, kOk);
  EXPECT_EQ(client_.received.find("502"), std::string::npos)
      << client_.received;
  EXPECT_TRUE(client_.received.ends_with("ok")) << client_.received;
}

// The same for a POST whose bytes reached the app: it may have acted on
// them, so it is not delivered twice; the client gets 502.
TEST_F(ProxySessionTest, DoesNotRetryANonIdempotentRequestTheAppReceived) {
  Open();
  ClientSends("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n");
  AppSends(0, kOk);
  app_.idle_end(0)->eof = true;
  ClientSends("POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc");
  session_->OnUpstreamEvents(kReadyIn);
  EXPECT_EQ(app_.connects, 1);
  EXPECT_NE(app_.all[0]->received.find("POST /2"), std::string::npos);
  EXPECT_NE(client_.received.find("HTTP/1.1 502 "), std::string::npos)
      << client_.received;
}

// A POST that never reached the app (the write failed) is safe to send
// again.
TEST_F(ProxySessionTest, RetriesANonIdempotentRequestThatWasNeverSent) {
  Open();
  ClientSends("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n");
  AppSends(0, kOk);
  app_.idle_end(0)->eof = true;
  app_.idle_end(0)->reset_writes = true;
  ClientSends("POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc");
  session_->OnUpstreamEvents(kReadyIn);
  ASSERT_EQ(app_.connects, 2);
  EXPECT_TRUE(app_.all[1]->received.starts_with("POST /2 HTTP/1.1\r\n"));
  EXPECT_TRUE(app_.all[1]->received.ends_with("\r\n\r\nabc"));
  AppSends(1, kOk);
  EXPECT_EQ(client_.received.find("502"), std::string::npos)
      << client_.received;
}

// One replay only: a fresh connection that fails too answers 502.
TEST_F(ProxySessionTest, RetriesOnlyOnce) {
  Open();
  ClientSends("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n");
  AppSends(0, kOk);
  app_.idle_end(0)->eof = true;
  ClientSends("GET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  session_->OnUpstreamEvents(kReadyIn);
  ASSERT_EQ(app_.connects, 2);
  AppSends(1, "", /*eof=*/true);
  EXPECT_EQ(app_.connects, 2);
  EXPECT_NE(client_.received.find("HTTP/1.1 502 "), std::string::npos)
      << client_.received;
}

TEST_F(ProxySessionTest, ExpectContinueIsAnsweredBeforeTheBody) {
  Open();
  ClientSends(
      "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
      "Expect: 100-continue\r\n\r\n");
  EXPECT_EQ(client_.received, "HTTP/1.1 100 Continue\r\n\r\n");
  EXPECT_TRUE(app_.all.empty());  // a small body is buffered first
  ClientSends("body");
  ASSERT_EQ(app_.all.size(), 1u);
  EXPECT_EQ(app_.all[0]->received.find("100-continue"), std::string::npos)
      << "forkd answered the expectation; the app must not again";
  EXPECT_TRUE(app_.all[0]->received.ends_with("\r\n\r\nbody"));
  AppSends(0, kOk);
  EXPECT_TRUE(
      client_.received.starts_with("HTTP/1.1 100 Continue\r\n\r\n"
                                   "HTTP/1.1 200 OK\r\n"))
      << client_.received;
}

TEST_F(ProxySessionTest, HTTP10ClientGetsNo100Continue) {
  Open();
  ClientSends(
      "POST /up HTTP/1.0\r\nContent-Length: 4\r\n"
      "Expect: 100-continue\r\n\r\n");
  EXPECT_EQ(client_.received, "");
}

// A body within --request-buffer (64 here) goes to the app whole, with a
// Content-Length even if the client chunked it.
TEST_F(ProxySessionTest, BuffersABodyWithinTheRequestBuffer) {
  Open();
  ClientSends(
      "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n");
  EXPECT_TRUE(app_.all.empty());
  ClientSends("6\r\n world\r\n0\r\n\r\n");
  ASSERT_EQ(app_.all.size(), 1u);
  const std::string& sent = app_.all[0]->received;
  EXPECT_NE(sent.find("Content-Length: 11\r\n"), std::string::npos) << sent;
  EXPECT_EQ(sent.find("chunked"), std::string::npos) << sent;
  EXPECT_TRUE(sent.ends_with("\r\n\r\nhello world")) << sent;
}

// A body past --request-buffer streams: the app gets the head and the
// first bytes before the client sent the rest.
TEST_F(ProxySessionTest, StreamsABodyPastTheRequestBuffer) {
  Open();
  std::string first(80, 'a');
  ClientSends("POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" +
              first);
  ASSERT_EQ(app_.all.size(), 1u);
  const std::string& sent = app_.all[0]->received;
  EXPECT_NE(sent.find("Content-Length: 100\r\n"), std::string::npos) << sent;
  EXPECT_TRUE(sent.ends_with(first)) << sent;
  ClientSends(std::string(20, 'b'));
  EXPECT_TRUE(app_.all[0]->received.ends_with(first + std::string(20, 'b')));
  AppSends(0, kOk);
  EXPECT_TRUE(client_.received.starts_with("HTTP/1.1 200 OK\r\n"));
}

TEST_F(ProxySessionTest, ChunkedBodyPastTheRequestBufferStreamsChunked) {
  Open();
  std::string big(70, 'x');
  ClientSends(
      "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "46\r\n" +
      big + "\r\n");
  ASSERT_EQ(app_.all.size(), 1u);
  EXPECT_NE(app_.all[0]->received.find("Transfer-Encoding: chunked\r\n"),
            std::string::npos);
  ClientSends("0\r\n\r\n");
  EXPECT_TRUE(app_.all[0]->received.ends_with("0\r\n\r\n"));
}

TEST_F(ProxySessionTest, AnAppThatRefusesGets502) {
  app_.refuse = true;
  Open();
  ClientSends("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_TRUE(client_.received.starts_with("HTTP/1.1 502 "))
      << client_.received;
  EXPECT_EQ(in_flight(), 0);
}

// App mode: two app processes still marked ready whose sockets are gone
// (dead, not yet reaped by the master), so every connect fails: nothing
// reached the app, so the request gives the process back and asks again a
// few times before it answers 502.
TEST_F(ProxySessionTest, AppModeRetriesARefusedConnectBeforeA502) {
  auto apps = scoreboard::Scoreboard::Create(1, 2);
  ASSERT_TRUE(apps.ok()) << apps.status();
  for (uint32_t i = 0; i < 2; ++i) {
    scoreboard::AppSlot& s = (*apps)->app_slot(i);
    std::snprintf(s.socket_path, sizeof(s.socket_path),
                  "/nonexistent-forkd-test/app-%u.sock", i);
    s.cap.store(1);
    s.state.store(static_cast<uint32_t>(scoreboard::AppState::kReady));
  }
  upstream::AppRouter router(apps->get());
  upstream::AppPools pools(&router, 4);
  AppQueue queue(&router, /*max_wait_ms=*/0, AppQueueMetrics{});
  ctx_.app_queue = &queue;
  ctx_.app_pools = &pools;
  auto app_in_flight = [&] {
    return (*apps)->app_slot(0).in_flight.load() +
           (*apps)->app_slot(1).in_flight.load();
  };
  Open();
  ClientSends("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  for (int retry = 0; retry < 5; ++retry) {
    EXPECT_EQ(client_.received, "") << "retry " << retry;
    EXPECT_EQ(app_in_flight(), 0u);  // given back while it waits
    clock_.AdvanceMs(20);
    session_->OnTimeout(clock_.NowMs());
  }
  EXPECT_TRUE(client_.received.starts_with("HTTP/1.1 502 "))
      << client_.received;
  EXPECT_NE(client_.received.find("No such file or directory"),
            std::string::npos)
      << client_.received;
  EXPECT_EQ(app_in_flight(), 0u);
  EXPECT_EQ(in_flight(), 0);
  session_.reset();  // before the queue it may still name
}

TEST_F(ProxySessionTest, AnAppClosingBeforeItsResponseGets502) {
  Open();
  ClientSends("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  AppSends(0, "", /*eof=*/true);  // a fresh connection: no retry
  EXPECT_EQ(app_.connects, 1);
  EXPECT_TRUE(client_.received.starts_with("HTTP/1.1 502 "))
      << client_.received;
  EXPECT_EQ(in_flight(), 0);
}

// Once the response head went out, a failure cannot become a 502: the
// client's connection is closed so it sees the response was cut short.
TEST_F(ProxySessionTest, AResponseCutShortClosesTheClient) {
  Open();
  ClientSends("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  AppSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
           /*eof=*/true);
  EXPECT_TRUE(client_.received.starts_with("HTTP/1.1 200 OK\r\n"))
      << client_.received;
  EXPECT_TRUE(client_.received.ends_with("abc")) << client_.received;
  EXPECT_EQ(client_.received.find("502"), std::string::npos);
  EXPECT_TRUE(client_.closed);
  EXPECT_EQ(session_->phase(), ClientConnection::Phase::kClosed);
  EXPECT_TRUE(app_.all[0]->discarded);
}

TEST_F(ProxySessionTest, AnInvalidResponseGets502) {
  Open();
  ClientSends("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  AppSends(0, "NOT HTTP\r\n\r\n");
  EXPECT_TRUE(client_.received.starts_with("HTTP/1.1 502 "))
      << client_.received;
}

// The injected clock drives --upstream-timeout: no sleeping.
TEST_F(ProxySessionTest, AnAppTooSlowToAnswerGets504) {
  Open();
  ClientSends("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  clock_.AdvanceMs(4999);
  session_->OnTimeout(clock_.NowMs());
  EXPECT_EQ(client_.received, "");
  clock_.AdvanceMs(2);
  session_->OnTimeout(clock_.NowMs());
  EXPECT_TRUE(client_.received.starts_with("HTTP/1.1 504 "))
      << client_.received;
  EXPECT_EQ(in_flight(), 0);
}

// An HTTP/2 stream gets the app's response parsed once: status, fields
// without the HTTP/1.1 framing, decoded body chunks, trailers.
TEST_F(ProxySessionTest, AStreamGetsTheResponseStructured) {
  OpenStream();
  ClientSends("GET /s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(app_.all.size(), 1u);
  AppSends(0,
           "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
           "Trailer: X-Sum\r\nKeep-Alive: 5\r\n"
           "X-App: 1\r\n\r\n"
           "3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 7\r\nHost: no\r\n\r\n");
  std::vector<std::string> want = {
      "interim 103 Link=</a>",
      "head 200 Trailer=X-Sum X-App=1",
      "body abcde",
      "end X-Sum=7",
  };
  EXPECT_EQ(sink_.events, want);
  EXPECT_EQ(client_.received, "");
  EXPECT_TRUE(sink_.closed);  // one request per stream
  EXPECT_EQ(in_flight(), 0);
}

TEST_F(ProxySessionTest, AStreamGetsABodilessResponseAsOneHead) {
  OpenStream();
  ClientSends("HEAD /s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  AppSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
  std::vector<std::string> want = {"head 200 Content-Length=5 END"};
  EXPECT_EQ(sink_.events, want);
}

// forkd's own answers reach a stream as a head and a body too.
TEST_F(ProxySessionTest, AStreamGetsA502Structured) {
  app_.refuse = true;
  OpenStream();
  ClientSends("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(sink_.events.size(), 3u);
  EXPECT_TRUE(sink_.events[0].starts_with(
      "head 502 Content-Type=text/plain; charset=utf-8 Content-Length="))
      << sink_.events[0];
  EXPECT_TRUE(sink_.events[1].starts_with("body Bad Gateway: connect to "))
      << sink_.events[1];
  EXPECT_EQ(sink_.events[2], "end");
  EXPECT_EQ(client_.received, "");
}

TEST_F(ProxySessionTest, AStreamGets100ContinueAsAnInterimResponse) {
  OpenStream();
  ClientSends(
      "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
      "Expect: 100-continue\r\nConnection: close\r\n\r\n");
  std::vector<std::string> want = {"interim 100"};
  EXPECT_EQ(sink_.events, want);
}

// A blocked sink stops the session reading the app; room resumes it, and
// the wait for the client is timed as a stalled client, not a slow app.
TEST_F(ProxySessionTest, ABlockedSinkHoldsTheAppBack) {
  OpenStream();
  sink_.limit = 2;
  ClientSends("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  AppSends(0, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nab");
  ASSERT_EQ(sink_.events.size(), 2u);
  AppSends(0, "cdef");
  EXPECT_EQ(sink_.events.size(), 2u) << "read past a blocked sink";
  EXPECT_FALSE(app_.all[0]->to_proxy.empty());
  // Past --upstream-timeout: the app is not what the exchange waits for.
  clock_.AdvanceMs(ctx_.upstream_timeout_ms + 1);
  session_->OnTimeout(clock_.NowMs());
  EXPECT_EQ(sink_.events.size(), 2u);
  sink_.limit = SIZE_MAX;
  session_->OnResponseRoom();
  std::vector<std::string> want = {"head 200 Content-Length=6", "body ab",
                                   "body cdef", "end"};
  EXPECT_EQ(sink_.events, want);
}

// A request its client delivered parsed (an HTTP/2 stream, ServeRequest):
// the same exchange as for HTTP/1.1 bytes, with no HTTP/1.1 text between
// the client and the exchange.
class GivenRequestTest : public ProxySessionTest {
 protected:
  void TearDown() override { session_.reset(); }  // before source_
  void Serve(std::vector<http1::Header> fields, bool body_follows,
             std::string method = "GET", std::string target = "/g") {
    OpenStream();
    http1::RequestHead h;
    h.method = std::move(method);
    h.target = std::move(target);
    h.headers = std::move(fields);
    session_->ServeRequest(std::move(h), body_follows, &source_);
  }
  // DATA (and END_STREAM with `trailers`) from the client.
  void ClientData(std::string_view data, bool end = false,
                  std::vector<http1::Header> trailers = {}) {
    source_.pending.append(data);
    source_.ended = end;
    source_.trailers = std::move(trailers);
    session_->Drive();
  }
  FakeSource source_;
};

TEST_F(GivenRequestTest, ReachesTheAppWithoutBytesFromTheClient) {
  client_.to_proxy = "not a request";  // never read
  Serve({{"Host", "h"}, {"X-A", "1"}}, /*body_follows=*/false);
  ASSERT_EQ(app_.all.size(), 1u);
  const std::string& sent = app_.all[0]->received;
  EXPECT_TRUE(sent.starts_with("GET /g HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n"))
      << sent;
  EXPECT_NE(sent.find("X-Forwarded-For: 10.0.0.1\r\n"), std::string::npos);
  EXPECT_EQ(sent.find("Connection"), std::string::npos) << sent;
  EXPECT_TRUE(sent.ends_with("\r\n\r\n"));
  EXPECT_EQ(client_.to_proxy, "not a request");
  AppSends(0, kOk);
  std::vector<std::string> want = {"head 200 Content-Length=2", "body ok",
                                   "end"};
  EXPECT_EQ(sink_.events, want);
  EXPECT_TRUE(sink_.closed);  // one request per stream
  EXPECT_EQ(in_flight(), 0);
}

TEST_F(GivenRequestTest, ABodyWithoutALengthIsBufferedAndSentWithOne) {
  Serve({{"Host", "h"}}, /*body_follows=*/true, "POST");
  ClientData("abc");
  EXPECT_TRUE(app_.all.empty()) << "the app waits for the whole body";
  ClientData("de", /*end=*/true);
  ASSERT_EQ(app_.all.size(), 1u);
  EXPECT_TRUE(app_.all[0]->received.ends_with("Content-Length: 5\r\n\r\nabcde"))
      << app_.all[0]->received;
  EXPECT_EQ(source_.consumed, 5u);
}

TEST_F(GivenRequestTest, ABodyPastTheBufferStreamsChunkedWithItsTrailers) {
  Serve({{"Host", "h"}, {"TE", "trailers"}}, /*body_follows=*/true, "POST");
  ClientData(std::string(100, 'x'));
  ASSERT_EQ(app_.all.size(), 1u);
  EXPECT_NE(app_.all[0]->received.find("Transfer-Encoding: chunked\r\n"),
            std::string::npos);
  ClientData("", /*end=*/true, {{"X-Sum", "1"}, {"Host", "dropped"}});
  EXPECT_TRUE(app_.all[0]->received.ends_with("0\r\nX-Sum: 1\r\n\r\n"))
      << app_.all[0]->received;
}

// The client's window reopens by what the exchange took: an app that
// takes nothing holds the client back at the buffers' size.
TEST_F(GivenRequestTest, FlowControlFollowsWhatTheExchangeTakes) {
  app_.stall_writes = true;
  Serve({{"Host", "h"}}, /*body_follows=*/true, "POST");
  ClientData(std::string(1000, 'x'));
  EXPECT_GT(source_.consumed, 0u);
  EXPECT_LE(source_.consumed, 2 * ctx_.request_buffer + 64);
  size_t held = source_.consumed;
  session_->Drive();
  EXPECT_EQ(source_.consumed, held);
  app_.stall_writes = false;
  session_->OnUpstreamEvents(kReadyOut);
  EXPECT_EQ(source_.consumed, 1000u);
}

// The field count is the client's fields plus Host: exactly
// --limit-request-fields pass.
TEST_F(GivenRequestTest, TheHeadLimitsCountTheClientsFieldsPlusHost) {
  ctx_.limits.max_fields = 3;
  Serve({{"Host", "h"}, {"A", "1"}, {"B", "2"}}, false);
  EXPECT_EQ(app_.all.size(), 1u);
  session_.reset();
  sink_.events.clear();
  Serve({{"Host", "h"}, {"A", "1"}, {"B", "2"}, {"C", "3"}}, false);
  ASSERT_EQ(sink_.events.size(), 3u);
  EXPECT_TRUE(sink_.events[0].starts_with("head 431 ")) << sink_.events[0];
  EXPECT_NE(sink_.events[1].find("too many header fields"), std::string::npos)
      << sink_.events[1];
  EXPECT_EQ(app_.connects, 1);  // the second never reached the app
  EXPECT_EQ(in_flight(), 0);
}

TEST_F(GivenRequestTest, AHeadWithoutHostGets400) {
  Serve({}, false);
  ASSERT_FALSE(sink_.events.empty());
  EXPECT_TRUE(sink_.events[0].starts_with("head 400 ")) << sink_.events[0];
  EXPECT_NE(sink_.events[1].find("missing Host header"), std::string::npos);
  EXPECT_EQ(app_.connects, 0);
}

TEST_F(GivenRequestTest, ALengthOverTheBodyLimitGets413) {
  ctx_.limits.max_body = 10;
  Serve({{"Host", "h"}, {"content-length", "11"}}, true, "POST");
  ASSERT_FALSE(sink_.events.empty());
  EXPECT_TRUE(sink_.events[0].starts_with("head 413 ")) << sink_.events[0];
}

TEST_F(GivenRequestTest, TooManyTrailersGet431) {
  ctx_.limits.max_fields = 2;
  Serve({{"Host", "h"}}, /*body_follows=*/true, "POST");
  ClientData("x", /*end=*/true, {{"A", "1"}, {"B", "2"}, {"C", "3"}});
  ASSERT_FALSE(sink_.events.empty());
  EXPECT_TRUE(sink_.events[0].starts_with("head 431 ")) << sink_.events[0];
  EXPECT_NE(sink_.events[1].find("too many trailer fields"), std::string::npos);
}

// --autotune limit in sidecar mode: a SharedLimit and the queue without a
// router. Every way a request's exchange with the app ends gives its place
// back.
class SidecarLimitTest : public ProxySessionTest {
 protected:
  void SetUp() override {
    ProxySessionTest::SetUp();
    board_->app_limit().limit.store(1);
    limit_ = std::make_unique<SharedLimit>(&board_->app_limit(),
                                           &board_->slot(0).limit_held);
    queue_ = std::make_unique<AppQueue>(nullptr, /*max_wait_ms=*/300,
                                        AppQueueMetrics{}, limit_.get());
    ctx_.app_queue = queue_.get();
  }
  void TearDown() override { session_.reset(); }  // before the queue
  uint32_t places() const { return board_->app_limit().in_flight.load(); }

  std::unique_ptr<SharedLimit> limit_;
  std::unique_ptr<AppQueue> queue_;
};

TEST_F(SidecarLimitTest, SuccessHoldsAPlaceUntilTheResponseIsRead) {
  Open();
  ClientSends("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(app_.all.size(), 1u);
  EXPECT_EQ(places(), 1u);
  AppSends(0, kOk);
  EXPECT_TRUE(client_.received.starts_with("HTTP/1.1 200 OK"))
      << client_.received;
  EXPECT_EQ(places(), 0u);
  // The limit does not cost the keep-alive connection to the app.
  EXPECT_TRUE(app_.all[0]->released);
  ClientSends("GET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(app_.connects, 1);
  EXPECT_EQ(places(), 1u);
  AppSends(0, kOk);
  EXPECT_EQ(places(), 0u);
  EXPECT_EQ(board_->slot(0).limit_held.load(), 0u);
}

TEST_F(SidecarLimitTest, AnAppErrorGivesThePlaceBack) {
  app_.refuse = true;
  Open();
  ClientSends("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_TRUE(client_.received.starts_with("HTTP/1.1 502 "))
      << client_.received;
  EXPECT_EQ(app_.connects, 1);  // no app-process retries in sidecar mode
  EXPECT_EQ(places(), 0u);
}

TEST_F(SidecarLimitTest, ARetryKeepsOnePlaceAndGivesItBackOnce) {
  Open();
  ClientSends("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n");
  AppSends(0, kOk);
  app_.idle_end(0)->eof = true;  // closed while idle
  ClientSends("GET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  session_->OnUpstreamEvents(kReadyIn);
  ASSERT_EQ(app_.connects, 2);
  EXPECT_EQ(places(), 1u);
  AppSends(1, kOk);
  EXPECT_TRUE(client_.received.ends_with("ok")) << client_.received;
  EXPECT_EQ(places(), 0u);
}

TEST_F(SidecarLimitTest, AClientGoneMidRequestGivesThePlaceBack) {
  Open();
  ClientSends("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(places(), 1u);
  session_->Abort();
  EXPECT_EQ(places(), 0u);
}

TEST_F(SidecarLimitTest, AnAppTooSlowGivesThePlaceBack) {
  Open();
  ClientSends("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  clock_.AdvanceMs(5001);
  session_->OnTimeout(clock_.NowMs());
  EXPECT_TRUE(client_.received.starts_with("HTTP/1.1 504 "))
      << client_.received;
  EXPECT_EQ(places(), 0u);
}

// Over the limit: the request waits in forkd's queue (the app sees
// nothing), then gets 503 with Retry-After past --max-queue-time.
TEST_F(SidecarLimitTest, OverTheLimitWaitsThen503WithRetryAfter) {
  ASSERT_TRUE(limit_->TryAcquire());  // another worker holds the one place
  Open();
  ClientSends("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(app_.connects, 0);
  EXPECT_EQ(queue_->size(), 1u);
  clock_.AdvanceMs(299);
  session_->OnTimeout(clock_.NowMs());
  EXPECT_EQ(client_.received, "");
  clock_.AdvanceMs(AppQueue::kRecheckMs + 1);  // the next recheck
  session_->OnTimeout(clock_.NowMs());
  EXPECT_TRUE(client_.received.starts_with("HTTP/1.1 503 "))
      << client_.received;
  EXPECT_NE(client_.received.find("Retry-After: 1\r\n"), std::string::npos);
  EXPECT_NE(client_.received.find("--autotune limit"), std::string::npos);
  EXPECT_EQ(queue_->size(), 0u);
  EXPECT_EQ(app_.connects, 0);
  limit_->Release();
  EXPECT_EQ(places(), 0u);
}

TEST_F(SidecarLimitTest, AWaiterWhoseClientLeavesLeavesTheLine) {
  ASSERT_TRUE(limit_->TryAcquire());
  Open();
  ClientSends("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(queue_->size(), 1u);
  session_->Abort();
  EXPECT_EQ(queue_->size(), 0u);
  limit_->Release();
  EXPECT_EQ(places(), 0u);
}

TEST_F(SidecarLimitTest, AWaiterGoesOnWhenAPlaceFrees) {
  ASSERT_TRUE(limit_->TryAcquire());
  Open();
  ClientSends("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(app_.connects, 0);
  limit_->Release();
  clock_.AdvanceMs(AppQueue::kRecheckMs);
  session_->OnTimeout(clock_.NowMs());
  EXPECT_EQ(app_.connects, 1);
  EXPECT_EQ(places(), 1u);
  AppSends(0, kOk);
  EXPECT_EQ(places(), 0u);
}

}  // namespace
}  // namespace forkd::proxy

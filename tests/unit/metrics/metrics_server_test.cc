#include "server/metrics/metrics_server.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/metrics_plane.h"

namespace forkd::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  return fd;
}

// Reads until `want` responses (by count of "HTTP/1.1 ") arrived and their
// bodies are complete, or the peer closes, or 5 s pass.
std::string ReadAll(int fd, bool until_close) {
  std::string got;
  char buf[4096];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, until_close ? 5000 : 300) <= 0) break;
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

class MetricsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = MetricsServer::Create("127.0.0.1:0", [this](const HttpRequest& r) {
      ++calls_;
      HttpResponse resp;
      resp.body = absl::StrCat(r.method, " ", r.path, " q=", r.query, "\n");
      if (r.path == "/down") resp.status = 503;
      return resp;
    });
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    ASSERT_GT(server_->port(), 0);
    server_->Start();
  }

  std::atomic<int> calls_{0};
  std::unique_ptr<MetricsServer> server_;
};

TEST_F(MetricsServerTest, KeepAliveAndPipelinedRequests) {
  int fd = Connect(server_->port());
  std::string req =
      "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"
      "GET /down HTTP/1.1\r\nHost: a\r\n\r\n";
  ASSERT_EQ(send(fd, req.data(), req.size(), 0),
            static_cast<ssize_t>(req.size()));
  std::string got = ReadAll(fd, false);
  EXPECT_THAT(got, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(got, HasSubstr("Content-Length: 19\r\n"));
  EXPECT_THAT(got, HasSubstr("GET /metrics q=x=1\n"));
  EXPECT_THAT(got, HasSubstr("HTTP/1.1 503 Service Unavailable\r\n"));
  EXPECT_THAT(got, HasSubstr("GET /down q=\n"));
  EXPECT_FALSE(absl::StrContains(got, "Connection: close"));
  // Still open: one more request on the same connection.
  std::string again =
      "HEAD /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
  send(fd, again.data(), again.size(), 0);
  got = ReadAll(fd, true);
  EXPECT_THAT(got, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(got, HasSubstr("Content-Length: 11\r\n"));  // "HEAD /x q=\n"
  EXPECT_THAT(got, HasSubstr("Connection: close\r\n"));
  EXPECT_TRUE(absl::EndsWith(got, "\r\n\r\n"));  // no body for HEAD
  close(fd);
  EXPECT_EQ(calls_.load(), 3);
}

TEST_F(MetricsServerTest, RejectsOtherMethodsBodiesAndGarbage) {
  int fd = Connect(server_->port());
  std::string req =
      "POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab";
  send(fd, req.data(), req.size(), 0);
  std::string got = ReadAll(fd, true);
  EXPECT_THAT(got, StartsWith("HTTP/1.1 405 Method Not Allowed\r\n"));
  EXPECT_THAT(got, HasSubstr("Allow: GET, HEAD\r\n"));
  close(fd);

  fd = Connect(server_->port());
  req = "GET /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab";
  send(fd, req.data(), req.size(), 0);
  EXPECT_THAT(ReadAll(fd, true), StartsWith("HTTP/1.1 400 Bad Request\r\n"));
  close(fd);

  fd = Connect(server_->port());
  req = "\x01\x02 nonsense\r\n\r\n";
  send(fd, req.data(), req.size(), 0);
  EXPECT_THAT(ReadAll(fd, true), StartsWith("HTTP/1.1 400 Bad Request\r\n"));
  close(fd);
  EXPECT_EQ(calls_.load(), 0);
}

TEST_F(MetricsServerTest, StopClosesTheListener) {
  int port = server_->port();
  server_->Stop();
  server_->Stop();  // idempotent
  server_.reset();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_NE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  close(fd);
}

TEST(MetricsServerBindTest, AddressInUseFailsUnlessWaiting) {
  auto first = MetricsServer::Create("127.0.0.1:0", nullptr);
  ASSERT_TRUE(first.ok());
  std::string bind = absl::StrCat("127.0.0.1:", (*first)->port());
  auto second = MetricsServer::Create(bind, nullptr);
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr("Address already in use"));
  auto waiting =
      MetricsServer::Create(bind, nullptr, /*wait_for_address=*/true);
  ASSERT_TRUE(waiting.ok()) << waiting.status();
  EXPECT_EQ((*waiting)->port(), 0);
  EXPECT_FALSE(MetricsServer::Create("no-such-host.invalid:1", nullptr).ok());
}

// --- The plane's routes, with fake sources
// ------------------------------------

arbiter::PoolSnapshot ReadySnapshot() {
  arbiter::PoolSnapshot s;
  s.published_ms = scoreboard::MonotonicMs();
  s.desired_workers = 1;
  s.ready_workers = 1;
  s.totals.requests[0][1] = 3;
  return s;
}

TEST(MetricsPlaneTest, ProbesAndMetricsRoutes) {
  config::Config c;
  c.metrics_bind = "";        // no HTTP server: call Handle() directly
  c.app_health_interval = 0;  // no app checks
  arbiter::PoolSnapshot snapshot = ReadySnapshot();
  std::mutex mu;
  PlaneSources sources;
  sources.snapshot = [&] {
    std::lock_guard<std::mutex> lock(mu);
    snapshot.published_ms = scoreboard::MonotonicMs();
    return snapshot;
  };
  sources.admin_commands = [] {
    return std::vector<AdminCommandCount>{{"Drain", "ok", 2}};
  };
  probes::HealthState health;
  auto plane = MetricsPlane::Start(c, sources, &health);
  ASSERT_TRUE(plane.ok()) << plane.status();
  EXPECT_EQ((*plane)->port(), 0);

  HttpResponse r = (*plane)->Handle({"GET", "/readyz", ""});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok: ready: 1 workers ready\n");
  EXPECT_EQ((*plane)->Handle({"GET", "/livez", ""}).status, 200);
  EXPECT_EQ((*plane)->Handle({"GET", "/startupz", ""}).status, 200);

  r = (*plane)->Handle({"GET", "/metrics", ""});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, kExpositionContentType);
  EXPECT_THAT(
      r.body,
      HasSubstr(
          "forkd_requests_total{method=\"GET\",status_class=\"2xx\"} 3\n"));
  EXPECT_THAT(
      r.body,
      HasSubstr(
          "forkd_admin_commands_total{command=\"Drain\",result=\"ok\"} 2\n"));
  EXPECT_THAT(r.body, HasSubstr("forkd_probe_success{probe=\"ready\"} 1\n"));

  {
    std::lock_guard<std::mutex> lock(mu);
    snapshot.draining = true;
  }
  // At once, from the newest snapshot: not at the checker's next turn.
  r = (*plane)->Handle({"GET", "/readyz", ""});
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "draining: forkd is shutting down\n");
  EXPECT_FALSE(health.Get().ready.ok);
  EXPECT_EQ((*plane)->Handle({"GET", "/livez", ""}).status, 200);

  EXPECT_EQ((*plane)->Handle({"GET", "/nope", ""}).status, 404);
  EXPECT_EQ((*plane)->Handle({"GET", "/", ""}).status, 200);
  (*plane)->Stop();
}

TEST(MetricsPlaneTest, BadUpstreamFailsToStart) {
  config::Config c;
  c.metrics_bind = "";
  c.upstream = "tcp://x";
  probes::HealthState health;
  PlaneSources sources;
  sources.snapshot = [] { return ReadySnapshot(); };
  EXPECT_FALSE(MetricsPlane::Start(c, sources, &health).ok());
}

}  // namespace
}  // namespace forkd::metrics

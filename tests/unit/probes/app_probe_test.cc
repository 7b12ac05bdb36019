#include "server/probes/app_probe.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace forkd::probes {
namespace {

using ::testing::HasSubstr;

// A unix socket the test listens on and answers by hand.
class FakeApp {
 public:
  FakeApp() {
    path_ = absl::StrCat("/tmp/fkprobe", getpid(), "_", counter_++, ".sock");
    unlink(path_.c_str());
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof(a.sun_path) - 1);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(listen(fd_, 8), 0);
  }
  ~FakeApp() {
    if (thread_.joinable()) thread_.join();
    close(fd_);
    unlink(path_.c_str());
  }

  // Accepts one connection, reads the request head into request(), then
  // writes `answer` and closes; with `hold`, it answers nothing and keeps
  // the connection until the probe closes its end (a silent app).
  void AnswerOnce(std::string answer, bool hold = false) {
    request_.clear();
    thread_ = std::thread([this, answer, hold] {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      while (request_.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        request_.append(buf, static_cast<size_t>(n));
      }
      if (!answer.empty()) {
        (void)!send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      }
      if (hold) {
        while (recv(c, buf, sizeof(buf), 0) > 0) {
        }
      }
      close(c);
    });
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

  std::string upstream() const { return "unix:" + path_; }
  const std::string& request() const { return request_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
  int fd_ = -1;
  std::thread thread_;
  std::string request_;
};

TEST(AppProbeTest, ConnectOnly) {
  FakeApp app;
  auto probe = AppProbe::Create(app.upstream(), "", 1000);
  ASSERT_TRUE(probe.ok()) << probe.status();
  ProbeResult r = probe->Check();
  EXPECT_TRUE(r.ok) << r.why;
  EXPECT_EQ(r.why, "connected to " + app.upstream());
}

TEST(AppProbeTest, MissingSocketFails) {
  auto probe = AppProbe::Create("unix:/tmp/fkprobe-no-such.sock", "", 1000);
  ASSERT_TRUE(probe.ok());
  ProbeResult r = probe->Check();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.why,
            "connect unix:/tmp/fkprobe-no-such.sock: No such file or "
            "directory");
}

TEST(AppProbeTest, HealthPathMustAnswer2xx) {
  FakeApp app;
  auto probe = AppProbe::Create(app.upstream(), "/healthz", 2000);
  ASSERT_TRUE(probe.ok());

  app.AnswerOnce("HTTP/1.1 204 No Content\r\n\r\n");
  ProbeResult r = probe->Check();
  app.Join();
  EXPECT_TRUE(r.ok) << r.why;
  EXPECT_EQ(r.why, "GET /healthz on " + app.upstream() + ": 204");
  EXPECT_THAT(app.request(), HasSubstr("GET /healthz HTTP/1.1\r\n"));
  EXPECT_THAT(app.request(), HasSubstr("Connection: close\r\n"));

  app.AnswerOnce(
      "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy");
  r = probe->Check();
  app.Join();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.why, "GET /healthz on " + app.upstream() + ": status 503");

  app.AnswerOnce("HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\n\r\n");
  r = probe->Check();
  app.Join();
  EXPECT_TRUE(r.ok) << r.why;

  app.AnswerOnce("garbage\r\n\r\n");
  r = probe->Check();
  app.Join();
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.why, HasSubstr("bad response"));

  app.AnswerOnce("");  // closes without answering
  r = probe->Check();
  app.Join();
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.why, HasSubstr("closed without an answer"));
}

TEST(AppProbeTest, SilentAppTimesOut) {
  FakeApp app;
  auto probe = AppProbe::Create(app.upstream(), "/healthz", 200);
  ASSERT_TRUE(probe.ok());
  app.AnswerOnce("", /*hold=*/true);
  ProbeResult r = probe->Check();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.why, "GET /healthz on " + app.upstream() + ": timed out");
}

TEST(AppProbeTest, BadUpstreamIsRejected) {
  EXPECT_FALSE(AppProbe::Create("tcp://1.2.3.4:5", "", 100).ok());
  auto tcp = AppProbe::Create("http://127.0.0.1:1", "", 500);
  ASSERT_TRUE(tcp.ok());
  ProbeResult r = tcp->Check();
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.why, HasSubstr("Connection refused"));
}

}  // namespace
}  // namespace forkd::probes

#include "server/arbiter/listeners.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/arbiter/pidfile.h"
#include "server/arbiter/upgrade.h"

namespace forkd::arbiter {
namespace {

TEST(ParseBindTest, AcceptsGunicornForms) {
  auto b = ParseBind("127.0.0.1:8080");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->kind, BindAddress::Kind::kTcp);
  EXPECT_EQ(b->host, "127.0.0.1");
  EXPECT_EQ(b->port, 8080);

  b = ParseBind("[::1]:9000");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 9000);

  b = ParseBind("localhost");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "localhost");
  EXPECT_EQ(b->port, 8000);

  b = ParseBind(":8081");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "0.0.0.0");
  EXPECT_EQ(b->port, 8081);

  b = ParseBind("unix:/run/forkd.sock");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->kind, BindAddress::Kind::kUnix);
  EXPECT_EQ(b->path, "/run/forkd.sock");

  b = ParseBind("fd://3");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->kind, BindAddress::Kind::kFd);
  EXPECT_EQ(b->fd, 3);
}

TEST(ParseBindTest, RejectsBadValuesNamingThem) {
  for (const char* bad : {"127.0.0.1:http", "127.0.0.1:70000", "::1:80", "[::1",
                          "[::1]x", "unix:", "fd://x", "fd://-1", "[]:80"}) {
    auto b = ParseBind(bad);
    EXPECT_FALSE(b.ok()) << bad;
    EXPECT_TRUE(absl::StrContains(b.status().message(), bad))
        << b.status().message();
  }
  std::string long_path = "unix:/" + std::string(200, 'x');
  EXPECT_FALSE(ParseBind(long_path).ok());
}

config::Config WithBinds(std::vector<std::string> binds) {
  config::Config c;
  c.bind = std::move(binds);
  c.backlog = 16;
  return c;
}

int PortOf(const std::string& url) {
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(url.substr(url.rfind(':') + 1), &port)) << url;
  return port;
}

TEST(OpenListenersTest, BindsTcpNonBlockingAndCloseOnExec) {
  auto ls = OpenListeners(WithBinds({"127.0.0.1:0"}), std::nullopt);
  ASSERT_TRUE(ls.ok()) << ls.status();
  ASSERT_EQ(ls->size(), 1u);
  Listener& l = (*ls)[0];
  EXPECT_EQ(l.bind, "127.0.0.1:0");
  EXPECT_TRUE(absl::StartsWith(l.url, "http://127.0.0.1:")) << l.url;
  EXPECT_GT(PortOf(l.url), 0);
  EXPECT_TRUE(fcntl(l.fd, F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(fcntl(l.fd, F_GETFD) & FD_CLOEXEC);
  int listening = 0;
  socklen_t len = sizeof(listening);
  ASSERT_EQ(getsockopt(l.fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len), 0);
  EXPECT_EQ(listening, 1);
  EXPECT_EQ(ListenerFdList(*ls), std::to_string(l.fd));
  CloseListeners(*ls, true);
}

TEST(OpenListenersTest, AddressInUseNamesTheAddress) {
  auto first = OpenListeners(WithBinds({"127.0.0.1:0"}), std::nullopt);
  ASSERT_TRUE(first.ok());
  std::string addr = absl::StrCat("127.0.0.1:", PortOf((*first)[0].url));
  auto second = OpenListeners(WithBinds({addr}), std::nullopt);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message(),
            absl::StrCat("cannot bind ", addr, ": Address already in use"));
  CloseListeners(*first, true);
}

class UnixListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/forkd-listen-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/s.sock";
  }
  void TearDown() override {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  std::string dir_, path_;
};

TEST_F(UnixListenerTest, ReplacesAStaleSocketFileAndRemovesItAtClose) {
  // A socket file left behind by a process that died.
  int stale = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(bind(stale, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(stale);

  auto ls = OpenListeners(WithBinds({"unix:" + path_}), std::nullopt);
  ASSERT_TRUE(ls.ok()) << ls.status();
  EXPECT_EQ((*ls)[0].url, "unix:" + path_);
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  CloseListeners(*ls, /*unlink_unix=*/true);
  EXPECT_NE(stat(path_.c_str(), &st), 0);
}

TEST_F(UnixListenerTest, RefusesToReplaceARegularFile) {
  int fd = open(path_.c_str(), O_CREAT | O_WRONLY, 0644);
  close(fd);
  auto ls = OpenListeners(WithBinds({"unix:" + path_}), std::nullopt);
  ASSERT_FALSE(ls.ok());
  EXPECT_TRUE(absl::StrContains(ls.status().message(), "is not a socket"));
}

TEST(OpenListenersTest, AdoptsInheritedSocketsMatchingThemToBinds) {
  auto orig = OpenListeners(WithBinds({"127.0.0.1:0"}), std::nullopt);
  ASSERT_TRUE(orig.ok());
  int fd = (*orig)[0].fd;
  int port = PortOf((*orig)[0].url);
  std::string bind = absl::StrCat("127.0.0.1:", port);
  auto adopted =
      OpenListeners(WithBinds({"0.0.0.0:9", bind}), std::to_string(fd));
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  ASSERT_EQ(adopted->size(), 1u);
  EXPECT_EQ((*adopted)[0].fd, fd);
  EXPECT_EQ((*adopted)[0].bind, bind);
  EXPECT_TRUE((*adopted)[0].inherited);
  EXPECT_EQ((*adopted)[0].url, "http://" + bind);
  CloseListeners(*adopted, false);
  (*orig)[0].fd = -1;  // already closed
}

TEST(OpenListenersTest, RejectsInheritedFdsThatAreNotListeningSockets) {
  int fd = open("/dev/null", O_RDONLY);
  auto ls = OpenListeners(WithBinds({"127.0.0.1:0"}), std::to_string(fd));
  EXPECT_FALSE(ls.ok());
  EXPECT_TRUE(absl::StrContains(ls.status().message(), "FORKD_INHERITED_FDS"));
  EXPECT_FALSE(OpenListeners(WithBinds({"127.0.0.1:0"}), "x").ok());
  close(fd);
}

TEST(UpgradeTest, HandoffVariablesAreTakenFromTheEnvironment) {
  setenv(kInheritedFdsEnv, "3,4", 1);
  setenv(kMasterPidEnv, "1234", 1);
  UpgradeHandoff h = TakeUpgradeHandoff();
  EXPECT_EQ(h.inherited_fds, "3,4");
  EXPECT_EQ(h.old_master_pid, 1234);
  EXPECT_EQ(getenv(kInheritedFdsEnv), nullptr);
  EXPECT_EQ(getenv(kMasterPidEnv), nullptr);
  EXPECT_FALSE(TakeUpgradeHandoff().inherited_fds.has_value());
}

TEST(PidfileFunctionsTest, WriteReadRemove) {
  char tmpl[] = "/tmp/forkd-pid-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string path = std::string(tmpl) + "/p.pid";
  ASSERT_TRUE(WritePidfile(path, 123).ok());
  EXPECT_EQ(ReadPidfile(path), 123);
  RemovePidfileIfOwned(path, 999);
  EXPECT_EQ(ReadPidfile(path), 123);
  RemovePidfileIfOwned(path, 123);
  EXPECT_EQ(ReadPidfile(path), 0);
  auto bad = WritePidfile(std::string(tmpl) + "/no/such/dir/p.pid", 1);
  EXPECT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StrContains(bad.message(), "no/such/dir/p.pid"));
  rmdir(tmpl);
}

}  // namespace
}  // namespace forkd::arbiter

#include "server/common/address.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace forkd::common {
namespace {

using ::testing::HasSubstr;

std::string Error(absl::string_view text, AddressUse use) {
  absl::StatusOr<Address> a = ParseAddress(text, use);
  EXPECT_FALSE(a.ok()) << text << " parsed";
  return a.ok() ? "" : std::string(a.status().message());
}

TEST(AddressTest, ListenAcceptsGunicornForms) {
  absl::StatusOr<Address> a =
      ParseAddress("127.0.0.1:8080", AddressUse::kListen);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, Address::Kind::kTcp);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);
  EXPECT_EQ(a->HostPort(), "127.0.0.1:8080");

  a = ParseAddress("[::1]:9000", AddressUse::kListen);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "::1");
  EXPECT_TRUE(a->IsIpv6Literal());
  EXPECT_EQ(a->HostPort(), "[::1]:9000");

  a = ParseAddress("localhost", AddressUse::kListen);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "localhost");
  EXPECT_EQ(a->port, kDefaultListenPort);

  a = ParseAddress("[::]", AddressUse::kListen);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->HostPort(), "[::]:8000");

  a = ParseAddress(":8081", AddressUse::kListen);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->HostPort(), "0.0.0.0:8081");

  a = ParseAddress("unix:relative.sock", AddressUse::kListen);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, Address::Kind::kUnix);
  EXPECT_EQ(a->path, "relative.sock");

  a = ParseAddress("fd://3", AddressUse::kListen);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, Address::Kind::kFd);
  EXPECT_EQ(a->fd, 3);
}

TEST(AddressTest, ListenRefusesNamingWhatIsWrong) {
  EXPECT_EQ(Error("::1:80", AddressUse::kListen),
            "IPv6 addresses need brackets, e.g. [::1]:8000");
  EXPECT_EQ(Error("[::1", AddressUse::kListen), "missing ']'");
  EXPECT_EQ(Error("[::1]x", AddressUse::kListen), "expected ':' after ']'");
  EXPECT_EQ(Error("[]:80", AddressUse::kListen),
            "not an IPv6 address inside [...]");
  EXPECT_EQ(Error("127.0.0.1:http", AddressUse::kListen),
            "bad port (expected 0..65535)");
  EXPECT_EQ(Error("127.0.0.1:65536", AddressUse::kListen),
            "bad port (expected 0..65535)");
  EXPECT_EQ(Error("127.0.0.1:+80", AddressUse::kListen),
            "bad port (expected 0..65535)");
  EXPECT_EQ(Error("bad_host:80", AddressUse::kListen), "bad host name");
  EXPECT_EQ(Error("", AddressUse::kListen), "empty address");
  EXPECT_EQ(Error("unix:", AddressUse::kListen), "empty unix socket path");
  EXPECT_EQ(Error("unix:/" + std::string(107, 'x'), AddressUse::kListen),
            "the unix socket path is 108 bytes long (at most 107)");
  EXPECT_EQ(Error("fd://-1", AddressUse::kListen),
            "fd://N needs a descriptor number");
  EXPECT_EQ(Error("fd://", AddressUse::kListen),
            "fd://N needs a descriptor number");
}

TEST(AddressTest, PlaneTakesTcpFormsWithAPort) {
  absl::StatusOr<Address> a = ParseAddress(":9090", AddressUse::kPlane);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->HostPort(), "0.0.0.0:9090");
  a = ParseAddress("[::]:0", AddressUse::kPlane);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->HostPort(), "[::]:0");
  EXPECT_EQ(Error("9090", AddressUse::kPlane), "missing :PORT");
  EXPECT_EQ(Error("unix:/run/admin.sock", AddressUse::kPlane),
            "only TCP addresses are supported here");
  EXPECT_EQ(Error("fd://3", AddressUse::kPlane),
            "only TCP addresses are supported here");
}

TEST(AddressTest, UpstreamIsAnAbsoluteUnixPathOrAnHttpIp) {
  absl::StatusOr<Address> a =
      ParseAddress("unix:/tmp/app.sock", AddressUse::kUpstream);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, Address::Kind::kUnix);
  EXPECT_EQ(a->path, "/tmp/app.sock");
  for (const char* good : {"http://127.0.0.1:8000", "http://127.0.0.1:8000/",
                           "http://[::1]:1", "http://localhost:65535"}) {
    EXPECT_TRUE(ParseAddress(good, AddressUse::kUpstream).ok()) << good;
  }
  EXPECT_EQ(Error("unix:app.sock", AddressUse::kUpstream),
            "the path must be absolute");
  EXPECT_EQ(Error("tcp://127.0.0.1:1", AddressUse::kUpstream),
            "unknown scheme");
  EXPECT_EQ(Error("https://127.0.0.1:443", AddressUse::kUpstream),
            "TLS to the app is not supported");
  EXPECT_EQ(Error("http://127.0.0.1:80/app", AddressUse::kUpstream),
            "no path allowed");
  EXPECT_EQ(Error("http://127.0.0.1", AddressUse::kUpstream), "missing :PORT");
  EXPECT_EQ(Error("http://127.0.0.1:0", AddressUse::kUpstream),
            "bad port (expected 1..65535)");
  EXPECT_EQ(Error("http://example.com:80", AddressUse::kUpstream),
            "the host must be an IP address or localhost");
  EXPECT_EQ(Error("http://:80", AddressUse::kUpstream),
            "the host must be an IP address or localhost");
}

TEST(AddressTest, ExpectedFormsNameEveryAcceptedForm) {
  EXPECT_THAT(ExpectedAddressForms(AddressUse::kListen), HasSubstr("fd://N"));
  EXPECT_THAT(ExpectedAddressForms(AddressUse::kPlane), HasSubstr(":PORT"));
  EXPECT_THAT(ExpectedAddressForms(AddressUse::kUpstream),
              HasSubstr("unix:/abs/path"));
}

}  // namespace
}  // namespace forkd::common

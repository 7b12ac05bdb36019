#include "server/admin/access_control.h"

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace forkd::admin {
namespace {

TEST(IsLoopbackPeerTest, LoopbackAddressesAndUnixSockets) {
  EXPECT_TRUE(IsLoopbackPeer("ipv4:127.0.0.1:51234"));
  EXPECT_TRUE(IsLoopbackPeer("ipv4:127.0.0.2:1"));
  EXPECT_TRUE(IsLoopbackPeer("ipv4:127.255.255.254:9"));
  EXPECT_TRUE(IsLoopbackPeer("ipv6:[::1]:51234"));
  EXPECT_TRUE(IsLoopbackPeer("ipv6:%5B::1%5D:51234"));
  EXPECT_TRUE(IsLoopbackPeer("ipv6:[::ffff:127.0.0.1]:80"));
  EXPECT_TRUE(IsLoopbackPeer("unix:/tmp/forkd-admin.sock"));
}

TEST(IsLoopbackPeerTest, EverythingElseIsRemote) {
  EXPECT_FALSE(IsLoopbackPeer("ipv4:10.0.0.7:51234"));
  EXPECT_FALSE(IsLoopbackPeer("ipv4:128.0.0.1:5"));
  EXPECT_FALSE(IsLoopbackPeer("ipv4:0.0.0.0:5"));
  EXPECT_FALSE(IsLoopbackPeer("ipv6:[fe80::1%25eth0]:5"));
  EXPECT_FALSE(IsLoopbackPeer("ipv6:[2001:db8::1]:443"));
  EXPECT_FALSE(IsLoopbackPeer("ipv6:[::ffff:10.1.2.3]:80"));
  EXPECT_FALSE(IsLoopbackPeer("ipv6:::1:80"));  // no brackets: unparsable
  EXPECT_FALSE(IsLoopbackPeer("ipv4:localhost:80"));
  EXPECT_FALSE(IsLoopbackPeer(""));
  EXPECT_FALSE(IsLoopbackPeer("127.0.0.1:80"));  // no scheme
}

TEST(TokensEqualTest, ComparesContentAndLength) {
  EXPECT_TRUE(TokensEqual("s3cret", "s3cret"));
  EXPECT_FALSE(TokensEqual("s3cret", "s3cres"));
  EXPECT_FALSE(TokensEqual("s3cret", "s3cret2"));
  EXPECT_FALSE(TokensEqual("", "x"));
  EXPECT_TRUE(TokensEqual("", ""));
}

TEST(CheckMutatingCallTest, WithoutTokenFileOnlyLoopbackGetsIn) {
  absl::StatusOr<Admission> a =
      CheckMutatingCall("ipv4:127.0.0.1:4000", {}, std::nullopt);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, Admission::kLoopback);

  a = CheckMutatingCall("ipv4:10.1.2.3:4000", {"Bearer whatever"},
                        std::nullopt);
  ASSERT_EQ(a.status().code(), absl::StatusCode::kPermissionDenied);
  // The message says how to get in.
  EXPECT_TRUE(absl::StrContains(a.status().message(), "--admin-token-file"))
      << a.status().message();
  EXPECT_TRUE(absl::StrContains(a.status().message(), "10.1.2.3"));
  EXPECT_TRUE(absl::StrContains(a.status().message(), "port-forward"));
}

TEST(CheckMutatingCallTest, WithTokenFileEveryPeerNeedsTheToken) {
  std::optional<std::string> token = "t0ken";
  for (const char* peer : {"ipv4:127.0.0.1:1", "ipv4:10.1.2.3:1"}) {
    absl::StatusOr<Admission> a = CheckMutatingCall(peer, {}, token);
    EXPECT_EQ(a.status().code(), absl::StatusCode::kUnauthenticated) << peer;
    EXPECT_TRUE(absl::StrContains(a.status().message(), "Bearer"));

    a = CheckMutatingCall(peer, {"Basic dTpw"}, token);
    EXPECT_EQ(a.status().code(), absl::StatusCode::kUnauthenticated) << peer;

    a = CheckMutatingCall(peer, {"Bearer wrong"}, token);
    EXPECT_EQ(a.status().code(), absl::StatusCode::kPermissionDenied) << peer;

    a = CheckMutatingCall(peer, {"Bearer t0ken"}, token);
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_EQ(*a, Admission::kToken);
    a = CheckMutatingCall(peer, {"bearer  t0ken "}, token);
    EXPECT_TRUE(a.ok()) << a.status();
  }
}

class TokenFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/forkd-token-XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    close(fd);
    path_ = tmpl;
  }
  void TearDown() override { unlink(path_.c_str()); }
  void Write(const std::string& text) {
    // Replace the file like Kubernetes does (a new inode), so the change is
    // seen even within one mtime tick.
    std::string tmp = path_ + ".new";
    std::ofstream(tmp) << text;
    ASSERT_EQ(rename(tmp.c_str(), path_.c_str()), 0);
  }
  std::string path_;
};

TEST_F(TokenFileTest, ReadsTrimmedTokenAndFollowsChanges) {
  Write("  abc123\n");
  absl::StatusOr<std::unique_ptr<TokenFile>> f = TokenFile::Open(path_);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->Current(), "abc123");
  Write("rotated\n");
  EXPECT_EQ((*f)->Current(), "rotated");
  Write("\n");  // emptied: keep the last good token
  EXPECT_EQ((*f)->Current(), "rotated");
  unlink(path_.c_str());
  EXPECT_EQ((*f)->Current(), "rotated");
}

TEST_F(TokenFileTest, MissingOrEmptyFileFailsAtStart) {
  Write("\n\t\n");
  absl::StatusOr<std::unique_ptr<TokenFile>> f = TokenFile::Open(path_);
  EXPECT_EQ(f.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(f.status().message(), "--admin-token-file"));
  f = TokenFile::Open("/nonexistent/forkd/token");
  EXPECT_FALSE(f.ok());
  EXPECT_TRUE(absl::StrContains(f.status().message(), "/nonexistent"));
}

}  // namespace
}  // namespace forkd::admin

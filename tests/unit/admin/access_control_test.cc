#include "server/admin/access_control.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
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
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/token";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // Replaces the file by a rename (a new inode).
  void Replace(const std::string& text) {
    std::string tmp = path_ + ".new";
    std::ofstream(tmp) << text;
    ASSERT_EQ(rename(tmp.c_str(), path_.c_str()), 0);
  }
  // Rewrites the file in place: same inode, truncated and written.
  void Rewrite(const std::string& text) {
    std::ofstream(path_, std::ios::trunc) << text;
  }
  // What the kubelet's atomic writer does for a mounted Secret: the files
  // live in a timestamped directory, `..data` points at it, `token` points
  // at `..data/token`; an update writes a new directory, renames a new
  // `..data` link over the old one, and removes the old directory.
  void SecretVersion(const std::string& version, const std::string& text) {
    std::string versioned = dir_ + "/.." + version;
    ASSERT_EQ(mkdir(versioned.c_str(), 0755), 0);
    std::ofstream(versioned + "/token") << text;
    std::string tmp_link = dir_ + "/..data_tmp";
    ASSERT_EQ(symlink((".." + version).c_str(), tmp_link.c_str()), 0);
    ASSERT_EQ(rename(tmp_link.c_str(), (dir_ + "/..data").c_str()), 0);
    if (!std::filesystem::is_symlink(path_)) {
      ASSERT_EQ(symlink("..data/token", path_.c_str()), 0);
    }
    if (!previous_version_.empty()) {
      std::filesystem::remove_all(dir_ + "/.." + previous_version_);
    }
    previous_version_ = version;
  }
  std::string dir_;
  std::string path_;
  std::string previous_version_;
};

TEST_F(TokenFileTest, ReadsTrimmedTokenAndFollowsAReplacedFile) {
  Replace("  abc123\n");
  absl::StatusOr<std::unique_ptr<TokenFile>> f = TokenFile::Open(path_);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*(*f)->Current(), "abc123");
  Replace("rotated\n");
  EXPECT_EQ(*(*f)->Current(), "rotated");
}

TEST_F(TokenFileTest, FollowsAnInPlaceRewriteOfTheSameSizeInOneClockTick) {
  Rewrite("aaaa\n");
  absl::StatusOr<std::unique_ptr<TokenFile>> f = TokenFile::Open(path_);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*(*f)->Current(), "aaaa");
  // Same inode, same size, very likely the same mtime: only the racy-file
  // rule notices.
  Rewrite("bbbb\n");
  EXPECT_EQ(*(*f)->Current(), "bbbb");
  Rewrite("cccc\n");
  EXPECT_EQ(*(*f)->Current(), "cccc");
}

TEST_F(TokenFileTest, FollowsTheKubernetesSecretSymlinkSwap) {
  SecretVersion("2026_12_05_08_00_00.1", "first\n");
  absl::StatusOr<std::unique_ptr<TokenFile>> f = TokenFile::Open(path_);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*(*f)->Current(), "first");
  SecretVersion("2026_12_05_09_00_00.2", "second\n");
  EXPECT_EQ(*(*f)->Current(), "second");
  SecretVersion("2026_12_05_10_00_00.3", "third\n");
  EXPECT_EQ(*(*f)->Current(), "third");
}

TEST_F(TokenFileTest, FailsClosedWhileTheFileIsEmptyOrGoneAndRecovers) {
  Replace("good-token\n");
  absl::StatusOr<std::unique_ptr<TokenFile>> f = TokenFile::Open(path_);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*(*f)->Current(), "good-token");

  Rewrite(" \n");  // emptied: the old token must not keep working
  absl::StatusOr<std::string> t = (*f)->Current();
  EXPECT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(t.status().message(), "empty"))
      << t.status().message();
  EXPECT_TRUE(absl::StrContains(t.status().message(), "--admin-token-file"));
  // The client-facing message does not reveal where the secret lives.
  EXPECT_FALSE(absl::StrContains(t.status().message(), dir_));
  // Still broken on the next call, though the file did not change again.
  EXPECT_FALSE((*f)->Current().ok());

  unlink(path_.c_str());
  t = (*f)->Current();
  EXPECT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(t.status().message(), "No such file"))
      << t.status().message();

  ASSERT_EQ(mkdir(path_.c_str(), 0700), 0);  // unreadable as a token
  EXPECT_FALSE((*f)->Current().ok());
  ASSERT_EQ(rmdir(path_.c_str()), 0);

  Replace("new-token\n");
  EXPECT_EQ(*(*f)->Current(), "new-token");
}

TEST_F(TokenFileTest, MissingOrEmptyFileFailsAtStart) {
  Replace("\n\t\n");
  absl::StatusOr<std::unique_ptr<TokenFile>> f = TokenFile::Open(path_);
  EXPECT_EQ(f.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(f.status().message(), "--admin-token-file"));
  EXPECT_TRUE(absl::StrContains(f.status().message(), path_));
  f = TokenFile::Open("/nonexistent/forkd/token");
  EXPECT_FALSE(f.ok());
  EXPECT_TRUE(absl::StrContains(f.status().message(), "/nonexistent"));
}

}  // namespace
}  // namespace forkd::admin

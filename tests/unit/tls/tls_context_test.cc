#include "server/tls/tls_context.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/config/config.h"
#include "tests/unit/tls/test_certs.h"

namespace forkd::tls {
namespace {

using ::testing::AllOf;
using testing::CertDir;
using ::testing::HasSubstr;

TlsOptions Options(const CertDir& d) {
  TlsOptions o;
  o.certfile = d.cert_path;
  o.keyfile = d.key_path;
  return o;
}

std::string CreateError(const TlsOptions& o) {
  auto ctx = TlsContext::Create(o);
  EXPECT_FALSE(ctx.ok());
  if (ctx.ok()) return "";
  EXPECT_EQ(ctx.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(ctx.status().message());
}

TEST(TlsContextTest, LoadsCertificateAndKey) {
  CertDir d;
  auto ctx = TlsContext::Create(Options(d));
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  EXPECT_NE((*ctx)->ssl_ctx(), nullptr);
  EXPECT_FALSE((*ctx)->offers_http2());
}

TEST(TlsContextTest, KeyMayBeInTheCertificateFile) {
  CertDir d;
  TlsOptions o;
  o.certfile = d.Write("both.pem", testing::CertPem(d.server.get()) +
                                       testing::KeyPem(d.server_key.get()));
  EXPECT_TRUE(TlsContext::Create(o).ok());
}

TEST(TlsContextTest, MissingCertfileNamesTheFlagAndTheCause) {
  CertDir d;
  TlsOptions o = Options(d);
  o.certfile = d.dir() + "/nope.pem";
  EXPECT_THAT(CreateError(o),
              AllOf(HasSubstr("--certfile"), HasSubstr("nope.pem"),
                    HasSubstr("No such file or directory")));
}

TEST(TlsContextTest, MissingKeyfileNamesTheFlag) {
  CertDir d;
  TlsOptions o = Options(d);
  o.keyfile = d.dir() + "/nope.key";
  EXPECT_THAT(CreateError(o), AllOf(HasSubstr("--keyfile"),
                                    HasSubstr("No such file or directory")));
}

TEST(TlsContextTest, GarbageCertificate) {
  CertDir d;
  TlsOptions o = Options(d);
  o.certfile = d.Write("garbage.pem", "not a certificate\n");
  EXPECT_THAT(CreateError(o), AllOf(HasSubstr("--certfile: cannot load"),
                                    HasSubstr("garbage.pem")));
}

TEST(TlsContextTest, KeyOfAnotherCertificate) {
  CertDir d;
  TlsOptions o = Options(d);
  o.keyfile = d.Write("other.key", testing::KeyPem(d.client_key.get()));
  EXPECT_THAT(CreateError(o),
              AllOf(HasSubstr("--keyfile"), HasSubstr("does not match")));
}

TEST(TlsContextTest, EncryptedKeyFailsInsteadOfPrompting) {
  CertDir d;
  TlsOptions o = Options(d);
  o.keyfile = d.Write("enc.key", testing::KeyPem(d.server_key.get(), "pw"));
  EXPECT_THAT(CreateError(o), HasSubstr("--keyfile: cannot load"));
}

TEST(TlsContextTest, CertfileWithoutKeyAndNoKeyfile) {
  CertDir d;
  TlsOptions o;
  o.certfile = d.cert_path;
  EXPECT_THAT(CreateError(o), AllOf(HasSubstr("--certfile: cannot load"),
                                    HasSubstr("no --keyfile given")));
}

TEST(TlsContextTest, CaCertsMustHoldCertificates) {
  CertDir d;
  TlsOptions o = Options(d);
  o.ca_certs = d.Write("empty-ca.pem", "");
  EXPECT_THAT(CreateError(o), HasSubstr("--ca-certs"));
  o.ca_certs = d.dir() + "/missing-ca.pem";
  EXPECT_THAT(CreateError(o), AllOf(HasSubstr("--ca-certs"),
                                    HasSubstr("No such file or directory")));
  o.ca_certs = d.ca_path;
  EXPECT_TRUE(TlsContext::Create(o).ok());
}

TEST(TlsContextTest, UnknownCiphersAndVersions) {
  CertDir d;
  TlsOptions o = Options(d);
  o.ciphers = "NOT-A-CIPHER";
  EXPECT_THAT(CreateError(o), HasSubstr("--ciphers"));
  o.ciphers = "";
  o.min_version = "SSLv3";
  EXPECT_THAT(CreateError(o), HasSubstr("--ssl-min-version"));
  o.min_version = "TLSv1.3";
  EXPECT_TRUE(TlsContext::Create(o).ok());
}

// --- the flags, as the master sees them ------------------------------------

absl::Status CheckArgs(std::vector<std::string> args) {
  auto parsed = config::Parse(config::Sources{std::move(args), {}});
  if (!parsed.ok()) return parsed.status();
  return CheckConfig(parsed->config);
}

TEST(TlsConfigTest, NoCertfileMeansNoTls) { EXPECT_TRUE(CheckArgs({}).ok()); }

TEST(TlsConfigTest, FlagsLoadTheFiles) {
  CertDir d;
  EXPECT_TRUE(CheckArgs({"--certfile", d.cert_path, "--keyfile", d.key_path,
                         "--ca-certs", d.ca_path})
                  .ok());
  absl::Status s =
      CheckArgs({"--certfile", d.cert_path, "--keyfile", d.cert_path});
  EXPECT_THAT(std::string(s.message()), HasSubstr("--keyfile"));
}

TEST(TlsConfigTest, TlsFlagsWithoutCertfileAreRejected) {
  for (const char* flag : {"--keyfile", "--ca-certs", "--ciphers"}) {
    absl::Status s = CheckArgs({flag, "x"});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << flag;
    EXPECT_THAT(std::string(s.message()),
                AllOf(HasSubstr(flag), HasSubstr("--certfile")));
  }
  absl::Status s = CheckArgs({"--ssl-min-version", "TLSv1.1"});
  EXPECT_THAT(std::string(s.message()),
              AllOf(HasSubstr("--ssl-min-version"), HasSubstr("TLSv1.3")));
}

TEST(TlsConfigTest, WorkersGetTheFlagsBack) {
  CertDir d;
  auto parsed = config::Parse(
      config::Sources{{"--certfile", d.cert_path, "--keyfile", d.key_path,
                       "--ca-certs", d.ca_path, "--ssl-min-version", "TLSv1.3"},
                      {}});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  auto again =
      config::Parse(config::Sources{config::ToArgs(parsed->config), {}});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->config, parsed->config);
  EXPECT_EQ(again->config.ca_certs, d.ca_path);
}

}  // namespace
}  // namespace forkd::tls

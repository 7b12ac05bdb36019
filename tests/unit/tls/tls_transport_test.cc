#include "server/tls/tls_transport.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/scoreboard/scoreboard.h"
#include "server/tls/tls_context.h"
#include "tests/unit/tls/test_certs.h"

namespace forkd::tls {
namespace {

using scoreboard::TlsFailure;
using testing::CertDir;
using ::testing::StartsWith;

uint64_t Failures(const scoreboard::Counters& c, TlsFailure kind) {
  return c.tls_handshake_failures[static_cast<size_t>(kind)].load();
}

// A TLS server transport on one end of a socketpair, an OpenSSL client on
// the other; both non-blocking, stepped by hand.
class TlsPairTest : public ::testing::Test {
 protected:
  void Start(bool http2 = false, bool client_certs = false) {
    TlsOptions o;
    o.certfile = certs_.cert_path;
    o.keyfile = certs_.key_path;
    o.http2 = http2;
    if (client_certs) o.ca_certs = certs_.ca_path;
    auto ctx = TlsContext::Create(o);
    ASSERT_TRUE(ctx.ok()) << ctx.status();
    server_ctx_ = std::move(*ctx);
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    client_fd_ = fds[1];
    transport_ = server_ctx_->NewTransport(fds[0], "192.0.2.1", &counters_);
    ASSERT_NE(transport_, nullptr);
    tls_ = static_cast<TlsTransport*>(transport_.get());

    client_ctx_ = SSL_CTX_new(TLS_client_method());
    X509_STORE_add_cert(SSL_CTX_get_cert_store(client_ctx_), certs_.ca.get());
    SSL_CTX_set_verify(client_ctx_, SSL_VERIFY_PEER, nullptr);
    client_ = SSL_new(client_ctx_);
    SSL_set_fd(client_, client_fd_);
    SSL_set_connect_state(client_);
  }

  void TearDown() override {
    transport_.reset();
    if (client_ != nullptr) SSL_free(client_);
    if (client_ctx_ != nullptr) SSL_CTX_free(client_ctx_);
    if (client_fd_ >= 0) close(client_fd_);
    ERR_clear_error();
  }

  void OfferAlpn(const std::string& wire) {
    SSL_set_alpn_protos(client_,
                        reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned>(wire.size()));
  }

  // Steps both sides until the handshake is done; server reads must not
  // return data or fail meanwhile.
  void Handshake() {
    for (int i = 0; i < 50; ++i) {
      int r = SSL_do_handshake(client_);
      char b[64];
      ssize_t n = transport_->Read(b, sizeof(b));
      ASSERT_TRUE(n < 0 && errno == EAGAIN)
          << "read " << n << " errno " << errno;
      if (r == 1 && tls_->handshake_done()) return;
    }
    FAIL() << "no handshake";
  }

  // Reads what the server has, until EAGAIN.
  std::string ServerReadAll() {
    std::string got;
    char buf[16384];
    while (true) {
      ssize_t n = transport_->Read(buf, sizeof(buf));
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }

  std::string ClientReadAll() {
    std::string got;
    char buf[16384];
    size_t n;
    while (SSL_read_ex(client_, buf, sizeof(buf), &n) == 1) got.append(buf, n);
    return got;
  }

  void ClientWrite(const std::string& s) {
    size_t n;
    ASSERT_EQ(SSL_write_ex(client_, s.data(), s.size(), &n), 1);
    ASSERT_EQ(n, s.size());
  }

  CertDir certs_;
  scoreboard::Counters counters_;
  std::unique_ptr<TlsContext> server_ctx_;
  std::unique_ptr<transport::ClientTransport> transport_;
  TlsTransport* tls_ = nullptr;
  int client_fd_ = -1;
  SSL_CTX* client_ctx_ = nullptr;
  SSL* client_ = nullptr;
};

TEST_F(TlsPairTest, HandshakeChoosesH2WhenOffered) {
  Start(/*http2=*/true);
  OfferAlpn(std::string("\x02h2\x08http/1.1", 12));
  Handshake();
  EXPECT_EQ(tls_->alpn(), "h2");
  EXPECT_STREQ(transport_->scheme(), "https");
  EXPECT_EQ(counters_.tls_handshakes.load(), 1u);
}

TEST_F(TlsPairTest, WithoutHttp2AlpnIsHttp11) {
  Start(/*http2=*/false);
  OfferAlpn(std::string("\x02h2\x08http/1.1", 12));
  Handshake();
  EXPECT_EQ(tls_->alpn(), "http/1.1");
}

TEST_F(TlsPairTest, OnlyUnknownProtocolsOfferedFailsTheHandshake) {
  Start(/*http2=*/false);
  OfferAlpn(std::string("\x02h2", 3));
  ssize_t n = 0;
  for (int i = 0; i < 10; ++i) {
    SSL_do_handshake(client_);
    char b[64];
    n = transport_->Read(b, sizeof(b));
    if (n < 0 && errno != EAGAIN) break;
  }
  EXPECT_EQ(n, -1);
  EXPECT_EQ(errno, EPROTO);
  EXPECT_EQ(Failures(counters_, TlsFailure::kProtocol), 1u);
}

TEST_F(TlsPairTest, RecordsHeldInsideOpenSslCountAsPendingInput) {
  Start();
  Handshake();
  // Two records arrive together: read-ahead takes both from the socket,
  // and a read returns one record's bytes.
  ClientWrite("first");
  ClientWrite("second");
  char buf[16384];
  ssize_t n = transport_->Read(buf, sizeof(buf));
  ASSERT_EQ(n, 5);
  EXPECT_TRUE(transport_->HasPendingInput())
      << "the socket is empty but \"second\" waits in OpenSSL";
  n = transport_->Read(buf, sizeof(buf));
  ASSERT_EQ(n, 6);
  EXPECT_EQ(std::string(buf, 6), "second");
  EXPECT_FALSE(transport_->HasPendingInput());
  EXPECT_EQ(transport_->Read(buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, EAGAIN);
}

TEST_F(TlsPairTest, CloseNotifyAndBareEofEndTheStream) {
  Start();
  Handshake();
  ClientWrite("request");
  // The client half-closes TCP without close_notify: an EOF all the same,
  // and the answer still goes out.
  shutdown(client_fd_, SHUT_WR);
  EXPECT_EQ(ServerReadAll(), "request");
  char b[16];
  EXPECT_EQ(transport_->Read(b, sizeof(b)), 0);
  EXPECT_EQ(transport_->Write("answer", 6), 6);
  EXPECT_EQ(ClientReadAll(), "answer");
}

TEST_F(TlsPairTest, CloseNotifyIsEof) {
  Start();
  Handshake();
  SSL_shutdown(client_);
  char b[16];
  EXPECT_EQ(transport_->Read(b, sizeof(b)), 0);
  EXPECT_EQ(Failures(counters_, TlsFailure::kClosed), 0u);
}

TEST_F(TlsPairTest, PlainHttpGetsA400AndTheConnectionFails) {
  Start();
  std::string req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(write(client_fd_, req.data(), req.size()),
            static_cast<ssize_t>(req.size()));
  char b[64];
  EXPECT_EQ(transport_->Read(b, sizeof(b)), -1);
  EXPECT_EQ(errno, EPROTO);
  EXPECT_EQ(Failures(counters_, TlsFailure::kProtocol), 1u);
  char answer[256] = {0};
  ASSERT_GT(read(client_fd_, answer, sizeof(answer) - 1), 0);
  EXPECT_THAT(std::string(answer), StartsWith("HTTP/1.1 400 Bad Request"));
  EXPECT_FALSE(transport_->HasPendingInput());
}

TEST_F(TlsPairTest, ClosedMidHandshakeIsCountedAsClosed) {
  Start();
  SSL_do_handshake(client_);  // the ClientHello goes out
  char b[64];
  EXPECT_EQ(transport_->Read(b, sizeof(b)), -1);  // ServerHello back
  EXPECT_EQ(errno, EAGAIN);
  close(client_fd_);
  client_fd_ = -1;
  ssize_t n = transport_->Read(b, sizeof(b));
  EXPECT_TRUE(n == 0 || (n == -1 && errno != EAGAIN));
  EXPECT_EQ(Failures(counters_, TlsFailure::kClosed), 1u);
  EXPECT_EQ(counters_.tls_handshakes.load(), 0u);
}

TEST_F(TlsPairTest, ConnectAndCloseWithoutBytesIsNoFailure) {
  Start();
  close(client_fd_);
  client_fd_ = -1;
  char b[64];
  EXPECT_EQ(transport_->Read(b, sizeof(b)), 0);
  transport_.reset();
  EXPECT_EQ(Failures(counters_, TlsFailure::kClosed), 0u);
}

TEST_F(TlsPairTest, ClientCertificateRequiredWithCaCerts) {
  Start(/*http2=*/false, /*client_certs=*/true);
  ssize_t n = 0;
  for (int i = 0; i < 20; ++i) {
    SSL_do_handshake(client_);
    char b[64];
    n = transport_->Read(b, sizeof(b));
    if (n < 0 && errno != EAGAIN) break;
  }
  EXPECT_EQ(n, -1);
  EXPECT_EQ(errno, EPROTO);
  EXPECT_EQ(Failures(counters_, TlsFailure::kCertificate), 1u);
  EXPECT_EQ(counters_.tls_handshakes.load(), 0u);
}

TEST_F(TlsPairTest, ClientCertificateSignedByTheCaIsAccepted) {
  Start(/*http2=*/false, /*client_certs=*/true);
  SSL_use_certificate(client_, certs_.client.get());
  SSL_use_PrivateKey(client_, certs_.client_key.get());
  Handshake();
  ClientWrite("hello");
  EXPECT_EQ(ServerReadAll(), "hello");
  EXPECT_EQ(counters_.tls_handshakes.load(), 1u);
}

TEST_F(TlsPairTest, ClientCertificateOfAnotherCaIsRejected) {
  Start(/*http2=*/false, /*client_certs=*/true);
  auto key = testing::NewKey();
  auto self_signed =
      testing::NewCert(key.get(), "stranger", nullptr, nullptr, false);
  SSL_use_certificate(client_, self_signed.get());
  SSL_use_PrivateKey(client_, key.get());
  ssize_t n = 0;
  for (int i = 0; i < 20; ++i) {
    SSL_do_handshake(client_);
    char b[64];
    n = transport_->Read(b, sizeof(b));
    if (n < 0 && errno != EAGAIN) break;
  }
  EXPECT_EQ(n, -1);
  EXPECT_EQ(Failures(counters_, TlsFailure::kCertificate), 1u);
}

// A large answer into a small socket buffer: Write reports how much went
// out, EAGAIN when nothing could, and a retry from a moved buffer holding
// the same bytes goes on where it stopped.
TEST_F(TlsPairTest, BlockedWritesResumeFromAMovedBuffer) {
  Start();
  Handshake();
  std::string body(3 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7);
  size_t sent = 0;
  std::string received;
  bool saw_block = false;
  for (int rounds = 0; rounds < 100000 && received.size() < body.size();
       ++rounds) {
    if (sent < body.size()) {
      std::string rest = body.substr(sent);  // a new address every time
      ssize_t n = transport_->Write(rest.data(), rest.size());
      if (n > 0) {
        sent += static_cast<size_t>(n);
        if (static_cast<size_t>(n) < rest.size()) saw_block = true;
      } else {
        ASSERT_EQ(errno, EAGAIN);
        saw_block = true;
      }
    }
    received += ClientReadAll();
  }
  EXPECT_TRUE(saw_block);
  ASSERT_EQ(received.size(), body.size());
  EXPECT_TRUE(received == body);
}

// TLS 1.3 KeyUpdate: the client asks for one while our direction is full
// and a record of ours waits to go out (OpenSSL answers it with our next
// write). Reading on must neither fail nor lose a byte in either direction
// once the client drains its side.
TEST_F(TlsPairTest, KeyUpdateWhileOurDirectionIsFull) {
  Start();
  Handshake();
  std::string chunk(64 * 1024, 'x');
  size_t sent = 0;
  while (true) {
    ssize_t n = transport_->Write(chunk.data(), chunk.size());
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  ASSERT_EQ(SSL_key_update(client_, SSL_KEY_UPDATE_REQUESTED), 1);
  ClientWrite("ping");
  std::string got;
  std::string received;
  bool blocked = true;  // the loop above ended on a blocked write
  for (int i = 0; i < 1000 && (got.size() < 4 || received.size() < sent); ++i) {
    char buf[16384];
    ssize_t n = transport_->Read(buf, sizeof(buf));
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    if (n < 0) {
      ASSERT_EQ(errno, EAGAIN);
    }
    // Retry the blocked write (all 'x': the same bytes), then let the
    // client drain.
    if (blocked) {
      ssize_t w = transport_->Write(chunk.data(), chunk.size());
      if (w > 0) sent += static_cast<size_t>(w);
      blocked = w < static_cast<ssize_t>(chunk.size());
    }
    received += ClientReadAll();
  }
  EXPECT_EQ(got, "ping");
  EXPECT_EQ(received.size(), sent);
  EXPECT_FALSE(transport_->ReadNeedsWritable());
}

}  // namespace
}  // namespace forkd::tls

#include "server/tls/tls_context.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/tls/tls_transport.h"

namespace forkd::tls {
namespace {

// Mozilla's "intermediate" TLS 1.2 suites, forward-secret AEADs only
// (without the DHE ones, which would need parameters). TLS 1.3 suites stay
// OpenSSL's defaults.
constexpr char kDefaultCiphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// The session-id context binds cached sessions to this server; OpenSSL
// refuses to resume a session with client verification without one.
constexpr unsigned char kSessionIdContext[] = "forkd";

constexpr int64_t kLogIntervalMs = 1000;

std::string Quote(const std::string& s) {
  return absl::StrCat("\"", absl::CHexEscape(s), "\"");
}

// OpenSSL's queued errors as one line (the last, most specific, first),
// emptying the queue.
std::string OpenSslErrors() {
  std::string text;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    const char* reason = ERR_reason_error_string(e);
    std::string one = reason != nullptr ? reason : absl::StrCat("error ", e);
    text = text.empty() ? one : absl::StrCat(one, "; ", text);
  }
  return text.empty() ? "unknown OpenSSL error" : text;
}

// A file the flag names must exist and be readable: say so with errno's
// words rather than OpenSSL's "system lib".
absl::Status CheckReadable(const char* flag, const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, ": cannot read ", Quote(path), ": ", std::strerror(errno)));
  }
  close(fd);
  return absl::OkStatus();
}

absl::Status LoadError(const char* flag, const std::string& path,
                       const std::string& what) {
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, ": cannot load ", Quote(path), ": ", what));
}

absl::Status KeyMismatch(const char* flag, const std::string& keyfile,
                         const std::string& certfile) {
  return absl::InvalidArgumentError(absl::StrCat(
      "--", flag, ": the key in ", Quote(keyfile),
      " does not match the certificate in --certfile ", Quote(certfile)));
}

// A key that needs a passphrase fails to load instead of prompting on the
// terminal: workers have none.
int NoPassphrase(char*, int, int, void*) { return 0; }

// Picks the protocol by our preference: h2 (when offered by both), then
// http/1.1. A client that offers only protocols we do not speak gets the
// no_application_protocol alert (RFC 7301 3.2).
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen,
               const unsigned char* in, unsigned int inlen, void* arg) {
  auto* self = static_cast<TlsContext*>(arg);
  static constexpr unsigned char kH2[] = {2, 'h', '2'};
  static constexpr unsigned char kHttp11[] = {8,   'h', 't', 't', 'p',
                                              '/', '1', '.', '1'};
  auto offered = [&](const unsigned char* proto) {
    for (unsigned int i = 0; i < inlen;) {
      unsigned int n = in[i];
      if (i + 1 + n > inlen) return false;
      if (n == proto[0] && std::memcmp(in + i + 1, proto + 1, n) == 0) {
        *out = in + i + 1;
        *outlen = static_cast<unsigned char>(n);
        return true;
      }
      i += 1 + n;
    }
    return false;
  };
  if (self->offers_http2() && offered(kH2)) return SSL_TLSEXT_ERR_OK;
  if (offered(kHttp11)) return SSL_TLSEXT_ERR_OK;
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

}  // namespace

TlsOptions OptionsFromConfig(const config::Config& c, bool http2) {
  TlsOptions o;
  o.certfile = c.certfile;
  o.keyfile = c.keyfile;
  o.ca_certs = c.ca_certs;
  o.min_version = c.ssl_min_version;
  o.ciphers = c.ciphers;
  o.http2 = http2;
  return o;
}

absl::Status CheckConfig(const config::Config& c) {
  if (c.certfile.empty()) return absl::OkStatus();
  auto ctx = TlsContext::Create(OptionsFromConfig(c, /*http2=*/false));
  return ctx.ok() ? absl::OkStatus() : ctx.status();
}

absl::StatusOr<std::unique_ptr<TlsContext>> TlsContext::Create(
    const TlsOptions& o) {
  if (o.certfile.empty()) {
    return absl::InvalidArgumentError("--certfile: no certificate file given");
  }
  const std::string& keyfile = o.keyfile.empty() ? o.certfile : o.keyfile;
  const char* key_flag = o.keyfile.empty() ? "certfile" : "keyfile";
  if (auto s = CheckReadable("certfile", o.certfile); !s.ok()) return s;
  if (auto s = CheckReadable(key_flag, keyfile); !s.ok()) return s;
  if (!o.ca_certs.empty()) {
    if (auto s = CheckReadable("ca-certs", o.ca_certs); !s.ok()) return s;
  }

  ERR_clear_error();
  SSL_CTX* raw = SSL_CTX_new(TLS_server_method());
  if (raw == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("TLS: cannot create a context: ", OpenSslErrors()));
  }
  std::unique_ptr<TlsContext> ctx(new TlsContext(raw, o.http2));

  int min_version = TLS1_2_VERSION;
  if (o.min_version == "TLSv1.3") {
    min_version = TLS1_3_VERSION;
  } else if (!o.min_version.empty() && o.min_version != "TLSv1.2") {
    return absl::InvalidArgumentError(
        absl::StrCat("--ssl-min-version: ", Quote(o.min_version),
                     " is not a TLS version (expected TLSv1.2 or TLSv1.3)"));
  }
  SSL_CTX_set_min_proto_version(raw, min_version);
  // No renegotiation (a client could make us redo handshakes at will), no
  // compression (CRIME); the client's cipher order wins, as all ours are
  // strong and it knows whether it has AES hardware. A client that closes
  // without close_notify has ended its stream, as a TCP EOF does: HTTP's
  // own framing tells a truncated request, and our answer can still go out.
  SSL_CTX_set_options(raw, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_IGNORE_UNEXPECTED_EOF);
  const std::string& ciphers = o.ciphers.empty() ? kDefaultCiphers : o.ciphers;
  if (SSL_CTX_set_cipher_list(raw, ciphers.c_str()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("--ciphers: ", Quote(ciphers),
                     " names no cipher OpenSSL knows (see `openssl ciphers`)"));
  }
  // Partial writes: SSL_write returns after each record, so a write that
  // blocks keeps only one record pending. The caller's buffer may move
  // between a blocked write and its retry (it grows at its end).
  // Read-ahead: one read(2) takes all the socket holds, not a record
  // header and then its body. Idle keep-alive connections give their
  // buffers back.
  SSL_CTX_set_mode(raw, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_read_ahead(raw, 1);
  SSL_CTX_set_session_id_context(raw, kSessionIdContext,
                                 sizeof(kSessionIdContext) - 1);
  SSL_CTX_set_default_passwd_cb(raw, NoPassphrase);

  if (SSL_CTX_use_certificate_chain_file(raw, o.certfile.c_str()) != 1) {
    return LoadError("certfile", o.certfile, OpenSslErrors());
  }
  if (SSL_CTX_use_PrivateKey_file(raw, keyfile.c_str(), SSL_FILETYPE_PEM) !=
      1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
      ERR_clear_error();
      return KeyMismatch(key_flag, keyfile, o.certfile);
    }
    std::string why = OpenSslErrors();
    if (o.keyfile.empty()) {
      why += " (no --keyfile given: the key must then be in --certfile)";
    }
    return LoadError(key_flag, keyfile, why);
  }
  if (SSL_CTX_check_private_key(raw) != 1) {
    ERR_clear_error();
    return KeyMismatch(key_flag, keyfile, o.certfile);
  }
  if (!o.ca_certs.empty()) {
    if (SSL_CTX_load_verify_locations(raw, o.ca_certs.c_str(), nullptr) != 1) {
      return LoadError("ca-certs", o.ca_certs, OpenSslErrors());
    }
    // The CA names we send in the CertificateRequest, so a client with
    // several certificates picks one we accept.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.ca_certs.c_str());
    if (names == nullptr) {
      ERR_clear_error();
      return LoadError("ca-certs", o.ca_certs, "no certificate in the file");
    }
    SSL_CTX_set_client_CA_list(raw, names);
    SSL_CTX_set_verify(raw, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       nullptr);
  }
  SSL_CTX_set_alpn_select_cb(raw, SelectAlpn, ctx.get());
  return ctx;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

std::unique_ptr<transport::ClientTransport> TlsContext::NewTransport(
    int fd, std::string peer, scoreboard::Counters* counters) {
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr || SSL_set_fd(ssl, fd) != 1) {
    LOG_ERROR("TLS: cannot set up a connection from %s: %s",
              peer.empty() ? "unix-socket client" : peer, OpenSslErrors());
    SSL_free(ssl);
    close(fd);
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  return std::make_unique<TlsTransport>(this, ssl, fd, std::move(peer),
                                        counters);
}

void TlsContext::ReportFailure(scoreboard::TlsFailure kind,
                               const std::string& peer,
                               const std::string& detail,
                               scoreboard::Counters* counters) {
  if (counters != nullptr) {
    counters->tls_handshake_failures[static_cast<size_t>(kind)].fetch_add(
        1, std::memory_order_relaxed);
  }
  const std::string& who = peer.empty() ? "unix-socket client" : peer;
  if (kind == scoreboard::TlsFailure::kClosed) {
    LOG_DEBUG("TLS handshake with %s failed: %s", who, detail);
    return;
  }
  int64_t now = scoreboard::MonotonicMs();
  int64_t last = last_log_ms_.load(std::memory_order_relaxed);
  if (now - last < kLogIntervalMs ||
      !last_log_ms_.compare_exchange_strong(last, now)) {
    unlogged_.fetch_add(1, std::memory_order_relaxed);
    LOG_DEBUG("TLS handshake with %s failed: %s", who, detail);
    return;
  }
  uint64_t more = unlogged_.exchange(0, std::memory_order_relaxed);
  if (more > 0) {
    LOG_INFO("TLS handshake with %s failed: %s (and %d more not logged)", who,
             detail, more);
  } else {
    LOG_INFO("TLS handshake with %s failed: %s", who, detail);
  }
}

}  // namespace forkd::tls

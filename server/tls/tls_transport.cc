#include "server/tls/tls_transport.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/tls/tls_context.h"

namespace forkd::tls {
namespace {

// What a client that spoke plain HTTP to the TLS port reads (nginx does
// the same): a hint beats a bare reset.
constexpr char kPlainHttpAnswer[] =
    "HTTP/1.1 400 Bad Request\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 50\r\n"
    "Connection: close\r\n"
    "\r\n"
    "plain HTTP request sent to a port that serves TLS\n";

std::string ErrorText(unsigned long e) {
  const char* reason = ERR_reason_error_string(e);
  return reason != nullptr ? reason : absl::StrCat("OpenSSL error ", e);
}

}  // namespace

TlsTransport::TlsTransport(TlsContext* context, SSL* ssl, int fd,
                           std::string peer, scoreboard::Counters* counters)
    : context_(context),
      ssl_(ssl),
      fd_(fd),
      peer_(std::move(peer)),
      counters_(counters) {
  // One socket BIO serves both directions (SSL_set_fd); watching its reads
  // tells when the socket ran dry.
  BIO* bio = SSL_get_rbio(ssl_);
  BIO_set_callback_ex(bio, &TlsTransport::BioCallback);
  BIO_set_callback_arg(bio, reinterpret_cast<char*>(this));
}

void TlsTransport::ReportClosedInHandshake(const char* detail) {
  if (handshake_done_ || failure_reported_ || !received_any_) return;
  failure_reported_ = true;
  context_->ReportFailure(scoreboard::TlsFailure::kClosed, peer_, detail,
                          counters_);
}

TlsTransport::~TlsTransport() {
  // Ended mid-handshake by us: the client stalled past the timeout, or the
  // worker stopped.
  ReportClosedInHandshake("the connection ended during the handshake");
  if (!fatal_ && handshake_done_ && !shutdown_sent_) {
    // close_notify, so the client can tell our close from a truncation; if
    // the socket cannot take it right now, the FIN says enough.
    ERR_clear_error();
    SSL_shutdown(ssl_);
  }
  SSL_free(ssl_);
  ERR_clear_error();
  close(fd_);
}

long TlsTransport::BioCallback(BIO* bio, int oper, const char*, size_t len, int,
                               long, int ret, size_t* processed) {
  if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
    auto* self = reinterpret_cast<TlsTransport*>(BIO_get_callback_arg(bio));
    size_t got = (ret > 0 && processed != nullptr) ? *processed : 0;
    // A short read, EAGAIN and EOF all mean nothing is left in the socket.
    self->socket_drained_ = got < len;
    if (got > 0) self->received_any_ = true;
  }
  return ret;
}

ssize_t TlsTransport::Read(char* buf, size_t len) {
  if (fatal_) {
    errno = EPROTO;
    return -1;
  }
  ERR_clear_error();
  size_t n = 0;
  int r = SSL_read_ex(ssl_, buf, len, &n);
  if (r == 1) {
    read_wants_write_ = false;
    if (!handshake_done_) OnHandshakeDone();
    return static_cast<ssize_t>(n);
  }
  return Failed(r, /*reading=*/true);
}

ssize_t TlsTransport::Write(const char* data, size_t len) {
  if (fatal_ || shutdown_sent_) {
    errno = fatal_ ? EPROTO : EPIPE;
    return -1;
  }
  if (len == 0) return 0;
  // Partial-write mode returns after each record: go on until the socket
  // blocks, so a short count keeps meaning "the socket is full" to callers.
  size_t total = 0;
  while (total < len) {
    ERR_clear_error();
    size_t n = 0;
    int r = SSL_write_ex(ssl_, data + total, len - total, &n);
    if (r != 1) {
      if (total > 0) {
        // Report what went out; the blocked record is retried with the
        // same bytes, which the caller keeps at the front of its buffer.
        int err = SSL_get_error(ssl_, r);
        if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
          write_wants_read_ = err == SSL_ERROR_WANT_READ;
          return static_cast<ssize_t>(total);
        }
      }
      return Failed(r, /*reading=*/false);
    }
    write_wants_read_ = false;
    if (!handshake_done_) OnHandshakeDone();
    total += n;
  }
  return static_cast<ssize_t>(total);
}

ssize_t TlsTransport::Failed(int ret, bool reading) {
  int err = SSL_get_error(ssl_, ret);
  switch (err) {
    case SSL_ERROR_WANT_READ:
      if (reading) {
        read_wants_write_ = false;
      } else {
        write_wants_read_ = true;
      }
      if (!handshake_done_ && SSL_is_init_finished(ssl_)) OnHandshakeDone();
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_WANT_WRITE:
      if (reading) {
        read_wants_write_ = true;
      } else {
        write_wants_read_ = false;
      }
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      // close_notify, or (SSL_OP_IGNORE_UNEXPECTED_EOF) a bare EOF: the
      // end of the client's stream; our direction stays usable.
      read_wants_write_ = false;
      ReportClosedInHandshake("the client closed the connection");
      if (reading) return 0;
      errno = EPIPE;
      return -1;
    case SSL_ERROR_SYSCALL: {
      int e = errno;
      fatal_ = true;
      ERR_clear_error();
      ReportClosedInHandshake(e != 0 ? std::strerror(e)
                                     : "the client closed the connection");
      if (e == 0) {  // EOF where OpenSSL wanted more
        if (reading) return 0;
        e = EPIPE;
      }
      // The connection is done for: no errno that asks for a retry.
      if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR) e = EPROTO;
      errno = e;
      return -1;
    }
    default:
      OnFatal(ERR_peek_last_error());
      errno = EPROTO;
      return -1;
  }
}

void TlsTransport::OnFatal(unsigned long err) {
  fatal_ = true;
  int reason = ERR_GET_REASON(err);
  bool ssl_lib = ERR_GET_LIB(err) == ERR_LIB_SSL;
  std::string detail = ErrorText(err);
  ERR_clear_error();
  if (handshake_done_) {
    LOG_DEBUG("TLS error on the connection from %s: %s",
              peer_.empty() ? "unix-socket client" : peer_, detail);
    return;
  }
  if (failure_reported_) return;
  failure_reported_ = true;
  auto kind = scoreboard::TlsFailure::kProtocol;
  long verify = SSL_get_verify_result(ssl_);
  if (ssl_lib && reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
    kind = scoreboard::TlsFailure::kCertificate;
    detail = "the client sent no certificate (--ca-certs requires one)";
  } else if (verify != X509_V_OK) {
    kind = scoreboard::TlsFailure::kCertificate;
    detail = absl::StrCat("client certificate rejected: ",
                          X509_verify_cert_error_string(verify));
  } else if (ssl_lib && reason == SSL_R_HTTP_REQUEST) {
    detail = "plain HTTP sent to the TLS port";
    // Not through SSL: the client speaks plain HTTP. Best effort, the
    // connection closes right after.
    (void)!send(fd_, kPlainHttpAnswer, sizeof(kPlainHttpAnswer) - 1,
                MSG_NOSIGNAL);
  } else if (!received_any_) {
    kind = scoreboard::TlsFailure::kClosed;
  }
  context_->ReportFailure(kind, peer_, detail, counters_);
}

void TlsTransport::OnHandshakeDone() {
  handshake_done_ = true;
  if (counters_ != nullptr) {
    counters_->tls_handshakes.fetch_add(1, std::memory_order_relaxed);
  }
  if (log::Enabled(log::Level::kDebug)) {
    std::string_view proto = alpn();
    LOG_DEBUG("TLS handshake with %s: %s %s%s%s",
              peer_.empty() ? "unix-socket client" : peer_,
              SSL_get_version(ssl_), SSL_get_cipher_name(ssl_),
              proto.empty() ? "" : " ALPN ", proto);
  }
}

void TlsTransport::ShutdownWrite() {
  if (shutdown_sent_) return;
  shutdown_sent_ = true;
  if (!fatal_ && handshake_done_) {
    ERR_clear_error();
    SSL_shutdown(ssl_);
    ERR_clear_error();
  }
  shutdown(fd_, SHUT_WR);
}

bool TlsTransport::HasPendingInput() const {
  if (fatal_) return false;
  return !socket_drained_ || SSL_pending(ssl_) > 0 || SSL_has_pending(ssl_);
}

std::string_view TlsTransport::alpn() const {
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &data, &len);
  return data == nullptr
             ? std::string_view()
             : std::string_view(reinterpret_cast<const char*>(data), len);
}

}  // namespace forkd::tls

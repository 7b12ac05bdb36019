// A ClientTransport serving TLS on a non-blocking socket. The server side of
// the handshake runs inside Read and Write (accept state), so drivers treat
// a TLS connection like a plain one: readiness in, Read/Write, EAGAIN out.
// What TLS adds is said through ClientTransport's hooks: decrypted bytes may
// wait inside OpenSSL (HasPendingInput), and a Read may need the socket
// writable or a Write need it readable (a handshake flight, a key update).
#ifndef FORKD_SERVER_TLS_TLS_TRANSPORT_H_
#define FORKD_SERVER_TLS_TLS_TRANSPORT_H_

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <string>
#include <string_view>

#include "server/transport/client_transport.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::tls {

class TlsContext;

class TlsTransport final : public transport::ClientTransport {
 public:
  // Takes `ssl` (fresh, from the context's SSL_CTX) and the socket `fd`.
  // `context` outlives the transport; `counters` may be nullptr.
  TlsTransport(TlsContext* context, SSL* ssl, int fd, std::string peer,
               scoreboard::Counters* counters);
  // Sends close_notify when the session ended cleanly (best effort, never
  // waits), then closes the socket.
  ~TlsTransport() override;
  TlsTransport(const TlsTransport&) = delete;
  TlsTransport& operator=(const TlsTransport&) = delete;

  // As read(2)/send(2): > 0 bytes; Read 0 at the client's close_notify or
  // EOF; -1 with errno EAGAIN while the handshake or a record needs the
  // socket (see ReadNeedsWritable), EPROTO after a failed handshake or a
  // TLS error (logged and counted), the socket's errno otherwise.
  ssize_t Read(char* buf, size_t len) override;
  ssize_t Write(const char* data, size_t len) override;
  // close_notify once; reads go on until the client's EOF.
  void ShutdownWrite() override;
  // The socket's raw bytes: a lingering close does not decrypt them.
  ssize_t Discard(char* buf, size_t len) override {
    return recv(fd_, buf, len, 0);
  }
  // The client sent handshake bytes and the handshake is not done.
  bool InHandshake() const override {
    return received_any_ && !handshake_done_ && !fatal_;
  }
  int fd() const override { return fd_; }
  const char* scheme() const override { return "https"; }
  bool HasPendingInput() const override;
  bool ReadNeedsWritable() const override { return read_wants_write_; }
  bool WriteNeedsReadable() const override { return write_wants_read_; }

  bool handshake_done() const { return handshake_done_; }
  // The ALPN protocol chosen ("h2", "http/1.1"), "" when none.
  std::string_view alpn() const;

 private:
  // SSL_get_error() of a failed SSL_read_ex/SSL_write_ex as -1/errno (or 0
  // for the end of the stream), recording what the retry waits for.
  ssize_t Failed(int ret, bool reading);
  void OnHandshakeDone();
  // Counts a handshake the connection ended before it completed (once, and
  // only when the client sent anything): kClosed with `detail`.
  void ReportClosedInHandshake(const char* detail);
  void OnFatal(unsigned long err);
  static long BioCallback(BIO* bio, int oper, const char* argp, size_t len,
                          int argi, long argl, int ret, size_t* processed);

  TlsContext* context_;
  SSL* ssl_;
  int fd_;
  std::string peer_;
  scoreboard::Counters* counters_;
  bool handshake_done_ = false;
  bool fatal_ = false;  // no more SSL calls but SSL_free
  bool shutdown_sent_ = false;
  bool read_wants_write_ = false;
  bool write_wants_read_ = false;
  // The socket had no more bytes at our last read of it (short read,
  // EAGAIN or EOF): new bytes raise a new readiness event. Until then an
  // edge-triggered driver must keep reading even after a short SSL_read.
  bool socket_drained_ = false;
  bool received_any_ = false;      // the client sent at least one byte
  bool failure_reported_ = false;  // the handshake failure was counted
};

}  // namespace forkd::tls

#endif  // FORKD_SERVER_TLS_TLS_TRANSPORT_H_

// TLS termination for the client ports (--certfile, --keyfile, --ca-certs):
// one SSL_CTX per worker, loaded from the files when the worker starts, so
// a HUP (which starts new workers) serves replaced certificates. The master
// only checks that the files load (CheckConfig) and never serves TLS.
#ifndef FORKD_SERVER_TLS_TLS_CONTEXT_H_
#define FORKD_SERVER_TLS_TLS_CONTEXT_H_

#include <openssl/ssl.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/config/config.h"
#include "server/transport/client_transport.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::tls {

struct TlsOptions {
  std::string certfile;     // PEM chain: the server certificate first
  std::string keyfile;      // PEM private key; "" = in certfile
  std::string ca_certs;     // "" = no client certificates asked for
  std::string min_version;  // "TLSv1.2" or "TLSv1.3"
  std::string ciphers;      // TLS 1.2 cipher list ("" = forkd's default)
  bool http2 = false;       // offer "h2" in ALPN (else "http/1.1" only)
};

// The options --certfile & co. give, with ALPN "h2" when `http2`.
TlsOptions OptionsFromConfig(const config::Config& c, bool http2);

// Loads the files of `c` into a throw-away context: OK when TLS is off or
// everything loads, else InvalidArgument naming the flag and the cause
// ("--keyfile: cannot load \"/x/key.pem\": No such file or directory").
// The master calls it at start and on HUP before it starts new workers.
absl::Status CheckConfig(const config::Config& c);

class TlsContext {
 public:
  // Loads certificate, key and CA files; errors as CheckConfig's.
  static absl::StatusOr<std::unique_ptr<TlsContext>> Create(
      const TlsOptions& options);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // A transport serving TLS on the accepted, non-blocking socket `fd`
  // (owned by the transport from now on, even on failure). `peer` names the
  // client in log lines; `counters` (nullptr: not counted) receives the
  // handshake results. Returns nullptr only when OpenSSL cannot allocate a
  // connection (logged; the socket is closed). Any thread.
  std::unique_ptr<transport::ClientTransport> NewTransport(
      int fd, std::string peer, scoreboard::Counters* counters);

  SSL_CTX* ssl_ctx() const { return ctx_; }
  bool offers_http2() const { return http2_; }

  // One handshake failure, from any thread: counted, and logged at most
  // once a second per worker (with how many were left out), because a port
  // on the internet sees scanners all day. `closed` ones (a client that
  // gave up mid-handshake) are logged at debug level only.
  void ReportFailure(scoreboard::TlsFailure kind, const std::string& peer,
                     const std::string& detail, scoreboard::Counters* counters);

 private:
  TlsContext(SSL_CTX* ctx, bool http2) : ctx_(ctx), http2_(http2) {}

  SSL_CTX* ctx_;
  bool http2_;
  std::atomic<int64_t> last_log_ms_{0};
  std::atomic<uint64_t> unlogged_{0};
};

}  // namespace forkd::tls

#endif  // FORKD_SERVER_TLS_TLS_CONTEXT_H_

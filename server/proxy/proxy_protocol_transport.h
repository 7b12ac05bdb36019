// --proxy-protocol: a ClientTransport that first reads the PROXY protocol
// header (proxyproto/proxy_header.h) a load balancer sends at the start of
// the connection, then hands the socket to the transport that serves it
// (plain or TLS: the header comes before the TLS handshake). It never
// reads a byte past the header, so TLS, which reads the socket itself,
// starts exactly at the client's first byte.
#ifndef FORKD_SERVER_PROXY_PROXY_PROTOCOL_TRANSPORT_H_
#define FORKD_SERVER_PROXY_PROXY_PROTOCOL_TRANSPORT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "server/transport/client_transport.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::proxy {

// How long a PROXY header may take from accept at most. Load balancers
// send it with (or right after) the handshake; a short bound keeps a peer
// that trickles it from holding a connection slot, whatever --keepalive
// and --timeout say.
inline constexpr int64_t kProxyHeaderTimeoutMs = 5000;

// The bound a PROXY header gets: kProxyHeaderTimeoutMs, or
// --client-header-timeout (`client_header_timeout_ms`) when that is
// shorter, since the header is the first part of the request head.
int64_t ProxyHeaderTimeoutMs(int64_t client_header_timeout_ms);

// Counts a connection closed for `reason` and logs it (at most one line a
// second per worker process, with the number left out since). `peer` is
// the socket's peer. `counters` may be nullptr. Any thread.
void ReportProxyProtocolReject(scoreboard::Counters* counters,
                               scoreboard::ProxyProtocolReject reason,
                               const std::string& peer,
                               const std::string& detail);

class ProxyProtocolTransport final : public transport::ClientTransport {
 public:
  // Makes the transport that serves the connection after the header, for
  // the socket and the client's address; nullptr when it cannot (it then
  // closed the socket, as TlsContext::NewTransport does).
  using Next = std::function<std::unique_ptr<transport::ClientTransport>(
      int fd, const std::string& client)>;

  // Takes the non-blocking socket `fd` of a peer (`peer`, already checked
  // against --proxy-allow-ips). `scheme` is what `next` will serve.
  // `counters` may be nullptr.
  ProxyProtocolTransport(int fd, std::string peer, const char* scheme,
                         Next next, scoreboard::Counters* counters,
                         int64_t now_ms, int64_t timeout_ms);
  ~ProxyProtocolTransport() override;
  ProxyProtocolTransport(const ProxyProtocolTransport&) = delete;
  ProxyProtocolTransport& operator=(const ProxyProtocolTransport&) = delete;

  // Until the header is read: -1/EAGAIN while it is incomplete (the bytes
  // so far are taken off the socket, so a level-triggered poll does not
  // spin), -1/EPROTO for a bad one, 0 when the peer closed first (each
  // counted and logged). Then as the next transport's.
  ssize_t Read(char* buf, size_t len) override;
  // Nothing is written before the header (-1/EPIPE): there is no protocol
  // yet in which to answer.
  ssize_t Write(const char* data, size_t len) override;
  void ShutdownWrite() override;
  int fd() const override { return fd_; }
  const char* scheme() const override { return scheme_; }
  bool HasPendingInput() const override;
  bool ReadNeedsWritable() const override;
  bool WriteNeedsReadable() const override;
  int64_t setup_deadline_ms() const override;
  void OnSetupTimeout() override;
  const std::string* proxied_peer() const override;

 private:
  ssize_t ReadHeader();
  void Reject(scoreboard::ProxyProtocolReject reason,
              const std::string& detail);

  int fd_;
  std::string peer_;
  const char* scheme_;
  Next next_;
  scoreboard::Counters* counters_;
  int64_t timeout_ms_;
  int64_t deadline_ms_;
  std::string pending_;  // header bytes taken off the socket so far
  bool failed_ = false;
  std::optional<std::string> client_;  // set once the header is read
  std::unique_ptr<transport::ClientTransport> inner_;
};

}  // namespace forkd::proxy

#endif  // FORKD_SERVER_PROXY_PROXY_PROTOCOL_TRANSPORT_H_

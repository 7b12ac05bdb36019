// An HTTP/2 client connection in a worker: the nghttp2 session
// (Http2Session) on the client socket, its GOAWAY/drain, client timeouts,
// idle close and lingering close. What serves each stream is the
// connection's StreamBackend (stream_backend.h), chosen once when the
// connection is created: a ProxySession exchange per stream for an
// HTTP/1.1 app (ExchangeStreams), or the h2c bridge (UpstreamBridge).
//
// It lives in proxy/: http2/ holds the protocol alone (Http2Session) and
// depends on nothing of the proxy.
#ifndef FORKD_SERVER_PROXY_HTTP2_CONNECTION_H_
#define FORKD_SERVER_PROXY_HTTP2_CONNECTION_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/common/buffer.h"
#include "server/http1/message.h"
#include "server/http2/http2_session.h"
#include "server/proxy/client_connection.h"
#include "server/proxy/lingering_close.h"
#include "server/proxy/proxy_session.h"
#include "server/proxy/stream_backend.h"
#include "server/transport/client_transport.h"

namespace forkd::proxy {

class Http2Connection final : public proxy::ClientConnection,
                              public http2::Http2Session::Handler {
 public:
  // Takes over a client connection whose first bytes (`received`, read by
  // the HTTP/1 path) start with the HTTP/2 preface.
  static absl::StatusOr<std::unique_ptr<Http2Connection>> Create(
      proxy::SessionContext* ctx, std::unique_ptr<transport::ClientTransport> t,
      std::string peer, std::string received, int64_t now_ms);
  // Takes over a client connection whose HTTP/1.1 request asked for
  // "Upgrade: h2c" (ProxySession::TakeH2cUpgrade): answers "101 Switching
  // Protocols", sends our SETTINGS and serves that request as stream 1.
  // `received`: client bytes read after the request (usually none yet).
  // Fails for an HTTP2-Settings field the session refuses (the caller
  // checked it with Http2Session::CheckUpgradeSettings before).
  static absl::StatusOr<std::unique_ptr<Http2Connection>> CreateFromUpgrade(
      proxy::SessionContext* ctx, std::unique_ptr<transport::ClientTransport> t,
      std::string peer, const proxy::H2cUpgrade& upgrade, std::string received,
      int64_t now_ms);
  // What an HTTP/1 connection that turned out to speak HTTP/2
  // (ProxySession::wants_http2) hands over.
  struct Handoff {
    std::unique_ptr<transport::ClientTransport> transport;
    std::string received;  // client bytes read so far
    std::string peer;
    std::optional<proxy::H2cUpgrade> upgrade;  // set for "Upgrade: h2c"
  };
  // Takes the handoff from `h1`, which is closed afterwards. Any thread.
  static Handoff TakeFrom(proxy::ProxySession* h1);
  // Create() or CreateFromUpgrade(), as the handoff says; a failure is
  // logged (the transport closes with it). The thread that drives it.
  static absl::StatusOr<std::unique_ptr<Http2Connection>> Start(
      proxy::SessionContext* ctx, Handoff handoff, int64_t now_ms);
  ~Http2Connection() override;

  // proxy::ClientConnection
  void OnClientEvents(uint32_t events) override;
  void OnTimeout(int64_t now_ms) override;
  void Abort() override;
  void OnStopAccepting() override { Drive(); }
  void OnBatchEnd() override;
  Phase phase() const override;
  int64_t deadline_ms() const override { return deadline_ms_; }

  // http2::Http2Session::Handler
  void OnRequestHeaders(int32_t stream_id, std::string_view method,
                        std::string_view scheme, std::string_view authority,
                        std::string_view path,
                        std::vector<http1::Header> headers,
                        bool end_stream) override;
  void OnRequestData(int32_t stream_id, std::string_view data) override;
  void OnRequestEnd(int32_t stream_id,
                    std::vector<http1::Header> trailers) override;
  void OnStreamClosed(int32_t stream_id, uint32_t error_code) override;

 private:
  Http2Connection(proxy::SessionContext* ctx,
                  std::unique_ptr<transport::ClientTransport> transport,
                  std::string peer, int64_t now_ms);
  // What this connection's StreamBackend uses of it (once session_ is set).
  StreamClient BackendClient();
  // Feeds the first client bytes, then serves.
  void Start(std::string_view received);
  void Drive();
  // The worker is stopping (reload, recycle, TERM) or the server drains,
  // and this connection has not said GOAWAY yet.
  bool GoawayDue() const;
  bool ReadClient();
  bool FlushOutput();
  // Frames were queued outside Drive() (an app event of a stream): write
  // them after the event batch, or now without a batching driver.
  void FlushSoon();
  void UpdateDeadline();
  // Counts this connection in the slot's active (a stream open) or idle
  // client-connection gauge, as ProxySession does for HTTP/1; `gone` takes
  // it out of both.
  void UpdateConnectionGauge(bool gone);
  int64_t IdleMs() const;
  // --client-header-timeout for the connection's frames: GOAWAY, counted
  // and logged. Returns true when the connection is ending. (The streams'
  // --client-body-timeout is their backend's.)
  bool CheckClientTimeouts(int64_t now_ms);
  // The deadline CheckClientTimeouts() acts on next.
  int64_t ClientDeadline() const;
  // Ends the connection once what the session has queued (its GOAWAY) is
  // written: then half-closes and drops the client's input for a while
  // (LingeringClose), so a reset cannot destroy the GOAWAY or the last
  // responses before the client reads them.
  void Finish();
  // Cuts the connection at once (the client left, a write failed).
  void Close();

  proxy::SessionContext* ctx_;
  std::unique_ptr<transport::ClientTransport> client_;
  std::string peer_;
  std::unique_ptr<http2::Http2Session> session_;
  Buffer out_;
  bool client_readable_ = true;
  bool client_writable_ = true;
  bool client_hup_ = false;
  bool closed_ = false;
  bool stopping_seen_ = false;
  bool finishing_ = false;        // Finish(): writing the last frames
  proxy::LingeringClose linger_;  // then half-closed, dropping input
  int64_t created_ms_ = 0;
  int64_t header_block_since_ms_ = 0;  // a header block open since (0: none)
  bool flush_scheduled_ = false;       // OnBatchEnd() is due
  int depth_ = 0;  // nesting of Drive(): streams are freed only at depth 0
  int64_t last_activity_ms_ = 0;
  int64_t deadline_ms_ = 0;
  Phase gauge_phase_ = Phase::kClosed;  // where the slot's gauges count it
  // The app side of every stream (stream_backend.h).
  std::unique_ptr<StreamBackend> backend_;
};

}  // namespace forkd::proxy

#endif  // FORKD_SERVER_PROXY_HTTP2_CONNECTION_H_

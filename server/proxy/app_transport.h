// How a ProxySession talks to the app: where its connections come from and
// how bytes move on them. The worker uses PoolAppTransport (the per-worker
// pool, non-blocking sockets); unit tests plug in an in-memory app. The
// mirror of ClientTransport on the app side.
#ifndef FORKD_SERVER_PROXY_APP_TRANSPORT_H_
#define FORKD_SERVER_PROXY_APP_TRANSPORT_H_

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>

#include "server/upstream/app_router.h"
#include "server/upstream/upstream_pool.h"

namespace forkd::proxy {

class AppTransport {
 public:
  virtual ~AppTransport() = default;
  // An idle keep-alive connection to reuse, or nullptr.
  virtual std::unique_ptr<upstream::Connection> TakeIdle() = 0;
  // Opens a new connection, as upstream::Pool::Connect.
  virtual upstream::ConnectResult Connect(
      std::unique_ptr<upstream::Connection>* out, int* err) = 0;
  // A connect in progress finished: 0 or its errno (SO_ERROR).
  virtual int ConnectError(upstream::Connection& conn) = 0;
  // As recv(2)/send(2) on a non-blocking socket: > 0 bytes moved; Read
  // returns 0 at the app's EOF; -1 with errno set (EAGAIN: would block,
  // EPIPE/ECONNRESET: the app stopped reading).
  virtual ssize_t Read(upstream::Connection& conn, char* buf, size_t len) = 0;
  virtual ssize_t Write(upstream::Connection& conn, const char* data,
                        size_t len) = 0;
  // Hands back a connection after a complete exchange (kept for reuse), or
  // one that must not be reused.
  virtual void Release(std::unique_ptr<upstream::Connection> conn) = 0;
  virtual void Discard(std::unique_ptr<upstream::Connection> conn) = 0;
  // Where the app is, for error lines ("unix:/path", "127.0.0.1:8001").
  virtual const std::string& display() const = 0;
};

// Byte moves on a real non-blocking app socket, shared by the socket
// transports below.
class SocketAppTransport : public AppTransport {
 public:
  int ConnectError(upstream::Connection& conn) override;
  ssize_t Read(upstream::Connection& conn, char* buf, size_t len) override;
  ssize_t Write(upstream::Connection& conn, const char* data,
                size_t len) override;
};

// The app behind the worker's upstream::Pool, over real sockets.
class PoolAppTransport final : public SocketAppTransport {
 public:
  // `pool` outlives the transport; nullptr only for sessions that never
  // reach an HTTP/1.1 app (h2c upstream).
  explicit PoolAppTransport(upstream::Pool* pool) : pool_(pool) {}

  std::unique_ptr<upstream::Connection> TakeIdle() override;
  upstream::ConnectResult Connect(std::unique_ptr<upstream::Connection>* out,
                                  int* err) override;
  void Release(std::unique_ptr<upstream::Connection> conn) override;
  void Discard(std::unique_ptr<upstream::Connection> conn) override;
  const std::string& display() const override;

 private:
  upstream::Pool* pool_;
};

// App mode: the one app process a request has reserved (AppQueue), over
// the worker's AppPools. A session points its AppTransport here while it
// holds a reservation, so the request path is the same in both modes.
class AppProcessTransport final : public SocketAppTransport {
 public:
  // `pools` outlives the transport.
  explicit AppProcessTransport(upstream::AppPools* pools) : pools_(pools) {}
  void Reserve(const upstream::AppReservation& r);

  std::unique_ptr<upstream::Connection> TakeIdle() override;
  upstream::ConnectResult Connect(std::unique_ptr<upstream::Connection>* out,
                                  int* err) override;
  void Release(std::unique_ptr<upstream::Connection> conn) override;
  void Discard(std::unique_ptr<upstream::Connection> conn) override;
  const std::string& display() const override { return display_; }

 private:
  upstream::AppPools* pools_;
  upstream::AppReservation reservation_;
  std::string display_;  // cached: error lines outlive nothing
};

}  // namespace forkd::proxy

#endif  // FORKD_SERVER_PROXY_APP_TRANSPORT_H_

#include "server/proxy/app_transport.h"

#include <sys/socket.h>

#include <utility>

namespace forkd::proxy {

std::unique_ptr<upstream::Connection> PoolAppTransport::TakeIdle() {
  return pool_->TakeIdle();
}

upstream::ConnectResult PoolAppTransport::Connect(
    std::unique_ptr<upstream::Connection>* out, int* err) {
  return pool_->Connect(out, err);
}

int SocketAppTransport::ConnectError(upstream::Connection& conn) {
  int err = 0;
  socklen_t len = sizeof(err);
  getsockopt(conn.fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return err;
}

ssize_t SocketAppTransport::Read(upstream::Connection& conn, char* buf,
                                 size_t len) {
  return recv(conn.fd, buf, len, 0);  // not read(): see SocketTransport
}

ssize_t SocketAppTransport::Write(upstream::Connection& conn, const char* data,
                                  size_t len) {
  return send(conn.fd, data, len, MSG_NOSIGNAL);
}

void PoolAppTransport::Release(std::unique_ptr<upstream::Connection> conn) {
  pool_->Release(std::move(conn));
}

void PoolAppTransport::Discard(std::unique_ptr<upstream::Connection> conn) {
  pool_->Discard(std::move(conn));
}

const std::string& PoolAppTransport::display() const {
  return pool_->address().display;
}

void AppProcessTransport::Reserve(const upstream::AppReservation& r) {
  reservation_ = r;
  display_ = pools_->Display(r);
}

std::unique_ptr<upstream::Connection> AppProcessTransport::TakeIdle() {
  return pools_->TakeIdle(reservation_);
}

upstream::ConnectResult AppProcessTransport::Connect(
    std::unique_ptr<upstream::Connection>* out, int* err) {
  return pools_->Connect(reservation_, out, err);
}

void AppProcessTransport::Release(std::unique_ptr<upstream::Connection> conn) {
  pools_->Release(reservation_, std::move(conn));
}

void AppProcessTransport::Discard(std::unique_ptr<upstream::Connection> conn) {
  pools_->Discard(std::move(conn));
}

}  // namespace forkd::proxy

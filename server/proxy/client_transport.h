// How a ProxySession talks to its client. Usually a plain socket; TLS and
// HTTP/2 streams (each stream a request on its own virtual connection)
// plug in here without the request path knowing.
#ifndef FORKD_SERVER_PROXY_CLIENT_TRANSPORT_H_
#define FORKD_SERVER_PROXY_CLIENT_TRANSPORT_H_

#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "server/common/loop_clock.h"

namespace forkd::proxy {

class ResponseSink;

class ClientTransport {
 public:
  virtual ~ClientTransport() = default;
  // As read(2)/send(2) on a non-blocking socket: > 0 bytes moved; Read
  // returns 0 at end of stream; -1 with errno set (EAGAIN: would block).
  virtual ssize_t Read(char* buf, size_t len) = 0;
  virtual ssize_t Write(const char* data, size_t len) = 0;
  // No more writes; reads go on (lingering close).
  virtual void ShutdownWrite() = 0;
  // Reads and drops up to `len` bytes during a lingering close, as Read
  // returns: the socket's raw bytes, so a TLS connection whose session
  // failed can still be drained. A transport with no socket returns 0.
  virtual ssize_t Discard(char* buf, size_t len) { return Read(buf, len); }
  // The client has begun a handshake (TLS) that is not complete yet: the
  // request head's timeout applies to it.
  virtual bool InHandshake() const { return false; }
  // The socket a poll-based driver waits on.
  virtual int fd() const = 0;
  // "http" or "https": X-Forwarded-Proto for the app.
  virtual const char* scheme() const { return "http"; }
  // Bytes may be readable without a new readiness event of the socket: TLS
  // holds decrypted bytes, or has not yet seen the socket run dry. Readers
  // keep calling Read until it returns EAGAIN while this is true, instead
  // of taking a short read as "drained".
  virtual bool HasPendingInput() const { return false; }
  // The last Read (Write) returned EAGAIN because the transport must first
  // write (read) the socket: TLS sends a handshake flight or answers a key
  // update while reading. Drivers then retry it when the socket becomes
  // writable (readable) and poll for that direction.
  virtual bool ReadNeedsWritable() const { return false; }
  virtual bool WriteNeedsReadable() const { return false; }
  // An HTTP/2 stream's virtual connection: the session parses HTTP/1.1 on
  // it, but logs and counts its request as HTTP/2.
  virtual bool is_http2_stream() const { return false; }
  // A client that takes the response structured (an HTTP/2 stream): the
  // session hands it the parsed response instead of writing HTTP/1.1 bytes
  // (Write is then never called). nullptr: the response goes out as bytes.
  // Lives as long as the transport.
  virtual ResponseSink* response_sink() { return nullptr; }
  // A preamble of the transport's own (a PROXY protocol header) is still
  // being read: the session closes the connection by this time (monotonic
  // ms) and reports a timeout before then as the preamble's with
  // OnSetupTimeout(). loop_clock::kNoDeadlineMs once there is none.
  virtual int64_t setup_deadline_ms() const {
    return loop_clock::kNoDeadlineMs;
  }
  virtual void OnSetupTimeout() {}
  // The client's address as the preamble stated it, replacing the socket
  // peer once Read returned bytes; nullptr when there is none.
  virtual const std::string* proxied_peer() const { return nullptr; }
};

// A connected, non-blocking socket, closed with the transport.
class SocketTransport final : public ClientTransport {
 public:
  explicit SocketTransport(int fd) : fd_(fd) {}
  ~SocketTransport() override { close(fd_); }
  SocketTransport(const SocketTransport&) = delete;
  SocketTransport& operator=(const SocketTransport&) = delete;

  // recv, not read: read(2) on a socket detours through the VFS layer,
  // which showed as 2% of an async worker's CPU.
  ssize_t Read(char* buf, size_t len) override {
    return recv(fd_, buf, len, 0);
  }
  ssize_t Write(const char* data, size_t len) override {
    return send(fd_, data, len, MSG_NOSIGNAL);
  }
  void ShutdownWrite() override { shutdown(fd_, SHUT_WR); }
  ssize_t Discard(char* buf, size_t len) override {
    return recv(fd_, buf, len, 0);
  }
  int fd() const override { return fd_; }

 private:
  int fd_;
};

}  // namespace forkd::proxy

#endif  // FORKD_SERVER_PROXY_CLIENT_TRANSPORT_H_

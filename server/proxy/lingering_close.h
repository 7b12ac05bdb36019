// nginx's lingering close, the one way forkd ends a connection after it
// answered: once the answer is fully written, half-close (FIN after the
// answer), then read and drop what the client still sends, for a bounded
// time and number of bytes, and only then close. Closing with unread
// request bytes in the receive buffer makes the kernel send a reset, and a
// reset that reaches the client before it read our answer discards it.
// Used by ProxySession (HTTP/1.1, TLS) and Http2Connection (GOAWAY).
#ifndef FORKD_SERVER_PROXY_LINGERING_CLOSE_H_
#define FORKD_SERVER_PROXY_LINGERING_CLOSE_H_

#include <cstdint>

#include "server/transport/client_transport.h"

namespace forkd::proxy {

class LingeringClose {
 public:
  // nginx's lingering_time is 30 s; a connection that lingers holds a slot,
  // so forkd keeps it short. A client reads an answer within a round trip.
  static constexpr int64_t kDefaultTimeMs = 2000;
  static constexpr uint64_t kDefaultMaxBytes = 1 << 20;

  explicit LingeringClose(int64_t time_ms = kDefaultTimeMs,
                          uint64_t max_bytes = kDefaultMaxBytes)
      : time_ms_(time_ms), max_bytes_(max_bytes) {}

  enum class State {
    kOff,      // Start() not called
    kWaiting,  // half-closed, the client may still send: wait for input
    kDone,     // EOF, an error, the byte budget or the deadline: close now
  };

  // Half-closes `t` (call it once the answer is fully written) and starts
  // the clock at `now_ms`. The connection's thread.
  void Start(transport::ClientTransport* t, int64_t now_ms);

  // Reads and drops what `t` has, until it would block. kDone once the
  // client closed, the read failed, max_bytes were dropped or now_ms is
  // past deadline_ms().
  State Drain(transport::ClientTransport* t, int64_t now_ms);

  State state() const { return state_; }
  bool active() const { return state_ != State::kOff; }
  // When to give up waiting: the driver closes the connection then.
  int64_t deadline_ms() const { return deadline_ms_; }
  uint64_t dropped_bytes() const { return dropped_; }

 private:
  int64_t time_ms_;
  uint64_t max_bytes_;
  State state_ = State::kOff;
  int64_t deadline_ms_ = 0;
  uint64_t dropped_ = 0;
};

}  // namespace forkd::proxy

#endif  // FORKD_SERVER_PROXY_LINGERING_CLOSE_H_

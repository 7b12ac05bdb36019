// What a worker's event loop holds per accepted client connection: an
// HTTP/1 connection (ProxySession) or an HTTP/2 one (Http2Connection).
// Drivers route readiness to it, run its timers and delete it once closed.
#ifndef FORKD_SERVER_PROXY_CLIENT_CONNECTION_H_
#define FORKD_SERVER_PROXY_CLIENT_CONNECTION_H_

#include <atomic>
#include <cstdint>

#include "server/scoreboard/scoreboard.h"

namespace forkd::proxy {

class ClientConnection {
 public:
  enum class Phase {
    kIdle,    // keep-alive, waiting for the next request, nothing buffered
    kActive,  // requests are being read, proxied or answered
    kClosed,  // done; the driver deletes it (after its event batch)
  };

  virtual ~ClientConnection() = default;

  // Readiness of the client socket (EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP/
  // EPOLLRDHUP bits); makes all progress possible without blocking.
  virtual void OnClientEvents(uint32_t events) = 0;
  // Called when the clock passed deadline_ms().
  virtual void OnTimeout(int64_t now_ms) = 0;
  // Closes at once, cutting whatever is in flight (quick shutdown).
  virtual void Abort() = 0;
  // The worker stopped taking connections (a graceful stop or a drain
  // began): an HTTP/2 connection sends GOAWAY now, not at its next event.
  virtual void OnStopAccepting() {}
  // Called once after the event batch in which the connection asked for it
  // (SessionContext::after_batch): HTTP/2 writes the frames its streams
  // produced during the batch together.
  virtual void OnBatchEnd() {}
  virtual Phase phase() const = 0;
  virtual int64_t deadline_ms() const = 0;
  // An HTTP/1 connection that turned out to speak HTTP/2 (ProxySession).
  virtual bool wants_http2() const { return false; }

 protected:
  // Moves this connection's count in the slot's active/idle connection
  // gauges from *counted to `now` (kClosed: counted in neither).
  static void MoveConnectionGauge(scoreboard::Slot* slot, Phase* counted,
                                  Phase now) {
    if (now == *counted) return;
    auto gauge = [slot](Phase p) -> std::atomic<uint32_t>* {
      if (p == Phase::kActive) return &slot->connections_active;
      if (p == Phase::kIdle) return &slot->connections_idle;
      return nullptr;
    };
    if (auto* g = gauge(*counted)) g->fetch_sub(1, std::memory_order_relaxed);
    if (auto* g = gauge(now)) g->fetch_add(1, std::memory_order_relaxed);
    *counted = now;
  }
};

}  // namespace forkd::proxy

#endif  // FORKD_SERVER_PROXY_CLIENT_CONNECTION_H_

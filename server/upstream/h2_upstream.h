// HTTP/2 connections to the app (--upstream-protocol h2c), one set per
// async worker: streams of all client connections are multiplexed on a few
// connections over the --upstream socket. A connection takes new streams
// until the app's SETTINGS_MAX_CONCURRENT_STREAMS is reached (then another
// one is opened) or the app sends GOAWAY (its open streams finish there;
// new ones go to another connection, opened if needed).
//
// Each connection's socket is registered with the worker's epoll through
// the callback given to the constructor, as the HTTP/1 pool's are; its
// events reach H2Upstream through upstream::Connection::Owner. Frames the
// streams queue are written by FlushPending(), which the worker calls after
// each batch of events, so the streams of a batch share one write.
//
// Threading: the async worker's loop thread only.
#ifndef FORKD_SERVER_UPSTREAM_H2_UPSTREAM_H_
#define FORKD_SERVER_UPSTREAM_H2_UPSTREAM_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/http1/message.h"
#include "server/upstream/h2_client_session.h"
#include "server/upstream/upstream_pool.h"

namespace forkd::upstream {

// How a stream to the app ended.
struct H2StreamEnd {
  uint32_t error_code = 0;       // RFC 9113 §7 code; 0 after a normal end
  bool refused = false;          // the app could not be reached at all
  bool connection_lost = false;  // the connection broke under the stream
  std::string detail;            // for the log line, when not a normal end
};

// What one forwarded stream hears from the app. Called from the worker
// loop, inside H2Upstream's event handling or FlushPending().
class H2StreamOwner {
 public:
  virtual ~H2StreamOwner() = default;
  virtual void OnUpstreamHeaders(int status, std::vector<http1::Header> headers,
                                 bool end_stream) = 0;
  // Response bytes; the app's window reopens only with H2Upstream::Consume.
  virtual void OnUpstreamData(std::string_view data) = 0;
  // The response ended after a body, with the app's trailers (maybe none).
  virtual void OnUpstreamEnd(std::vector<http1::Header> trailers) = 0;
  // `n` request body bytes given to Append() left for the app.
  virtual void OnUpstreamDataSent(size_t n) = 0;
  // The stream is gone; the handle is invalid from now on. Not called
  // after Cancel().
  virtual void OnUpstreamClosed(const H2StreamEnd& end) = 0;
};

class H2UpstreamConnection;

// One open stream to the app: valid from Open() until OnUpstreamClosed()
// or Cancel().
struct H2StreamRef {
  H2UpstreamConnection* conn = nullptr;
  int32_t id = 0;
  explicit operator bool() const { return conn != nullptr; }
};

class H2Upstream {
 public:
  // `pool` gives the address, opens sockets and frees closed ones (after
  // the event batch); `register_fd` adds a new socket to the worker's
  // epoll. Both outlive this object.
  H2Upstream(Pool* pool, H2ClientSession::Settings settings,
             std::function<void(Connection*)> register_fd);
  ~H2Upstream();
  H2Upstream(const H2Upstream&) = delete;
  H2Upstream& operator=(const H2Upstream&) = delete;

  // Opens a stream for `owner` with a request head, on a connection with
  // room or a new one. Unavailable (H2StreamEnd-like detail in the
  // message) when the app cannot be reached: its socket is missing or
  // refuses. The frames leave at the next FlushPending().
  absl::StatusOr<H2StreamRef> Open(
      H2StreamOwner* owner, std::string_view method, std::string_view scheme,
      std::string_view authority, std::string_view path,
      const std::vector<http1::Header>& headers, bool end_stream);
  // Request body bytes (copied) and the end of the request, with trailers.
  absl::Status Append(const H2StreamRef& ref, std::string_view data);
  absl::Status End(const H2StreamRef& ref, std::vector<http1::Header> trailers);
  // Request bytes queued for the stream and not yet sent.
  size_t Queued(const H2StreamRef& ref) const;
  // The owner passed `n` response bytes on: reopen the app's window.
  void Consume(const H2StreamRef& ref, size_t n);
  // The owner is done with the stream: it hears nothing more, and the
  // stream is reset with `error_code` (kCancel) unless it already ended.
  void Cancel(const H2StreamRef& ref, uint32_t error_code);

  // Writes what the sessions queued and frees connections closed before.
  void FlushPending();

  // Connections open now / ever opened by this worker (for tests, logs).
  size_t connection_count() const { return conns_.size(); }
  uint64_t connections_opened() const { return opened_; }

 private:
  friend class H2UpstreamConnection;
  void MarkDirty(H2UpstreamConnection* c);
  void Retire(H2UpstreamConnection* c);

  Pool* pool_;
  H2ClientSession::Settings settings_;
  std::function<void(Connection*)> register_fd_;
  std::vector<std::unique_ptr<H2UpstreamConnection>> conns_;
  std::vector<std::unique_ptr<H2UpstreamConnection>> retired_;
  std::vector<H2UpstreamConnection*> dirty_;
  uint64_t opened_ = 0;
  // The app's SETTINGS_MAX_CONCURRENT_STREAMS as last seen: a new
  // connection goes by it until its own SETTINGS arrive, so a burst of
  // streams does not pile onto it.
  uint32_t app_max_streams_ = 0;
};

}  // namespace forkd::upstream

#endif  // FORKD_SERVER_UPSTREAM_H2_UPSTREAM_H_

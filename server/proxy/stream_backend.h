// The app side of the streams of one HTTP/2 client connection, chosen once
// when the connection is created (MakeStreamBackend): Http2Connection
// reads and writes the client, and hands each stream's request events here
// without knowing which app protocol serves them.
//
//  - ExchangeStreams (exchange_streams.h): each stream is an exchange of a
//    ProxySession with the HTTP/1.1 app (the default).
//  - UpstreamBridge (upstream_bridge.h): each stream is forwarded to an
//    HTTP/2 stream of the h2c app (--upstream-protocol h2c).
//
// Both answer, count and log through the same code (error_response.h,
// request_record.h). All calls come on the worker's loop thread that
// drives the connection.
#ifndef FORKD_SERVER_PROXY_STREAM_BACKEND_H_
#define FORKD_SERVER_PROXY_STREAM_BACKEND_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "server/http2/http2_session.h"

namespace forkd::proxy {

struct SessionContext;

// What a backend uses of its client connection.
struct StreamClient {
  SessionContext* ctx;
  http2::Http2Session* session;  // the client's, outlives the backend
  std::string peer;              // the client's IP, "" for a unix socket
  const char* scheme;            // "http" or "https"
  // Asks the connection to write the session's output: after the event
  // batch, or at once outside one. Frames queued from inside the
  // connection's own Drive() are written by it.
  std::function<void()> flush_soon;
};

// The request events (Http2Session::Handler) arrive as the client's session
// parses them; the backend answers through StreamClient::session.
class StreamBackend : public http2::Http2Session::Handler {
 public:
  ~StreamBackend() override = default;

  // The connection took the session's output: streams held back by their
  // queued response bytes may go on, and their apps may send more.
  virtual void AfterClientFlush() = 0;
  // Deadlines due by `now_ms` (the client's body timeout, the app's
  // timeouts) act: an answer (504) or a reset of the stream.
  virtual void OnTimeout(int64_t now_ms) = 0;
  // The earliest deadline of its streams; 0 when finished streams await
  // Reap().
  virtual int64_t deadline_ms() const = 0;
  // No stream open: the connection is idle.
  virtual bool empty() const = 0;
  // Frees the streams that finished; only where none of them is on the
  // stack (the top of the connection's Drive(), its OnTimeout()).
  virtual void Reap() = 0;
};

// The app side --upstream-protocol asks for: UpstreamBridge when the
// context has an h2c app (ctx->h2_upstream), ExchangeStreams otherwise.
std::unique_ptr<StreamBackend> MakeStreamBackend(StreamClient client);

}  // namespace forkd::proxy

#endif  // FORKD_SERVER_PROXY_STREAM_BACKEND_H_

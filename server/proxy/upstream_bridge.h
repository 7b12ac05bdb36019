// --upstream-protocol h2c: the streams of one HTTP/2 client connection
// forwarded stream-to-stream to HTTP/2 streams to the app (H2Upstream),
// instead of each becoming an HTTP/1.1 exchange (ExchangeStreams).
// Headers, DATA and trailers go through in both directions as they come,
// so gRPC (unary, streaming, status trailers, deadlines, cancellation)
// works unchanged.
//
// Flow control is end to end with bounded memory: client DATA reopens the
// client's window only once it left for the app (OnUpstreamDataSent), and
// app DATA reopens the app's window only once the client session took it
// (AfterClientFlush). So a stream holds at most one window of bytes each way.
//
// Each stream counts against the in-flight cap (503 over it), in the slot's
// counters (protocol http2) and in the access log (one line per stream).
// App unreachable or lost before a response head: 502; app silent past
// --upstream-timeout with no head: 504; after the head the timeout is an
// idle timeout between frames either way (the stream is reset). An app
// RST_STREAM resets the client's stream (mapped code); a client reset sends
// RST_STREAM(CANCEL) to the app.
//
// The StreamBackend (stream_backend.h) of an Http2Connection whose app
// speaks h2c, driven from its event handling on the worker's loop thread.
#ifndef FORKD_SERVER_PROXY_UPSTREAM_BRIDGE_H_
#define FORKD_SERVER_PROXY_UPSTREAM_BRIDGE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "server/http1/message.h"
#include "server/http2/http2_session.h"
#include "server/proxy/stream_backend.h"
#include "server/upstream/h2_upstream.h"

namespace forkd::proxy {

class UpstreamBridge final : public StreamBackend {
 public:
  // `client`: the client connection's session, peer, scheme ("http" or
  // "https") and flush request; ctx->h2_upstream is the app.
  explicit UpstreamBridge(StreamClient client);
  // Cancels (RST_STREAM CANCEL) every stream still open at the app.
  ~UpstreamBridge() override;
  UpstreamBridge(const UpstreamBridge&) = delete;
  UpstreamBridge& operator=(const UpstreamBridge&) = delete;

  // http2::Http2Session::Handler events of the client connection.
  void OnRequestHeaders(int32_t stream_id, std::string_view method,
                        std::string_view scheme, std::string_view authority,
                        std::string_view path,
                        std::vector<http1::Header> headers,
                        bool end_stream) override;
  void OnRequestData(int32_t stream_id, std::string_view data) override;
  void OnRequestEnd(int32_t stream_id,
                    std::vector<http1::Header> trailers) override;
  void OnStreamClosed(int32_t stream_id, uint32_t error_code) override;

  // StreamBackend
  // The client session's output was taken: reopen the app's windows by
  // the response bytes that left.
  void AfterClientFlush() override;
  // Answers 504 or resets streams whose app side was idle too long.
  void OnTimeout(int64_t now_ms) override;
  int64_t deadline_ms() const override;
  bool empty() const override { return streams_.empty(); }
  void Reap() override;

 private:
  class Stream;
  void Finish(Stream* s);

  proxy::SessionContext* ctx_;
  http2::Http2Session* session_;
  std::string peer_;
  const char* scheme_;
  std::function<void()> flush_soon_;
  absl::flat_hash_map<int32_t, std::unique_ptr<Stream>> streams_;
  std::vector<std::unique_ptr<Stream>> finished_;
};

}  // namespace forkd::proxy

#endif  // FORKD_SERVER_PROXY_UPSTREAM_BRIDGE_H_

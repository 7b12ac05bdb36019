// The app side of an HTTP/2 client connection's streams when the app speaks
// HTTP/1.1: each stream is a one-request exchange of a ProxySession on a
// virtual connection (StreamTransport). The stream's request reaches the
// session structured (ServeRequest: method, target, fields; the body and
// trailers through the stream as RequestSource), and the session hands the
// app's response, parsed once, to the stream (a ResponseSink), which
// submits it as HEADERS, DATA and trailers. Nothing is written out as
// HTTP/1.1 text and parsed again. Every rule of the HTTP/1 path (limits,
// admission against the in-flight cap, buffering, X-Forwarded-*, retries,
// 502/503/504 answers, counters, access log) so applies to each stream,
// and streams of one connection reach the app concurrently.
//
// A StreamBackend (stream_backend.h), made by MakeStreamBackend; on the
// worker's loop thread.
#ifndef FORKD_SERVER_PROXY_EXCHANGE_STREAMS_H_
#define FORKD_SERVER_PROXY_EXCHANGE_STREAMS_H_

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "server/http1/message.h"
#include "server/proxy/stream_backend.h"

namespace forkd::proxy {

class ExchangeStreams final : public StreamBackend {
 public:
  explicit ExchangeStreams(StreamClient client);
  // Frees every session (their app connections with them) without
  // touching the client's session.
  ~ExchangeStreams() override;
  ExchangeStreams(const ExchangeStreams&) = delete;
  ExchangeStreams& operator=(const ExchangeStreams&) = delete;

  // A new stream: its ProxySession serves `head` (ServeRequest), then the
  // body, if `body_follows`, as DATA brings it. Also how stream 1 of an
  // "Upgrade: h2c" connection starts, from the HTTP/1.1 request.
  void StartStream(int32_t stream_id, http1::RequestHead head,
                   bool body_follows);

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

  // StreamBackend
  void AfterClientFlush() override;
  void OnTimeout(int64_t now_ms) override;
  int64_t deadline_ms() const override;
  bool empty() const override { return streams_.empty(); }
  void Reap() override;

 private:
  class StreamTransport;
  struct Stream;

  void OnStreamTransportGone(Stream* s);
  void DriveStream(Stream* s);
  // --client-body-timeout for the streams' bodies: RST_STREAM, counted
  // and logged.
  void CheckBodyTimeouts(int64_t now_ms);

  StreamClient client_;
  bool closing_ = false;  // in the destructor
  absl::flat_hash_map<int32_t, std::unique_ptr<Stream>> streams_;
  std::vector<std::unique_ptr<Stream>> finished_;
};

}  // namespace forkd::proxy

#endif  // FORKD_SERVER_PROXY_EXCHANGE_STREAMS_H_

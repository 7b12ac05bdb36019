// The client side of one HTTP/2 connection to the app (--upstream-protocol
// h2c), on top of nghttp2. Protocol code only, no I/O: the caller feeds
// the bytes it read from the app into Receive(), writes what TakeOutput()
// appends, and answers the events its Handler gets.
//
// Flow control is left to the caller in both directions so memory stays
// bounded end to end: response DATA reopens the app's window only when the
// caller says it passed the bytes on (ConsumeResponseData), and the caller
// learns through OnRequestDataSent() when request bytes it queued left in
// DATA frames (so it can reopen its own client's window then).
//
// Threading: one thread at a time (the worker's loop); nothing here locks.
#ifndef FORKD_SERVER_UPSTREAM_H2_CLIENT_SESSION_H_
#define FORKD_SERVER_UPSTREAM_H2_CLIENT_SESSION_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/common/buffer.h"
#include "server/http1/message.h"

struct nghttp2_session;

namespace forkd::upstream {

class H2ClientSession {
 public:
  // Events of one connection, called only from inside Receive() and
  // TakeOutput(). A Handler may call Submit*/Append*/End*/ResetStream/
  // ConsumeResponseData from a callback, never Receive()/TakeOutput(), and
  // never destroy the session there.
  class Handler {
   public:
    virtual ~Handler() = default;
    // A response head (`status` 100..999; 1xx heads may come before the
    // final one). `headers` have lowercase names, no pseudo-headers.
    // `end_stream`: no body or trailers follow (a trailers-only answer).
    virtual void OnResponseHeaders(int32_t stream_id, int status,
                                   std::vector<http1::Header> headers,
                                   bool end_stream) = 0;
    // Response body bytes; the app's window for them reopens only through
    // ConsumeResponseData().
    virtual void OnResponseData(int32_t stream_id, std::string_view data) = 0;
    // The response ended after a body: `trailers` empty unless the app sent
    // a trailer section (gRPC's grpc-status, grpc-message).
    virtual void OnResponseEnd(int32_t stream_id,
                               std::vector<http1::Header> trailers) = 0;
    // `n` request body bytes queued with AppendRequestData() left in DATA
    // frames.
    virtual void OnRequestDataSent(int32_t stream_id, size_t n) = 0;
    // The stream is gone: both sides ended (kNoError), or it was reset by
    // the app, by us, or the connection ended (Abort). Called once for
    // every stream SubmitRequest() opened.
    virtual void OnStreamClosed(int32_t stream_id, uint32_t error_code) = 0;
  };

  struct Settings {
    // Our receive windows: response bytes in flight the caller has not
    // consumed yet, per stream and for the whole connection.
    uint32_t initial_window_size = 1 << 16;
    uint32_t connection_window_size = 1 << 20;
    uint32_t max_header_list_size = 65536;
  };

  // Queues the client preface and our SETTINGS, so TakeOutput() has bytes
  // at once. `handler` must outlive the session.
  static absl::StatusOr<std::unique_ptr<H2ClientSession>> Create(
      const Settings& settings, Handler* handler);
  ~H2ClientSession();
  H2ClientSession(const H2ClientSession&) = delete;
  H2ClientSession& operator=(const H2ClientSession&) = delete;

  // Processes bytes read from the app; Handler events fire from inside.
  // Returns an error when the connection is beyond saving (protocol error):
  // the caller then closes it and calls Abort().
  absl::Status Receive(const char* data, size_t len);
  // Appends frames to send to `out`, stopping once at least `max_bytes`
  // were appended or nothing is pending. Request DATA leaves within the
  // app's windows here.
  void TakeOutput(Buffer* out, size_t max_bytes = 64 * 1024);
  bool WantWrite() const;

  // Opens a stream with a request head. `headers` are regular fields;
  // connection-specific ones are dropped ("te: trailers" is kept), names
  // lowercased, fields nghttp2 calls invalid skipped. With `end_stream` the
  // request has no body; otherwise AppendRequestData()/EndRequest()
  // follow. Returns the stream id, or Unavailable when the connection
  // takes no new streams (GOAWAY seen, failed, ids exhausted).
  absl::StatusOr<int32_t> SubmitRequest(
      std::string_view method, std::string_view scheme,
      std::string_view authority, std::string_view path,
      const std::vector<http1::Header>& headers, bool end_stream);
  // Queues request body bytes (copied); they leave as the app's windows
  // allow. NotFound for an unknown stream, FailedPrecondition after
  // EndRequest().
  absl::Status AppendRequestData(int32_t stream_id, std::string_view data);
  // Ends the request body once its queue is drained, with `trailers` when
  // not empty. Errors as AppendRequestData.
  absl::Status EndRequest(int32_t stream_id,
                          std::vector<http1::Header> trailers = {});
  // Request bytes queued and not yet sent; 0 for unknown streams.
  size_t QueuedRequestBytes(int32_t stream_id) const;
  // Reopens the app's windows by `n` response bytes of the stream the
  // caller passed on. Unknown streams are ignored.
  void ConsumeResponseData(int32_t stream_id, size_t n);
  // RST_STREAM with `error_code`; OnStreamClosed follows once it is sent.
  void ResetStream(int32_t stream_id, uint32_t error_code);

  // Whether one more stream fits: no GOAWAY either way, not failed, and
  // fewer open streams than the app's SETTINGS_MAX_CONCURRENT_STREAMS
  // (until its SETTINGS arrive: AssumeMaxConcurrentStreams(), default 100).
  bool CanOpenStream() const;
  // GOAWAY received (the app stops): no new streams; open ones finish.
  bool going_away() const { return goaway_received_; }
  // Nothing more can happen on the connection: it failed, or it is going
  // away with no stream open and nothing left to send.
  bool Done() const;
  size_t OpenStreams() const { return streams_.size(); }
  // Why the session failed (a protocol error of the app), or OK.
  const absl::Status& status() const { return failed_; }
  uint32_t RemoteMaxConcurrentStreams() const;
  // The app's SETTINGS arrived (RemoteMaxConcurrentStreams() is its own).
  bool settings_received() const { return settings_received_; }
  // The limit to go by before the app's SETTINGS arrive, e.g. what the
  // app said on another connection.
  void AssumeMaxConcurrentStreams(uint32_t n) { assumed_max_streams_ = n; }

  // Ends every open stream with OnStreamClosed(id, error_code); the
  // session takes no more input. Not from a callback.
  void Abort(uint32_t error_code);

 private:
  friend struct H2ClientCallbacks;
  struct Stream {
    Buffer queue;  // request body bytes not yet sent
    bool body_ended = false;
    bool has_body = false;
    bool deferred = false;
    bool response_head_done = false;  // a final (>= 200) head came
    bool response_ended = false;
    int status = 0;
    std::vector<http1::Header> fields;  // of the header block being read
    std::vector<http1::Header> trailers;
    size_t header_bytes = 0;
    bool too_large = false;
    size_t unconsumed = 0;  // response bytes given but not consumed
  };

  H2ClientSession(const Settings& settings, Handler* handler);
  absl::Status Init();
  Stream* Find(int32_t stream_id) const;
  void Resume(int32_t stream_id, Stream* s);

  Settings settings_;
  Handler* handler_;
  nghttp2_session* session_ = nullptr;
  absl::flat_hash_map<int32_t, std::unique_ptr<Stream>> streams_;
  absl::Status failed_;
  bool goaway_received_ = false;
  bool settings_received_ = false;
  bool aborted_ = false;
  uint32_t assumed_max_streams_;
};

}  // namespace forkd::upstream

#endif  // FORKD_SERVER_UPSTREAM_H2_CLIENT_SESSION_H_

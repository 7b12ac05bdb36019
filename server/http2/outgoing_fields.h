// Header fields as nghttp2 takes them to send, for both of forkd's HTTP/2
// sides (Http2Session answering clients, upstream::H2ClientSession asking
// an h2c app): names lowercased, connection-specific and invalid fields
// left out. The nv entries point into this object, which nghttp2 copies on
// submit, so it only has to live until the submit call returns.
#ifndef FORKD_SERVER_HTTP2_OUTGOING_FIELDS_H_
#define FORKD_SERVER_HTTP2_OUTGOING_FIELDS_H_

#include <nghttp2/nghttp2.h>
#include <sys/types.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "server/http1/fields.h"
#include "server/http1/message.h"

namespace forkd::http2 {

class OutgoingFields {
 public:
  // A pseudo-header (":status", ":method"...); both strings are copied.
  void AddPseudo(std::string_view name, std::string_view value);
  // Adds `headers` less the connection-specific fields (RFC 9113 8.2.2:
  // Connection and every field it names, Keep-Alive, Proxy-Connection,
  // Transfer-Encoding, Upgrade, plus Host and HTTP2-Settings, which HTTP/2
  // carries elsewhere or not at all), pseudo-header names and fields
  // nghttp2 would refuse. TE goes only as "te: trailers" and only with
  // `keep_te_trailers` (requests to an app; RFC 9113 8.2.2 allows exactly
  // that one).
  void AddRegular(const std::vector<http1::Header>& headers,
                  bool keep_te_trailers);

  const nghttp2_nv* data() const { return nv_.data(); }
  size_t size() const { return nv_.size(); }

 private:
  void Add(std::string_view name, std::string_view value);

  std::deque<std::string> owned_;  // a deque: elements never move
  std::vector<nghttp2_nv> nv_;
};

// The nghttp2 data-source read of a stream body queued in memory, for both
// sides: copies what `s->queue` (a Buffer) holds into `buf`; once it is
// empty and `s->body_ended`, ends the DATA and sends `s->trailers` (if any)
// as a trailing HEADERS; with nothing queued yet, defers the stream and
// sets `s->deferred` so the owner resumes it (nghttp2_session_resume_data)
// when more bytes come.
template <typename QueuedStream>
ssize_t ReadQueuedBody(nghttp2_session* session, int32_t stream_id,
                       QueuedStream* s, uint8_t* buf, size_t length,
                       uint32_t* data_flags) {
  size_t n = std::min(length, s->queue.size());
  if (n > 0) {
    memcpy(buf, s->queue.View().data(), n);
    s->queue.Consume(n);
    if (s->queue.empty()) s->queue.Shrink(64 * 1024);
  }
  if (s->queue.empty()) {
    if (s->body_ended) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!s->trailers.empty()) {
        OutgoingFields fields;
        fields.AddRegular(s->trailers, /*keep_te_trailers=*/false);
        if (fields.size() > 0 &&
            nghttp2_submit_trailer(session, stream_id, fields.data(),
                                   fields.size()) == 0) {
          *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
        s->trailers.clear();
      }
    } else if (n == 0) {
      s->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  return static_cast<ssize_t>(n);
}

}  // namespace forkd::http2

#endif  // FORKD_SERVER_HTTP2_OUTGOING_FIELDS_H_

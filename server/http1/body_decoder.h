// Decoding of an HTTP/1.1 message body: Content-Length, chunked (with its
// trailer section) or until close (RFC 9112 6, 7). No I/O.
#ifndef FORKD_SERVER_HTTP1_BODY_DECODER_H_
#define FORKD_SERVER_HTTP1_BODY_DECODER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "server/http1/message.h"

namespace forkd::http1 {

// Bounds on the trailer section of a chunked body (RFC 9112 7.1.2), the
// same kinds as a head's: a request's come from --limit-request-fields and
// --limit-request-field-size. 0 means no bound of that kind; the section as
// a whole is always capped (64 KiB when either is 0).
struct TrailerLimits {
  size_t max_fields = 0;      // fields in the section; more is 431
  size_t max_field_size = 0;  // one field line with its CRLF; longer is 431
};

// Decodes a message body framed as kContentLength, kChunked or kUntilClose
// into its payload bytes. For chunked bodies it validates chunk sizes,
// extensions and trailer fields strictly, and keeps the trailer fields for
// the caller (trailers()); which of them may be forwarded is the caller's
// choice (IsAllowedInTrailer).
class BodyDecoder {
 public:
  // `max_body` 0 means unlimited; exceeding it is kBodyTooLarge. Trailers
  // over `trailer_limits` are kHeadersTooLarge.
  BodyDecoder(Framing framing, uint64_t content_length, uint64_t max_body,
              TrailerLimits trailer_limits = {});

  // Decodes from `in`, appending payload to *out. Returns the number of
  // input bytes consumed (everything up to the end of the body, never past
  // it: bytes after the body belong to the next pipelined message).
  // On a framing error sets error() and returns what was consumed so far.
  // As with the head parsers, the verdict, payload and trailers do not
  // depend on how the input was split across calls.
  size_t Decode(std::string_view in, std::string* out);

  // For kUntilClose: the peer closed, so the body is complete.
  void OnEof();

  // A body that arrives decoded (an HTTP/2 stream's DATA payload): counts
  // `data` as Decode() counts payload, with the same limits and answers (a
  // kChunked body over max_body fails as "chunked body exceeds limit"), and
  // appends what it takes to *out. Returns the bytes taken: for
  // kContentLength never past the length.
  size_t AcceptDecoded(std::string_view data, std::string* out);
  // The decoded body ended (END_STREAM) with `trailers`. kChunked: they are
  // judged as the trailer section Decode() would read (count, line size,
  // section size: 431) and kept in trailers(); done() after. Other framings
  // carry no trailers (returns false when some were given, so the caller
  // can say they were dropped); a kContentLength body cut short fails.
  bool EndDecoded(std::vector<Header> trailers);

  bool done() const { return done_; }
  bool failed() const { return error_.kind != ErrorKind::kNone; }
  const Error& error() const { return error_; }
  uint64_t payload_bytes() const { return payload_bytes_; }
  // The trailer fields of a chunked body, in order, as received (names
  // case preserved, values OWS-trimmed); complete once done().
  const std::vector<Header>& trailers() const { return trailers_; }

 private:
  void Fail(ErrorKind kind, std::string_view detail);
  size_t DecodeChunked(std::string_view in, std::string* out);
  // Counts `fresh` bytes of a trailer line (and its LF when `has_lf`)
  // against the line and section limits; false after Fail().
  bool CheckTrailerLimits(std::string_view fresh, bool has_lf);
  bool HandleSizeLine(std::string_view line);

  enum class ChunkState {
    kSize,
    kSizeLf,
    kData,
    kDataCr,
    kDataLf,
    kTrailer,
    kTrailerLf,
    kDone
  };
  Framing framing_;
  uint64_t remaining_ = 0;  // content-length or current chunk
  uint64_t max_body_ = 0;
  uint64_t payload_bytes_ = 0;
  bool done_ = false;
  Error error_;
  ChunkState chunk_state_ = ChunkState::kSize;
  std::string line_;  // partial chunk-size line or trailer line
  uint64_t trailer_bytes_ = 0;
  TrailerLimits trailer_limits_;
  size_t trailer_section_cap_ = 0;
  size_t trailer_line_max_ = 0;  // a trailer line without its CRLF
  std::vector<Header> trailers_;
};

}  // namespace forkd::http1

#endif  // FORKD_SERVER_HTTP1_BODY_DECODER_H_

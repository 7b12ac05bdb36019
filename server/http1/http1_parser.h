// Strict HTTP/1.1 message parsing (RFC 9110/9112) for requests from clients
// and responses from the app. Protocol code only: no I/O. Callers feed bytes
// they read and act on the results.
#ifndef FORKD_SERVER_HTTP1_HTTP1_PARSER_H_
#define FORKD_SERVER_HTTP1_HTTP1_PARSER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace forkd::http1 {

// Why a message was rejected. Mapped to an HTTP status in exactly one place:
// StatusForError().
enum class ErrorKind {
  kNone = 0,
  kBadRequest,           // 400: malformed syntax of any kind
  kUriTooLong,           // 414: request line over the limit
  kHeadersTooLarge,      // 431: too many fields, or one field over the limit
  kBodyTooLarge,         // 413: Content-Length or chunked total over the limit
  kNotImplemented,       // 501: a transfer coding other than chunked
  kVersionNotSupported,  // 505: a major version other than 1 (HTTP/2.0...)
};

// The HTTP status code that answers `kind` (400 for kNone is never asked).
int StatusForError(ErrorKind kind);

struct Error {
  ErrorKind kind = ErrorKind::kNone;
  // Short, human-readable cause for the error log and the response body,
  // e.g. "both Content-Length and Transfer-Encoding".
  std::string detail;
};

struct Limits {
  size_t max_request_line = 4094;  // --limit-request-line (0: unlimited)
  size_t max_fields = 100;         // --limit-request-fields
  // --limit-request-field-size: one field line with its CRLF, as Gunicorn
  // counts it (0: unlimited).
  size_t max_field_size = 8190;
  uint64_t max_body = 0;  // --limit-request-body (0: unlimited)
};

struct Header {
  std::string name;   // as received (case preserved)
  std::string value;  // leading/trailing OWS stripped
};

// How the message body is delimited.
enum class Framing {
  kNone,           // no body
  kContentLength,  // exactly content_length bytes
  kChunked,        // chunked transfer coding
  kUntilClose,     // responses only: body runs until the app closes
};

struct RequestHead {
  std::string method;
  std::string target;
  int version_minor = 1;  // HTTP/1.<minor>: 0, or 1 (also for 1.2 to 1.9)
  std::vector<Header> headers;
  Framing framing = Framing::kNone;
  uint64_t content_length = 0;   // valid when framing == kContentLength
  bool keep_alive = true;        // from version and Connection
  bool expect_continue = false;  // "Expect: 100-continue" was sent
  bool upgrade = false;          // Connection: upgrade + Upgrade present
  // Returns the first header value named `name` (case-insensitive), or
  // nullptr.
  const std::string* Find(std::string_view name) const;
};

struct ResponseHead {
  int status = 0;
  std::string reason;
  int version_minor = 1;
  std::vector<Header> headers;
  Framing framing = Framing::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;  // the app allows reusing the connection
  const std::string* Find(std::string_view name) const;
};

enum class ParseStatus { kNeedMore, kDone, kError };

// Parses one request head. Reusable: call Reset() before the next request of
// a keep-alive connection. Single-threaded.
class RequestParser {
 public:
  explicit RequestParser(const Limits& limits) : limits_(limits) {}

  // Parses `buf`, which holds all bytes received so far for this head (the
  // caller keeps appending and calls again on kNeedMore). On kDone,
  // *consumed is the head's length including the final CRLF and head() is
  // filled. On kError, error() says why. Leading empty lines (RFC 9112 2.2)
  // are skipped. Enforces the line/field limits even before the head ends,
  // so a caller can stop reading early. The verdict does not depend on how
  // the bytes were split across calls: the first byte that breaks a rule
  // decides (a limit is broken by the byte that takes a line over it, so
  // "too long" comes before a bare LF that ends the same line).
  // HTTP/1.2 to 1.9 are read as HTTP/1.1 (RFC 9112 2.3). With an
  // absolute-form target the Host field is replaced by the target's
  // authority (added if the request had none, RFC 9112 3.2.2).
  ParseStatus Parse(std::string_view buf, size_t* consumed);

  const RequestHead& head() const { return head_; }
  RequestHead& mutable_head() { return head_; }
  const Error& error() const { return error_; }
  void Reset();

 private:
  enum class Stage { kStartLine, kFields, kDone, kError };
  ParseStatus Fail(ErrorKind kind, std::string_view detail);
  // Judges the limits on the bytes of the current line in `buf` (its LF
  // excluded): kError when one is broken, else kNeedMore.
  ParseStatus CheckLimits(std::string_view buf, size_t cap);
  bool ParseRequestLine(std::string_view line);
  ParseStatus Finish(size_t end, size_t* consumed);

  Limits limits_;
  RequestHead head_;
  Error error_;
  // Resume state, so feeding a head in small pieces stays linear overall.
  Stage stage_ = Stage::kStartLine;
  size_t pos_ = 0;                  // start of the first line not parsed yet
  size_t scan_ = 0;                 // bytes before this were searched for LF
  size_t head_start_ = 0;           // where the request line starts
  std::string absolute_authority_;  // of an absolute-form target, else ""
};

// Parses one response head from the app. `request_method` decides whether
// the response has a body (HEAD never does); 1xx, 204 and 304 have none.
// A 1xx head is returned as kDone like any other: the caller forwards it and
// parses again for the final response.
class ResponseParser {
 public:
  ResponseParser() = default;
  ParseStatus Parse(std::string_view buf, std::string_view request_method,
                    size_t* consumed);
  const ResponseHead& head() const { return head_; }
  const Error& error() const { return error_; }
  void Reset();

 private:
  enum class Stage { kStartLine, kFields, kDone, kError };
  ParseStatus Fail(ErrorKind kind, std::string_view detail);
  bool ParseStatusLine(std::string_view line);
  ParseStatus Finish(size_t end, std::string_view request_method,
                     size_t* consumed);

  ResponseHead head_;
  Error error_;
  Stage stage_ = Stage::kStartLine;
  size_t pos_ = 0;   // start of the first line not parsed yet
  size_t scan_ = 0;  // bytes before this were searched for LF
};

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

// True when `name` is a hop-by-hop field that a proxy must not forward
// (Connection, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding,
// Upgrade, Proxy-Authenticate, Proxy-Authorization), or is listed in the
// message's Connection header (`connection_tokens`, lowercase). Trailer is
// end-to-end (RFC 9110 6.6.2): it announces the trailer section, so a
// proxy keeps it where the trailers can go on (a chunked message).
bool IsHopByHop(std::string_view name,
                const std::vector<std::string>& connection_tokens);

// Whether a trailer field named `name` may be forwarded in a trailer
// section. False for the fields RFC 9110 6.5.1 says cannot be processed
// after the content: framing (Content-Length, Transfer-Encoding, Trailer),
// hop-by-hop fields, routing (Host), request modifiers (controls,
// conditionals, Accept*, Range), authentication (Authorization, Cookie,
// Set-Cookie, *-Authenticate), response controls (Age, Cache-Control,
// Date, Expires, Location, Retry-After, Vary), every Content-* field, and
// the forwarding fields forkd itself sets (X-Forwarded-*, Forwarded,
// X-Request-Id): an app that merges trailers into its headers must not be
// fooled by them.
bool IsAllowedInTrailer(std::string_view name);

// True when a TE field value lists the "trailers" keyword (RFC 9110
// 10.1.4): the client will not discard trailer fields.
bool TeAcceptsTrailers(std::string_view te_value);

// Lower-cased tokens of all Connection header values of `headers`.
std::vector<std::string> ConnectionTokens(const std::vector<Header>& headers);
// The same into *tokens (cleared first), reusing its capacity.
void ConnectionTokens(const std::vector<Header>& headers,
                      std::vector<std::string>* tokens);

// Case-insensitive ASCII comparison.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// Reason phrase for a status code ("OK", "Bad Gateway"...), "" if unknown.
std::string_view ReasonPhrase(int status);

}  // namespace forkd::http1

#endif  // FORKD_SERVER_HTTP1_HTTP1_PARSER_H_

// The HTTP/1.1 message model shared by the parsers (RFC 9110/9112): heads,
// header fields, framing, limits and why a message was rejected.
#ifndef FORKD_SERVER_HTTP1_MESSAGE_H_
#define FORKD_SERVER_HTTP1_MESSAGE_H_

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

}  // namespace forkd::http1

#endif  // FORKD_SERVER_HTTP1_MESSAGE_H_

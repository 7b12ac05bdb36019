// Strict parsing of a client's HTTP/1.1 request head (RFC 9112). No I/O.
#ifndef FORKD_SERVER_HTTP1_REQUEST_PARSER_H_
#define FORKD_SERVER_HTTP1_REQUEST_PARSER_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "server/http1/message.h"

namespace forkd::http1 {

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

}  // namespace forkd::http1

#endif  // FORKD_SERVER_HTTP1_REQUEST_PARSER_H_

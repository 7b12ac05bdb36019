// Parsing of the app's HTTP/1.1 response head (RFC 9112). No I/O.
#ifndef FORKD_SERVER_HTTP1_RESPONSE_PARSER_H_
#define FORKD_SERVER_HTTP1_RESPONSE_PARSER_H_

#include <cstddef>
#include <string_view>

#include "server/http1/message.h"

namespace forkd::http1 {

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

}  // namespace forkd::http1

#endif  // FORKD_SERVER_HTTP1_RESPONSE_PARSER_H_

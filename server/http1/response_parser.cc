#include "server/http1/response_parser.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/ascii.h"
#include "server/http1/syntax.h"

namespace forkd::http1 {

using syntax::FieldSummary;
using syntax::FindLf;
using syntax::kFieldValueChar;
using syntax::kUnlimitedHeadCap;
using syntax::ParseFieldLine;
using syntax::ParseVersion;
using syntax::Summarize;
using syntax::TransferEncodingError;
using syntax::U8;
using syntax::VersionResult;

void ResponseParser::Reset() {
  head_.status = 0;
  head_.reason.clear();
  head_.version_minor = 1;
  head_.headers.clear();
  head_.framing = Framing::kNone;
  head_.content_length = 0;
  head_.keep_alive = true;
  error_ = Error();
  stage_ = Stage::kStartLine;
  pos_ = 0;
  scan_ = 0;
}

ParseStatus ResponseParser::Fail(ErrorKind kind, std::string_view detail) {
  error_.kind = kind;
  error_.detail.assign(detail);
  stage_ = Stage::kError;
  return ParseStatus::kError;
}

ParseStatus ResponseParser::Parse(std::string_view buf,
                                  std::string_view request_method,
                                  size_t* consumed) {
  *consumed = 0;
  if (stage_ == Stage::kError) return ParseStatus::kError;
  if (stage_ == Stage::kDone || buf.size() < scan_) Reset();
  if (head_.headers.capacity() == 0) head_.headers.reserve(16);

  while (true) {
    const size_t lf = FindLf(buf, &scan_);
    // The same order as requests: the size limit, broken by the bytes
    // before the LF, comes before the LF's own checks.
    if (std::min(lf, buf.size()) > kUnlimitedHeadCap) {
      return Fail(ErrorKind::kHeadersTooLarge, "response head too large");
    }
    if (lf == std::string_view::npos) return ParseStatus::kNeedMore;
    if (lf == pos_ || buf[lf - 1] != '\r') {
      return Fail(ErrorKind::kBadRequest, stage_ == Stage::kStartLine
                                              ? "bare LF in status line"
                                              : "bare LF in header");
    }
    const std::string_view line = buf.substr(pos_, lf - 1 - pos_);
    const size_t next = lf + 1;
    scan_ = next;
    if (next > kUnlimitedHeadCap) {
      return Fail(ErrorKind::kHeadersTooLarge, "response head too large");
    }
    if (stage_ == Stage::kStartLine) {
      if (!ParseStatusLine(line)) return ParseStatus::kError;
      stage_ = Stage::kFields;
      pos_ = next;
      continue;
    }
    if (line.empty()) return Finish(next, request_method, consumed);
    std::string_view name;
    std::string_view value;
    if (const char* bad = ParseFieldLine(line, &name, &value)) {
      return Fail(ErrorKind::kBadRequest, bad);
    }
    head_.headers.push_back(Header{std::string(name), std::string(value)});
    pos_ = next;
  }
}

bool ResponseParser::ParseStatusLine(std::string_view line) {
  // HTTP-version SP 3DIGIT SP [ reason-phrase ]; a missing SP before an
  // empty reason is tolerated.
  if (line.size() < 12 || line[8] != ' ') {
    Fail(ErrorKind::kBadRequest, "invalid status line");
    return false;
  }
  switch (ParseVersion(line.substr(0, 8), &head_.version_minor)) {
    case VersionResult::kOk:
      break;
    case VersionResult::kBad:
      Fail(ErrorKind::kBadRequest, "invalid HTTP version");
      return false;
    case VersionResult::kUnsupported:
      Fail(ErrorKind::kVersionNotSupported, "unsupported HTTP version");
      return false;
  }
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (!absl::ascii_isdigit(U8(line[i]))) {
      Fail(ErrorKind::kBadRequest, "invalid status code");
      return false;
    }
    status = status * 10 + (line[i] - '0');
  }
  if (status < 100 || status > 599) {
    Fail(ErrorKind::kBadRequest, "invalid status code");
    return false;
  }
  std::string_view reason;
  if (line.size() > 12) {
    if (line[12] != ' ') {
      Fail(ErrorKind::kBadRequest, "invalid status line");
      return false;
    }
    reason = line.substr(13);
  }
  for (char c : reason) {
    if (!kFieldValueChar[U8(c)]) {
      Fail(ErrorKind::kBadRequest, c == '\r'
                                       ? "bare CR in status line"
                                       : "invalid character in reason phrase");
      return false;
    }
  }
  head_.status = status;
  head_.reason.assign(reason);
  return true;
}

ParseStatus ResponseParser::Finish(size_t end, std::string_view request_method,
                                   size_t* consumed) {
  const FieldSummary s = Summarize(head_.headers);
  const bool http11 = head_.version_minor == 1;
  const int status = head_.status;

  if (s.cl_invalid) {
    return Fail(ErrorKind::kBadRequest, "invalid Content-Length");
  }
  if (s.cl_conflict) {
    return Fail(ErrorKind::kBadRequest,
                "duplicate Content-Length with different values");
  }
  head_.framing = Framing::kNone;
  head_.content_length = 0;
  // RFC 9112 6.3 rules 1 and 2: these never have a body, whatever the
  // fields say (a 2xx to CONNECT turns the connection into a tunnel).
  const bool bodyless = request_method == "HEAD" || status < 200 ||
                        status == 204 || status == 304 ||
                        (request_method == "CONNECT" && status < 300);
  if (!bodyless) {
    if (s.has_te) {
      // RFC 9112 6.3 lets TE override CL, but the pair is a smuggling
      // vector; like nginx, refuse it from upstream.
      if (const char* cause = TransferEncodingError(
              s, http11, "Transfer-Encoding in HTTP/1.0 response")) {
        return Fail(ErrorKind::kBadRequest, cause);
      }
      head_.framing =
          s.te_last_chunked ? Framing::kChunked : Framing::kUntilClose;
    } else if (s.has_cl) {
      head_.framing = Framing::kContentLength;
      head_.content_length = s.cl;
    } else {
      head_.framing = Framing::kUntilClose;
    }
  }
  head_.keep_alive =
      (http11 ? !s.conn_close : (s.conn_keep_alive && !s.conn_close)) &&
      head_.framing != Framing::kUntilClose;

  stage_ = Stage::kDone;
  *consumed = end;
  return ParseStatus::kDone;
}

}  // namespace forkd::http1

#include "server/http1/request_parser.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/ascii.h"
#include "server/http1/fields.h"
#include "server/http1/syntax.h"

namespace forkd::http1 {

using syntax::FieldLineMax;
using syntax::FieldSummary;
using syntax::FindLf;
using syntax::FirstOverLength;
using syntax::IsToken;
using syntax::kHostChar;
using syntax::kTargetChar;
using syntax::kUnlimitedHeadCap;
using syntax::ParseFieldLine;
using syntax::ParseVersion;
using syntax::SaturatingAdd;
using syntax::SaturatingMul;
using syntax::Summarize;
using syntax::TransferEncodingError;
using syntax::U8;
using syntax::VersionResult;

namespace {

// Empty lines tolerated before a request line (RFC 9112 2.2).
constexpr size_t kMaxLeadingEmptyBytes = 1024;

// scheme "://" something (RFC 3986 3.1).
bool IsAbsoluteForm(std::string_view t) {
  size_t colon = t.find("://");
  if (colon == 0 || colon == std::string_view::npos || colon + 3 >= t.size()) {
    return false;
  }
  if (!absl::ascii_isalpha(U8(t[0]))) return false;
  for (size_t i = 1; i < colon; ++i) {
    char c = t[i];
    if (!absl::ascii_isalnum(U8(c)) && c != '+' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

// The authority of an absolute-form target: from "://" to the first of
// "/?#" (RFC 3986 3.2).
std::string_view AuthorityOf(std::string_view absolute_target) {
  std::string_view rest =
      absolute_target.substr(absolute_target.find("://") + 3);
  return rest.substr(0, rest.find_first_of("/?#"));
}

bool IsUnreservedOrSubDelim(char c) {
  return absl::ascii_isalnum(U8(c)) ||
         std::string_view("-._~!$&'()*+,;=").find(c) != std::string_view::npos;
}

// uri-host [ ":" port ] (RFC 3986 3.2.2, 3.2.3), the grammar of a Host
// field value and of a target's authority; userinfo is refused (RFC 9110
// 4.2.4). uri-host is an IP literal in brackets or a reg-name (unreserved,
// pct-encoded, sub-delims; IPv4 addresses are reg-names too); port is
// *DIGIT.
bool IsValidAuthority(std::string_view a) {
  size_t i = 0;
  if (!a.empty() && a[0] == '[') {
    size_t close = a.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (size_t j = 1; j < close; ++j) {
      if (a[j] != ':' && !IsUnreservedOrSubDelim(a[j])) return false;
    }
    i = close + 1;
  } else {
    while (i < a.size() && a[i] != ':') {
      if (a[i] == '%') {
        if (i + 2 >= a.size() || !absl::ascii_isxdigit(U8(a[i + 1])) ||
            !absl::ascii_isxdigit(U8(a[i + 2]))) {
          return false;
        }
        i += 3;
        continue;
      }
      if (!IsUnreservedOrSubDelim(a[i])) return false;
      ++i;
    }
  }
  if (i == a.size()) return true;
  if (a[i] != ':') return false;
  for (++i; i < a.size(); ++i) {
    if (!absl::ascii_isdigit(U8(a[i]))) return false;
  }
  return true;
}

// uri-host ":" port (RFC 9112 3.2.3).
bool IsAuthorityForm(std::string_view t) {
  size_t colon = t.rfind(':');
  if (colon == 0 || colon == std::string_view::npos || colon + 1 >= t.size()) {
    return false;
  }
  for (size_t i = colon + 1; i < t.size(); ++i) {
    if (!absl::ascii_isdigit(U8(t[i]))) return false;
  }
  for (size_t i = 0; i < colon; ++i) {
    if (!kHostChar[U8(t[i])]) return false;
  }
  return true;
}

// Largest head a request may have, counted from its request line.
size_t RequestHeadCap(const Limits& l) {
  size_t line = l.max_request_line ? SaturatingAdd(l.max_request_line, 2) : 0;
  // A field line's size counts its CRLF (--limit-request-field-size).
  size_t fields = (l.max_fields && l.max_field_size)
                      ? SaturatingMul(l.max_fields, l.max_field_size)
                      : 0;
  size_t cap = SaturatingAdd(SaturatingAdd(line, fields), 2);
  if (l.max_request_line && l.max_fields && l.max_field_size) return cap;
  return std::max(cap, kUnlimitedHeadCap);
}

}  // namespace

void RequestParser::Reset() {
  // Field by field so the strings and the header vector keep their capacity.
  head_.method.clear();
  head_.target.clear();
  head_.version_minor = 1;
  head_.headers.clear();
  head_.framing = Framing::kNone;
  head_.content_length = 0;
  head_.keep_alive = true;
  head_.expect_continue = false;
  head_.upgrade = false;
  error_ = Error();
  stage_ = Stage::kStartLine;
  pos_ = 0;
  scan_ = 0;
  head_start_ = 0;
  absolute_authority_.clear();
}

ParseStatus RequestParser::Fail(ErrorKind kind, std::string_view detail) {
  error_.kind = kind;
  error_.detail.assign(detail);
  stage_ = Stage::kError;
  return ParseStatus::kError;
}

ParseStatus RequestParser::Parse(std::string_view buf, size_t* consumed) {
  *consumed = 0;
  if (stage_ == Stage::kError) return ParseStatus::kError;
  // A new message after kDone, or a buffer that is not the one we saw grow:
  // start over.
  if (stage_ == Stage::kDone || buf.size() < scan_) Reset();
  if (head_.headers.capacity() == 0) head_.headers.reserve(16);
  const size_t cap = RequestHeadCap(limits_);

  while (true) {
    const size_t lf = FindLf(buf, &scan_);
    // Limits first: the bytes before the LF broke them before it came.
    if (CheckLimits(buf.substr(0, std::min(lf, buf.size())), cap) ==
        ParseStatus::kError) {
      return ParseStatus::kError;
    }
    if (lf == std::string_view::npos) return ParseStatus::kNeedMore;
    if (lf == pos_ || buf[lf - 1] != '\r') {
      return Fail(ErrorKind::kBadRequest, stage_ == Stage::kStartLine
                                              ? "bare LF in request line"
                                              : "bare LF in header");
    }
    const std::string_view line = buf.substr(pos_, lf - 1 - pos_);
    const size_t next = lf + 1;
    scan_ = next;

    if (stage_ == Stage::kStartLine) {
      if (line.empty()) {
        pos_ = next;
        if (pos_ > kMaxLeadingEmptyBytes) {
          return Fail(ErrorKind::kBadRequest,
                      "too many empty lines before request line");
        }
        continue;
      }
      if (next - pos_ > cap) {
        return Fail(ErrorKind::kUriTooLong, "request line too long");
      }
      head_start_ = pos_;
      if (!ParseRequestLine(line)) return ParseStatus::kError;
      stage_ = Stage::kFields;
      pos_ = next;
      continue;
    }

    if (next - head_start_ > cap) {
      return Fail(ErrorKind::kHeadersTooLarge, "header section too large");
    }
    if (line.empty()) return Finish(next, consumed);
    // The field count and size were judged on the line's bytes above.
    std::string_view name;
    std::string_view value;
    if (const char* bad = ParseFieldLine(line, &name, &value)) {
      return Fail(ErrorKind::kBadRequest, bad);
    }
    head_.headers.push_back(Header{std::string(name), std::string(value)});
    pos_ = next;
  }
}

ParseStatus RequestParser::CheckLimits(std::string_view buf, size_t cap) {
  const std::string_view seen = buf.substr(pos_);
  if (stage_ == Stage::kStartLine) {
    // Both limits give the same answer: their order does not matter.
    if ((limits_.max_request_line &&
         FirstOverLength(seen, limits_.max_request_line) !=
             std::string_view::npos) ||
        seen.size() > cap) {
      return Fail(ErrorKind::kUriTooLong, "request line too long");
    }
    return ParseStatus::kNeedMore;
  }
  // Three limits with three answers: the one whose byte came first wins,
  // so the answer is the same however the line was split. Each is the
  // count of this line's bytes at which it is broken (npos: not yet).
  constexpr size_t kNot = std::string_view::npos;
  const size_t used = pos_ - head_start_;  // <= cap: checked at each LF
  const size_t section = seen.size() > cap - used ? cap - used + 1 : kNot;
  // One byte of a field line past the allowed count (a lone CR may still
  // be the empty line that ends the head).
  const size_t count =
      limits_.max_fields && head_.headers.size() >= limits_.max_fields
          ? FirstOverLength(seen, 0)
          : kNot;
  const size_t size =
      limits_.max_field_size
          ? FirstOverLength(seen, FieldLineMax(limits_.max_field_size))
          : kNot;
  const size_t first = std::min({section, count, size});
  if (first == kNot) return ParseStatus::kNeedMore;
  if (first == section) {
    return Fail(ErrorKind::kHeadersTooLarge, "header section too large");
  }
  if (first == count) {
    return Fail(ErrorKind::kHeadersTooLarge, "too many header fields");
  }
  return Fail(ErrorKind::kHeadersTooLarge, "header field too long");
}

bool RequestParser::ParseRequestLine(std::string_view line) {
  if (memchr(line.data(), '\r', line.size()) != nullptr) {
    Fail(ErrorKind::kBadRequest, "bare CR in request line");
    return false;
  }
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) {
    Fail(ErrorKind::kBadRequest, "invalid request line");
    return false;
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method)) {
    Fail(ErrorKind::kBadRequest,
         method.empty() ? "invalid request line" : "invalid method");
    return false;
  }
  if (target.empty()) {
    Fail(ErrorKind::kBadRequest, "invalid request line");
    return false;
  }
  for (char c : target) {
    if (!kTargetChar[U8(c)]) {
      Fail(ErrorKind::kBadRequest, c == '\0'
                                       ? "NUL in request line"
                                       : "invalid character in request target");
      return false;
    }
  }
  switch (ParseVersion(version, &head_.version_minor)) {
    case VersionResult::kOk:
      break;
    case VersionResult::kBad:
      Fail(ErrorKind::kBadRequest, "invalid HTTP version");
      return false;
    case VersionResult::kUnsupported:
      Fail(ErrorKind::kVersionNotSupported, "unsupported HTTP version");
      return false;
  }
  // Request-target forms (RFC 9112 3.2).
  if (method == "CONNECT") {
    if (!IsAuthorityForm(target)) {
      Fail(ErrorKind::kBadRequest, "CONNECT requires authority-form target");
      return false;
    }
  } else if (target[0] == '/') {
    // origin-form
  } else if (target == "*") {
    if (method != "OPTIONS") {
      Fail(ErrorKind::kBadRequest, "asterisk-form target only for OPTIONS");
      return false;
    }
  } else if (!IsAbsoluteForm(target)) {
    Fail(ErrorKind::kBadRequest, "invalid request target");
    return false;
  } else {
    std::string_view authority = AuthorityOf(target);
    if (authority.find('@') != std::string_view::npos) {
      Fail(ErrorKind::kBadRequest, "userinfo in request target");
      return false;
    }
    if (authority.empty() || !IsValidAuthority(authority)) {
      Fail(ErrorKind::kBadRequest, "invalid authority in request target");
      return false;
    }
    absolute_authority_.assign(authority);
  }
  head_.method.assign(method);
  head_.target.assign(target);
  return true;
}

ParseStatus RequestParser::Finish(size_t end, size_t* consumed) {
  const FieldSummary s = Summarize(head_.headers);
  const bool http11 = head_.version_minor == 1;

  // RFC 9112 3.2.
  if (s.host_count > 1) {
    return Fail(ErrorKind::kBadRequest, "multiple Host headers");
  }
  if (s.host_count == 0 && http11) {
    return Fail(ErrorKind::kBadRequest, "missing Host header");
  }
  if (s.host != nullptr && !IsValidAuthority(*s.host)) {
    return Fail(ErrorKind::kBadRequest, "invalid Host header");
  }
  // RFC 9112 3.2.2: with an absolute-form target the received Host is
  // ignored and replaced by the target's authority, so whoever reads this
  // head (the app, X-Forwarded-Host, the logs) sees one host, never two.
  if (!absolute_authority_.empty()) {
    bool replaced = false;
    for (Header& h : head_.headers) {
      if (EqualsIgnoreCase(h.name, "host")) {
        h.value = absolute_authority_;
        replaced = true;
      }
    }
    if (!replaced) head_.headers.push_back(Header{"Host", absolute_authority_});
  }

  // Message body length (RFC 9112 6.1, 6.3).
  if (s.cl_invalid) {
    return Fail(ErrorKind::kBadRequest, "invalid Content-Length");
  }
  if (s.cl_conflict) {
    return Fail(ErrorKind::kBadRequest,
                "duplicate Content-Length with different values");
  }
  head_.framing = Framing::kNone;
  head_.content_length = 0;
  if (s.has_te) {
    if (const char* cause = TransferEncodingError(
            s, http11, "Transfer-Encoding in HTTP/1.0 request")) {
      return Fail(ErrorKind::kBadRequest, cause);
    }
    if (s.te_chunked_not_last) {
      return Fail(ErrorKind::kBadRequest,
                  "chunked is not the final transfer coding");
    }
    if (s.te_other) {
      return Fail(ErrorKind::kNotImplemented, "unsupported transfer coding");
    }
    head_.framing = Framing::kChunked;
  } else if (s.has_cl) {
    if (limits_.max_body && s.cl > limits_.max_body) {
      return Fail(ErrorKind::kBodyTooLarge, "Content-Length exceeds limit");
    }
    head_.framing = Framing::kContentLength;
    head_.content_length = s.cl;
  }

  head_.keep_alive =
      http11 ? !s.conn_close : (s.conn_keep_alive && !s.conn_close);
  head_.expect_continue = http11 && s.expect != nullptr &&
                          EqualsIgnoreCase(*s.expect, "100-continue");
  head_.upgrade = s.conn_upgrade && s.has_upgrade;

  stage_ = Stage::kDone;
  *consumed = end;
  return ParseStatus::kDone;
}

}  // namespace forkd::http1

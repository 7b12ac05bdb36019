#include "server/http1/request_checks.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "server/http1/fields.h"
#include "server/http1/syntax.h"

namespace forkd::http1 {

using syntax::FieldLineMax;
using syntax::FieldSummary;
using syntax::IsToken;
using syntax::kHostChar;
using syntax::kTargetChar;
using syntax::kUnlimitedHeadCap;
using syntax::SaturatingAdd;
using syntax::SaturatingMul;
using syntax::Summarize;
using syntax::TransferEncodingError;
using syntax::U8;

namespace {

Error Bad(ErrorKind kind, std::string_view detail) {
  return Error{kind, std::string(detail)};
}

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

// The request line a head stands for, without its CRLF: the method, a
// space, the target, a space and "HTTP/1.x".
constexpr size_t kVersionLength = 8;

}  // namespace

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

Error CheckMethodAndTarget(std::string_view method, std::string_view target) {
  if (!IsToken(method)) {
    return Bad(ErrorKind::kBadRequest,
               method.empty() ? "invalid request line" : "invalid method");
  }
  if (target.empty())
    return Bad(ErrorKind::kBadRequest, "invalid request line");
  for (char c : target) {
    if (!kTargetChar[U8(c)]) {
      return Bad(ErrorKind::kBadRequest,
                 c == '\0' ? "NUL in request line"
                           : "invalid character in request target");
    }
  }
  return Error();
}

Error CheckTargetForm(std::string_view method, std::string_view target,
                      std::string* absolute_authority) {
  absolute_authority->clear();
  if (method == "CONNECT") {
    if (!IsAuthorityForm(target)) {
      return Bad(ErrorKind::kBadRequest,
                 "CONNECT requires authority-form target");
    }
  } else if (!target.empty() && target[0] == '/') {
    // origin-form
  } else if (target == "*") {
    if (method != "OPTIONS") {
      return Bad(ErrorKind::kBadRequest,
                 "asterisk-form target only for OPTIONS");
    }
  } else if (!IsAbsoluteForm(target)) {
    return Bad(ErrorKind::kBadRequest, "invalid request target");
  } else {
    std::string_view authority = AuthorityOf(target);
    if (authority.find('@') != std::string_view::npos) {
      return Bad(ErrorKind::kBadRequest, "userinfo in request target");
    }
    if (authority.empty() || !IsValidAuthority(authority)) {
      return Bad(ErrorKind::kBadRequest, "invalid authority in request target");
    }
    absolute_authority->assign(authority);
  }
  return Error();
}

Error CheckRequestHead(const Limits& limits, RequestHead* head) {
  const FieldSummary s = Summarize(head->headers);
  const bool http11 = head->version_minor == 1;

  // RFC 9112 3.2.
  if (s.host_count > 1) {
    return Bad(ErrorKind::kBadRequest, "multiple Host headers");
  }
  if (s.host_count == 0 && http11) {
    return Bad(ErrorKind::kBadRequest, "missing Host header");
  }
  if (s.host != nullptr && !IsValidAuthority(*s.host)) {
    return Bad(ErrorKind::kBadRequest, "invalid Host header");
  }

  // Message body length (RFC 9112 6.1, 6.3).
  if (s.cl_invalid)
    return Bad(ErrorKind::kBadRequest, "invalid Content-Length");
  if (s.cl_conflict) {
    return Bad(ErrorKind::kBadRequest,
               "duplicate Content-Length with different values");
  }
  head->framing = Framing::kNone;
  head->content_length = 0;
  if (s.has_te) {
    if (const char* cause = TransferEncodingError(
            s, http11, "Transfer-Encoding in HTTP/1.0 request")) {
      return Bad(ErrorKind::kBadRequest, cause);
    }
    if (s.te_chunked_not_last) {
      return Bad(ErrorKind::kBadRequest,
                 "chunked is not the final transfer coding");
    }
    if (s.te_other) {
      return Bad(ErrorKind::kNotImplemented, "unsupported transfer coding");
    }
    head->framing = Framing::kChunked;
  } else if (s.has_cl) {
    if (limits.max_body && s.cl > limits.max_body) {
      return Bad(ErrorKind::kBodyTooLarge, "Content-Length exceeds limit");
    }
    head->framing = Framing::kContentLength;
    head->content_length = s.cl;
  }

  head->keep_alive =
      http11 ? !s.conn_close : (s.conn_keep_alive && !s.conn_close);
  head->expect_continue = http11 && s.expect != nullptr &&
                          EqualsIgnoreCase(*s.expect, "100-continue");
  head->upgrade = s.conn_upgrade && s.has_upgrade;
  return Error();
}

Error CheckHeadLimits(const Limits& limits, const RequestHead& head,
                      size_t* head_bytes) {
  const size_t cap = RequestHeadCap(limits);
  const size_t line =
      head.method.size() + 1 + head.target.size() + 1 + kVersionLength;
  if ((limits.max_request_line && line > limits.max_request_line) ||
      line + 2 > cap) {
    return Bad(ErrorKind::kUriTooLong, "request line too long");
  }
  // The parser's rule per field line: the count is broken by the line's
  // first byte, the section and the line size by the byte that takes them
  // over; the earliest byte decides, the section on a tie.
  constexpr size_t kNot = static_cast<size_t>(-1);
  const size_t line_max =
      limits.max_field_size ? FieldLineMax(limits.max_field_size) : kNot;
  size_t used = line + 2;  // the head so far, CRLFs included
  for (size_t i = 0; i < head.headers.size(); ++i) {
    if (limits.max_fields && i >= limits.max_fields) {
      return Bad(ErrorKind::kHeadersTooLarge, "too many header fields");
    }
    const Header& f = head.headers[i];
    const size_t len = f.name.size() + 2 + f.value.size();  // "name: value"
    const size_t room = cap - used;
    const size_t section_at = len > room ? room + 1 : kNot;
    const size_t size_at = len > line_max ? line_max + 1 : kNot;
    if (section_at != kNot && section_at <= size_at) {
      return Bad(ErrorKind::kHeadersTooLarge, "header section too large");
    }
    if (size_at != kNot) {
      return Bad(ErrorKind::kHeadersTooLarge, "header field too long");
    }
    used += len + 2;
    if (used > cap) {
      return Bad(ErrorKind::kHeadersTooLarge, "header section too large");
    }
  }
  if (used + 2 > cap) {
    return Bad(ErrorKind::kHeadersTooLarge, "header section too large");
  }
  if (head_bytes != nullptr) *head_bytes = used + 2;
  return Error();
}

}  // namespace forkd::http1

#include "server/http1/request_parser.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "server/http1/fields.h"
#include "server/http1/request_checks.h"
#include "server/http1/syntax.h"

namespace forkd::http1 {

using syntax::FieldLineMax;
using syntax::FindLf;
using syntax::FirstOverLength;
using syntax::ParseFieldLine;
using syntax::ParseVersion;
using syntax::VersionResult;

namespace {

// Empty lines tolerated before a request line (RFC 9112 2.2).
constexpr size_t kMaxLeadingEmptyBytes = 1024;

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
  if (Error e = CheckMethodAndTarget(method, target);
      e.kind != ErrorKind::kNone) {
    Fail(e.kind, e.detail);
    return false;
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
  if (Error e = CheckTargetForm(method, target, &absolute_authority_);
      e.kind != ErrorKind::kNone) {
    Fail(e.kind, e.detail);
    return false;
  }
  head_.method.assign(method);
  head_.target.assign(target);
  return true;
}

ParseStatus RequestParser::Finish(size_t end, size_t* consumed) {
  // Host, the body length and the connection fields: the same checks as a
  // head that arrived parsed (request_checks.h).
  if (Error e = CheckRequestHead(limits_, &head_); e.kind != ErrorKind::kNone) {
    return Fail(e.kind, e.detail);
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
  stage_ = Stage::kDone;
  *consumed = end;
  return ParseStatus::kDone;
}

}  // namespace forkd::http1

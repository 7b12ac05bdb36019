#include "server/http1/http1_parser.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "absl/strings/ascii.h"

namespace forkd::http1 {
namespace {

// Whole-head cap when a limit is 0 (unlimited), and for responses.
constexpr size_t kUnlimitedHeadCap = 64 * 1024;
// Empty lines tolerated before a request line (RFC 9112 2.2).
constexpr size_t kMaxLeadingEmptyBytes = 1024;
// A chunk-size line (size and extensions, without CRLF).
constexpr size_t kMaxChunkSizeLine = 4096;
// A chunked body's trailer section when its limits leave it unbounded.
constexpr size_t kMaxTrailerSection = 64 * 1024;

using CharTable = std::array<bool, 256>;

// tchar (RFC 9110 5.6.2).
constexpr CharTable MakeTokenTable() {
  CharTable t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) {
    t[static_cast<unsigned char>(c)] = true;
  }
  return t;
}

// field-vchar / SP / HTAB / obs-text (RFC 9110 5.5); also the reason-phrase
// alphabet.
constexpr CharTable MakeFieldValueTable() {
  CharTable t{};
  t['\t'] = true;
  for (int c = 0x20; c < 0x7F; ++c) t[c] = true;
  for (int c = 0x80; c < 0x100; ++c) t[c] = true;
  return t;
}

// Bytes allowed in a request-target: no whitespace, controls or DEL.
// obs-text is let through: clients do send raw UTF-8 paths.
constexpr CharTable MakeTargetTable() {
  CharTable t{};
  for (int c = 0x21; c < 0x7F; ++c) t[c] = true;
  for (int c = 0x80; c < 0x100; ++c) t[c] = true;
  return t;
}

// uri-host [":" port] (RFC 3986): unreserved, pct-encoded, sub-delims, and
// ":" "[" "]" for ports and IP literals.
constexpr CharTable MakeHostTable() {
  CharTable t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("-._~%!$&'()*+,;=:[]")) {
    t[static_cast<unsigned char>(c)] = true;
  }
  return t;
}

constexpr CharTable kTokenChar = MakeTokenTable();
constexpr CharTable kFieldValueChar = MakeFieldValueTable();
constexpr CharTable kTargetChar = MakeTargetTable();
constexpr CharTable kHostChar = MakeHostTable();

inline unsigned char U8(char c) { return static_cast<unsigned char>(c); }

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!kTokenChar[U8(c)]) return false;
  }
  return true;
}

bool IsOws(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimOws(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && IsOws(s[b])) ++b;
  while (e > b && IsOws(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// Calls fn(element) for each non-empty, OWS-trimmed element of a
// comma-separated list (RFC 9110 5.6.1: empty elements are ignored).
template <typename Fn>
void ForEachListElement(std::string_view value, Fn fn) {
  while (true) {
    size_t comma = value.find(',');
    std::string_view element = TrimOws(value.substr(0, comma));
    if (!element.empty()) fn(element);
    if (comma == std::string_view::npos) return;
    value.remove_prefix(comma + 1);
  }
}

// Detail for a byte that is not allowed where it was found.
const char* BadByteDetail(char c, const char* fallback) {
  if (c == '\r') return "bare CR in header";
  if (c == '\0') return "NUL in header";
  return fallback;
}

// Parses "name: value" (RFC 9112 5). Returns nullptr on success, else the
// cause.
const char* ParseFieldLine(std::string_view line, std::string_view* name,
                           std::string_view* value) {
  if (IsOws(line[0])) return "obs-fold not allowed";
  size_t i = 0;
  for (; i < line.size(); ++i) {
    char c = line[i];
    if (kTokenChar[U8(c)]) continue;
    if (c == ':') break;
    if (IsOws(c)) {
      size_t j = i;
      while (j < line.size() && IsOws(line[j])) ++j;
      if (j < line.size() && line[j] == ':') return "whitespace before colon";
    }
    return BadByteDetail(c, "invalid character in header name");
  }
  if (i == line.size()) return "missing colon in header";
  if (i == 0) return "empty header name";
  *name = line.substr(0, i);
  *value = TrimOws(line.substr(i + 1));
  for (char c : *value) {
    if (!kFieldValueChar[U8(c)]) {
      return BadByteDetail(c, "invalid character in header value");
    }
  }
  return nullptr;
}

// Finds the LF that ends the line being read. `*scan` is where the search
// resumes (bytes before it were searched already), which keeps repeated calls
// on a growing buffer linear overall. Returns npos when there is none yet.
size_t FindLf(std::string_view buf, size_t* scan) {
  if (*scan >= buf.size()) return std::string_view::npos;
  const void* lf = memchr(buf.data() + *scan, '\n', buf.size() - *scan);
  if (lf == nullptr) {
    *scan = buf.size();
    return std::string_view::npos;
  }
  return static_cast<const char*>(lf) - buf.data();
}

// The one ordering rule of every parser here, so that the verdict never
// depends on how the bytes were split: a message is judged byte by byte,
// and the first byte that breaks a rule decides (checks that the same byte
// breaks are taken in a fixed order). A length limit is broken by the byte
// that takes a line over it, before its LF arrives, so limits are checked on
// the bytes before the LF first and the LF's own checks (bare LF, syntax)
// come after.
//
// The limits count a line's bytes without a final CR, which may be the first
// half of its CRLF. Given the first `seen` bytes of a line (`byte_at(i)`,
// LF excluded), returns the number of them after which that length first
// exceeds `limit`, or npos when it does not yet.
template <typename ByteAt>
size_t FirstOverLength(size_t seen, ByteAt byte_at, size_t limit) {
  if (limit >= seen) return std::string_view::npos;
  // The length after n bytes is n, or n - 1 when byte n - 1 is a CR.
  if (byte_at(limit) != '\r') return limit + 1;
  return limit + 2 <= seen ? limit + 2 : std::string_view::npos;
}

size_t FirstOverLength(std::string_view seen, size_t limit) {
  return FirstOverLength(
      seen.size(), [seen](size_t i) { return seen[i]; }, limit);
}

// The longest field line content (CRLF excluded) allowed by
// --limit-request-field-size, which counts the CRLF as Gunicorn does.
size_t FieldLineMax(size_t max_field_size) {
  return max_field_size >= 2 ? max_field_size - 2 : 0;
}

enum class VersionResult { kOk, kBad, kUnsupported };

// "HTTP/" DIGIT "." DIGIT. Major version 1 only; a minor version above 1
// is read as 1.1, the highest this recipient implements (RFC 9112 2.3).
VersionResult ParseVersion(std::string_view v, int* minor) {
  if (v.size() != 8 || !v.starts_with("HTTP/") ||
      !absl::ascii_isdigit(U8(v[5])) || v[6] != '.' ||
      !absl::ascii_isdigit(U8(v[7]))) {
    return VersionResult::kBad;
  }
  if (v[5] != '1') return VersionResult::kUnsupported;
  *minor = v[7] == '0' ? 0 : 1;
  return VersionResult::kOk;
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

// 1*DIGIT without overflow.
bool ParseDecimal(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (!absl::ascii_isdigit(U8(c))) return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

size_t SaturatingAdd(size_t a, size_t b) {
  return a > std::numeric_limits<size_t>::max() - b
             ? std::numeric_limits<size_t>::max()
             : a + b;
}

size_t SaturatingMul(size_t a, size_t b) {
  if (a != 0 && b > std::numeric_limits<size_t>::max() / a) {
    return std::numeric_limits<size_t>::max();
  }
  return a * b;
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

// What the framing- and connection-related fields of a head say.
struct FieldSummary {
  bool has_cl = false;
  bool cl_invalid = false;
  bool cl_conflict = false;
  uint64_t cl = 0;

  bool has_te = false;
  bool te_invalid = false;
  int te_codings = 0;
  int te_chunked = 0;
  bool te_chunked_not_last = false;
  bool te_last_chunked = false;
  bool te_other = false;

  int host_count = 0;
  const std::string* host = nullptr;
  const std::string* expect = nullptr;
  bool has_upgrade = false;

  bool conn_close = false;
  bool conn_keep_alive = false;
  bool conn_upgrade = false;
};

void AddContentLength(std::string_view value, FieldSummary* s) {
  if (TrimOws(value).empty()) {
    s->cl_invalid = true;
    return;
  }
  // Split by hand: empty elements are an error here, unlike in lists.
  while (true) {
    size_t comma = value.find(',');
    uint64_t v = 0;
    if (!ParseDecimal(TrimOws(value.substr(0, comma)), &v)) {
      s->cl_invalid = true;
      return;
    }
    if (!s->has_cl) {
      s->has_cl = true;
      s->cl = v;
    } else if (v != s->cl) {
      s->cl_conflict = true;
    }
    if (comma == std::string_view::npos) return;
    value.remove_prefix(comma + 1);
  }
}

void AddTransferCodings(std::string_view value, FieldSummary* s) {
  s->has_te = true;
  ForEachListElement(value, [s](std::string_view element) {
    size_t semi = element.find(';');
    std::string_view coding = TrimOws(element.substr(0, semi));
    if (!IsToken(coding)) {
      s->te_invalid = true;
      return;
    }
    if (s->te_last_chunked) s->te_chunked_not_last = true;
    ++s->te_codings;
    if (EqualsIgnoreCase(coding, "chunked")) {
      // chunked takes no parameters (RFC 9112 7).
      if (semi != std::string_view::npos) s->te_invalid = true;
      ++s->te_chunked;
      s->te_last_chunked = true;
    } else {
      s->te_other = true;
      s->te_last_chunked = false;
    }
  });
}

void AddConnection(std::string_view value, FieldSummary* s) {
  ForEachListElement(value, [s](std::string_view token) {
    if (EqualsIgnoreCase(token, "close")) {
      s->conn_close = true;
    } else if (EqualsIgnoreCase(token, "keep-alive")) {
      s->conn_keep_alive = true;
    } else if (EqualsIgnoreCase(token, "upgrade")) {
      s->conn_upgrade = true;
    }
  });
}

FieldSummary Summarize(const std::vector<Header>& headers) {
  FieldSummary s;
  for (const Header& h : headers) {
    const std::string& n = h.name;
    // Dispatch on length first: most fields match none of these.
    switch (n.size()) {
      case 4:
        if (EqualsIgnoreCase(n, "host")) {
          if (++s.host_count == 1) s.host = &h.value;
        }
        break;
      case 6:
        if (EqualsIgnoreCase(n, "expect")) {
          if (s.expect == nullptr) s.expect = &h.value;
        }
        break;
      case 7:
        if (EqualsIgnoreCase(n, "upgrade")) s.has_upgrade = true;
        break;
      case 10:
        if (EqualsIgnoreCase(n, "connection")) AddConnection(h.value, &s);
        break;
      case 14:
        if (EqualsIgnoreCase(n, "content-length")) {
          AddContentLength(h.value, &s);
        }
        break;
      case 17:
        if (EqualsIgnoreCase(n, "transfer-encoding")) {
          AddTransferCodings(h.value, &s);
        }
        break;
      default:
        break;
    }
  }
  return s;
}

// The checks a message with Transfer-Encoding fails in requests and
// responses alike (RFC 9112 6.1, 6.3); nullptr when it passes them.
// `http10_cause` is the cause for an HTTP/1.0 message.
const char* TransferEncodingError(const FieldSummary& s, bool http11,
                                  const char* http10_cause) {
  if (s.has_cl) return "both Content-Length and Transfer-Encoding";
  if (!http11) return http10_cause;
  if (s.te_invalid) return "invalid Transfer-Encoding";
  if (s.te_codings == 0) return "empty Transfer-Encoding";
  if (s.te_chunked > 1) return "chunked applied more than once";
  return nullptr;
}

const std::string* FindHeader(const std::vector<Header>& headers,
                              std::string_view name) {
  for (const Header& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) return &h.value;
  }
  return nullptr;
}

// Parses chunk-size [chunk-ext] (RFC 9112 7.1, 7.1.1), the line without its
// CRLF. Returns nullptr on success, else the cause.
const char* ParseChunkSizeLine(std::string_view line, uint64_t* size) {
  size_t i = 0;
  uint64_t v = 0;
  while (i < line.size() && absl::ascii_isxdigit(U8(line[i]))) {
    if (i == 16) return "chunk size too large";
    char c = line[i];
    int d = absl::ascii_isdigit(U8(c)) ? c - '0'
                                       : absl::ascii_tolower(U8(c)) - 'a' + 10;
    v = (v << 4) | static_cast<uint64_t>(d);
    ++i;
  }
  if (i == 0) return "invalid chunk size";
  *size = v;
  // *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
  auto skip_bws = [&] {
    while (i < line.size() && IsOws(line[i])) ++i;
  };
  auto token_end = [&] {
    size_t start = i;
    while (i < line.size() && kTokenChar[U8(line[i])]) ++i;
    return i > start;
  };
  for (bool first = true;; first = false) {
    size_t before = i;
    skip_bws();
    if (i == line.size() && i == before) return nullptr;
    if (i == line.size() || line[i] != ';') {
      // "5x", "5 " or "5;a b": garbage after the size or an extension.
      return first ? "invalid chunk size" : "invalid chunk extension";
    }
    ++i;
    skip_bws();
    if (!token_end()) return "invalid chunk extension";
    size_t after_name = i;
    skip_bws();
    if (i < line.size() && line[i] == '=') {
      ++i;
      skip_bws();
      if (i < line.size() && line[i] == '"') {
        ++i;
        bool closed = false;
        while (i < line.size()) {
          char c = line[i];
          if (c == '"') {
            closed = true;
            ++i;
            break;
          }
          if (c == '\\') {
            // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
            if (i + 1 >= line.size() || !kFieldValueChar[U8(line[i + 1])]) {
              return "invalid chunk extension";
            }
            i += 2;
            continue;
          }
          if (!kFieldValueChar[U8(c)]) return "invalid chunk extension";
          ++i;
        }
        if (!closed) return "invalid chunk extension";
      } else if (!token_end()) {
        return "invalid chunk extension";
      }
    } else {
      i = after_name;
    }
  }
}

}  // namespace

int StatusForError(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kNone:
    case ErrorKind::kBadRequest:
      return 400;
    case ErrorKind::kUriTooLong:
      return 414;
    case ErrorKind::kHeadersTooLarge:
      return 431;
    case ErrorKind::kBodyTooLarge:
      return 413;
    case ErrorKind::kNotImplemented:
      return 501;
    case ErrorKind::kVersionNotSupported:
      return 505;
  }
  return 400;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  // Local: this absl's string_view is not std::string_view.
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (absl::ascii_tolower(U8(a[i])) != absl::ascii_tolower(U8(b[i]))) {
      return false;
    }
  }
  return true;
}

const std::string* RequestHead::Find(std::string_view name) const {
  return FindHeader(headers, name);
}

const std::string* ResponseHead::Find(std::string_view name) const {
  return FindHeader(headers, name);
}

// ---------------------------------------------------------------------------
// RequestParser

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

// ---------------------------------------------------------------------------
// ResponseParser

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

// ---------------------------------------------------------------------------
// BodyDecoder

BodyDecoder::BodyDecoder(Framing framing, uint64_t content_length,
                         uint64_t max_body, TrailerLimits trailer_limits)
    : framing_(framing), max_body_(max_body), trailer_limits_(trailer_limits) {
  // The section is capped like a request head's fields: every field at its
  // largest, plus the final empty line.
  const size_t fields = trailer_limits_.max_fields;
  const size_t size = trailer_limits_.max_field_size;
  trailer_section_cap_ = (fields && size)
                             ? SaturatingAdd(SaturatingMul(fields, size), 2)
                             : kMaxTrailerSection;
  trailer_line_max_ = size ? FieldLineMax(size) : trailer_section_cap_;
  switch (framing) {
    case Framing::kNone:
      done_ = true;
      break;
    case Framing::kContentLength:
      remaining_ = content_length;
      if (max_body_ && content_length > max_body_) {
        Fail(ErrorKind::kBodyTooLarge, "Content-Length exceeds limit");
      } else if (content_length == 0) {
        done_ = true;
      }
      break;
    case Framing::kChunked:
    case Framing::kUntilClose:
      break;
  }
}

void BodyDecoder::Fail(ErrorKind kind, std::string_view detail) {
  error_.kind = kind;
  error_.detail.assign(detail);
}

size_t BodyDecoder::Decode(std::string_view in, std::string* out) {
  if (done_ || failed()) return 0;
  switch (framing_) {
    case Framing::kNone:
      return 0;
    case Framing::kContentLength: {
      size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size()));
      if (out != nullptr) out->append(in.data(), n);
      remaining_ -= n;
      payload_bytes_ += n;
      if (remaining_ == 0) done_ = true;
      return n;
    }
    case Framing::kUntilClose: {
      size_t n = in.size();
      if (max_body_ && payload_bytes_ + n > max_body_) {
        n = static_cast<size_t>(max_body_ - payload_bytes_);
        Fail(ErrorKind::kBodyTooLarge, "body exceeds limit");
      }
      if (out != nullptr) out->append(in.data(), n);
      payload_bytes_ += n;
      return n;
    }
    case Framing::kChunked:
      return DecodeChunked(in, out);
  }
  return 0;
}

size_t BodyDecoder::DecodeChunked(std::string_view in, std::string* out) {
  size_t i = 0;
  while (i < in.size()) {
    switch (chunk_state_) {
      case ChunkState::kSize:
      case ChunkState::kTrailer: {
        const bool size_line = chunk_state_ == ChunkState::kSize;
        const void* lf = memchr(in.data() + i, '\n', in.size() - i);
        size_t end = lf ? static_cast<const char*>(lf) - in.data() : in.size();
        const size_t fresh = end - i;
        if (size_line) {
          // +1: the line's CR is held until its LF arrives.
          if (line_.size() + fresh > kMaxChunkSizeLine + 1) {
            Fail(ErrorKind::kBadRequest, "chunk size line too long");
            return i;
          }
        } else if (!CheckTrailerLimits(in.substr(i, fresh), lf != nullptr)) {
          return i;
        }
        std::string_view line;
        if (lf == nullptr) {
          line_.append(in.data() + i, end - i);
          return in.size();
        }
        if (line_.empty()) {
          line = in.substr(i, end - i);  // whole line in this input: no copy
        } else {
          line_.append(in.data() + i, end - i);
          line = line_;
        }
        i = end + 1;
        if (line.empty() || line.back() != '\r') {
          Fail(ErrorKind::kBadRequest,
               size_line ? "bare LF in chunk size" : "bare LF in trailer");
          return i - 1;
        }
        line.remove_suffix(1);
        if (size_line) {
          if (!HandleSizeLine(line)) return i - 1;
        } else if (line.empty()) {
          line_.clear();
          chunk_state_ = ChunkState::kDone;
          done_ = true;
          return i;
        } else {
          if (trailer_limits_.max_fields &&
              trailers_.size() >= trailer_limits_.max_fields) {
            Fail(ErrorKind::kHeadersTooLarge, "too many trailer fields");
            return i - 1;
          }
          std::string_view name;
          std::string_view value;
          if (const char* bad = ParseFieldLine(line, &name, &value)) {
            Fail(ErrorKind::kBadRequest,
                 std::string("invalid trailer field: ") + bad);
            return i - 1;
          }
          trailers_.push_back(Header{std::string(name), std::string(value)});
        }
        line_.clear();
        break;
      }
      case ChunkState::kData: {
        size_t n =
            static_cast<size_t>(std::min<uint64_t>(remaining_, in.size() - i));
        if (out != nullptr) out->append(in.data() + i, n);
        i += n;
        remaining_ -= n;
        payload_bytes_ += n;
        if (remaining_ == 0) chunk_state_ = ChunkState::kDataCr;
        break;
      }
      case ChunkState::kDataCr:
      case ChunkState::kDataLf:
        if (in[i] != (chunk_state_ == ChunkState::kDataCr ? '\r' : '\n')) {
          Fail(ErrorKind::kBadRequest, "missing CRLF after chunk data");
          return i;
        }
        ++i;
        chunk_state_ = chunk_state_ == ChunkState::kDataCr ? ChunkState::kDataLf
                                                           : ChunkState::kSize;
        break;
      case ChunkState::kSizeLf:
      case ChunkState::kTrailerLf:
      case ChunkState::kDone:
        return i;
    }
  }
  return i;
}

bool BodyDecoder::CheckTrailerLimits(std::string_view fresh, bool has_lf) {
  // The line's length and the section's size are both broken by some byte;
  // the one broken first decides (the head parsers' rule), the line's
  // length on a tie. Positions count this line's bytes.
  constexpr size_t kNot = std::string_view::npos;
  const size_t held = line_.size();
  const size_t seen = held + fresh.size();
  const size_t line_at = FirstOverLength(
      seen, [&](size_t k) { return k < held ? line_[k] : fresh[k - held]; },
      trailer_line_max_);
  // trailer_bytes_ <= cap: it was checked with every byte added to it.
  const size_t room = trailer_section_cap_ - trailer_bytes_;
  const size_t section_at = fresh.size() > room ? held + room + 1 : kNot;
  if (line_at != kNot && line_at <= section_at) {
    Fail(ErrorKind::kHeadersTooLarge, "trailer field too long");
    return false;
  }
  // The LF is one more byte of the section.
  if (section_at != kNot || fresh.size() + (has_lf ? 1 : 0) > room) {
    Fail(ErrorKind::kHeadersTooLarge, "trailer section too large");
    return false;
  }
  trailer_bytes_ += fresh.size() + (has_lf ? 1 : 0);
  return true;
}

bool BodyDecoder::HandleSizeLine(std::string_view line) {
  if (memchr(line.data(), '\r', line.size()) != nullptr) {
    Fail(ErrorKind::kBadRequest, "bare CR in chunk size");
    return false;
  }
  uint64_t size = 0;
  if (const char* bad = ParseChunkSizeLine(line, &size)) {
    Fail(ErrorKind::kBadRequest, bad);
    return false;
  }
  if (size == 0) {
    chunk_state_ = ChunkState::kTrailer;
    return true;
  }
  if (max_body_ && size > max_body_ - payload_bytes_) {
    Fail(ErrorKind::kBodyTooLarge, "chunked body exceeds limit");
    return false;
  }
  remaining_ = size;
  chunk_state_ = ChunkState::kData;
  return true;
}

void BodyDecoder::OnEof() {
  if (done_ || failed()) return;
  if (framing_ == Framing::kUntilClose) {
    done_ = true;
  } else {
    Fail(ErrorKind::kBadRequest, "connection closed before end of body");
  }
}

// ---------------------------------------------------------------------------
// Field helpers

bool IsHopByHop(std::string_view name,
                const std::vector<std::string>& connection_tokens) {
  static constexpr std::string_view kHopByHop[] = {
      "connection",         "keep-alive",
      "proxy-connection",   "te",
      "transfer-encoding",  "upgrade",
      "proxy-authenticate", "proxy-authorization",
  };
  for (std::string_view h : kHopByHop) {
    if (EqualsIgnoreCase(name, h)) return true;
  }
  for (const std::string& token : connection_tokens) {
    if (EqualsIgnoreCase(name, token)) return true;
  }
  return false;
}

bool IsAllowedInTrailer(std::string_view name) {
  static constexpr std::string_view kNotInTrailers[] = {
      // Framing and the connection.
      "content-length",
      "transfer-encoding",
      "trailer",
      "te",
      "connection",
      "keep-alive",
      "proxy-connection",
      "upgrade",
      // Routing and request modifiers.
      "host",
      "expect",
      "max-forwards",
      "pragma",
      "range",
      "if-match",
      "if-none-match",
      "if-modified-since",
      "if-unmodified-since",
      "if-range",
      "accept",
      "accept-charset",
      "accept-encoding",
      "accept-language",
      // Authentication and state.
      "authorization",
      "proxy-authorization",
      "www-authenticate",
      "proxy-authenticate",
      "authentication-info",
      "proxy-authentication-info",
      "cookie",
      "set-cookie",
      // Response controls.
      "age",
      "cache-control",
      "date",
      "expires",
      "location",
      "retry-after",
      "vary",
      "warning",
      // Set by forkd from the connection; never from a client's trailer.
      "forwarded",
      "x-forwarded-for",
      "x-forwarded-proto",
      "x-forwarded-host",
      "x-request-id",
  };
  // Content-Type, Content-Encoding, Content-Range...: content format.
  if (name.size() >= 8 && EqualsIgnoreCase(name.substr(0, 8), "content-")) {
    return false;
  }
  for (std::string_view n : kNotInTrailers) {
    if (EqualsIgnoreCase(name, n)) return false;
  }
  return true;
}

bool TeAcceptsTrailers(std::string_view te_value) {
  bool found = false;
  ForEachListElement(te_value, [&found](std::string_view element) {
    // "trailers" takes no parameters; a t-coding may have some.
    if (EqualsIgnoreCase(element, "trailers")) found = true;
  });
  return found;
}

void ConnectionTokens(const std::vector<Header>& headers,
                      std::vector<std::string>* tokens) {
  tokens->clear();
  for (const Header& h : headers) {
    if (!EqualsIgnoreCase(h.name, "connection")) continue;
    ForEachListElement(h.value, [tokens](std::string_view token) {
      std::string& t = tokens->emplace_back(token);
      absl::AsciiStrToLower(&t);
    });
  }
}

std::vector<std::string> ConnectionTokens(const std::vector<Header>& headers) {
  std::vector<std::string> tokens;
  ConnectionTokens(headers, &tokens);
  return tokens;
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 102:
      return "Processing";
    case 103:
      return "Early Hints";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 203:
      return "Non-Authoritative Information";
    case 204:
      return "No Content";
    case 205:
      return "Reset Content";
    case 206:
      return "Partial Content";
    case 207:
      return "Multi-Status";
    case 208:
      return "Already Reported";
    case 226:
      return "IM Used";
    case 300:
      return "Multiple Choices";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 305:
      return "Use Proxy";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 402:
      return "Payment Required";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 407:
      return "Proxy Authentication Required";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 418:
      return "I'm a teapot";
    case 421:
      return "Misdirected Request";
    case 422:
      return "Unprocessable Content";
    case 423:
      return "Locked";
    case 424:
      return "Failed Dependency";
    case 425:
      return "Too Early";
    case 426:
      return "Upgrade Required";
    case 428:
      return "Precondition Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 451:
      return "Unavailable For Legal Reasons";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    case 506:
      return "Variant Also Negotiates";
    case 507:
      return "Insufficient Storage";
    case 508:
      return "Loop Detected";
    case 510:
      return "Not Extended";
    case 511:
      return "Network Authentication Required";
    default:
      return "";
  }
}

}  // namespace forkd::http1

// Lexical rules and field checks the HTTP/1 parsers share (RFC 9110/9112):
// character classes, field lines, lengths and what a head's framing fields
// say. Internal to server/http1/; other folders use message.h, fields.h and
// the parsers.
#ifndef FORKD_SERVER_HTTP1_SYNTAX_H_
#define FORKD_SERVER_HTTP1_SYNTAX_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "server/http1/message.h"

namespace forkd::http1::syntax {

// Whole-head cap when a limit is 0 (unlimited), and for responses.
inline constexpr size_t kUnlimitedHeadCap = 64 * 1024;

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

inline constexpr CharTable kTokenChar = MakeTokenTable();
inline constexpr CharTable kFieldValueChar = MakeFieldValueTable();
inline constexpr CharTable kTargetChar = MakeTargetTable();
inline constexpr CharTable kHostChar = MakeHostTable();

inline unsigned char U8(char c) { return static_cast<unsigned char>(c); }

bool IsToken(std::string_view s);
inline bool IsOws(char c) { return c == ' ' || c == '\t'; }
std::string_view TrimOws(std::string_view s);

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
const char* BadByteDetail(char c, const char* fallback);

// Parses "name: value" (RFC 9112 5). Returns nullptr on success, else the
// cause.
const char* ParseFieldLine(std::string_view line, std::string_view* name,
                           std::string_view* value);

// Finds the LF that ends the line being read. `*scan` is where the search
// resumes (bytes before it were searched already), which keeps repeated calls
// on a growing buffer linear overall. Returns npos when there is none yet.
size_t FindLf(std::string_view buf, size_t* scan);

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
size_t FirstOverLength(std::string_view seen, size_t limit);

// The longest field line content (CRLF excluded) allowed by
// --limit-request-field-size, which counts the CRLF as Gunicorn does.
size_t FieldLineMax(size_t max_field_size);

enum class VersionResult { kOk, kBad, kUnsupported };

// "HTTP/" DIGIT "." DIGIT. Major version 1 only; a minor version above 1
// is read as 1.1, the highest this recipient implements (RFC 9112 2.3).
VersionResult ParseVersion(std::string_view v, int* minor);

size_t SaturatingAdd(size_t a, size_t b);
size_t SaturatingMul(size_t a, size_t b);

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

// Reads the framing- and connection-related fields of `headers`.
FieldSummary Summarize(const std::vector<Header>& headers);

// The checks a message with Transfer-Encoding fails in requests and
// responses alike (RFC 9112 6.1, 6.3); nullptr when it passes them.
// `http10_cause` is the cause for an HTTP/1.0 message.
const char* TransferEncodingError(const FieldSummary& s, bool http11,
                                  const char* http10_cause);

}  // namespace forkd::http1::syntax

#endif  // FORKD_SERVER_HTTP1_SYNTAX_H_

#include "server/http1/syntax.h"

#include <cstring>
#include <limits>

#include "absl/strings/ascii.h"
#include "server/http1/fields.h"

namespace forkd::http1::syntax {
namespace {

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

}  // namespace

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!kTokenChar[U8(c)]) return false;
  }
  return true;
}

std::string_view TrimOws(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && IsOws(s[b])) ++b;
  while (e > b && IsOws(s[e - 1])) --e;
  return s.substr(b, e - b);
}

const char* BadByteDetail(char c, const char* fallback) {
  if (c == '\r') return "bare CR in header";
  if (c == '\0') return "NUL in header";
  return fallback;
}

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

size_t FindLf(std::string_view buf, size_t* scan) {
  if (*scan >= buf.size()) return std::string_view::npos;
  const void* lf = memchr(buf.data() + *scan, '\n', buf.size() - *scan);
  if (lf == nullptr) {
    *scan = buf.size();
    return std::string_view::npos;
  }
  return static_cast<const char*>(lf) - buf.data();
}

size_t FirstOverLength(std::string_view seen, size_t limit) {
  return FirstOverLength(
      seen.size(), [seen](size_t i) { return seen[i]; }, limit);
}

size_t FieldLineMax(size_t max_field_size) {
  return max_field_size >= 2 ? max_field_size - 2 : 0;
}

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

const char* TransferEncodingError(const FieldSummary& s, bool http11,
                                  const char* http10_cause) {
  if (s.has_cl) return "both Content-Length and Transfer-Encoding";
  if (!http11) return http10_cause;
  if (s.te_invalid) return "invalid Transfer-Encoding";
  if (s.te_codings == 0) return "empty Transfer-Encoding";
  if (s.te_chunked > 1) return "chunked applied more than once";
  return nullptr;
}

}  // namespace forkd::http1::syntax

#include "server/accesslog/access_log.h"

#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/common/log.h"

namespace forkd::accesslog {
namespace {

// Entry and the header hold std::string_view; absl here has its own
// string_view, so the helpers below use std::string_view throughout.
using std::string_view;

constexpr char kMonths[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr char kHex[] = "0123456789abcdef";

bool EqualsIgnoreCase(string_view a, string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]);
    unsigned char y = static_cast<unsigned char>(b[i]);
    if (x >= 'A' && x <= 'Z') x += 'a' - 'A';
    if (y >= 'A' && y <= 'Z') y += 'a' - 'A';
    if (x != y) return false;
  }
  return true;
}

// The first header named `name`, or nullptr.
const std::string* FindHeader(const std::vector<http1::Header>* headers,
                              string_view name) {
  if (headers == nullptr) return nullptr;
  for (const http1::Header& h : *headers) {
    if (EqualsIgnoreCase(h.name, name)) return &h.value;
  }
  return nullptr;
}

// nginx-style escaping, applied to every value (not to literal text): a
// client-controlled value can neither close a quoted field nor start a new
// line.
void AppendEscaped(string_view v, std::string* out) {
  size_t start = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(v[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') continue;
    out->append(v.data() + start, i - start);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else {
      const char esc[4] = {'\\', 'x', kHex[c >> 4], kHex[c & 0xf]};
      out->append(esc, 4);
    }
    start = i + 1;
  }
  out->append(v.data() + start, v.size() - start);
}

void AppendValueOrDash(string_view v, std::string* out) {
  if (v.empty()) {
    out->push_back('-');
  } else {
    AppendEscaped(v, out);
  }
}

void AppendHeaderOrDash(const std::vector<http1::Header>* headers,
                        string_view name, std::string* out) {
  const std::string* v = FindHeader(headers, name);
  AppendValueOrDash(v == nullptr ? string_view() : string_view(*v), out);
}

void AppendInt(int64_t v, std::string* out) {
  char buf[24];
  char* end = buf + sizeof(buf);
  char* p = end;
  uint64_t u = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  do {
    *--p = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (v < 0) *--p = '-';
  out->append(p, end - p);
}

void AppendPadded(int64_t v, int width, std::string* out) {
  char buf[24];
  for (int i = width - 1; i >= 0; --i) {
    buf[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  out->append(buf, width);
}

int64_t Micros(double seconds) {
  if (!(seconds > 0)) return 0;
  if (seconds > 1e12) return static_cast<int64_t>(1e18);
  return static_cast<int64_t>(std::llround(seconds * 1e6));
}

// "0.001234": whole seconds, '.', six digits (Gunicorn's %(L)s).
void AppendDecimalSeconds(double seconds, std::string* out) {
  int64_t us = Micros(seconds);
  AppendInt(us / 1000000, out);
  out->push_back('.');
  AppendPadded(us % 1000000, 6, out);
}

// localtime_r honours TZ as last set by tzset(), does not allocate and is
// thread-safe.
struct LocalTime {
  struct tm tm;
  int64_t micros;  // within the second
};

LocalTime ToLocal(absl::Time t) {
  LocalTime lt;
  int64_t us = absl::ToUnixMicros(t);
  int64_t secs = us / 1000000;
  lt.micros = us % 1000000;
  if (lt.micros < 0) {
    lt.micros += 1000000;
    --secs;
  }
  time_t tt = static_cast<time_t>(secs);
  if (localtime_r(&tt, &lt.tm) == nullptr) memset(&lt.tm, 0, sizeof(lt.tm));
  return lt;
}

void AppendOffset(long gmtoff, bool colon, std::string* out) {
  out->push_back(gmtoff < 0 ? '-' : '+');
  long off = gmtoff < 0 ? -gmtoff : gmtoff;
  AppendPadded(off / 3600, 2, out);
  if (colon) out->push_back(':');
  AppendPadded((off / 60) % 60, 2, out);
}

// "[10/Oct/2000:13:55:36 +0000]"
void AppendClfTime(absl::Time t, std::string* out) {
  LocalTime lt = ToLocal(t);
  out->push_back('[');
  AppendPadded(lt.tm.tm_mday, 2, out);
  out->push_back('/');
  out->append(kMonths[lt.tm.tm_mon % 12], 3);
  out->push_back('/');
  AppendPadded(lt.tm.tm_year + 1900, 4, out);
  out->push_back(':');
  AppendPadded(lt.tm.tm_hour, 2, out);
  out->push_back(':');
  AppendPadded(lt.tm.tm_min, 2, out);
  out->push_back(':');
  AppendPadded(lt.tm.tm_sec, 2, out);
  out->push_back(' ');
  AppendOffset(lt.tm.tm_gmtoff, false, out);
  out->push_back(']');
}

// RFC 3339 with milliseconds: "2000-10-10T13:55:36.000+00:00"
void AppendRfc3339(absl::Time t, std::string* out) {
  LocalTime lt = ToLocal(t);
  AppendPadded(lt.tm.tm_year + 1900, 4, out);
  out->push_back('-');
  AppendPadded(lt.tm.tm_mon + 1, 2, out);
  out->push_back('-');
  AppendPadded(lt.tm.tm_mday, 2, out);
  out->push_back('T');
  AppendPadded(lt.tm.tm_hour, 2, out);
  out->push_back(':');
  AppendPadded(lt.tm.tm_min, 2, out);
  out->push_back(':');
  AppendPadded(lt.tm.tm_sec, 2, out);
  out->push_back('.');
  AppendPadded(lt.micros / 1000, 3, out);
  AppendOffset(lt.tm.tm_gmtoff, true, out);
}

string_view PathOf(string_view target) {
  return target.substr(0, target.find('?'));
}

string_view QueryOf(string_view target) {
  size_t q = target.find('?');
  return q == string_view::npos ? string_view() : target.substr(q + 1);
}

int Base64Value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

// The user name of "Authorization: Basic base64(user:password)", decoded
// into `buf` (no allocation); empty when absent or not Basic.
string_view BasicAuthUser(const std::vector<http1::Header>* headers, char* buf,
                          size_t buf_size) {
  const std::string* auth = FindHeader(headers, "authorization");
  if (auth == nullptr) return {};
  string_view v = *auth;
  if (v.size() < 6 || !EqualsIgnoreCase(v.substr(0, 6), "basic ")) return {};
  v.remove_prefix(6);
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  size_t n = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : v) {
    if (ch == '=') break;
    int d = Base64Value(static_cast<unsigned char>(ch));
    if (d < 0) return {};
    acc = (acc << 6) | static_cast<uint32_t>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      char byte = static_cast<char>((acc >> bits) & 0xff);
      if (byte == ':') return string_view(buf, n);
      if (n == buf_size) return string_view(buf, n);  // long name: truncate
      buf[n++] = byte;
    }
  }
  return string_view(buf, n);  // no ':': all of it is the user
}

// Length of the valid UTF-8 sequence at s[i], or 0 when it is invalid.
size_t Utf8Length(string_view s, size_t i) {
  auto cont = [&s](size_t j, unsigned char lo = 0x80, unsigned char hi = 0xbf) {
    if (j >= s.size()) return false;
    unsigned char c = static_cast<unsigned char>(s[j]);
    return c >= lo && c <= hi;
  };
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c >= 0xc2 && c <= 0xdf) return cont(i + 1) ? 2 : 0;
  if (c == 0xe0) return cont(i + 1, 0xa0) && cont(i + 2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
    return cont(i + 1) && cont(i + 2) ? 3 : 0;
  }
  if (c == 0xed) return cont(i + 1, 0x80, 0x9f) && cont(i + 2) ? 3 : 0;
  if (c == 0xf0) {
    return cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  }
  if (c >= 0xf1 && c <= 0xf3) {
    return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  }
  if (c == 0xf4) {
    return cont(i + 1, 0x80, 0x8f) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  }
  return 0;
}

// A JSON string literal; invalid UTF-8 bytes become U+FFFD.
void AppendJsonString(string_view v, std::string* out) {
  out->push_back('"');
  size_t start = 0;
  size_t i = 0;
  while (i < v.size()) {
    unsigned char c = static_cast<unsigned char>(v[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      size_t len = Utf8Length(v, i);
      if (len != 0) {
        i += len;
        continue;
      }
    }
    out->append(v.data() + start, i - start);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c >= 0x80) {
          out->append("\\ufffd");
        } else {
          const char esc[6] = {'\\', 'u',          '0',
                               '0',  kHex[c >> 4], kHex[c & 0xf]};
          out->append(esc, 6);
        }
    }
    ++i;
    start = i;
  }
  out->append(v.data() + start, v.size() - start);
  out->push_back('"');
}

bool IsKnownAtom(string_view name) {
  if (name == "rid") return true;
  if (name.size() != 1) return false;
  return string_view("hlutrmUqHsBbfaTMDLp").find(name[0]) != string_view::npos;
}

}  // namespace

absl::StatusOr<Formatter> Formatter::Create(std::string_view format,
                                            const EnvLookup& env) {
  Formatter f;
  if (format == "json") {
    f.json_ = true;
    return f;
  }
  if (format.empty()) {
    return absl::InvalidArgumentError(
        "access log format is empty (use json or Gunicorn's %(h)s ... atoms)");
  }
  std::string literal;
  auto flush = [&f, &literal] {
    if (literal.empty()) return;
    f.pieces_.push_back({Piece::Kind::kLiteral, std::move(literal)});
    literal.clear();
  };
  size_t i = 0;
  while (i < format.size()) {
    char c = format[i];
    if (c != '%') {
      literal.push_back(c);
      ++i;
      continue;
    }
    if (i + 1 < format.size() && format[i + 1] == '%') {
      literal.push_back('%');
      i += 2;
      continue;
    }
    if (i + 1 >= format.size() || format[i + 1] != '(') {
      return absl::InvalidArgumentError(
          absl::StrCat("access log format: lone '%' at offset ", i,
                       " (write %% for a literal %, %(name)s for an atom)"));
    }
    size_t close = format.find(')', i + 2);
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("access log format: unterminated '%(' at offset ", i));
    }
    std::string name(format.substr(i + 2, close - i - 2));
    if (close + 1 >= format.size() || format[close + 1] != 's') {
      return absl::InvalidArgumentError(absl::StrCat("access log format: %(",
                                                     name,
                                                     ") must be followed by "
                                                     "'s', as in %(",
                                                     name, ")s"));
    }
    Piece piece;
    if (name.size() >= 3 && name.front() == '{' &&
        name[name.size() - 2] == '}') {
      std::string inner = name.substr(1, name.size() - 3);
      char suffix = name.back();
      if (inner.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("access log format: empty name in %(", name, ")s"));
      }
      if (suffix == 'i') {
        piece = {Piece::Kind::kRequestHeader, std::move(inner)};
      } else if (suffix == 'o') {
        piece = {Piece::Kind::kResponseHeader, std::move(inner)};
      } else if (suffix == 'e') {
        // Read once here: the piece holds the variable's value, not its name.
        const char* value = env ? env(inner) : nullptr;
        piece = {Piece::Kind::kEnv, value == nullptr ? "" : value};
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("access log format: unknown atom %(", name,
                         ")s (use {header}i, {header}o or {variable}e)"));
      }
    } else if (IsKnownAtom(name)) {
      piece = {Piece::Kind::kAtom, std::move(name)};
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("access log format: unknown atom %(", name, ")s"));
    }
    flush();
    f.pieces_.push_back(std::move(piece));
    i = close + 2;
  }
  flush();
  return f;
}

void Formatter::Format(const Entry& e, std::string* out) const {
  if (json_) {
    out->append("{\"remote_addr\":");
    AppendJsonString(e.remote_addr, out);
    out->append(",\"time\":\"");
    AppendRfc3339(e.start, out);
    out->append("\",\"method\":");
    AppendJsonString(e.method, out);
    out->append(",\"path\":");
    AppendJsonString(PathOf(e.target), out);
    out->append(",\"query\":");
    AppendJsonString(QueryOf(e.target), out);
    out->append(",\"protocol\":");
    AppendJsonString(e.protocol, out);
    out->append(",\"status\":");
    AppendInt(e.status, out);
    out->append(",\"bytes\":");
    AppendInt(static_cast<int64_t>(e.body_bytes), out);
    const std::string* referer = FindHeader(e.request_headers, "referer");
    out->append(",\"referer\":");
    AppendJsonString(referer == nullptr ? string_view() : *referer, out);
    const std::string* agent = FindHeader(e.request_headers, "user-agent");
    out->append(",\"user_agent\":");
    AppendJsonString(agent == nullptr ? string_view() : *agent, out);
    out->append(",\"duration_s\":");
    AppendDecimalSeconds(e.duration_s, out);
    out->append(",\"upstream_s\":");
    AppendDecimalSeconds(e.upstream_s, out);
    out->append(",\"request_id\":");
    AppendJsonString(e.request_id, out);
    out->append(",\"pid\":");
    AppendInt(getpid(), out);
    out->append("}\n");
    return;
  }
  for (const Piece& p : pieces_) {
    switch (p.kind) {
      case Piece::Kind::kLiteral:
        out->append(p.text);
        break;
      case Piece::Kind::kRequestHeader:
        AppendHeaderOrDash(e.request_headers, p.text, out);
        break;
      case Piece::Kind::kResponseHeader:
        AppendHeaderOrDash(e.response_headers, p.text, out);
        break;
      case Piece::Kind::kEnv:
        AppendValueOrDash(p.text, out);
        break;
      case Piece::Kind::kAtom:
        if (p.text.size() != 1) {  // "rid", the only longer atom
          AppendValueOrDash(e.request_id, out);
          break;
        }
        switch (p.text[0]) {
          case 'h':
            AppendValueOrDash(e.remote_addr, out);
            break;
          case 'l':
            out->push_back('-');
            break;
          case 'u': {
            char buf[192];
            AppendValueOrDash(
                BasicAuthUser(e.request_headers, buf, sizeof(buf)), out);
            break;
          }
          case 't':
            AppendClfTime(e.start, out);
            break;
          case 'r':
            AppendEscaped(e.method, out);
            out->push_back(' ');
            AppendEscaped(e.target, out);
            out->push_back(' ');
            AppendEscaped(e.protocol, out);
            break;
          case 'm':
            AppendValueOrDash(e.method, out);
            break;
          case 'U':
            AppendValueOrDash(PathOf(e.target), out);
            break;
          case 'q':
            AppendEscaped(QueryOf(e.target), out);
            break;
          case 'H':
            AppendValueOrDash(e.protocol, out);
            break;
          case 's':
            AppendInt(e.status, out);
            break;
          case 'B':
            AppendInt(static_cast<int64_t>(e.body_bytes), out);
            break;
          case 'b':
            if (e.body_bytes == 0) {
              out->push_back('-');
            } else {
              AppendInt(static_cast<int64_t>(e.body_bytes), out);
            }
            break;
          case 'f':
            AppendHeaderOrDash(e.request_headers, "referer", out);
            break;
          case 'a':
            AppendHeaderOrDash(e.request_headers, "user-agent", out);
            break;
          case 'T':
            AppendInt(Micros(e.duration_s) / 1000000, out);
            break;
          case 'M':
            AppendInt(Micros(e.duration_s) / 1000, out);
            break;
          case 'D':
            AppendInt(Micros(e.duration_s), out);
            break;
          case 'L':
            AppendDecimalSeconds(e.duration_s, out);
            break;
          case 'p':
            out->push_back('<');
            AppendInt(getpid(), out);
            out->push_back('>');
            break;
        }
        break;
    }
  }
  out->push_back('\n');
}

std::string Formatter::ToFormat() const {
  if (json_) return "json";
  std::string out;
  auto literal = [&out](std::string_view text) {
    for (char c : text) {
      if (c == '%') out.push_back('%');
      out.push_back(c);
    }
  };
  for (const Piece& p : pieces_) {
    switch (p.kind) {
      case Piece::Kind::kLiteral:
        literal(p.text);
        break;
      case Piece::Kind::kEnv:
        literal(p.text.empty() ? "-" : p.text);  // as Format prints it
        break;
      case Piece::Kind::kAtom:
        absl::StrAppend(&out, "%(", p.text, ")s");
        break;
      case Piece::Kind::kRequestHeader:
        absl::StrAppend(&out, "%({", p.text, "}i)s");
        break;
      case Piece::Kind::kResponseHeader:
        absl::StrAppend(&out, "%({", p.text, "}o)s");
        break;
    }
  }
  return out;
}

absl::StatusOr<std::string> ResolveEnvironment(
    std::string_view format, const Formatter::EnvLookup& env) {
  absl::StatusOr<Formatter> f = Formatter::Create(format, env);
  if (!f.ok()) return f.status();
  return f->ToFormat();
}

absl::StatusOr<std::unique_ptr<AccessLog>> AccessLog::Create(
    const std::string& path, std::string_view format) {
  absl::StatusOr<Formatter> formatter = Formatter::Create(format);
  if (!formatter.ok()) return formatter.status();
  if (path.empty()) {
    return absl::InvalidArgumentError(
        "access log path is empty (use - for stdout)");
  }
  int fd = STDOUT_FILENO;
  if (path != "-") {
    fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
      return absl::ErrnoToStatus(errno,
                                 absl::StrCat("cannot open access log ", path));
    }
  }
  return std::unique_ptr<AccessLog>(
      new AccessLog(path, std::move(*formatter), fd));
}

AccessLog::AccessLog(std::string path, Formatter formatter, int fd)
    : path_(std::move(path)), formatter_(std::move(formatter)), fd_(fd) {}

AccessLog::~AccessLog() {
  if (fd_ != STDOUT_FILENO) close(fd_);
}

void AccessLog::Log(const Entry& entry) {
  // One buffer per thread: after the first few lines, formatting allocates
  // nothing.
  thread_local std::string line;
  line.clear();
  formatter_.Format(entry, &line);
  const char* p = line.data();
  size_t left = line.size();
  // fd_ never changes (Reopen() dup3()s onto it), so no lock is needed. A
  // short write only happens on a full disk or pipe; the rest follows.
  while (left > 0) {
    ssize_t n = write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // nowhere to report it: the error log may be the same disk
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (line.capacity() > (64 << 10)) std::string().swap(line);
}

void AccessLog::Reopen() {
  if (path_ == "-") return;
  std::lock_guard<std::mutex> lock(mu_);
  int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    LOG_WARNING(
        "access log: cannot reopen %s: %s; still writing to the old "
        "file",
        path_, strerror(errno));
    return;
  }
  // dup3() swaps the open file behind fd_ atomically: a concurrent Log()
  // writes whole lines to either the old file or the new one, never to a
  // closed or reused descriptor.
  if (dup3(fd, fd_, O_CLOEXEC) < 0) {
    LOG_WARNING("access log: cannot reopen %s: %s", path_, strerror(errno));
  }
  close(fd);
}

}  // namespace forkd::accesslog

// Flags, FORKD_* environment variables and the config file, merged in that
// order of precedence over the defaults in config.h, then validated.
//
// Config file format (--config PATH or FORKD_CONFIG):
//
//   # forkd.conf: one setting per line, "name = value".
//   bind = 0.0.0.0:8080
//   bind = unix:/run/forkd.sock
//   workers = 4
//   worker_class = gthread
//   access-logformat = %(h)s "%(r)s" %(s)s
//   access-logformat = ""%(r)s" "%(a)s""
//
// - `name` is a flag's name without the leading dashes; '_' may replace '-'
//   and case does not matter.
// - Leading and trailing blanks around name and value are ignored.
// - A line whose first non-blank character is '#' is a comment; blank lines
//   are skipped. '#' elsewhere is part of the value.
// - A value wrapped in double quotes has that one pair removed (so a value
//   that itself starts and ends with '"' must be wrapped once more, as the
//   second access-logformat line shows; its value is "%(r)s" "%(a)s").
//   There are no escapes.
// - `bind` may appear several times; the lines accumulate and replace the
//   default list. Any other repeated setting: the last line wins.
// - `config` cannot be set from inside a config file.
// - Errors read "PATH:LINE: ...".
#include "server/config/config.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstring>
#include <optional>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "server/common/address.h"
#include "server/common/ip_networks.h"
#include "server/config/autotune_settings.h"

#ifndef FORKD_VERSION
#define FORKD_VERSION "unknown"
#endif

extern char** environ;

namespace forkd::config {
namespace {

constexpr int64_t kNoMax = INT64_MAX;
// Bounds for numeric flags whose table entry sets no max: every number a
// user types is bounded, so none reaches arithmetic that overflows (seconds
// become int64 milliseconds; sizes are added to counters).
constexpr int64_t kMaxSeconds = 31'536'000;     // one year
constexpr int64_t kMaxSize = int64_t{1} << 40;  // 1 TiB

enum class Kind {
  kInt,          // int field, decimal
  kSize,         // int64_t field, bytes with optional k/m/g suffix
  kSeconds,      // double field, decimal seconds
  kDuration,     // double field, seconds; also "250ms", "0.25s", "2m"
  kBool,         // bool field; a bare flag means true
  kString,       // std::string field, checked in Validate()
  kBindList,     // the repeatable --bind
  kWorkerClass,  // sync | gthread | async
  kLogLevel,     // debug | info | warning | error | critical
};

struct Flag {
  absl::string_view name;  // without dashes, e.g. "worker-class"
  char short_name;         // 0 when none
  Kind kind;
  absl::string_view metavar;
  absl::string_view help;
  int Config::*int_field = nullptr;
  int64_t Config::*int64_field = nullptr;
  double Config::*double_field = nullptr;
  bool Config::*bool_field = nullptr;
  std::string Config::*string_field = nullptr;
  int64_t min = 0;
  int64_t max = kNoMax;
  // When set, the upper bound is this other setting's value.
  int Config::*max_field = nullptr;
  absl::string_view max_flag = {};
};

// The one table every source, ToArgs() and HelpText() are driven from.
// clang-format off
const Flag kFlags[] = {
    {.name = "bind", .short_name = 'b', .kind = Kind::kBindList,
     .metavar = "ADDRESS",
     .help = "Address to listen on: HOST:PORT, [IPv6]:PORT, :PORT (all "
             "interfaces), HOST (port 8000), unix:PATH or fd://N. Repeat for "
             "several; env takes a comma-separated list."},
    {.name = "backlog", .short_name = 0, .kind = Kind::kInt, .metavar = "INT",
     .help = "Maximum number of pending connections.",
     .int_field = &Config::backlog, .min = 1, .max = 65535},
    {.name = "reuse-port", .short_name = 0, .kind = Kind::kBool,
     .metavar = "",
     .help = "Set SO_REUSEPORT on the listening sockets.",
     .bool_field = &Config::reuse_port},
    {.name = "workers", .short_name = 'w', .kind = Kind::kInt,
     .metavar = "INT|auto",
     .help = "Number of worker processes; auto: 2 x CPUs (cgroup-aware) + 1.",
     .int_field = &Config::workers, .min = 1,
     .max_field = &Config::max_workers, .max_flag = "max-workers"},
    {.name = "max-workers", .short_name = 0, .kind = Kind::kInt,
     .metavar = "INT",
     .help = "Upper bound for the worker count (TTIN, the admin API).",
     .int_field = &Config::max_workers, .min = 1, .max = 1024},
    {.name = "worker-class", .short_name = 'k', .kind = Kind::kWorkerClass,
     .metavar = "STRING",
     .help = "Worker type: sync, gthread or async."},
    {.name = "threads", .short_name = 0, .kind = Kind::kInt, .metavar = "INT",
     .help = "Threads per gthread worker; more than 1 selects gthread unless "
             "--worker-class is given.",
     .int_field = &Config::threads, .min = 1,
     .max_field = &Config::max_threads, .max_flag = "max-threads"},
    {.name = "max-threads", .short_name = 0, .kind = Kind::kInt,
     .metavar = "INT",
     .help = "Upper bound for --threads (live changes included).",
     .int_field = &Config::max_threads, .min = 1, .max = 4096},
    {.name = "worker-connections", .short_name = 0, .kind = Kind::kInt,
     .metavar = "INT",
     .help = "Maximum simultaneous clients per async worker.",
     .int_field = &Config::worker_connections, .min = 1,
     .max_field = &Config::max_worker_connections,
     .max_flag = "max-worker-connections"},
    {.name = "max-worker-connections", .short_name = 0, .kind = Kind::kInt,
     .metavar = "INT",
     .help = "Upper bound for --worker-connections.",
     .int_field = &Config::max_worker_connections, .min = 1, .max = 1000000},
    {.name = "timeout", .short_name = 't', .kind = Kind::kSeconds,
     .metavar = "SECONDS",
     .help = "Workers silent for more than this are killed and restarted; "
             "0 disables the check.",
     .double_field = &Config::timeout},
    {.name = "graceful-timeout", .short_name = 0, .kind = Kind::kSeconds,
     .metavar = "SECONDS",
     .help = "Time to finish in-flight requests after a graceful stop.",
     .double_field = &Config::graceful_timeout},
    {.name = "keepalive", .short_name = 0, .kind = Kind::kSeconds,
     .metavar = "SECONDS",
     .help = "Idle time before a keep-alive connection is closed.",
     .double_field = &Config::keepalive},
    {.name = "client-header-timeout", .short_name = 0,
     .kind = Kind::kSeconds, .metavar = "SECONDS",
     .help = "Time a client has to send a whole request head, from its "
             "first byte (TLS: the handshake too; HTTP/2: the SETTINGS after "
             "the preface, a header block); then 408 and close (nginx's "
             "client_header_timeout). 0 disables.",
     .double_field = &Config::client_header_timeout},
    {.name = "client-body-timeout", .short_name = 0,
     .kind = Kind::kSeconds, .metavar = "SECONDS",
     .help = "Longest pause between two reads of a request body; then 408 "
             "and close (HTTP/2: RST_STREAM) (nginx's client_body_timeout). "
             "0 disables.",
     .double_field = &Config::client_body_timeout},
    {.name = "max-requests", .short_name = 0, .kind = Kind::kInt,
     .metavar = "INT",
     .help = "Restart a worker after this many requests; 0 disables.",
     .int_field = &Config::max_requests, .max = 1'000'000'000},
    {.name = "max-requests-jitter", .short_name = 0, .kind = Kind::kInt,
     .metavar = "INT",
     .help = "Add a random 0..N to --max-requests per worker.",
     .int_field = &Config::max_requests_jitter, .max = 1'000'000'000},
    {.name = "shutdown-delay", .short_name = 0, .kind = Kind::kSeconds,
     .metavar = "SECONDS",
     .help = "On TERM, report not-ready but keep serving for this long.",
     .double_field = &Config::shutdown_delay},
    {.name = "limit-request-line", .short_name = 0, .kind = Kind::kInt,
     .metavar = "INT",
     .help = "Maximum request line size in bytes; 0 means unlimited.",
     .int_field = &Config::limit_request_line, .min = 0, .max = 8190},
    {.name = "limit-request-fields", .short_name = 0, .kind = Kind::kInt,
     .metavar = "INT",
     .help = "Maximum number of request header fields.",
     .int_field = &Config::limit_request_fields, .min = 1, .max = 32768},
    {.name = "limit-request-field-size", .short_name = 0, .kind = Kind::kInt,
     .metavar = "INT",
     .help = "Maximum size of one request header field line in bytes, "
             "its CRLF included (as Gunicorn counts it); 0 means unlimited.",
     .int_field = &Config::limit_request_field_size, .min = 0,
     .max = 65536},
    {.name = "limit-request-body", .short_name = 0, .kind = Kind::kSize,
     .metavar = "SIZE",
     .help = "Maximum request body size (k/m/g suffixes); 0 means unlimited.",
     .int64_field = &Config::limit_request_body},
    {.name = "request-buffer", .short_name = 0, .kind = Kind::kSize,
     .metavar = "SIZE",
     .help = "Request bytes buffered before the app is called.",
     .int64_field = &Config::request_buffer, .min = 4096, .max = 1 << 30},
    {.name = "response-buffer", .short_name = 0, .kind = Kind::kSize,
     .metavar = "SIZE",
     .help = "Response bytes buffered per connection.",
     .int64_field = &Config::response_buffer, .min = 4096, .max = 1 << 30},
    {.name = "upstream", .short_name = 0, .kind = Kind::kString,
     .metavar = "URL",
     .help = "The app: unix:/abs/path or http://127.0.0.1:PORT.",
     .string_field = &Config::upstream},
    {.name = "upstream-protocol", .short_name = 0, .kind = Kind::kString,
     .metavar = "STRING",
     .help = "Protocol towards the app: http1 (HTTP/1.1 keep-alive pool) or "
             "h2c (HTTP/2 without TLS, streams multiplexed; gRPC apps; async "
             "worker class only; HTTP/1.1 clients then get 505).",
     .string_field = &Config::upstream_protocol},
    {.name = "upstream-timeout", .short_name = 0, .kind = Kind::kSeconds,
     .metavar = "SECONDS",
     .help = "Connect and idle-read timeout towards the app.",
     .double_field = &Config::upstream_timeout},
    {.name = "max-queue-time", .short_name = 0, .kind = Kind::kSeconds,
     .metavar = "SECONDS",
     .help = "App mode: how long a request waits in forkd for a free app "
             "process (every one at its cap) before it gets 503 with "
             "Retry-After: 1; 0: no limit. With --autotune limit (either "
             "mode), also how long it waits for a place under the limit.",
     .double_field = &Config::max_queue_time},
    {.name = "autotune", .short_name = 0, .kind = Kind::kString,
     .metavar = "MODE",
     .help = "off: static sizes. limit: an adaptive limit on requests in "
             "flight to the app, shared by all workers (the rest wait up to "
             "--max-queue-time). full (app mode only): also the number of "
             "app processes and their threads. Each decision is logged as "
             "one JSON line.",
     .string_field = &Config::autotune},
    {.name = "latency-target", .short_name = 0, .kind = Kind::kDuration,
     .metavar = "DURATION",
     .help = "Autotune: the p99 latency not to exceed (250ms, 0.25s); 0: "
             "none.",
     .double_field = &Config::latency_target, .max = 3600},
    {.name = "autotune-bounds", .short_name = 0, .kind = Kind::kString,
     .metavar = "BOUNDS",
     .help = "Autotune: inclusive ranges such as "
             "workers=1:8,threads=1:16,limit=3:200; a knob not named keeps "
             "its default (workers from the cgroup CPU and memory limits, "
             "threads up to --max-threads, limit up to the in-flight cap).",
     .string_field = &Config::autotune_bounds},
    {.name = "upstream-keepalive", .short_name = 0, .kind = Kind::kInt,
     .metavar = "INT",
     .help = "Idle app connections kept per worker.",
     .int_field = &Config::upstream_keepalive, .min = 0, .max = 10000},
    {.name = "http2", .short_name = 0, .kind = Kind::kBool, .metavar = "",
     .help = "Serve HTTP/2 (h2c with prior knowledge, Upgrade: h2c, ALPN "
             "h2) on the HTTP ports, in every worker class; --http2=false "
             "turns it off.",
     .bool_field = &Config::http2},
    {.name = "http2-max-concurrent-streams", .short_name = 0,
     .kind = Kind::kInt, .metavar = "INT",
     .help = "Streams a client may open at once on one HTTP/2 connection.",
     .int_field = &Config::http2_max_concurrent_streams, .min = 1,
     .max = 10000},
    {.name = "http2-initial-window-size", .short_name = 0, .kind = Kind::kInt,
     .metavar = "BYTES",
     .help = "HTTP/2 flow-control window of each stream.",
     .int_field = &Config::http2_initial_window_size, .min = 1,
     .max = 2147483647},
    {.name = "http2-max-frame-size", .short_name = 0, .kind = Kind::kInt,
     .metavar = "BYTES",
     .help = "Largest HTTP/2 frame payload forkd accepts.",
     .int_field = &Config::http2_max_frame_size, .min = 16384,
     .max = 16777215},
    {.name = "http2-max-header-list-size", .short_name = 0,
     .kind = Kind::kInt, .metavar = "BYTES",
     .help = "Largest HTTP/2 header list forkd accepts (answered 431).",
     .int_field = &Config::http2_max_header_list_size, .min = 1024,
     .max = 16777216},
    {.name = "certfile", .short_name = 0, .kind = Kind::kString,
     .metavar = "FILE",
     .help = "TLS certificate chain (PEM, the server's certificate first). "
             "When set, every --bind listener serves TLS (ALPN h2 and "
             "http/1.1); reloaded on HUP.",
     .string_field = &Config::certfile},
    {.name = "keyfile", .short_name = 0, .kind = Kind::kString,
     .metavar = "FILE",
     .help = "TLS private key (PEM, unencrypted); empty: the key is in "
             "--certfile.",
     .string_field = &Config::keyfile},
    {.name = "ca-certs", .short_name = 0, .kind = Kind::kString,
     .metavar = "FILE",
     .help = "CA certificates (PEM): when set, clients must present a "
             "certificate signed by one of them.",
     .string_field = &Config::ca_certs},
    {.name = "ssl-min-version", .short_name = 0, .kind = Kind::kString,
     .metavar = "VERSION",
     .help = "Oldest TLS version accepted: TLSv1.2 or TLSv1.3.",
     .string_field = &Config::ssl_min_version},
    {.name = "ciphers", .short_name = 0, .kind = Kind::kString,
     .metavar = "STRING",
     .help = "TLS 1.2 cipher suites in OpenSSL's syntax; empty: ECDHE with "
             "AES-GCM or ChaCha20-Poly1305 only.",
     .string_field = &Config::ciphers},
    {.name = "forwarded-allow-ips", .short_name = 0, .kind = Kind::kString,
     .metavar = "LIST",
     .help = "Comma-separated IPs and CIDRs (IPv4, IPv6) of the proxies "
             "whose X-Forwarded-*, Forwarded and X-Real-IP fields reach the "
             "app (X-Forwarded-For gets the peer appended); * trusts every "
             "peer. From any other peer these fields are removed and forkd "
             "writes its own. Empty: trust nobody.",
     .string_field = &Config::forwarded_allow_ips},
    {.name = "header-map", .short_name = 0, .kind = Kind::kString,
     .metavar = "STRING",
     .help = "Request field names containing '_' (which WSGI/CGI apps "
             "confuse with '-'): drop them, refuse the request with 400, or "
             "pass them (dangerous).",
     .string_field = &Config::header_map},
    {.name = "proxy-protocol", .short_name = 0, .kind = Kind::kBool,
     .metavar = "",
     .help = "Every connection starts with a PROXY protocol v1 or v2 header "
             "(before TLS and HTTP) from a load balancer in "
             "--proxy-allow-ips; its client address is the client's. A "
             "connection without a valid header is closed.",
     .bool_field = &Config::proxy_protocol},
    {.name = "proxy-allow-ips", .short_name = 0, .kind = Kind::kString,
     .metavar = "LIST",
     .help = "Comma-separated IPs and CIDRs allowed to send a PROXY protocol "
             "header (--proxy-protocol); * allows every peer.",
     .string_field = &Config::proxy_allow_ips},
    {.name = "pidfile", .short_name = 'p', .kind = Kind::kString,
     .metavar = "FILE",
     .help = "Write the master's PID to this file.",
     .string_field = &Config::pidfile},
    {.name = "access-logfile", .short_name = 0, .kind = Kind::kString,
     .metavar = "FILE",
     .help = "Access log file; - for stdout, empty for none.",
     .string_field = &Config::access_logfile},
    {.name = "access-logformat", .short_name = 0, .kind = Kind::kString,
     .metavar = "STRING",
     .help = "Access log format (Gunicorn's atoms) or json.",
     .string_field = &Config::access_logformat},
    {.name = "error-logfile", .short_name = 0, .kind = Kind::kString,
     .metavar = "FILE",
     .help = "Error log file; - for stderr.",
     .string_field = &Config::error_logfile},
    {.name = "log-level", .short_name = 0, .kind = Kind::kLogLevel,
     .metavar = "LEVEL",
     .help = "debug, info, warning, error or critical."},
    {.name = "config", .short_name = 'c', .kind = Kind::kString,
     .metavar = "FILE",
     .help = "Read settings from this file (name = value per line).",
     .string_field = &Config::config_file},
    {.name = "admin-bind", .short_name = 0, .kind = Kind::kString,
     .metavar = "HOST:PORT",
     .help = "gRPC admin API address (HOST:PORT, [IPv6]:PORT or :PORT); "
             "empty disables it.",
     .string_field = &Config::admin_bind},
    {.name = "metrics-bind", .short_name = 0, .kind = Kind::kString,
     .metavar = "HOST:PORT",
     .help = "HTTP /metrics and probe address (HOST:PORT, [IPv6]:PORT or "
             ":PORT); empty disables it.",
     .string_field = &Config::metrics_bind},
    {.name = "admin-token-file", .short_name = 0, .kind = Kind::kString,
     .metavar = "FILE",
     .help = "File holding the bearer token the admin API requires.",
     .string_field = &Config::admin_token_file},
    {.name = "app-cmd", .short_name = 0, .kind = Kind::kString,
     .metavar = "COMMAND",
     .help = "App mode: the app command as shell words (also everything "
             "after -- on the command line). forkd then runs --workers "
             "processes of it, each on its own unix socket: inherited as fd 3 "
             "(LISTEN_FDS=1), or the path {socket} when the command has it; "
             "{threads} and {worker} are replaced too. Empty: sidecar mode.",
     .string_field = &Config::app_cmd},
    {.name = "proxy-workers", .short_name = 0, .kind = Kind::kInt,
     .metavar = "INT|auto",
     .help = "App mode: forkd's own event-loop (async) processes in front of "
             "the app processes; auto: from the CPU limit, as --workers auto "
             "in sidecar mode.",
     .int_field = &Config::proxy_workers, .min = 0, .max = 1024},
    {.name = "max-worker-memory", .short_name = 0, .kind = Kind::kSize,
     .metavar = "SIZE",
     .help = "App mode: replace an app process whose RSS passes this (bytes, "
             "k/m/g or Ki/Mi/Gi suffix); 0 disables.",
     .int64_field = &Config::max_worker_memory},
    {.name = "app-socket-dir", .short_name = 0, .kind = Kind::kString,
     .metavar = "DIR",
     .help = "App mode: where forkd makes its private (0700) directory of "
             "app sockets; empty: $TMPDIR or /tmp.",
     .string_field = &Config::app_socket_dir},
    {.name = "app-health-path", .short_name = 0, .kind = Kind::kString,
     .metavar = "PATH",
     .help = "Readiness checks GET this path on the app and expect 2xx; "
             "empty: they only connect to its socket.",
     .string_field = &Config::app_health_path},
    {.name = "app-health-interval", .short_name = 0, .kind = Kind::kSeconds,
     .metavar = "SECONDS",
     .help = "Time between app checks for /readyz (every 0.25 s until the "
             "first success); 0 disables them.",
     .double_field = &Config::app_health_interval},
};
// clang-format on

const Flag* FindFlag(absl::string_view name) {
  for (const Flag& f : kFlags) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

const Flag* FindShortFlag(char c) {
  for (const Flag& f : kFlags) {
    if (f.short_name == c) return &f;
  }
  return nullptr;
}

std::string EnvName(const Flag& f) {
  std::string env = absl::StrCat("FORKD_", f.name);
  for (char& c : env) c = c == '-' ? '_' : absl::ascii_toupper(c);
  return env;
}

std::string Quote(absl::string_view v) {
  return absl::StrCat("\"", absl::CHexEscape(v), "\"");
}

const char* LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
    case LogLevel::kCritical:
      return "critical";
  }
  return "info";
}

std::string FormatSeconds(double d) {
  // Shortest text that parses back to the same double, so ToArgs() is exact.
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d);
  if (ec != std::errc()) return absl::StrCat(d);
  return std::string(buf, end);
}

// The value of a single-valued flag as ToArgs() and HelpText() print it.
std::string FormatValue(const Flag& f, const Config& c) {
  switch (f.kind) {
    case Kind::kInt:
      if ((f.int_field == &Config::workers && c.workers == 0) ||
          (f.int_field == &Config::proxy_workers && c.proxy_workers == 0)) {
        return "auto";
      }
      return absl::StrCat(c.*f.int_field);
    case Kind::kSize:
      return absl::StrCat(c.*f.int64_field);
    case Kind::kSeconds:
    case Kind::kDuration:
      return FormatSeconds(c.*f.double_field);
    case Kind::kBool:
      return c.*f.bool_field ? "true" : "false";
    case Kind::kString:
      return c.*f.string_field;
    case Kind::kWorkerClass:
      return WorkerClassName(c.worker_class);
    case Kind::kLogLevel:
      return LogLevelName(c.log_level);
    case Kind::kBindList:
      return absl::StrJoin(c.bind, ",");
  }
  return "";
}

// Parses "123", "64k", "1M", "2g" (powers of 1024) into bytes.
bool ParseSize(absl::string_view text, int64_t* out) {
  absl::string_view v = absl::StripAsciiWhitespace(text);
  int shift = 0;
  // Kubernetes quantities: "512Mi" is "512m" here (both powers of 1024).
  if (v.size() >= 2 && (v.back() == 'i' || v.back() == 'I')) {
    char unit = v[v.size() - 2];
    if (absl::ascii_isalpha(static_cast<unsigned char>(unit))) {
      v.remove_suffix(1);
    }
  }
  if (!v.empty()) {
    switch (v.back()) {
      case 'k':
      case 'K':
        shift = 10;
        break;
      case 'm':
      case 'M':
        shift = 20;
        break;
      case 'g':
      case 'G':
        shift = 30;
        break;
      default:
        break;
    }
    if (shift != 0) v.remove_suffix(1);
  }
  if (v.empty() || !absl::ascii_isdigit(static_cast<unsigned char>(v[0]))) {
    return false;
  }
  int64_t n;
  if (!absl::SimpleAtoi(v, &n) || n < 0) return false;
  if (n > (INT64_MAX >> shift)) return false;
  *out = n << shift;
  return true;
}

// Where a value came from, to prefix its error messages: "" for flags,
// "FORKD_X: " for the environment, "PATH:LINE: " for the config file.
struct Origin {
  std::string prefix;
  std::string raw;  // the value as written
};

struct State {
  Config config;
  std::set<absl::string_view> explicit_flags;  // set by any source
  std::map<absl::string_view, Origin> origins;
  bool bind_replaced = false;  // per source: the first --bind clears the list
};

// The largest value of a numeric flag (not one bounded by another flag).
int64_t MaxOf(const Flag& f) {
  if (f.max != kNoMax) return f.max;
  switch (f.kind) {
    case Kind::kSeconds:
    case Kind::kDuration:
      return kMaxSeconds;
    case Kind::kSize:
      return kMaxSize;
    default:
      return INT_MAX;
  }
}

std::string ExpectedRange(const Flag& f, const Config& c) {
  if (f.max_field != nullptr) {
    return absl::StrCat(f.min, "..", c.*f.max_field, ", the --", f.max_flag,
                        " limit");
  }
  if (f.kind == Kind::kSeconds) {
    return absl::StrCat(f.min, "..", MaxOf(f), " seconds",
                        MaxOf(f) == kMaxSeconds ? " (one year)" : "",
                        ", decimals allowed, e.g. 30 or 0.5");
  }
  if (f.kind == Kind::kDuration) {
    return absl::StrCat(f.min, "..", MaxOf(f),
                        " seconds, as 250ms, 0.25s or 0.25");
  }
  return absl::StrCat(f.min, "..", MaxOf(f));
}

// The first byte of `v` that a setting may not hold: C0 controls but HTAB,
// and DEL. A NUL would cut the value short where it is handed to a worker
// as an argv string; the others have no place in a path, address or
// format and only hide what a value really is in messages and logs.
std::optional<char> ControlByteIn(absl::string_view v) {
  for (char ch : v) {
    unsigned char u = static_cast<unsigned char>(ch);
    if ((u < 0x20 && ch != '\t') || u == 0x7F) return ch;
  }
  return std::nullopt;
}

absl::Status ValueError(absl::string_view prefix, const Flag& f,
                        absl::string_view value, absl::string_view problem,
                        absl::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat(prefix, "--", f.name, ": ",
                                                 Quote(value), " ", problem,
                                                 " (expected ", expected, ")"));
}

absl::Status ApplyValue(const Flag& f, absl::string_view value,
                        absl::string_view prefix, bool split_list, State* st) {
  Config& c = st->config;
  bool is_explicit = true;
  if (std::optional<char> bad = ControlByteIn(value)) {
    return ValueError(
        prefix, f, value,
        absl::StrCat("contains the control character ",
                     absl::CHexEscape(absl::string_view(&*bad, 1))),
        "printable characters and tabs only");
  }
  switch (f.kind) {
    case Kind::kInt: {
      if ((f.int_field == &Config::workers ||
           f.int_field == &Config::proxy_workers) &&
          absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(value), "auto")) {
        c.*f.int_field = 0;
        is_explicit = false;
        break;
      }
      int64_t n;
      if (!absl::SimpleAtoi(value, &n)) {
        return ValueError(prefix, f, value, "is not an integer",
                          ExpectedRange(f, c));
      }
      if (n < INT_MIN || n > INT_MAX) {
        return ValueError(prefix, f, value, "is out of range",
                          ExpectedRange(f, c));
      }
      c.*f.int_field = static_cast<int>(n);
      break;
    }
    case Kind::kSize:
      if (!ParseSize(value, &(c.*f.int64_field))) {
        return ValueError(
            prefix, f, value, "is not a size",
            absl::StrCat("bytes, or a number with a k, m or g suffix such as "
                         "64k; ",
                         ExpectedRange(f, c)));
      }
      break;
    case Kind::kSeconds: {
      double d;
      if (!absl::SimpleAtod(value, &d) || !std::isfinite(d)) {
        return ValueError(prefix, f, value, "is not a number of seconds",
                          ExpectedRange(f, c));
      }
      c.*f.double_field = d;
      break;
    }
    case Kind::kDuration: {
      absl::StatusOr<double> d =
          ParseDuration(std::string_view(value.data(), value.size()));
      if (!d.ok()) {
        return ValueError(prefix, f, value, "is not a duration",
                          ExpectedRange(f, c));
      }
      c.*f.double_field = *d;
      break;
    }
    case Kind::kBool: {
      bool b;
      if (!absl::SimpleAtob(value, &b)) {
        return ValueError(prefix, f, value, "is not a boolean",
                          "true or false");
      }
      c.*f.bool_field = b;
      break;
    }
    case Kind::kString:
      c.*f.string_field = std::string(value);
      break;
    case Kind::kBindList:
      if (!st->bind_replaced) {
        c.bind.clear();
        st->bind_replaced = true;
      }
      if (split_list) {
        for (absl::string_view part : absl::StrSplit(value, ',')) {
          part = absl::StripAsciiWhitespace(part);
          if (!part.empty()) c.bind.emplace_back(part);
        }
      } else {
        c.bind.emplace_back(value);
      }
      break;
    case Kind::kWorkerClass: {
      std::string v = absl::AsciiStrToLower(absl::StripAsciiWhitespace(value));
      if (v == "sync") {
        c.worker_class = WorkerClass::kSync;
      } else if (v == "gthread") {
        c.worker_class = WorkerClass::kGthread;
      } else if (v == "async") {
        c.worker_class = WorkerClass::kAsync;
      } else if (v == "gevent" || v == "eventlet" || v == "tornado") {
        return ValueError(
            prefix, f, value,
            "is a Python worker class; forkd's event-loop worker is \"async\"",
            "sync, gthread or async");
      } else {
        return ValueError(prefix, f, value, "is not a worker class",
                          "sync, gthread or async");
      }
      break;
    }
    case Kind::kLogLevel: {
      std::string v = absl::AsciiStrToLower(absl::StripAsciiWhitespace(value));
      if (v == "debug") {
        c.log_level = LogLevel::kDebug;
      } else if (v == "info") {
        c.log_level = LogLevel::kInfo;
      } else if (v == "warning") {
        c.log_level = LogLevel::kWarning;
      } else if (v == "error") {
        c.log_level = LogLevel::kError;
      } else if (v == "critical") {
        c.log_level = LogLevel::kCritical;
      } else {
        return ValueError(prefix, f, value, "is not a log level",
                          "debug, info, warning, error or critical");
      }
      break;
    }
  }
  if (is_explicit) {
    st->explicit_flags.insert(f.name);
  } else {
    st->explicit_flags.erase(f.name);
  }
  Origin& o = st->origins[f.name];
  o.prefix = std::string(prefix);
  o.raw = std::string(value);
  return absl::OkStatus();
}

// --- address syntax ---------------------------------------------------------

// "" or what is wrong with `v` as an address for `use` (common/address.h
// holds the one grammar the listeners, planes and upstream pool share).
std::string CheckAddressSyntax(absl::string_view v, common::AddressUse use) {
  absl::StatusOr<common::Address> a = common::ParseAddress(v, use);
  return a.ok() ? "" : std::string(a.status().message());
}

// "" or an origin-form target: '/' then visible ASCII, no spaces.
std::string CheckHealthPath(absl::string_view v) {
  if (v.empty()) return "";
  if (v[0] != '/') return "must start with /";
  for (char ch : v) {
    if (ch <= ' ' || ch >= 0x7f) {
      return "spaces and control characters are not allowed";
    }
  }
  return "";
}

// --- sources ----------------------------------------------------------------

struct FlagValue {
  const Flag* flag;
  std::string value;
};

// Splits argv into flag/value pairs without applying them (the config file
// named by --config must be applied first).
absl::Status Tokenize(const std::vector<std::string>& args,
                      std::vector<FlagValue>* out, bool* help, bool* version) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      // Everything after `--` is the app command, as --app-cmd.
      std::vector<std::string> words(args.begin() + i + 1, args.end());
      if (words.empty()) {
        return absl::InvalidArgumentError(
            "--: no app command after it (expected -- COMMAND [ARGS...])");
      }
      out->push_back({FindFlag("app-cmd"), JoinShellWords(words)});
      return absl::OkStatus();
    }
    const Flag* flag = nullptr;
    std::optional<std::string> value;
    std::string shown;  // the flag as the user typed it, for messages
    if (absl::StartsWith(arg, "--") && arg.size() > 2) {
      absl::string_view body = absl::string_view(arg).substr(2);
      size_t eq = body.find('=');
      absl::string_view name = body.substr(0, eq);
      if (eq != absl::string_view::npos)
        value = std::string(body.substr(eq + 1));
      if (name == "help") {
        *help = true;
        return absl::OkStatus();
      }
      if (name == "version") {
        *version = true;
        return absl::OkStatus();
      }
      flag = FindFlag(name);
      shown = absl::StrCat("--", name);
    } else if (arg.size() >= 2 && arg[0] == '-' && arg[1] != '-') {
      if (arg[1] == 'h') {
        *help = true;
        return absl::OkStatus();
      }
      if (arg[1] == 'v') {
        *version = true;
        return absl::OkStatus();
      }
      flag = FindShortFlag(arg[1]);
      shown = arg.substr(0, 2);
      if (arg.size() > 2) value = arg.substr(2);  // "-w4", as getopt
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument ", Quote(arg),
                       ": forkd takes only flags (see forkd --help)"));
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag ", shown, " (see forkd --help)"));
    }
    if (!value.has_value()) {
      if (flag->kind == Kind::kBool) {
        value = "true";
      } else if (i + 1 >= args.size() || absl::StartsWith(args[i + 1], "--")) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag->name, ": missing value (expected ",
                         flag->metavar, ")"));
      } else {
        value = args[++i];
      }
    }
    out->push_back({flag, std::move(*value)});
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--config: cannot read ", Quote(path), ": ", strerror(errno)));
  }
  std::string text;
  char buf[8192];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return absl::InvalidArgumentError(absl::StrCat(
          "--config: cannot read ", Quote(path), ": ", strerror(err)));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return text;
}

absl::Status ApplyConfigText(const std::string& path, absl::string_view text,
                             State* st) {
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    std::string prefix = absl::StrCat(path, ":", line_no, ": ");
    line = absl::StripAsciiWhitespace(line);  // also drops a CR
    if (line.empty() || line[0] == '#') continue;
    size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, "expected \"name = value\", got ", Quote(line)));
    }
    std::string name = absl::StrReplaceAll(
        absl::AsciiStrToLower(absl::StripAsciiWhitespace(line.substr(0, eq))),
        {{"_", "-"}});
    absl::string_view value = absl::StripAsciiWhitespace(line.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    const Flag* flag = FindFlag(name);
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          prefix, "unknown setting ", Quote(name), " (see forkd --help)"));
    }
    if (flag->string_field == &Config::config_file) {
      return absl::InvalidArgumentError(absl::StrCat(
          prefix, "\"config\" cannot be set inside a config file"));
    }
    absl::Status s = ApplyValue(*flag, value, prefix, false, st);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// --- validation -------------------------------------------------------------

const Origin& OriginOf(const State& st, absl::string_view name) {
  static const Origin* const kNone = new Origin();
  auto it = st.origins.find(name);
  return it == st.origins.end() ? *kNone : it->second;
}

absl::Status CheckRange(const State& st, const Flag& f, int64_t v) {
  const Config& c = st.config;
  int64_t max = f.max_field != nullptr ? c.*f.max_field : MaxOf(f);
  if (v >= f.min && v <= max) return absl::OkStatus();
  const Origin& o = OriginOf(st, f.name);
  std::string raw = o.raw.empty() ? absl::StrCat(v) : o.raw;
  return ValueError(o.prefix, f, raw, "is out of range", ExpectedRange(f, c));
}

absl::Status CheckAddress(const State& st, const Flag& f,
                          absl::string_view value, absl::string_view problem,
                          absl::string_view expected) {
  if (problem.empty()) return absl::OkStatus();
  return ValueError(OriginOf(st, f.name).prefix, f, value,
                    absl::StrCat("is invalid: ", problem), expected);
}

absl::Status Validate(const State& st) {
  const Config& c = st.config;
  // Limits first: the settings bounded by them name their current value.
  for (absl::string_view name :
       {"max-workers", "max-threads", "max-worker-connections"}) {
    const Flag& f = *FindFlag(name);
    absl::Status s = CheckRange(st, f, c.*f.int_field);
    if (!s.ok()) return s;
  }
  for (const Flag& f : kFlags) {
    absl::Status s;
    switch (f.kind) {
      case Kind::kInt:
        // workers == 0 is "auto" unless a source set it explicitly.
        if (f.int_field == &Config::workers && c.workers == 0 &&
            !st.explicit_flags.contains("workers")) {
          break;
        }
        if (f.int_field == &Config::proxy_workers && c.proxy_workers == 0) {
          break;  // auto
        }
        s = CheckRange(st, f, c.*f.int_field);
        break;
      case Kind::kSize:
        s = CheckRange(st, f, c.*f.int64_field);
        break;
      case Kind::kSeconds:
      case Kind::kDuration: {
        // Also false for NaN.
        const double d = c.*f.double_field;
        if (!(d >= static_cast<double>(f.min) &&
              d <= static_cast<double>(MaxOf(f)))) {
          const Origin& o = OriginOf(st, f.name);
          s = ValueError(o.prefix, f, o.raw.empty() ? FormatSeconds(d) : o.raw,
                         "is out of range", ExpectedRange(f, c));
        }
        break;
      }
      case Kind::kBindList:
        if (c.bind.empty()) {
          s = absl::InvalidArgumentError(absl::StrCat(
              OriginOf(st, f.name).prefix,
              "--bind: no address given (expected ",
              common::ExpectedAddressForms(common::AddressUse::kListen), ")"));
        }
        for (const std::string& b : c.bind) {
          if (!s.ok()) break;
          s = CheckAddress(
              st, f, b, CheckAddressSyntax(b, common::AddressUse::kListen),
              common::ExpectedAddressForms(common::AddressUse::kListen));
        }
        break;
      case Kind::kString:
        if (f.string_field == &Config::upstream) {
          s = CheckAddress(
              st, f, c.upstream,
              CheckAddressSyntax(c.upstream, common::AddressUse::kUpstream),
              common::ExpectedAddressForms(common::AddressUse::kUpstream));
        } else if (f.string_field == &Config::upstream_protocol) {
          const std::string& v = c.upstream_protocol;
          const std::string& raw = OriginOf(st, f.name).raw;
          if (v != "http1" && v != "h2c") {
            s = ValueError(OriginOf(st, f.name).prefix, f, v,
                           "is not an upstream protocol", "http1 or h2c");
          } else if (v == "h2c" && c.worker_class != WorkerClass::kAsync) {
            s = ValueError(
                OriginOf(st, f.name).prefix, f, raw.empty() ? v : raw,
                absl::StrCat("needs --worker-class async (HTTP/2 streams are "
                             "forwarded concurrently only there; the class is ",
                             WorkerClassName(c.worker_class), ")"),
                "http1 with the sync or gthread class");
          } else if (v == "h2c" && !c.http2) {
            s = ValueError(OriginOf(st, f.name).prefix, f, v,
                           "needs --http2 on (only HTTP/2 clients can be "
                           "forwarded to an h2c app)",
                           "--http2 true, or http1");
          }
        } else if (f.string_field == &Config::app_cmd) {
          if (!c.app_cmd.empty()) {
            absl::StatusOr<std::vector<std::string>> words =
                SplitShellWords(c.app_cmd);
            if (!words.ok() || words->empty()) {
              s = ValueError(OriginOf(st, f.name).prefix, f, c.app_cmd,
                             words.ok() ? "has no words"
                                        : std::string(words.status().message()),
                             "a command such as \"python3 app.py\"");
            } else if (st.explicit_flags.contains("upstream")) {
              const Origin& o = OriginOf(st, "upstream");
              s = ValueError(o.prefix, *FindFlag("upstream"), c.upstream,
                             "cannot be used in app mode (forkd gives each app "
                             "process its own socket)",
                             "no --upstream with an app command");
            }
          }
        } else if (f.string_field == &Config::autotune) {
          const Origin& o = OriginOf(st, f.name);
          std::optional<AutotuneMode> m = ParseAutotuneMode(c.autotune);
          if (!m) {
            s = ValueError(o.prefix, f, c.autotune, "is not an autotune mode",
                           "off, limit or full");
          } else if (*m == AutotuneMode::kFull && !AppMode(c)) {
            s = ValueError(o.prefix, f, c.autotune,
                           "needs app mode (forkd sizes only the app "
                           "processes it runs: forkd -w N -- CMD)",
                           "off or limit in sidecar mode");
          } else if (*m != AutotuneMode::kOff && c.upstream_protocol == "h2c") {
            s = ValueError(o.prefix, f, c.autotune,
                           "does not apply to --upstream-protocol h2c yet "
                           "(its streams bypass forkd's queue)",
                           "off with h2c, or --upstream-protocol http1");
          }
        } else if (f.string_field == &Config::autotune_bounds) {
          absl::StatusOr<AutotuneBounds> b =
              ParseAutotuneBounds(c.autotune_bounds);
          if (!b.ok()) {
            s = ValueError(OriginOf(st, f.name).prefix, f, c.autotune_bounds,
                           absl::StrCat("is invalid: ", b.status().message()),
                           "KNOB=MIN:MAX,... with knobs workers, threads, "
                           "limit, e.g. workers=1:8,threads=1:16");
          }
        } else if (f.string_field == &Config::app_health_path) {
          s = CheckAddress(st, f, c.app_health_path,
                           CheckHealthPath(c.app_health_path),
                           "a path such as /healthz, or empty");
        } else if (f.string_field == &Config::keyfile ||
                   f.string_field == &Config::ca_certs ||
                   f.string_field == &Config::ciphers) {
          const std::string& v = c.*f.string_field;
          if (!v.empty() && c.certfile.empty()) {
            s = ValueError(OriginOf(st, f.name).prefix, f, v,
                           "is set but --certfile is not",
                           "--certfile too, or no TLS flag at all");
          }
        } else if (f.string_field == &Config::ssl_min_version) {
          if (c.ssl_min_version != "TLSv1.2" &&
              c.ssl_min_version != "TLSv1.3") {
            s = ValueError(OriginOf(st, f.name).prefix, f, c.ssl_min_version,
                           "is not a TLS version", "TLSv1.2 or TLSv1.3");
          }
        } else if (f.string_field == &Config::forwarded_allow_ips ||
                   f.string_field == &Config::proxy_allow_ips) {
          absl::StatusOr<IpNetworks> nets =
              IpNetworks::Parse(c.*f.string_field);
          if (!nets.ok()) {
            s = ValueError(
                OriginOf(st, f.name).prefix, f, c.*f.string_field,
                absl::StrCat("is invalid: ", nets.status().message()),
                "comma-separated IPs and CIDRs, or *");
          }
        } else if (f.string_field == &Config::header_map) {
          const std::string& v = c.header_map;
          if (v != "drop" && v != "refuse" && v != "dangerous") {
            s = ValueError(OriginOf(st, f.name).prefix, f, v,
                           "is not a header map", "drop, refuse or dangerous");
          }
        } else if (f.string_field == &Config::admin_bind ||
                   f.string_field == &Config::metrics_bind) {
          const std::string& v = c.*f.string_field;
          if (!v.empty()) {
            s = CheckAddress(
                st, f, v, CheckAddressSyntax(v, common::AddressUse::kPlane),
                common::ExpectedAddressForms(common::AddressUse::kPlane));
          }
        }
        break;
      case Kind::kBool:
      case Kind::kWorkerClass:
      case Kind::kLogLevel:
        break;
    }
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// Appends `words` indented by 8 and wrapped at 79 columns.
void AppendWrapped(absl::string_view words, std::string* out) {
  constexpr size_t kIndent = 8;
  constexpr size_t kWidth = 79;
  size_t column = 0;
  for (absl::string_view word : absl::StrSplit(words, ' ', absl::SkipEmpty())) {
    if (column > kIndent && column + 1 + word.size() > kWidth) {
      out->push_back('\n');
      column = 0;
    }
    if (column == 0) {
      out->append(kIndent, ' ');
      column = kIndent;
    } else {
      out->push_back(' ');
      ++column;
    }
    absl::StrAppend(out, word);
    column += word.size();
  }
  out->push_back('\n');
}

}  // namespace

const char* WorkerClassName(WorkerClass c) {
  switch (c) {
    case WorkerClass::kSync:
      return "sync";
    case WorkerClass::kGthread:
      return "gthread";
    case WorkerClass::kAsync:
      return "async";
  }
  return "sync";
}

namespace {

// Parse() and ParseWithConfigText(): `config_file_text` null reads the file.
absl::StatusOr<ParseResult> ParseSources(
    const Sources& sources, const absl::string_view* config_file_text) {
  ParseResult result;
  std::vector<FlagValue> flags;
  absl::Status s =
      Tokenize(sources.args, &flags, &result.show_help, &result.show_version);
  if (!s.ok()) return s;
  if (result.show_help || result.show_version) return result;

  State st;
  const Flag& config_flag = *FindFlag("config");
  std::string config_path;
  if (auto it = sources.env.find(EnvName(config_flag));
      it != sources.env.end()) {
    config_path = it->second;
  }
  for (const FlagValue& fv : flags) {
    if (fv.flag == &config_flag) config_path = fv.value;
  }

  if (!config_path.empty()) {
    absl::StatusOr<std::string> text =
        config_file_text != nullptr
            ? absl::StatusOr<std::string>(std::string(*config_file_text))
            : ReadWholeFile(config_path);
    if (!text.ok()) return text.status();
    s = ApplyConfigText(config_path, *text, &st);
    if (!s.ok()) return s;
  }

  st.bind_replaced = false;
  for (const Flag& f : kFlags) {
    auto it = sources.env.find(EnvName(f));
    if (it == sources.env.end()) continue;
    s = ApplyValue(f, it->second, absl::StrCat(it->first, ": "),
                   /*split_list=*/true, &st);
    if (!s.ok()) return s;
  }

  st.bind_replaced = false;
  for (const FlagValue& fv : flags) {
    s = ApplyValue(*fv.flag, fv.value, "", /*split_list=*/false, &st);
    if (!s.ok()) return s;
  }
  st.config.config_file = config_path;

  // Gunicorn: --threads > 1 without an explicit class means gthread.
  if (st.config.threads > 1 && !st.explicit_flags.contains("worker-class")) {
    st.config.worker_class = WorkerClass::kGthread;
  }

  s = Validate(st);
  if (!s.ok()) return s;
  result.config = std::move(st.config);
  return result;
}

}  // namespace

absl::StatusOr<ParseResult> Parse(const Sources& sources) {
  return ParseSources(sources, nullptr);
}

absl::StatusOr<ParseResult> ParseWithConfigText(
    const Sources& sources, std::string_view config_file_text) {
  const absl::string_view text(config_file_text.data(),
                               config_file_text.size());
  return ParseSources(sources, &text);
}

absl::StatusOr<Config> Reload(const Sources& sources) {
  absl::StatusOr<ParseResult> r = Parse(sources);
  if (!r.ok()) return r.status();
  return std::move(r->config);
}

std::vector<std::string> ToArgs(const Config& config) {
  std::vector<std::string> args;
  for (const Flag& f : kFlags) {
    if (f.string_field == &Config::config_file) continue;
    // App mode refuses --upstream; the app processes' sockets replace it.
    if (f.string_field == &Config::upstream && AppMode(config)) continue;
    if (f.kind == Kind::kBindList) {
      for (const std::string& b : config.bind) {
        args.push_back(absl::StrCat("--bind=", b));
      }
      continue;
    }
    args.push_back(absl::StrCat("--", f.name, "=", FormatValue(f, config)));
  }
  return args;
}

std::string HelpText() {
  const Config defaults;
  std::string text = absl::StrCat(
      "usage: forkd [OPTIONS] [-- APP COMMAND...]\n\n"
      "forkd ",
      FORKD_VERSION,
      ": a pre-fork HTTP server in front of an app on a local socket.\n"
      "Settings come from, lowest precedence first: built-in defaults, the\n"
      "--config file (name = value per line), FORKD_<NAME> environment\n"
      "variables, and these flags. --flag value and --flag=value both work.\n"
      "Sizes take k, m or g suffixes (powers of 1024); durations are decimal\n"
      "seconds.\n\n"
      "options:\n"
      "  -h, --help\n        Show this help and exit.\n"
      "  -v, --version\n        Print the version and exit.\n");
  for (const Flag& f : kFlags) {
    std::string head =
        f.short_name != 0
            ? absl::StrCat("  -", std::string(1, f.short_name), ", --", f.name)
            : absl::StrCat("  --", f.name);
    if (!f.metavar.empty()) absl::StrAppend(&head, " ", f.metavar);
    std::string def = FormatValue(f, defaults);
    absl::StrAppend(&text, head, "\n");
    AppendWrapped(f.help, &text);
    // Not wrapped: a default's spaces are part of it.
    absl::StrAppend(&text, "        [default: ", def.empty() ? "\"\"" : def,
                    "] [env: ", EnvName(f), "]\n");
  }
  return text;
}

absl::StatusOr<std::vector<std::string>> SplitShellWords(std::string_view s) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char ch = s[i];
    if (ch == ' ' || ch == '\t' || ch == '\n') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (ch == '\'') {
      size_t end = s.find('\'', i + 1);
      if (end == std::string_view::npos) {
        return absl::InvalidArgumentError("has an unterminated ' quote");
      }
      word.append(s.substr(i + 1, end - i - 1));
      i = end;
    } else if (ch == '"') {
      size_t j = i + 1;
      for (; j < s.size() && s[j] != '"'; ++j) {
        // In double quotes a backslash escapes only these, as in sh.
        if (s[j] == '\\' && j + 1 < s.size() &&
            (s[j + 1] == '"' || s[j + 1] == '\\' || s[j + 1] == '$' ||
             s[j + 1] == '`')) {
          ++j;
        }
        word.push_back(s[j]);
      }
      if (j >= s.size()) {
        return absl::InvalidArgumentError("has an unterminated \" quote");
      }
      i = j;
    } else if (ch == '\\') {
      if (i + 1 >= s.size()) {
        return absl::InvalidArgumentError("ends with a lone backslash");
      }
      word.push_back(s[++i]);
    } else {
      word.push_back(ch);
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

std::string JoinShellWords(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) {
    if (!out.empty()) out.push_back(' ');
    bool plain = !w.empty();
    for (char ch : w) {
      if (!(absl::ascii_isalnum(static_cast<unsigned char>(ch)) ||
            absl::string_view("-_./:=,+@%{}").find(ch) !=
                absl::string_view::npos)) {
        plain = false;
      }
    }
    if (plain) {
      out.append(w);
      continue;
    }
    out.push_back('\'');
    for (char ch : w) {
      if (ch == '\'') {
        out.append("'\\''");
      } else {
        out.push_back(ch);
      }
    }
    out.push_back('\'');
  }
  return out;
}

std::map<std::string, std::string> ProcessEnvironment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    absl::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq == absl::string_view::npos) continue;
    env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  return env;
}

}  // namespace forkd::config

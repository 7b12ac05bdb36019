// forkd's settings: one struct, filled from (lowest to highest precedence)
// built-in defaults, the --config file, FORKD_<NAME> environment variables,
// and command-line flags. Validation names the flag, the value and what is
// allowed, so a bad value stops start-up with a clear message.
#ifndef FORKD_SERVER_CONFIG_CONFIG_H_
#define FORKD_SERVER_CONFIG_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace forkd::config {

enum class WorkerClass { kSync, kGthread, kAsync };
const char* WorkerClassName(WorkerClass c);  // "sync", "gthread", "async"

enum class LogLevel { kDebug, kInfo, kWarning, kError, kCritical };

struct Config {
  // --- listening -----------------------------------------------------------
  std::vector<std::string> bind = {"127.0.0.1:8000"};  // --bind, repeatable
  int backlog = 2048;                                  // --backlog
  bool reuse_port = false;                             // --reuse-port

  // --- pool ----------------------------------------------------------------
  int workers = 0;       // --workers; 0 before resolution means "auto"
  int max_workers = 64;  // --max-workers: upper bound for TTIN and the API
  WorkerClass worker_class = WorkerClass::kSync;  // --worker-class
  int threads = 1;                                // --threads (gthread)
  int max_threads = 256;                          // --max-threads
  int worker_connections = 1000;                  // --worker-connections
  int max_worker_connections = 100000;            // --max-worker-connections

  // --- supervision (seconds) -----------------------------------------------
  double timeout = 30;           // --timeout; 0 disables the heartbeat check
  double graceful_timeout = 30;  // --graceful-timeout
  double keepalive = 2;          // --keepalive: idle keep-alive close
  double client_header_timeout = 60;  // --client-header-timeout (0: off)
  double client_body_timeout = 60;    // --client-body-timeout (0: off)
  int max_requests = 0;               // --max-requests; 0 disables recycling
  int max_requests_jitter = 0;        // --max-requests-jitter
  double shutdown_delay = 5;  // --shutdown-delay: readiness off, still serving

  // --- request limits ------------------------------------------------------
  int limit_request_line = 4094;        // --limit-request-line (0: unlimited)
  int limit_request_fields = 100;       // --limit-request-fields
  int limit_request_field_size = 8190;  // --limit-request-field-size
  int64_t limit_request_body = 0;       // --limit-request-body (0: unlimited)
  int64_t request_buffer = 1 << 20;     // --request-buffer
  int64_t response_buffer = 1 << 20;    // --response-buffer

  // --- upstream (the app) --------------------------------------------------
  std::string upstream = "unix:/tmp/app.sock";  // --upstream
  double upstream_timeout = 60;  // --upstream-timeout (s): connect + idle read
  int upstream_keepalive = 64;   // --upstream-keepalive: idle conns per worker
  // --max-queue-time (s), app mode: the longest a request waits for a free
  // app process before 503 with Retry-After. 0: no limit.
  double max_queue_time = 30;
  // --upstream-protocol: "http1" (keep-alive pool) or "h2c" (HTTP/2 to the
  // app, stream to stream; async class only).
  std::string upstream_protocol = "http1";

  // --- autotune (issue 12; server/autotune/README.md) -----------------------
  std::string autotune = "off";  // --autotune: off | limit | full (app mode)
  double latency_target = 0;     // --latency-target (s): p99 goal, 0 = none
  // --autotune-bounds: "workers=1:8,threads=1:16,limit=3:200"; "" derives
  // them from the cgroup CPU and memory limits.
  std::string autotune_bounds;

  // --- HTTP/2 (h2c with prior knowledge on the HTTP ports) ------------------
  bool http2 = true;                       // --http2
  int http2_max_concurrent_streams = 100;  // --http2-max-concurrent-streams
  int http2_initial_window_size = 65535;   // --http2-initial-window-size
  int http2_max_frame_size = 16384;        // --http2-max-frame-size
  int http2_max_header_list_size = 65536;  // --http2-max-header-list-size

  // --- TLS (every --bind listener serves TLS when certfile is set) ---------
  std::string certfile;                     // --certfile: PEM chain
  std::string keyfile;                      // --keyfile ("" = in certfile)
  std::string ca_certs;                     // --ca-certs: require client certs
  std::string ssl_min_version = "TLSv1.2";  // --ssl-min-version
  std::string ciphers;                      // --ciphers ("" = forkd's list)

  // --- whom forkd believes
  // ----------------------------------------------------
  // --forwarded-allow-ips: peers (IPs, CIDRs, "*") whose X-Forwarded-*,
  // Forwarded and X-Real-IP reach the app; "" trusts nobody.
  std::string forwarded_allow_ips;
  std::string header_map = "drop";  // --header-map: drop|refuse|dangerous
  bool proxy_protocol = false;      // --proxy-protocol: PROXY v1/v2 first
  // --proxy-allow-ips: peers allowed to send a PROXY header.
  std::string proxy_allow_ips = "127.0.0.1,::1";

  // --- logs and files ------------------------------------------------------
  std::string pidfile;            // --pidfile
  std::string access_logfile;     // --access-logfile ("-" = stdout, "" = off)
  std::string access_logformat =  // --access-logformat (or "json")
      R"(%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s")";
  std::string error_logfile = "-";       // --error-logfile ("-" = stderr)
  LogLevel log_level = LogLevel::kInfo;  // --log-level
  std::string config_file;               // --config

  // --- planes --------------------------------------------------------------
  std::string admin_bind = "0.0.0.0:9090";    // --admin-bind ("" = off)
  std::string metrics_bind = "0.0.0.0:9091";  // --metrics-bind ("" = off)
  std::string admin_token_file;               // --admin-token-file

  // --- app mode (design "Two modes") ---------------------------------------
  // --app-cmd, or everything after `--` on the command line: the app command
  // as shell words. Empty: sidecar mode. Set: forkd runs --workers app
  // processes with this command and --proxy-workers of its own.
  std::string app_cmd;
  int proxy_workers = 0;  // --proxy-workers; 0 means "auto" (app mode only)
  // --max-worker-memory: recycle an app process whose RSS passes this many
  // bytes; 0 disables.
  int64_t max_worker_memory = 0;
  // --app-socket-dir: where the private 0700 socket directory is made
  // ("" = $TMPDIR or /tmp).
  std::string app_socket_dir;

  // --- probes --------------------------------------------------------------
  std::string app_health_path;     // --app-health-path ("" = connect only)
  double app_health_interval = 5;  // --app-health-interval (0 = no checks)

  // Field-by-field equality (a HUP reload compares old and new settings).
  friend bool operator==(const Config&, const Config&) = default;
};

// Where the settings come from. `env` is the process environment as a map
// (only FORKD_* keys matter); tests pass their own.
struct Sources {
  std::vector<std::string> args;  // argv[1..]
  std::map<std::string, std::string> env;
};

// Builds the Config from defaults < config file < env < flags, then
// validates it. workers == 0 stays 0 here (the master resolves "auto").
// Errors are InvalidArgument with a message such as:
//   "--workers: \"abc\" is not an integer (expected 1..64)".
// --help and --version are not errors: they set the flags below.
struct ParseResult {
  Config config;
  bool show_help = false;
  bool show_version = false;
};
absl::StatusOr<ParseResult> Parse(const Sources& sources);

// As Parse(), but the config file's contents are `config_file_text` instead
// of being read from the file --config/FORKD_CONFIG names, which then only
// names it in messages (tests and the fuzzer: no I/O).
absl::StatusOr<ParseResult> ParseWithConfigText(
    const Sources& sources, std::string_view config_file_text);

// Re-reads the config file and env for a HUP reload, keeping `args` as they
// were at start. Same rules as Parse().
absl::StatusOr<Config> Reload(const Sources& sources);

// The canonical command line that reproduces `config` exactly (every
// setting, as --name=value), used to hand the resolved settings to worker
// processes across exec.
std::vector<std::string> ToArgs(const Config& config);

// Text of `forkd --help`: every flag, its default and its env variable.
std::string HelpText();

// Reads the process environment into a map.
std::map<std::string, std::string> ProcessEnvironment();

// Splits a shell-words string ('single', "double" quotes, backslash escapes
// outside single quotes, blanks between words). InvalidArgument on an
// unterminated quote or a trailing backslash.
absl::StatusOr<std::vector<std::string>> SplitShellWords(std::string_view s);

// The inverse: each word quoted only when it needs it, joined by spaces, so
// SplitShellWords(JoinShellWords(w)) == w.
std::string JoinShellWords(const std::vector<std::string>& words);

// True in app mode (an app command is set).
inline bool AppMode(const Config& c) { return !c.app_cmd.empty(); }

}  // namespace forkd::config

#endif  // FORKD_SERVER_CONFIG_CONFIG_H_

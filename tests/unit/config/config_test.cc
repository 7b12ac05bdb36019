#include "server/config/config.h"

#include <stdlib.h>
#include <unistd.h>

#include <cctype>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace forkd::config {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

using Env = std::map<std::string, std::string>;

absl::StatusOr<ParseResult> ParseArgs(std::vector<std::string> args,
                                      Env env = {}) {
  return Parse(Sources{std::move(args), std::move(env)});
}

Config ParseOk(std::vector<std::string> args, Env env = {}) {
  absl::StatusOr<ParseResult> r = ParseArgs(std::move(args), std::move(env));
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->config : Config{};
}

std::string ParseError(std::vector<std::string> args, Env env = {}) {
  absl::StatusOr<ParseResult> r = ParseArgs(std::move(args), std::move(env));
  EXPECT_FALSE(r.ok());
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

// Writes `text` to a fresh file under the test temp dir; returns its path.
std::string WriteFile(const std::string& name, const std::string& text) {
  std::string path = ::testing::TempDir() + "/forkd_config_test_" +
                     std::to_string(getpid()) + "_" + name;
  std::ofstream(path, std::ios::trunc) << text;
  return path;
}

// --- defaults and sources ---------------------------------------------------

TEST(ConfigParseTest, NoSourcesGivesDefaults) {
  Config c = ParseOk({});
  EXPECT_EQ(c, Config{});
  EXPECT_EQ(c.bind, std::vector<std::string>{"127.0.0.1:8000"});
  EXPECT_EQ(c.workers, 0);  // auto, resolved by the master
  EXPECT_EQ(c.worker_class, WorkerClass::kSync);
  EXPECT_EQ(c.log_level, LogLevel::kInfo);
  EXPECT_EQ(c.upstream, "unix:/tmp/app.sock");
  EXPECT_DOUBLE_EQ(c.shutdown_delay, 5);  // Kubernetes: endpoints drop the pod
}

TEST(ConfigParseTest, FlagsWithSeparateAndInlineValues) {
  Config c =
      ParseOk({"--workers", "4", "--threads=8", "--timeout", "0.5",
               "--log-level=debug", "--upstream", "http://127.0.0.1:9000"});
  EXPECT_EQ(c.workers, 4);
  EXPECT_EQ(c.threads, 8);
  EXPECT_DOUBLE_EQ(c.timeout, 0.5);
  EXPECT_EQ(c.log_level, LogLevel::kDebug);
  EXPECT_EQ(c.upstream, "http://127.0.0.1:9000");
}

TEST(ConfigParseTest, ShortAliases) {
  Config c = ParseOk({"-b", "0.0.0.0:8080", "-w", "3", "-k", "async", "-t",
                      "10", "-p", "/run/forkd.pid"});
  EXPECT_EQ(c.bind, std::vector<std::string>{"0.0.0.0:8080"});
  EXPECT_EQ(c.workers, 3);
  EXPECT_EQ(c.worker_class, WorkerClass::kAsync);
  EXPECT_DOUBLE_EQ(c.timeout, 10);
  EXPECT_EQ(c.pidfile, "/run/forkd.pid");
  EXPECT_EQ(ParseOk({"-w5"}).workers, 5);
}

TEST(ConfigParseTest, ShortConfigAlias) {
  std::string path = WriteFile("short_c.conf", "workers = 6\n");
  Config c = ParseOk({"-c", path});
  EXPECT_EQ(c.workers, 6);
  EXPECT_EQ(c.config_file, path);
}

TEST(ConfigParseTest, ReusePortIsABareBoolean) {
  EXPECT_TRUE(ParseOk({"--reuse-port"}).reuse_port);
  EXPECT_TRUE(ParseOk({"--reuse-port=true"}).reuse_port);
  EXPECT_FALSE(ParseOk({"--reuse-port", "--reuse-port=false"}).reuse_port);
  // A bare boolean does not swallow the next argument.
  Config c = ParseOk({"--reuse-port", "--workers", "2"});
  EXPECT_TRUE(c.reuse_port);
  EXPECT_EQ(c.workers, 2);
  EXPECT_THAT(ParseError({"--reuse-port=maybe"}),
              HasSubstr("--reuse-port: \"maybe\" is not a boolean"));
}

TEST(ConfigParseTest, WorkersAutoMeansZero) {
  EXPECT_EQ(ParseOk({"--workers", "auto"}).workers, 0);
  EXPECT_EQ(ParseOk({"--workers=4", "--workers=auto"}).workers, 0);
  EXPECT_EQ(ParseOk({}, {{"FORKD_WORKERS", "auto"}}).workers, 0);
}

TEST(ConfigParseTest, EnvironmentVariables) {
  Config c = ParseOk({}, {{"FORKD_WORKERS", "5"},
                          {"FORKD_WORKER_CLASS", "gthread"},
                          {"FORKD_BIND", "0.0.0.0:80, unix:/run/a.sock"},
                          {"FORKD_REUSE_PORT", "true"},
                          {"FORKD_LIMIT_REQUEST_BODY", "10m"},
                          {"FORKD_ADMIN_BIND", ""},
                          {"FORKD_ACCESS_LOGFILE", "-"},
                          {"FORKD_GRACEFUL_TIMEOUT", "2.5"}});
  EXPECT_EQ(c.workers, 5);
  EXPECT_EQ(c.worker_class, WorkerClass::kGthread);
  EXPECT_EQ(c.bind,
            (std::vector<std::string>{"0.0.0.0:80", "unix:/run/a.sock"}));
  EXPECT_TRUE(c.reuse_port);
  EXPECT_EQ(c.limit_request_body, 10 << 20);
  EXPECT_EQ(c.admin_bind, "");
  EXPECT_EQ(c.access_logfile, "-");
  EXPECT_DOUBLE_EQ(c.graceful_timeout, 2.5);
}

TEST(ConfigParseTest, UnknownForkdVariablesAndOthersAreIgnored) {
  Config c = ParseOk({}, {{"FORKD_INHERITED_FDS", "3,4"},
                          {"FORKD_MASTER_PID", "1"},
                          {"FORKD_NOT_A_SETTING", "x"},
                          {"WORKERS", "9"},
                          {"PATH", "/bin"}});
  EXPECT_EQ(c, Config{});
}

TEST(ConfigParseTest, EnvErrorsNameTheVariableAndTheFlag) {
  EXPECT_EQ(ParseError({}, {{"FORKD_WORKERS", "abc"}}),
            "FORKD_WORKERS: --workers: \"abc\" is not an integer (expected "
            "1..64, the --max-workers limit)");
  EXPECT_THAT(ParseError({}, {{"FORKD_WORKERS", "0"}}),
              HasSubstr("FORKD_WORKERS: --workers: \"0\" is out of range"));
}

TEST(ConfigParseTest, UpstreamProtocol) {
  EXPECT_EQ(ParseOk({}).upstream_protocol, "http1");
  EXPECT_EQ(ParseOk({"--worker-class", "async", "--upstream-protocol", "h2c"})
                .upstream_protocol,
            "h2c");
  EXPECT_EQ(
      ParseOk({"--worker-class=async"}, {{"FORKD_UPSTREAM_PROTOCOL", "h2c"}})
          .upstream_protocol,
      "h2c");
  EXPECT_EQ(ParseError({"--upstream-protocol", "h2"}),
            "--upstream-protocol: \"h2\" is not an upstream protocol "
            "(expected http1 or h2c)");
  EXPECT_THAT(
      ParseError({"--worker-class", "gthread", "--upstream-protocol", "h2c"}),
      HasSubstr("--upstream-protocol: \"h2c\" needs --worker-class "
                "async (HTTP/2 streams are forwarded concurrently "
                "only there; the class is gthread)"));
  // --threads > 1 selects gthread: h2c is refused there too.
  EXPECT_THAT(ParseError({"--threads", "4", "--upstream-protocol", "h2c"}),
              HasSubstr("needs --worker-class async"));
  EXPECT_THAT(ParseError({"--worker-class", "async", "--http2=false",
                          "--upstream-protocol", "h2c"}),
              HasSubstr("needs --http2 on"));
}

// --- config file ------------------------------------------------------------

TEST(ConfigFileTest, NameValueLinesCommentsAndQuotes) {
  std::string path = WriteFile("basic.conf",
                               "# forkd settings\n"
                               "\n"
                               "  workers = 4  \n"
                               "worker-class = gthread\n"
                               "max_requests = 1000\n"
                               "pidfile = \"/run/forkd.pid\"\n"
                               "access-logformat = \"\"%(r)s\" %(s)s\"\n"
                               "admin-bind = \"\"\n"
                               "bind = 0.0.0.0:8080\r\n"
                               "   # indented comment\n"
                               "bind = unix:/run/forkd.sock\n"
                               "request_buffer = 64k\n"
                               "reuse-port = yes\n");
  Config c = ParseOk({"--config", path});
  EXPECT_EQ(c.workers, 4);
  EXPECT_EQ(c.worker_class, WorkerClass::kGthread);
  EXPECT_EQ(c.max_requests, 1000);
  EXPECT_EQ(c.pidfile, "/run/forkd.pid");
  EXPECT_EQ(c.access_logformat, "\"%(r)s\" %(s)s");
  EXPECT_EQ(c.admin_bind, "");
  EXPECT_EQ(c.bind,
            (std::vector<std::string>{"0.0.0.0:8080", "unix:/run/forkd.sock"}));
  EXPECT_EQ(c.request_buffer, 64 * 1024);
  EXPECT_TRUE(c.reuse_port);
  EXPECT_EQ(c.config_file, path);
}

TEST(ConfigFileTest, QuotedFormatExamplesFromTheDocumentation) {
  std::string plain =
      WriteFile("fmt1.conf", "access-logformat = %(h)s \"%(r)s\" %(s)s\n");
  EXPECT_EQ(ParseOk({"-c", plain}).access_logformat, "%(h)s \"%(r)s\" %(s)s");
  std::string wrapped =
      WriteFile("fmt2.conf", "access-logformat = \"\"%(r)s\" \"%(a)s\"\"\n");
  EXPECT_EQ(ParseOk({"-c", wrapped}).access_logformat, "\"%(r)s\" \"%(a)s\"");
}

TEST(ConfigFileTest, ReadFromForkdConfigVariable) {
  std::string path = WriteFile("env.conf", "workers = 7\n");
  Config c = ParseOk({}, {{"FORKD_CONFIG", path}});
  EXPECT_EQ(c.workers, 7);
  EXPECT_EQ(c.config_file, path);
}

TEST(ConfigFileTest, MaxQueueTimeFromFileAndEnv) {
  std::string path = WriteFile("queue.conf", "max-queue-time = 4.5\n");
  EXPECT_DOUBLE_EQ(ParseOk({"-c", path}).max_queue_time, 4.5);
  EXPECT_DOUBLE_EQ(ParseOk({}, {{"FORKD_MAX_QUEUE_TIME", "7"}}).max_queue_time,
                   7);
  EXPECT_DOUBLE_EQ(
      ParseOk({"--max-queue-time", "1"}, {{"FORKD_MAX_QUEUE_TIME", "7"}})
          .max_queue_time,
      1);
}

TEST(ConfigFileTest, AutotuneFromFileEnvAndFlags) {
  std::string path = WriteFile("autotune.conf",
                               "autotune = limit\nlatency_target = 250ms\n"
                               "autotune-bounds = limit=3:40\n");
  Config c = ParseOk({"-c", path});
  EXPECT_EQ(c.autotune, "limit");
  EXPECT_DOUBLE_EQ(c.latency_target, 0.25);
  EXPECT_EQ(c.autotune_bounds, "limit=3:40");
  Config e = ParseOk({}, {{"FORKD_AUTOTUNE", "limit"},
                          {"FORKD_LATENCY_TARGET", "0.5s"},
                          {"FORKD_AUTOTUNE_BOUNDS", "workers=1:4"}});
  EXPECT_EQ(e.autotune, "limit");
  EXPECT_DOUBLE_EQ(e.latency_target, 0.5);
  EXPECT_EQ(e.autotune_bounds, "workers=1:4");
  EXPECT_EQ(
      ParseOk({"--autotune", "off"}, {{"FORKD_AUTOTUNE", "limit"}}).autotune,
      "off");
  EXPECT_DOUBLE_EQ(ParseOk({"--latency-target", "2m"}).latency_target, 120);
  EXPECT_DOUBLE_EQ(ParseOk({"--latency-target", "0.1"}).latency_target, 0.1);
  EXPECT_EQ(ParseOk({"--autotune", "full", "--", "app"}).autotune, "full");
}

TEST(ConfigParseTest, AutotuneBadValuesAreRefusedClearly) {
  EXPECT_EQ(ParseError({"--autotune", "max"}),
            "--autotune: \"max\" is not an autotune mode (expected off, "
            "limit or full)");
  EXPECT_THAT(ParseError({"--autotune", "full"}),
              AllOf(HasSubstr("--autotune: \"full\" needs app mode"),
                    HasSubstr("off or limit in sidecar mode")));
  EXPECT_THAT(ParseError({"--autotune", "limit", "--worker-class", "async",
                          "--upstream-protocol", "h2c"}),
              HasSubstr("does not apply to --upstream-protocol h2c"));
  EXPECT_EQ(ParseError({"--latency-target", "fast"}),
            "--latency-target: \"fast\" is not a duration (expected "
            "0..3600 seconds, as 250ms, 0.25s or 0.25)");
  EXPECT_THAT(ParseError({"--latency-target", "-5ms"}),
              HasSubstr("is not a duration"));
  EXPECT_THAT(ParseError({"--latency-target", "2h"}),
              HasSubstr("is not a duration"));
  EXPECT_THAT(ParseError({"--latency-target", "90m"}),
              HasSubstr("is out of range"));
  EXPECT_THAT(ParseError({"--autotune-bounds", "threads=4:2"}),
              AllOf(HasSubstr("--autotune-bounds: \"threads=4:2\" is invalid: "
                              "threads=4:2: min above max"),
                    HasSubstr("workers=1:8,threads=1:16")));
  EXPECT_THAT(ParseError({"--autotune-bounds", "cores=1:2"}),
              HasSubstr("unknown knob \"cores\""));
  EXPECT_THAT(ParseError({"--autotune-bounds", "workers=1"}),
              HasSubstr("not MIN:MAX"));
  EXPECT_THAT(ParseError({"--autotune-bounds", "workers=0:3"}),
              HasSubstr("bounds must be 1..100000"));
}

TEST(ConfigFileTest, FlagOverridesForkdConfigVariable) {
  std::string a = WriteFile("a.conf", "workers = 2\n");
  std::string b = WriteFile("b.conf", "workers = 3\n");
  Config c = ParseOk({"--config=" + b}, {{"FORKD_CONFIG", a}});
  EXPECT_EQ(c.workers, 3);
  EXPECT_EQ(c.config_file, b);
}

TEST(ConfigFileTest, UnknownSettingNamesFileAndLine) {
  std::string path = WriteFile("unknown.conf", "workers = 2\n\nwrokers = 3\n");
  EXPECT_EQ(ParseError({"-c", path}),
            path + ":3: unknown setting \"wrokers\" (see forkd --help)");
}

TEST(ConfigFileTest, BadValueNamesFileLineAndFlag) {
  std::string path =
      WriteFile("badvalue.conf", "# c\nworkers = 2\ntimeout = soon\n");
  EXPECT_EQ(
      ParseError({"-c", path}),
      path +
          ":3: --timeout: \"soon\" is not a number of seconds (expected "
          "0..31536000 seconds (one year), decimals allowed, e.g. 30 or 0.5)");
}

TEST(ConfigFileTest, RangeErrorFoundAfterMergeNamesFileAndLine) {
  std::string path = WriteFile("range.conf", "\n\nbacklog = 0\n");
  EXPECT_EQ(ParseError({"-c", path}),
            path + ":3: --backlog: \"0\" is out of range (expected 1..65535)");
}

TEST(ConfigFileTest, LineWithoutEqualsIsAnError) {
  std::string path = WriteFile("noeq.conf", "workers 4\n");
  EXPECT_EQ(ParseError({"-c", path}),
            path + ":1: expected \"name = value\", got \"workers 4\"");
}

TEST(ConfigFileTest, ConfigCannotNameAnotherConfig) {
  std::string path = WriteFile("nested.conf", "config = /etc/other.conf\n");
  EXPECT_THAT(ParseError({"-c", path}),
              HasSubstr(path + ":1: \"config\" cannot be set"));
}

TEST(ConfigFileTest, MissingFileIsAnError) {
  EXPECT_THAT(ParseError({"--config", "/nonexistent/forkd.conf"}),
              HasSubstr("--config: cannot read \"/nonexistent/forkd.conf\""));
}

// --- precedence -------------------------------------------------------------

TEST(ConfigPrecedenceTest, FileThenEnvThenFlags) {
  std::string path =
      WriteFile("prec.conf", "workers = 2\nthreads = 2\nkeepalive = 7\n");
  Env env = {{"FORKD_WORKERS", "3"}, {"FORKD_THREADS", "3"}};
  Config c = ParseOk({"-c", path, "--workers", "4"}, env);
  EXPECT_EQ(c.workers, 4);           // flag beats env and file
  EXPECT_EQ(c.threads, 3);           // env beats file
  EXPECT_DOUBLE_EQ(c.keepalive, 7);  // file beats default
  EXPECT_EQ(ParseOk({"-c", path}, env).workers, 3);
  EXPECT_EQ(ParseOk({"-c", path}).workers, 2);
}

TEST(ConfigPrecedenceTest, EachSourceReplacesTheBindList) {
  std::string path =
      WriteFile("binds.conf", "bind = 10.0.0.1:1\nbind = 10.0.0.2:2\n");
  EXPECT_EQ(ParseOk({"-c", path}).bind,
            (std::vector<std::string>{"10.0.0.1:1", "10.0.0.2:2"}));
  EXPECT_EQ(ParseOk({"-c", path}, {{"FORKD_BIND", "10.0.0.3:3"}}).bind,
            std::vector<std::string>{"10.0.0.3:3"});
  EXPECT_EQ(ParseOk({"-c", path, "-b", "10.0.0.4:4", "--bind=10.0.0.5:5"},
                    {{"FORKD_BIND", "10.0.0.3:3"}})
                .bind,
            (std::vector<std::string>{"10.0.0.4:4", "10.0.0.5:5"}));
}

// --- values -----------------------------------------------------------------

TEST(ConfigValuesTest, BindRepeatsAccumulateAndReplaceDefault) {
  Config c = ParseOk({"--bind", "0.0.0.0:80", "-b", "[::1]:8080",
                      "--bind=unix:/tmp/f.sock", "--bind", "fd://3"});
  EXPECT_EQ(c.bind, (std::vector<std::string>{"0.0.0.0:80", "[::1]:8080",
                                              "unix:/tmp/f.sock", "fd://3"}));
}

TEST(ConfigValuesTest, Sizes) {
  EXPECT_EQ(ParseOk({"--request-buffer", "4096"}).request_buffer, 4096);
  EXPECT_EQ(ParseOk({"--request-buffer", "64k"}).request_buffer, 64 << 10);
  EXPECT_EQ(ParseOk({"--request-buffer", "64K"}).request_buffer, 64 << 10);
  EXPECT_EQ(ParseOk({"--response-buffer", "2m"}).response_buffer, 2 << 20);
  EXPECT_EQ(ParseOk({"--response-buffer", "3M"}).response_buffer, 3 << 20);
  EXPECT_EQ(ParseOk({"--limit-request-body", "1g"}).limit_request_body,
            int64_t{1} << 30);
  EXPECT_EQ(ParseOk({"--limit-request-body", "5G"}).limit_request_body,
            int64_t{5} << 30);
  EXPECT_EQ(ParseOk({"--limit-request-body", "0"}).limit_request_body, 0);
  EXPECT_THAT(ParseError({"--limit-request-body", "10x"}),
              HasSubstr("--limit-request-body: \"10x\" is not a size"));
  EXPECT_THAT(ParseError({"--limit-request-body", "-1"}),
              HasSubstr("--limit-request-body: \"-1\" is not a size"));
  EXPECT_THAT(ParseError({"--limit-request-body", "k"}),
              HasSubstr("--limit-request-body: \"k\" is not a size"));
  EXPECT_THAT(ParseError({"--limit-request-body", "99999999999g"}),
              HasSubstr("\"99999999999g\" is not a size"));
}

TEST(ConfigValuesTest, ClientTimeoutsHaveNginxDefaultsAndEverySource) {
  Config d = ParseOk({});
  EXPECT_DOUBLE_EQ(d.client_header_timeout, 60);
  EXPECT_DOUBLE_EQ(d.client_body_timeout, 60);
  Config c = ParseOk({"--client-header-timeout", "2.5"},
                     {{"FORKD_CLIENT_BODY_TIMEOUT", "7"},
                      {"FORKD_CLIENT_HEADER_TIMEOUT", "9"}});
  EXPECT_DOUBLE_EQ(c.client_header_timeout, 2.5);  // the flag beats env
  EXPECT_DOUBLE_EQ(c.client_body_timeout, 7);
  EXPECT_DOUBLE_EQ(ParseOk({"--client-body-timeout=0"}).client_body_timeout,
                   0);  // off
  // Workers get them through ToArgs().
  Config again = ParseOk(ToArgs(c));
  EXPECT_DOUBLE_EQ(again.client_header_timeout, 2.5);
  EXPECT_DOUBLE_EQ(again.client_body_timeout, 7);
  EXPECT_THAT(HelpText(), HasSubstr("--client-header-timeout"));
  EXPECT_THAT(HelpText(), HasSubstr("FORKD_CLIENT_BODY_TIMEOUT"));
  EXPECT_THAT(ParseError({"--client-header-timeout", "-1"}),
              HasSubstr("--client-header-timeout: \"-1\" is out of range"));
  EXPECT_THAT(ParseError({}, {{"FORKD_CLIENT_BODY_TIMEOUT", "1m"}}),
              HasSubstr("--client-body-timeout: \"1m\" is not a number of "
                        "seconds"));
}

TEST(ConfigValuesTest, DurationsAreDecimalSeconds) {
  EXPECT_DOUBLE_EQ(ParseOk({"--timeout", "0.5"}).timeout, 0.5);
  EXPECT_DOUBLE_EQ(ParseOk({"--timeout", "0"}).timeout, 0);
  EXPECT_DOUBLE_EQ(ParseOk({"--keepalive", "75"}).keepalive, 75);
  EXPECT_DOUBLE_EQ(ParseOk({"--shutdown-delay", "1.25"}).shutdown_delay, 1.25);
  EXPECT_DOUBLE_EQ(ParseOk({"--upstream-timeout", "1e-3"}).upstream_timeout,
                   0.001);
  EXPECT_DOUBLE_EQ(ParseOk({}).max_queue_time, 30);
  EXPECT_DOUBLE_EQ(ParseOk({"--max-queue-time", "0"}).max_queue_time, 0);
  EXPECT_DOUBLE_EQ(ParseOk({"--max-queue-time", "2.5"}).max_queue_time, 2.5);
  EXPECT_THAT(ParseError({"--timeout", "5s"}),
              HasSubstr("--timeout: \"5s\" is not a number of seconds"));
  EXPECT_THAT(ParseError({"--timeout", "nan"}),
              HasSubstr("--timeout: \"nan\" is not a number of seconds"));
  EXPECT_THAT(ParseError({"--timeout", "inf"}),
              HasSubstr("--timeout: \"inf\" is not a number of seconds"));
}

TEST(ConfigValuesTest, WorkerClassesAndGunicornNames) {
  EXPECT_EQ(ParseOk({"-k", "sync"}).worker_class, WorkerClass::kSync);
  EXPECT_EQ(ParseOk({"-k", "gthread"}).worker_class, WorkerClass::kGthread);
  EXPECT_EQ(ParseOk({"-k", "async"}).worker_class, WorkerClass::kAsync);
  for (const char* python : {"gevent", "eventlet", "tornado"}) {
    std::string err = ParseError({"--worker-class", python});
    EXPECT_THAT(err, HasSubstr(std::string("--worker-class: \"") + python));
    EXPECT_THAT(err, HasSubstr("\"async\""));
  }
  EXPECT_EQ(ParseError({"-k", "uvicorn"}),
            "--worker-class: \"uvicorn\" is not a worker class (expected "
            "sync, gthread or async)");
}

TEST(ConfigValuesTest, WorkerClassName) {
  EXPECT_STREQ(WorkerClassName(WorkerClass::kSync), "sync");
  EXPECT_STREQ(WorkerClassName(WorkerClass::kGthread), "gthread");
  EXPECT_STREQ(WorkerClassName(WorkerClass::kAsync), "async");
}

TEST(ConfigValuesTest, LogLevels) {
  EXPECT_EQ(ParseOk({"--log-level", "debug"}).log_level, LogLevel::kDebug);
  EXPECT_EQ(ParseOk({"--log-level", "info"}).log_level, LogLevel::kInfo);
  EXPECT_EQ(ParseOk({"--log-level", "warning"}).log_level, LogLevel::kWarning);
  EXPECT_EQ(ParseOk({"--log-level", "error"}).log_level, LogLevel::kError);
  EXPECT_EQ(ParseOk({"--log-level", "CRITICAL"}).log_level,
            LogLevel::kCritical);
  EXPECT_EQ(ParseError({"--log-level", "verbose"}),
            "--log-level: \"verbose\" is not a log level (expected debug, "
            "info, warning, error or critical)");
}

TEST(ConfigValuesTest, AccessLogFormatJsonIsAcceptedAsIs) {
  EXPECT_EQ(ParseOk({"--access-logformat", "json"}).access_logformat, "json");
}

TEST(ConfigValuesTest, GoodUpstreams) {
  for (const char* u : {"unix:/tmp/app.sock", "http://127.0.0.1:8000",
                        "http://[::1]:8000", "http://localhost:1",
                        "http://10.1.2.3:65535", "http://127.0.0.1:8000/"}) {
    EXPECT_EQ(ParseOk({"--upstream", u}).upstream, u);
  }
}

TEST(ConfigValuesTest, GoodBinds) {
  // The listeners' grammar (common/address.h): Gunicorn's HOST and :PORT
  // forms included, so config and listeners never disagree.
  for (const char* b :
       {"0.0.0.0:0", "localhost:8080", "[::]:80", "unix:relative.sock",
        "fd://0", "my-host.local:443", "localhost", ":8080"}) {
    EXPECT_EQ(ParseOk({"--bind", b}).bind, std::vector<std::string>{b});
  }
}

// --- gunicorn rules ---------------------------------------------------------

TEST(ConfigGthreadTest, ThreadsAboveOneSelectGthread) {
  EXPECT_EQ(ParseOk({"--threads", "4"}).worker_class, WorkerClass::kGthread);
  EXPECT_EQ(ParseOk({}, {{"FORKD_THREADS", "2"}}).worker_class,
            WorkerClass::kGthread);
  EXPECT_EQ(ParseOk({"--threads", "1"}).worker_class, WorkerClass::kSync);
}

TEST(ConfigGthreadTest, ExplicitWorkerClassWins) {
  EXPECT_EQ(ParseOk({"--threads", "4", "-k", "sync"}).worker_class,
            WorkerClass::kSync);
  EXPECT_EQ(ParseOk({"-k", "async", "--threads", "4"}).worker_class,
            WorkerClass::kAsync);
  EXPECT_EQ(ParseOk({"--threads", "4"}, {{"FORKD_WORKER_CLASS", "sync"}})
                .worker_class,
            WorkerClass::kSync);
}

// --- command-line errors ----------------------------------------------------

TEST(ConfigArgsTest, UnknownFlag) {
  EXPECT_EQ(ParseError({"--wokers", "2"}),
            "unknown flag --wokers (see forkd --help)");
  EXPECT_EQ(ParseError({"--wokers=2"}),
            "unknown flag --wokers (see forkd --help)");
  EXPECT_EQ(ParseError({"-x"}), "unknown flag -x (see forkd --help)");
}

TEST(ConfigArgsTest, MissingValueNamesTheFlag) {
  EXPECT_THAT(ParseError({"--workers"}), HasSubstr("--workers: missing value"));
  EXPECT_THAT(ParseError({"-b"}), HasSubstr("--bind: missing value"));
  EXPECT_THAT(ParseError({"--bind", "--workers", "2"}),
              HasSubstr("--bind: missing value"));
}

TEST(ConfigArgsTest, PositionalArgumentsAreRejected) {
  EXPECT_THAT(ParseError({"app:main"}),
              HasSubstr("unexpected argument \"app:main\""));
}

// --- validation: every message names the flag, the value and the range ------

struct BadValue {
  std::vector<std::string> args;
  std::string message;
};

class ConfigValidationTest : public ::testing::TestWithParam<BadValue> {};

TEST_P(ConfigValidationTest, MessageNamesFlagValueAndRange) {
  EXPECT_EQ(ParseError(GetParam().args), GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    AllSettings, ConfigValidationTest,
    ::testing::Values(
        BadValue{{"--workers", "0"},
                 "--workers: \"0\" is out of range (expected 1..64, the "
                 "--max-workers limit)"},
        BadValue{{"--workers", "65"},
                 "--workers: \"65\" is out of range (expected 1..64, the "
                 "--max-workers limit)"},
        BadValue{{"--max-workers", "8", "--workers", "9"},
                 "--workers: \"9\" is out of range (expected 1..8, the "
                 "--max-workers limit)"},
        BadValue{{"--workers", "abc"},
                 "--workers: \"abc\" is not an integer (expected 1..64, the "
                 "--max-workers limit)"},
        BadValue{{"--workers", "99999999999"},
                 "--workers: \"99999999999\" is out of range (expected 1..64, "
                 "the --max-workers limit)"},
        BadValue{{"--max-workers", "0"},
                 "--max-workers: \"0\" is out of range (expected 1..1024)"},
        BadValue{{"--max-workers", "1025"},
                 "--max-workers: \"1025\" is out of range (expected 1..1024)"},
        BadValue{{"--threads", "0"},
                 "--threads: \"0\" is out of range (expected 1..256, the "
                 "--max-threads limit)"},
        BadValue{{"--threads", "257"},
                 "--threads: \"257\" is out of range (expected 1..256, the "
                 "--max-threads limit)"},
        BadValue{{"--max-threads", "4097"},
                 "--max-threads: \"4097\" is out of range (expected 1..4096)"},
        BadValue{{"--worker-connections", "0"},
                 "--worker-connections: \"0\" is out of range (expected "
                 "1..100000, the --max-worker-connections limit)"},
        BadValue{
            {"--max-worker-connections", "10", "--worker-connections", "11"},
            "--worker-connections: \"11\" is out of range (expected "
            "1..10, the --max-worker-connections limit)"},
        BadValue{{"--max-worker-connections", "0"},
                 "--max-worker-connections: \"0\" is out of range (expected "
                 "1..1000000)"},
        BadValue{{"--timeout", "-1"},
                 "--timeout: \"-1\" is out of range (expected "
                 "0..31536000 seconds (one year), decimals allowed, e.g. 30 or "
                 "0.5)"},
        BadValue{{"--graceful-timeout", "-0.5"},
                 "--graceful-timeout: \"-0.5\" is out of range (expected "
                 "0..31536000 seconds (one year), decimals allowed, e.g. 30 or "
                 "0.5)"},
        BadValue{{"--keepalive", "-2"},
                 "--keepalive: \"-2\" is out of range (expected "
                 "0..31536000 seconds (one year), decimals allowed, e.g. 30 or "
                 "0.5)"},
        BadValue{{"--shutdown-delay", "-1"},
                 "--shutdown-delay: \"-1\" is out of range (expected "
                 "0..31536000 seconds (one year), decimals allowed, e.g. 30 or "
                 "0.5)"},
        BadValue{{"--max-queue-time", "-1"},
                 "--max-queue-time: \"-1\" is out of range (expected "
                 "0..31536000 seconds (one year), decimals allowed, e.g. 30 or "
                 "0.5)"},
        BadValue{{"--upstream-timeout", "-1"},
                 "--upstream-timeout: \"-1\" is out of range (expected "
                 "0..31536000 seconds (one year), decimals allowed, e.g. 30 or "
                 "0.5)"},
        BadValue{{"--max-requests", "-1"},
                 "--max-requests: \"-1\" is out of range (expected "
                 "0..1000000000)"},
        BadValue{{"--max-requests-jitter", "-5"},
                 "--max-requests-jitter: \"-5\" is out of range (expected "
                 "0..1000000000)"},
        BadValue{{"--limit-request-line", "8191"},
                 "--limit-request-line: \"8191\" is out of range (expected "
                 "0..8190)"},
        BadValue{{"--limit-request-line", "-1"},
                 "--limit-request-line: \"-1\" is out of range (expected "
                 "0..8190)"},
        BadValue{{"--limit-request-fields", "0"},
                 "--limit-request-fields: \"0\" is out of range (expected "
                 "1..32768)"},
        BadValue{{"--limit-request-fields", "32769"},
                 "--limit-request-fields: \"32769\" is out of range (expected "
                 "1..32768)"},
        BadValue{{"--limit-request-field-size", "65537"},
                 "--limit-request-field-size: \"65537\" is out of range "
                 "(expected 0..65536)"},
        BadValue{{"--request-buffer", "1k"},
                 "--request-buffer: \"1k\" is out of range (expected "
                 "4096..1073741824)"},
        BadValue{{"--response-buffer", "4095"},
                 "--response-buffer: \"4095\" is out of range (expected "
                 "4096..1073741824)"},
        BadValue{{"--backlog", "0"},
                 "--backlog: \"0\" is out of range (expected 1..65535)"},
        BadValue{{"--backlog", "65536"},
                 "--backlog: \"65536\" is out of range (expected 1..65535)"},
        BadValue{{"--upstream-keepalive", "10001"},
                 "--upstream-keepalive: \"10001\" is out of range (expected "
                 "0..10000)"},
        BadValue{{"--upstream", "tcp://127.0.0.1:1"},
                 "--upstream: \"tcp://127.0.0.1:1\" is invalid: unknown scheme "
                 "(expected unix:/abs/path or http://127.0.0.1:PORT)"},
        BadValue{{"--upstream", "unix:app.sock"},
                 "--upstream: \"unix:app.sock\" is invalid: the path must be "
                 "absolute (expected unix:/abs/path or "
                 "http://127.0.0.1:PORT)"},
        BadValue{{"--upstream", "unix:/" + std::string(107, 'a')},
                 "--upstream: \"unix:/" + std::string(107, 'a') +
                     "\" is invalid: the unix socket path is 108 bytes long "
                     "(at most 107) (expected unix:/abs/path or "
                     "http://127.0.0.1:PORT)"},
        BadValue{{"--upstream", "http://example.com:80"},
                 "--upstream: \"http://example.com:80\" is invalid: the host "
                 "must be an IP address or localhost (expected unix:/abs/path "
                 "or http://127.0.0.1:PORT)"},
        BadValue{{"--upstream", "http://127.0.0.1:80/app"},
                 "--upstream: \"http://127.0.0.1:80/app\" is invalid: no path "
                 "allowed (expected unix:/abs/path or http://127.0.0.1:PORT)"},
        BadValue{{"--upstream", "http://127.0.0.1"},
                 "--upstream: \"http://127.0.0.1\" is invalid: missing :PORT "
                 "(expected unix:/abs/path or http://127.0.0.1:PORT)"},
        BadValue{{"--upstream", "http://127.0.0.1:0"},
                 "--upstream: \"http://127.0.0.1:0\" is invalid: bad port "
                 "(expected 1..65535) (expected unix:/abs/path or "
                 "http://127.0.0.1:PORT)"},
        BadValue{{"--upstream", "https://127.0.0.1:443"},
                 "--upstream: \"https://127.0.0.1:443\" is invalid: TLS to the "
                 "app is not supported (expected unix:/abs/path or "
                 "http://127.0.0.1:PORT)"},
        BadValue{{"--bind", "::1:8000"},
                 "--bind: \"::1:8000\" is invalid: IPv6 addresses need "
                 "brackets, e.g. [::1]:8000 (expected HOST:PORT, "
                 "[IPv6]:PORT, :PORT, HOST, unix:PATH or fd://N)"},
        BadValue{{"--bind", "0.0.0.0:65536"},
                 "--bind: \"0.0.0.0:65536\" is invalid: bad port (expected "
                 "0..65535) (expected HOST:PORT, [IPv6]:PORT, :PORT, HOST, "
                 "unix:PATH or fd://N)"},
        BadValue{{"--bind", "bad_host:80"},
                 "--bind: \"bad_host:80\" is invalid: bad host name (expected "
                 "HOST:PORT, [IPv6]:PORT, :PORT, HOST, unix:PATH or fd://N)"},
        BadValue{{"--bind", "unix:"},
                 "--bind: \"unix:\" is invalid: empty unix socket path "
                 "(expected HOST:PORT, [IPv6]:PORT, :PORT, HOST, unix:PATH or "
                 "fd://N)"},
        BadValue{{"--bind", "fd://x"},
                 "--bind: \"fd://x\" is invalid: fd://N needs a descriptor "
                 "number (expected HOST:PORT, [IPv6]:PORT, :PORT, HOST, "
                 "unix:PATH or fd://N)"},
        BadValue{{"--bind", "[fe80::zz]:80"},
                 "--bind: \"[fe80::zz]:80\" is invalid: not an IPv6 address "
                 "inside [...] (expected HOST:PORT, [IPv6]:PORT, :PORT, HOST, "
                 "unix:PATH or fd://N)"},
        BadValue{{"--admin-bind", "9090"},
                 "--admin-bind: \"9090\" is invalid: missing :PORT (expected "
                 "HOST:PORT, [IPv6]:PORT, :PORT, or empty for off)"},
        BadValue{{"--metrics-bind", "0.0.0.0:x"},
                 "--metrics-bind: \"0.0.0.0:x\" is invalid: bad port "
                 "(expected 0..65535) (expected HOST:PORT, [IPv6]:PORT, :PORT, "
                 "or empty for off)"}),
    // Readable test names: the case's index and its first argument.
    [](const ::testing::TestParamInfo<BadValue>& info) {
      std::string name = std::to_string(info.index) + "_";
      for (char ch :
           info.param.args.empty() ? std::string("none") : info.param.args[0]) {
        name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
      }
      return name;
    });

TEST(ConfigValuesTest, AppHealthPathAndInterval) {
  Config d = ParseOk({});
  EXPECT_EQ(d.app_health_path, "");
  EXPECT_DOUBLE_EQ(d.app_health_interval, 5);
  Config c = ParseOk(
      {"--app-health-path", "/healthz?full=1", "--app-health-interval", "0.5"});
  EXPECT_EQ(c.app_health_path, "/healthz?full=1");
  EXPECT_DOUBLE_EQ(c.app_health_interval, 0.5);
  EXPECT_DOUBLE_EQ(ParseOk({"--app-health-interval=0"}).app_health_interval, 0);
  Config e = ParseOk({}, {{"FORKD_APP_HEALTH_PATH", "/ready"},
                          {"FORKD_APP_HEALTH_INTERVAL", "2"}});
  EXPECT_EQ(e.app_health_path, "/ready");
  EXPECT_DOUBLE_EQ(e.app_health_interval, 2);
  std::string path = WriteFile(
      "health.conf", "app_health_path = /up\napp-health-interval = 3\n");
  Config f = ParseOk({"-c", path});
  EXPECT_EQ(f.app_health_path, "/up");
  EXPECT_DOUBLE_EQ(f.app_health_interval, 3);
}

TEST(ConfigValuesTest, BadAppHealthSettingsAreNamed) {
  EXPECT_EQ(ParseError({"--app-health-path", "healthz"}),
            "--app-health-path: \"healthz\" is invalid: must start with / "
            "(expected a path such as /healthz, or empty)");
  EXPECT_THAT(ParseError({"--app-health-path", "/a b"}),
              HasSubstr("spaces and control characters are not allowed"));
  EXPECT_THAT(ParseError({"--app-health-interval", "-1"}),
              HasSubstr("--app-health-interval: \"-1\" is out of range"));
  EXPECT_THAT(ParseError({"--app-health-interval", "5s"}),
              HasSubstr("--app-health-interval: \"5s\" is not a number of "
                        "seconds"));
}

TEST(ConfigValidationLimitsTest, RaisedLimitsAllowLargerValues) {
  Config c = ParseOk({"--max-workers", "128", "--workers", "100",
                      "--max-threads", "1000", "--threads", "512"});
  EXPECT_EQ(c.workers, 100);
  EXPECT_EQ(c.threads, 512);
}

TEST(ConfigValidationLimitsTest, EmptyBindListIsAnError) {
  EXPECT_THAT(ParseError({}, {{"FORKD_BIND", " , "}}),
              HasSubstr("FORKD_BIND: --bind: no address given"));
}

// --- ToArgs -----------------------------------------------------------------

Config EveryFieldChanged() {
  Config c;
  c.bind = {"0.0.0.0:8080", "[::]:8081", "unix:/run/x.sock", "fd://5"};
  c.backlog = 100;
  c.reuse_port = true;
  c.workers = 7;
  c.max_workers = 9;
  c.worker_class = WorkerClass::kSync;  // with threads > 1: stays explicit
  c.threads = 3;
  c.max_threads = 12;
  c.worker_connections = 55;
  c.max_worker_connections = 66;
  c.timeout = 0.1;  // not exact in binary: must survive the round trip
  c.graceful_timeout = 1.0 / 3.0;
  c.keepalive = 0;
  c.max_requests = 1000;
  c.max_requests_jitter = 50;
  c.shutdown_delay = 2.5;
  c.limit_request_line = 0;
  c.limit_request_fields = 10;
  c.limit_request_field_size = 100;
  c.limit_request_body = 12345;
  c.request_buffer = 65536;
  c.response_buffer = 4097;
  c.upstream = "http://[::1]:9000";
  c.upstream_timeout = 12.75;
  c.upstream_keepalive = 0;
  c.max_queue_time = 2.5;
  c.autotune = "limit";
  c.latency_target = 0.25;
  c.autotune_bounds = "workers=1:8,threads=2:16";
  c.http2 = false;
  c.http2_max_concurrent_streams = 7;
  c.http2_initial_window_size = 1 << 20;
  c.http2_max_frame_size = 32768;
  c.http2_max_header_list_size = 4096;
  c.pidfile = "/run/forkd.pid";
  c.access_logfile = "-";
  c.access_logformat = R"(%(h)s "%(r)s" %({x-forwarded-for}i)s = %% x)";
  c.error_logfile = "/var/log/forkd.err";
  c.log_level = LogLevel::kCritical;
  c.admin_bind = "";
  c.metrics_bind = "[::1]:9091";
  c.admin_token_file = "/etc/forkd/token";
  c.app_health_path = "/healthz?probe=1";
  c.app_health_interval = 0.75;
  c.forwarded_allow_ips = "10.0.0.0/8, ::1";
  c.header_map = "refuse";
  c.proxy_protocol = true;
  c.proxy_allow_ips = "*";
  return c;
}

TEST(ToArgsTest, RoundTripsDefaults) {
  Config c;
  EXPECT_EQ(ParseOk(ToArgs(c)), c);
}

TEST(ToArgsTest, RoundTripsEveryField) {
  Config c = EveryFieldChanged();
  EXPECT_EQ(ParseOk(ToArgs(c)), c);
  c.worker_class = WorkerClass::kAsync;
  c.log_level = LogLevel::kWarning;
  c.workers = 0;
  EXPECT_EQ(ParseOk(ToArgs(c)), c);
}

TEST(ToArgsTest, FlagsWinOverTheWorkersEnvironment) {
  // Workers inherit the master's environment; the args must still decide.
  Config c = EveryFieldChanged();
  Env env = {{"FORKD_WORKERS", "2"},
             {"FORKD_BIND", "1.1.1.1:1"},
             {"FORKD_LOG_LEVEL", "debug"}};
  EXPECT_EQ(ParseOk(ToArgs(c), env), c);
}

TEST(ToArgsTest, OneNameValuePerSettingAndNoConfig) {
  Config c;
  std::vector<std::string> args = ToArgs(c);
  EXPECT_EQ(args.size(), 60u);  // 61 settings minus --config, one bind
  for (const std::string& a : args) {
    EXPECT_EQ(a.rfind("--", 0), 0u) << a;
    EXPECT_NE(a.find('='), std::string::npos) << a;
    EXPECT_NE(a.rfind("--config", 0), 0u) << a;
  }
  EXPECT_THAT(args, ::testing::Contains("--reuse-port=false"));
  EXPECT_THAT(args, ::testing::Contains("--workers=auto"));
  EXPECT_THAT(args, ::testing::Contains("--worker-class=sync"));
  EXPECT_THAT(args, ::testing::Contains("--bind=127.0.0.1:8000"));
  EXPECT_THAT(args, ::testing::Contains("--timeout=30"));
  EXPECT_THAT(args, ::testing::Contains("--log-level=info"));
  EXPECT_THAT(args, ::testing::Contains("--upstream-protocol=http1"));
}

TEST(ToArgsTest, ConfigFileIsNotCarried) {
  std::string path = WriteFile("toargs.conf", "workers = 3\n");
  Config c = ParseOk({"-c", path});
  Config again = ParseOk(ToArgs(c));
  EXPECT_EQ(again.workers, 3);
  EXPECT_EQ(again.config_file, "");
  again.config_file = c.config_file;
  EXPECT_EQ(again, c);
}

// --- reload, help, version, environment -------------------------------------

TEST(ReloadTest, RereadsFileAndEnvKeepingArgs) {
  std::string path = WriteFile("reload.conf", "workers = 2\ntimeout = 5\n");
  Sources sources{{"-c", path, "--threads", "4"}, {}};
  absl::StatusOr<Config> first = Reload(sources);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->workers, 2);
  std::ofstream(path, std::ios::trunc) << "workers = 5\ntimeout = 9\n";
  sources.env["FORKD_KEEPALIVE"] = "11";
  absl::StatusOr<Config> second = Reload(sources);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->workers, 5);
  EXPECT_DOUBLE_EQ(second->timeout, 9);
  EXPECT_DOUBLE_EQ(second->keepalive, 11);
  EXPECT_EQ(second->threads, 4);
}

TEST(ReloadTest, BadFileIsAnError) {
  std::string path = WriteFile("reload_bad.conf", "workers = many\n");
  absl::StatusOr<Config> r = Reload(Sources{{"-c", path}, {}});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr(path + ":1: --workers: \"many\""));
}

TEST(HelpTest, HelpAndVersionFlags) {
  for (const char* h : {"--help", "-h"}) {
    absl::StatusOr<ParseResult> r = ParseArgs({"--workers", "2", h});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->show_help);
    EXPECT_FALSE(r->show_version);
  }
  for (const char* v : {"--version", "-v"}) {
    absl::StatusOr<ParseResult> r = ParseArgs({v});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->show_version);
    EXPECT_FALSE(r->show_help);
  }
  absl::StatusOr<ParseResult> r = ParseArgs({"--workers", "2"});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->show_help);
  EXPECT_FALSE(r->show_version);
}

TEST(HelpTest, HelpTextListsEveryFlagDefaultAndVariable) {
  std::string help = HelpText();
  EXPECT_EQ(help.rfind("usage: forkd", 0), 0u);
  for (const char* name : {"bind",
                           "backlog",
                           "reuse-port",
                           "workers",
                           "max-workers",
                           "worker-class",
                           "threads",
                           "max-threads",
                           "worker-connections",
                           "max-worker-connections",
                           "timeout",
                           "graceful-timeout",
                           "keepalive",
                           "max-requests",
                           "max-requests-jitter",
                           "shutdown-delay",
                           "limit-request-line",
                           "limit-request-fields",
                           "limit-request-field-size",
                           "limit-request-body",
                           "request-buffer",
                           "response-buffer",
                           "upstream",
                           "upstream-timeout",
                           "upstream-keepalive",
                           "max-queue-time",
                           "autotune",
                           "latency-target",
                           "autotune-bounds",
                           "pidfile",
                           "access-logfile",
                           "access-logformat",
                           "error-logfile",
                           "log-level",
                           "config",
                           "admin-bind",
                           "metrics-bind",
                           "admin-token-file",
                           "app-health-path",
                           "app-health-interval"}) {
    EXPECT_THAT(help, HasSubstr(std::string("--") + name)) << name;
    std::string env = std::string("FORKD_") + name;
    for (char& ch : env) ch = ch == '-' ? '_' : static_cast<char>(toupper(ch));
    EXPECT_THAT(help, HasSubstr("[env: " + env + "]")) << name;
  }
  for (const char* alias :
       {"-b, --bind", "-w, --workers", "-k, --worker-class", "-t, --timeout",
        "-c, --config", "-p, --pidfile", "-h, --help", "-v, --version"}) {
    EXPECT_THAT(help, HasSubstr(alias));
  }
  EXPECT_THAT(help, HasSubstr("[default: 127.0.0.1:8000]"));
  EXPECT_THAT(help, HasSubstr("[default: 2048]"));
  EXPECT_THAT(help, HasSubstr("[default: unix:/tmp/app.sock]"));
}

// --- hostile values (issue 13: found by config_fuzz) -------------------------

// Every flag as ToArgs() prints it, split into name and default value, so
// the tests below also cover flags added later.
std::vector<std::pair<std::string, std::string>> EveryFlag() {
  std::vector<std::pair<std::string, std::string>> flags;
  for (const std::string& arg : ToArgs(Config{})) {
    size_t eq = arg.find('=');
    std::string name = arg.substr(2, eq - 2);
    if (!flags.empty() && flags.back().first == name) continue;  // --bind
    flags.emplace_back(name, arg.substr(eq + 1));
  }
  return flags;
}

absl::StatusOr<ParseResult> ParseConfigText(std::string_view text) {
  return ParseWithConfigText(Sources{{"--config", "forkd.conf"}, {}}, text);
}

TEST(HostileValuesTest, NulInAConfigFileValueIsRefusedNamingTheFlag) {
  // Workers would get "unix:" from argv: the master must refuse it.
  absl::StatusOr<ParseResult> r =
      ParseConfigText(std::string("bind = unix:\0/x\n", 16));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "forkd.conf:1: --bind: \"unix:\\x00/x\" contains the control "
            "character \\x00 (expected printable characters and tabs only)");
}

TEST(HostileValuesTest, ControlBytesAreRefusedInEveryFlagFromEverySource) {
  for (const auto& [name, value] : EveryFlag()) {
    for (std::string bad :
         {std::string("\0", 1), std::string("\x01"), std::string("\n"),
          std::string("\x1b"), std::string("\x7f")}) {
      SCOPED_TRACE(name + " with " + absl::CHexEscape(bad));
      std::string v = value + bad + "1";
      std::string env_name = "FORKD_" + name;
      for (char& ch : env_name) {
        ch = ch == '-' ? '_' : static_cast<char>(toupper(ch));
      }
      EXPECT_THAT(ParseError({"--" + name + "=" + v}),
                  HasSubstr("--" + name + ": "));
      EXPECT_THAT(ParseError({}, Env{{env_name, v}}),
                  HasSubstr(env_name + ": --" + name + ": "));
      if (bad != "\n") {  // a newline ends a config file line
        absl::StatusOr<ParseResult> r =
            ParseConfigText(name + " = " + v + "\n");
        ASSERT_FALSE(r.ok());
        EXPECT_THAT(r.status().message(),
                    HasSubstr("forkd.conf:1: --" + name + ": "));
        EXPECT_THAT(r.status().message(), HasSubstr("control character"));
      }
    }
  }
  // Tabs are text: a log format may hold them.
  EXPECT_EQ(ParseOk({"--access-logformat=%(h)s\t%(r)s"}).access_logformat,
            "%(h)s\t%(r)s");
}

TEST(HostileValuesTest, EveryNumericFlagIsBounded) {
  int numeric = 0;
  for (const auto& [name, value] : EveryFlag()) {
    double d;
    if (value != "auto" && !absl::SimpleAtod(value, &d)) continue;
    ++numeric;
    // Huge, not a number, infinite, negative, past int64.
    for (const char* bad : {"1e300", "1e15", "nan", "inf", "-inf", "-1",
                            "9000000000000000000", "99999999999999999999"}) {
      SCOPED_TRACE(name + "=" + bad);
      EXPECT_THAT(ParseError({"--" + name + "=" + bad}),
                  HasSubstr("--" + name + ": \"" + bad + "\""));
    }
  }
  EXPECT_GE(numeric, 20);
}

TEST(HostileValuesTest, SecondsAreBoundedAtOneYear) {
  EXPECT_DOUBLE_EQ(ParseOk({"--timeout=31536000"}).timeout, 31536000);
  EXPECT_EQ(ParseError({"--timeout=31536000.5"}),
            "--timeout: \"31536000.5\" is out of range (expected "
            "0..31536000 seconds (one year), decimals allowed, e.g. 30 or "
            "0.5)");
  // The file and the environment are held to the same bounds.
  absl::StatusOr<ParseResult> r = ParseConfigText("graceful_timeout = 1e300\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("forkd.conf:1: --graceful-timeout: \"1e300\" is out "
                        "of range"));
  EXPECT_THAT(ParseError({}, Env{{"FORKD_KEEPALIVE", "1e300"}}),
              HasSubstr("FORKD_KEEPALIVE: --keepalive: \"1e300\" is out of "
                        "range"));
}

TEST(HostileValuesTest, SizesAreBounded) {
  EXPECT_EQ(ParseOk({"--request-buffer=1g"}).request_buffer, int64_t{1} << 30);
  EXPECT_THAT(ParseError({"--request-buffer=2g"}),
              HasSubstr("expected 4096..1073741824"));
  EXPECT_THAT(ParseError({"--limit-request-body=8589934592g"}),
              HasSubstr("--limit-request-body: \"8589934592g\""));
  EXPECT_THAT(ParseError({"--max-requests-jitter=2147483647"}),
              HasSubstr("expected 0..1000000000"));
}

TEST(HostileValuesTest, ConfigTextSeamParsesLikeAFile) {
  absl::StatusOr<ParseResult> r =
      ParseConfigText("workers = 3\nbind = unix:/tmp/a.sock\n");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->config.workers, 3);
  EXPECT_EQ(r->config.config_file, "forkd.conf");
  EXPECT_EQ(r->config.bind, std::vector<std::string>{"unix:/tmp/a.sock"});
}

TEST(ProcessEnvironmentTest, ReadsEnviron) {
  setenv("FORKD_CONFIG_TEST_VAR", "a=b", 1);
  std::map<std::string, std::string> env = ProcessEnvironment();
  EXPECT_EQ(env["FORKD_CONFIG_TEST_VAR"], "a=b");
  unsetenv("FORKD_CONFIG_TEST_VAR");
}

TEST(ConfigTrustTest, DefaultsTrustNobodyAndDropUnderscores) {
  Config c = ParseOk({});
  EXPECT_EQ(c.forwarded_allow_ips, "");
  EXPECT_EQ(c.header_map, "drop");
  EXPECT_FALSE(c.proxy_protocol);
  EXPECT_EQ(c.proxy_allow_ips, "127.0.0.1,::1");  // Gunicorn's default
}

TEST(ConfigTrustTest, FlagsEnvAndFile) {
  Config c = ParseOk({"--forwarded-allow-ips", "10.0.0.0/8, 2001:db8::/32",
                      "--header-map=refuse", "--proxy-protocol",
                      "--proxy-allow-ips", "*"});
  EXPECT_EQ(c.forwarded_allow_ips, "10.0.0.0/8, 2001:db8::/32");
  EXPECT_EQ(c.header_map, "refuse");
  EXPECT_TRUE(c.proxy_protocol);
  EXPECT_EQ(c.proxy_allow_ips, "*");
  Config e = ParseOk({}, {{"FORKD_FORWARDED_ALLOW_IPS", "*"},
                          {"FORKD_HEADER_MAP", "dangerous"},
                          {"FORKD_PROXY_PROTOCOL", "true"},
                          {"FORKD_PROXY_ALLOW_IPS", "192.0.2.0/24"}});
  EXPECT_EQ(e.forwarded_allow_ips, "*");
  EXPECT_EQ(e.header_map, "dangerous");
  EXPECT_TRUE(e.proxy_protocol);
  EXPECT_EQ(e.proxy_allow_ips, "192.0.2.0/24");
  std::string path =
      WriteFile("trust.conf",
                "forwarded_allow_ips = 127.0.0.1\nheader-map = refuse\n"
                "proxy-protocol = true\nproxy-allow-ips = 10.1.0.0/16\n");
  Config f = ParseOk({"--config", path});
  EXPECT_EQ(f.forwarded_allow_ips, "127.0.0.1");
  EXPECT_EQ(f.header_map, "refuse");
  EXPECT_TRUE(f.proxy_protocol);
  EXPECT_EQ(f.proxy_allow_ips, "10.1.0.0/16");
}

TEST(ConfigTrustTest, BadValuesNameTheFlag) {
  EXPECT_THAT(ParseError({"--forwarded-allow-ips", "10.0.0.0/33"}),
              AllOf(HasSubstr("--forwarded-allow-ips"),
                    HasSubstr("10.0.0.0/33"), HasSubstr("prefix length")));
  EXPECT_THAT(ParseError({"--forwarded-allow-ips", "proxy.example"}),
              AllOf(HasSubstr("--forwarded-allow-ips"),
                    HasSubstr("not an IP address or CIDR")));
  EXPECT_THAT(ParseError({"--proxy-allow-ips", "1.2.3.4,nope"}),
              AllOf(HasSubstr("--proxy-allow-ips"), HasSubstr("nope")));
  EXPECT_THAT(
      ParseError({"--header-map", "allow"}),
      AllOf(HasSubstr("--header-map"), HasSubstr("drop, refuse or dangerous")));
  EXPECT_THAT(
      ParseError({}, {{"FORKD_PROXY_PROTOCOL", "maybe"}}),
      AllOf(HasSubstr("FORKD_PROXY_PROTOCOL"), HasSubstr("--proxy-protocol")));
}

TEST(ConfigTrustTest, ToArgsRoundTripsAndHelpListsThem) {
  Config c =
      ParseOk({"--forwarded-allow-ips", "10.0.0.0/8,::1", "--header-map",
               "refuse", "--proxy-protocol", "--proxy-allow-ips", "192.0.2.1"});
  EXPECT_EQ(ParseOk(ToArgs(c)), c);
  std::string help = HelpText();
  for (const char* name :
       {"--forwarded-allow-ips", "--header-map", "--proxy-protocol",
        "--proxy-allow-ips", "FORKD_FORWARDED_ALLOW_IPS", "FORKD_HEADER_MAP",
        "FORKD_PROXY_PROTOCOL", "FORKD_PROXY_ALLOW_IPS"}) {
    EXPECT_THAT(help, HasSubstr(name));
  }
}

}  // namespace
}  // namespace forkd::config

namespace forkd::config {
namespace {

// --- app mode ---------------------------------------------------------------

TEST(ConfigAppModeTest, EverythingAfterDoubleDashIsTheAppCommand) {
  Config c = ParseOk({"-w", "3", "--", "python3", "app.py", "--port", "x y"});
  EXPECT_TRUE(AppMode(c));
  EXPECT_EQ(c.workers, 3);
  absl::StatusOr<std::vector<std::string>> words = SplitShellWords(c.app_cmd);
  ASSERT_TRUE(words.ok()) << words.status();
  EXPECT_EQ(*words,
            (std::vector<std::string>{"python3", "app.py", "--port", "x y"}));
}

TEST(ConfigAppModeTest, NoAppCommandIsSidecarMode) {
  EXPECT_FALSE(AppMode(ParseOk({"-w", "2"})));
}

TEST(ConfigAppModeTest, AppCmdFlagEnvAndFile) {
  EXPECT_EQ(ParseOk({"--app-cmd", "node server.js"}).app_cmd, "node server.js");
  EXPECT_EQ(ParseOk({}, {{"FORKD_APP_CMD", "ruby app.rb"}}).app_cmd,
            "ruby app.rb");
  absl::StatusOr<ParseResult> r =
      ParseWithConfigText(Sources{{"--config", "/x.conf"}, {}},
                          "app_cmd = gunicorn --bind unix:{socket} app:app\n");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->config.app_cmd, "gunicorn --bind unix:{socket} app:app");
}

TEST(ConfigAppModeTest, DoubleDashWithoutCommandIsRefused) {
  EXPECT_THAT(ParseError({"-w", "2", "--"}), HasSubstr("no app command"));
}

TEST(ConfigAppModeTest, UpstreamIsRefusedInAppMode) {
  EXPECT_THAT(ParseError({"--upstream", "unix:/tmp/a.sock", "--", "app"}),
              AllOf(HasSubstr("--upstream"), HasSubstr("app mode")));
  EXPECT_THAT(
      ParseError({"--app-cmd", "app"},
                 {{"FORKD_UPSTREAM", "unix:/tmp/a.sock"}}),
      AllOf(HasSubstr("FORKD_UPSTREAM: --upstream"), HasSubstr("app mode")));
}

TEST(ConfigAppModeTest, BadShellWordsNameTheFlag) {
  EXPECT_THAT(ParseError({"--app-cmd", "python3 'app.py"}),
              AllOf(HasSubstr("--app-cmd"), HasSubstr("unterminated")));
  EXPECT_THAT(ParseError({"--app-cmd", "   "}),
              AllOf(HasSubstr("--app-cmd"), HasSubstr("no words")));
}

TEST(ConfigAppModeTest, ProxyWorkersAutoAndBounds) {
  EXPECT_EQ(ParseOk({"--proxy-workers", "auto"}).proxy_workers, 0);
  EXPECT_EQ(ParseOk({"--proxy-workers", "3"}).proxy_workers, 3);
  EXPECT_THAT(ParseError({"--proxy-workers", "-1"}),
              HasSubstr("--proxy-workers"));
  EXPECT_THAT(ParseError({"--proxy-workers", "many"}),
              HasSubstr("--proxy-workers"));
}

TEST(ConfigAppModeTest, MaxWorkerMemoryTakesKubernetesQuantities) {
  EXPECT_EQ(ParseOk({"--max-worker-memory", "512Mi"}).max_worker_memory,
            int64_t{512} << 20);
  EXPECT_EQ(ParseOk({"--max-worker-memory", "1g"}).max_worker_memory,
            int64_t{1} << 30);
  EXPECT_EQ(ParseOk({"--max-worker-memory", "0"}).max_worker_memory, 0);
  EXPECT_THAT(ParseError({"--max-worker-memory", "lots"}),
              HasSubstr("--max-worker-memory"));
}

TEST(ConfigAppModeTest, ShellWordsRoundTrip) {
  std::vector<std::string> words = {"a",     "b c",      "it's", "",
                                    "$HOME", "{socket}", "x\"y"};
  absl::StatusOr<std::vector<std::string>> back =
      SplitShellWords(JoinShellWords(words));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, words);
  absl::StatusOr<std::vector<std::string>> dq =
      SplitShellWords(R"(echo "a \"b\" c" d\ e)");
  ASSERT_TRUE(dq.ok());
  EXPECT_EQ(*dq, (std::vector<std::string>{"echo", "a \"b\" c", "d e"}));
}

TEST(ConfigAppModeTest, ToArgsRoundTripsAppModeWithoutUpstream) {
  Config c;
  c.app_cmd = "python3 app.py --name 'a b'";
  c.proxy_workers = 2;
  c.max_worker_memory = 1 << 20;
  c.app_socket_dir = "/run/forkd";
  EXPECT_EQ(ParseOk(ToArgs(c)), c);
  for (const std::string& a : ToArgs(c)) {
    EXPECT_NE(a.rfind("--upstream=", 0), 0u) << a;
  }
}

TEST(ConfigAppModeTest, HelpListsTheAppModeFlags) {
  std::string help = HelpText();
  for (const char* name :
       {"--app-cmd", "--proxy-workers", "--max-worker-memory",
        "--app-socket-dir", "FORKD_APP_CMD", "-- APP COMMAND"}) {
    EXPECT_THAT(help, HasSubstr(name));
  }
}

}  // namespace
}  // namespace forkd::config

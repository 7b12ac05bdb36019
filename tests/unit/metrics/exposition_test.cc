#include "server/metrics/exposition.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace forkd::metrics {
namespace {

using arbiter::ExitCause;
using arbiter::PoolSnapshot;
using arbiter::WorkerRow;
using scoreboard::Method;
using scoreboard::Rejection;
using scoreboard::UpstreamError;
using scoreboard::WorkerState;

// "name{labels}" -> value for every sample line; HELP/TYPE lines by family.
struct Parsed {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;
  std::map<std::string, std::string> helps;
};

Parsed Parse(const std::string& text) {
  Parsed p;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&line, "# TYPE ")) {
      std::vector<std::string> parts = absl::StrSplit(line, ' ');
      p.types[parts.at(0)] = parts.at(1);
      continue;
    }
    if (absl::ConsumePrefix(&line, "# HELP ")) {
      size_t sp = line.find(' ');
      p.helps[std::string(line.substr(0, sp))] =
          std::string(line.substr(sp + 1));
      continue;
    }
    size_t sp = line.rfind(' ');
    double v = 0;
    EXPECT_TRUE(absl::SimpleAtod(line.substr(sp + 1), &v)) << line;
    p.samples[std::string(line.substr(0, sp))] = v;
  }
  return p;
}

size_t M(Method m) { return static_cast<size_t>(m); }

PoolSnapshot SyntheticSnapshot() {
  PoolSnapshot s;
  s.worker_class = config::WorkerClass::kGthread;
  s.generation = 3;
  s.desired_workers = 2;
  s.max_workers = 8;
  s.threads = 4;
  s.worker_connections = 100;
  s.in_flight_cap = 8;
  s.totals.requests[M(Method::kGet)][1] = 40;   // GET 2xx
  s.totals.requests[M(Method::kPost)][4] = 2;   // POST 5xx
  s.totals.requests[M(Method::kOther)][3] = 1;  // other 4xx
  s.totals.rejected[static_cast<size_t>(Rejection::kHeadersTooLarge)] = 5;
  s.totals.rejected[static_cast<size_t>(Rejection::kOverCapacity)] = 6;
  s.totals.upstream_errors[static_cast<size_t>(UpstreamError::kRefused)] = 7;
  s.totals.bytes_in = 1000;
  s.totals.bytes_out = 2000;
  s.totals.connections_accepted = 30;
  s.totals.request_duration.buckets[0] = 10;  // le 0.0005
  s.totals.request_duration.buckets[3] = 5;   // le 0.005
  s.totals.request_duration.buckets[14] = 1;  // +Inf
  s.totals.request_duration.sum_us = 12'500'000;
  s.totals.upstream_duration.buckets[1] = 4;
  s.totals.upstream_duration.sum_us = 2000;
  s.exits[static_cast<size_t>(ExitCause::kCrash)] = 2;
  s.exits[static_cast<size_t>(ExitCause::kReload)] = 3;

  WorkerRow a;
  a.slot = 0;
  a.pid = 100;
  a.state = WorkerState::kReady;
  a.in_flight = 2;
  a.busy_threads = 3;
  a.connections_active = 2;
  a.connections_idle = 5;
  WorkerRow b;
  b.slot = 3;
  b.pid = 101;
  b.state = WorkerState::kBooting;
  b.busy_threads = 1;
  b.connections_idle = 1;
  WorkerRow c;
  c.slot = 4;
  c.pid = 102;
  c.state = WorkerState::kDraining;
  s.workers = {a, b, c};
  s.ready_workers = 1;
  return s;
}

TEST(ExpositionTest, ProtocolSplitAndHttp2Counters) {
  PoolSnapshot s = SyntheticSnapshot();
  s.totals.requests_by_protocol[1][1] = 30;  // http2 2xx
  s.totals.requests_by_protocol[0][1] = 10;  // http1 2xx
  s.totals.http2.connections = 4;
  s.totals.http2.streams = 31;
  s.totals.http2.rst_sent[0xb] = 2;
  s.totals.http2.rst_received[0x8] = 9;
  s.totals.http2.goaway_sent[0x0] = 3;
  s.totals.http2.goaway_sent[14] = 1;
  s.totals.http2.ping_floods = 1;
  Exposition e;
  Parsed p = Parse(e.Render(s, {}));
  EXPECT_EQ(p.samples["forkd_requests_by_protocol_total{protocol=\"http2\","
                      "status_class=\"2xx\"}"],
            30);
  EXPECT_EQ(p.samples["forkd_requests_by_protocol_total{protocol=\"http1\","
                      "status_class=\"2xx\"}"],
            10);
  int series = 0;
  for (const auto& [k, v] : p.samples) {
    series += absl::StartsWith(k, "forkd_requests_by_protocol_total{") ? 1 : 0;
  }
  EXPECT_EQ(series, 10);  // 2 protocols x 5 classes: bounded
  EXPECT_EQ(p.samples["forkd_http2_connections_total"], 4);
  EXPECT_EQ(p.samples["forkd_http2_streams_total"], 31);
  EXPECT_EQ(p.samples["forkd_http2_resets_sent_total{error_code=\"ENHANCE_"
                      "YOUR_CALM\"}"],
            2);
  EXPECT_EQ(
      p.samples["forkd_http2_resets_received_total{error_code=\"CANCEL\"}"], 9);
  EXPECT_EQ(
      p.samples["forkd_http2_goaways_sent_total{error_code=\"NO_ERROR\"}"], 3);
  EXPECT_EQ(p.samples["forkd_http2_goaways_sent_total{error_code=\"unknown\"}"],
            1);
  EXPECT_EQ(p.samples["forkd_http2_abuse_total{kind=\"ping_flood\"}"], 1);
  EXPECT_EQ(p.samples["forkd_http2_abuse_total{kind=\"rapid_reset\"}"], 0);
  EXPECT_EQ(p.types["forkd_http2_resets_sent_total"], "counter");
}

TEST(ExpositionTest, CountersComeFromTheSnapshotTotals) {
  Exposition e;
  Parsed p = Parse(e.Render(SyntheticSnapshot(), {}));
  EXPECT_EQ(
      p.samples["forkd_requests_total{method=\"GET\",status_class=\"2xx\"}"],
      40);
  EXPECT_EQ(
      p.samples["forkd_requests_total{method=\"POST\",status_class=\"5xx\"}"],
      2);
  EXPECT_EQ(
      p.samples["forkd_requests_total{method=\"other\",status_class=\"4xx\"}"],
      1);
  // Every method x class is present (zero or not): 8 x 5 series.
  int series = 0;
  for (const auto& [k, v] : p.samples) {
    series += absl::StartsWith(k, "forkd_requests_total{") ? 1 : 0;
  }
  EXPECT_EQ(series, 40);
  EXPECT_EQ(p.types["forkd_requests_total"], "counter");
  EXPECT_EQ(p.samples["forkd_rejected_requests_total{code=\"431\",reason="
                      "\"headers_too_large\"}"],
            5);
  EXPECT_EQ(p.samples["forkd_rejected_requests_total{code=\"503\",reason="
                      "\"over_capacity\"}"],
            6);
  EXPECT_EQ(
      p.samples
          ["forkd_rejected_requests_total{code=\"503\",reason=\"draining\"}"],
      0);
  EXPECT_EQ(p.samples["forkd_upstream_errors_total{kind=\"refused\"}"], 7);
  EXPECT_EQ(p.samples["forkd_upstream_errors_total{kind=\"bad_response\"}"], 0);
  EXPECT_EQ(p.samples["forkd_request_bytes_total"], 1000);
  EXPECT_EQ(p.samples["forkd_response_bytes_total"], 2000);
  EXPECT_EQ(p.samples["forkd_client_connections_accepted_total"], 30);
  EXPECT_EQ(p.samples["forkd_worker_restarts_total{reason=\"crash\"}"], 2);
  EXPECT_EQ(p.samples["forkd_worker_restarts_total{reason=\"reload\"}"], 3);
  EXPECT_EQ(p.samples["forkd_worker_restarts_total{reason=\"scale_down\"}"], 0);
}

TEST(ExpositionTest, HistogramsAreCumulativeWithSumInSeconds) {
  Exposition e;
  Parsed p = Parse(e.Render(SyntheticSnapshot(), {}));
  EXPECT_EQ(p.types["forkd_request_duration_seconds"], "histogram");
  EXPECT_EQ(p.samples["forkd_request_duration_seconds_bucket{le=\"0.0005\"}"],
            10);
  EXPECT_EQ(p.samples["forkd_request_duration_seconds_bucket{le=\"0.0025\"}"],
            10);
  EXPECT_EQ(p.samples["forkd_request_duration_seconds_bucket{le=\"0.005\"}"],
            15);
  EXPECT_EQ(p.samples["forkd_request_duration_seconds_bucket{le=\"10\"}"], 15);
  EXPECT_EQ(p.samples["forkd_request_duration_seconds_bucket{le=\"+Inf\"}"],
            16);
  EXPECT_EQ(p.samples["forkd_request_duration_seconds_count"], 16);
  EXPECT_DOUBLE_EQ(p.samples["forkd_request_duration_seconds_sum"], 12.5);
  EXPECT_EQ(p.samples["forkd_upstream_duration_seconds_bucket{le=\"0.001\"}"],
            4);
  EXPECT_DOUBLE_EQ(p.samples["forkd_upstream_duration_seconds_sum"], 0.002);
}

TEST(ExpositionTest, PoolAndSaturationGauges) {
  Exposition e;
  ScrapeInputs in;
  in.listen_queues = {{"http://127.0.0.1:8000", 3, 128}};
  Parsed p = Parse(e.Render(SyntheticSnapshot(), in));
  EXPECT_EQ(p.samples["forkd_workers{state=\"ready\"}"], 1);
  EXPECT_EQ(p.samples["forkd_workers{state=\"booting\"}"], 1);
  EXPECT_EQ(p.samples["forkd_workers{state=\"draining\"}"], 1);
  EXPECT_EQ(p.samples["forkd_workers{state=\"exiting\"}"], 0);
  EXPECT_EQ(p.samples["forkd_workers_desired"], 2);
  EXPECT_EQ(p.samples["forkd_workers_max"], 8);
  EXPECT_EQ(p.samples["forkd_config_threads"], 4);
  EXPECT_EQ(p.samples["forkd_config_worker_connections"], 100);
  EXPECT_EQ(p.samples["forkd_config_generation"], 3);
  EXPECT_EQ(p.samples["forkd_requests_in_flight"], 2);
  EXPECT_EQ(p.samples["forkd_requests_in_flight_limit"], 8);
  // gthread: busy threads (3 + 1) over the cap (8).
  EXPECT_DOUBLE_EQ(p.samples["forkd_utilization_ratio"], 0.5);
  EXPECT_EQ(p.samples["forkd_client_connections{state=\"active\"}"], 2);
  EXPECT_EQ(p.samples["forkd_client_connections{state=\"idle\"}"], 6);
  EXPECT_EQ(p.samples["forkd_accept_queue_length{listener=\"http://"
                      "127.0.0.1:8000\"}"],
            3);
  EXPECT_EQ(p.samples["forkd_accept_queue_max_length{listener=\"http://"
                      "127.0.0.1:8000\"}"],
            128);
  EXPECT_EQ(p.samples["forkd_build_info{version=\"" FORKD_VERSION "\"}"], 1);
  EXPECT_EQ(p.samples["forkd_draining"], 0);
}

TEST(ExpositionTest, AsyncUtilisationCountsRequestsInFlight) {
  PoolSnapshot s = SyntheticSnapshot();
  s.worker_class = config::WorkerClass::kAsync;
  s.in_flight_cap = 4;
  Exposition e;
  Parsed p = Parse(e.Render(s, {}));
  EXPECT_DOUBLE_EQ(p.samples["forkd_utilization_ratio"], 0.5);  // 2 / 4
  s.in_flight_cap = 0;  // WINCH: no workers wanted
  p = Parse(e.Render(s, {}));
  EXPECT_DOUBLE_EQ(p.samples["forkd_utilization_ratio"], 0);
}

TEST(ExpositionTest, PerSlotCpuNeverGoesBackwardsWhenTheSlotGetsANewWorker) {
  PoolSnapshot s = SyntheticSnapshot();
  ScrapeInputs in;
  in.workers[100] = {1.5, 4096, 0};
  in.workers[101] = {0.25, 8192, 0};
  Exposition e;
  Parsed p = Parse(e.Render(s, in));
  EXPECT_DOUBLE_EQ(p.samples["forkd_worker_cpu_seconds_total{slot=\"0\"}"],
                   1.5);
  EXPECT_DOUBLE_EQ(p.samples["forkd_worker_cpu_seconds_total{slot=\"3\"}"],
                   0.25);
  EXPECT_EQ(p.samples["forkd_worker_resident_memory_bytes{slot=\"0\"}"], 4096);
  // Slot 4's process had no stats (gone): no RSS, no CPU series.
  EXPECT_EQ(p.samples.count("forkd_worker_resident_memory_bytes{slot=\"4\"}"),
            0u);
  EXPECT_EQ(p.samples.count("forkd_worker_cpu_seconds_total{slot=\"4\"}"), 0u);
  EXPECT_EQ(p.types["forkd_worker_cpu_seconds_total"], "counter");

  // Slot 0 is taken over by pid 200, which has used less CPU so far.
  s.workers[0].pid = 200;
  in.workers.erase(100);
  in.workers[200] = {0.5, 1024, 0};
  in.workers[101] = {0.75, 8192, 0};
  p = Parse(e.Render(s, in));
  EXPECT_DOUBLE_EQ(p.samples["forkd_worker_cpu_seconds_total{slot=\"0\"}"],
                   2.0);
  EXPECT_DOUBLE_EQ(p.samples["forkd_worker_cpu_seconds_total{slot=\"3\"}"],
                   0.75);
  EXPECT_EQ(p.samples["forkd_worker_resident_memory_bytes{slot=\"0\"}"], 1024);

  // Slot 0 empty for a while: its counter stays, at the same value.
  s.workers.erase(s.workers.begin());
  p = Parse(e.Render(s, in));
  EXPECT_DOUBLE_EQ(p.samples["forkd_worker_cpu_seconds_total{slot=\"0\"}"],
                   2.0);
  EXPECT_EQ(p.samples.count("forkd_worker_resident_memory_bytes{slot=\"0\"}"),
            0u);
}

TEST(ExpositionTest, HealthAppAdminAndMasterProcess) {
  ScrapeInputs in;
  probes::Health h;
  h.live = {true, "x"};
  h.ready = {false, "draining"};
  h.started = {true, "started"};
  in.health = h;
  probes::AppStatus app;
  app.checked = true;
  app.ok = false;
  app.ok_total = 9;
  app.failed_total = 2;
  in.app = app;
  in.admin_commands = {{"ScaleWorkers", "ok", 4},
                       {"ScaleWorkers", "invalid_argument", 1}};
  in.master = ProcStats{2.25, 1 << 20, 100.0};
  in.boot_time_seconds = 1'700'000'000;
  Exposition e;
  Parsed p = Parse(e.Render(SyntheticSnapshot(), in));
  EXPECT_EQ(p.samples["forkd_probe_success{probe=\"live\"}"], 1);
  EXPECT_EQ(p.samples["forkd_probe_success{probe=\"ready\"}"], 0);
  EXPECT_EQ(p.samples["forkd_probe_success{probe=\"started\"}"], 1);
  EXPECT_EQ(p.samples["forkd_app_up"], 0);
  EXPECT_EQ(p.samples["forkd_app_checks_total{result=\"ok\"}"], 9);
  EXPECT_EQ(p.samples["forkd_app_checks_total{result=\"failed\"}"], 2);
  EXPECT_EQ(p.samples["forkd_admin_commands_total{command=\"ScaleWorkers\","
                      "result=\"ok\"}"],
            4);
  EXPECT_EQ(p.samples["forkd_admin_commands_total{command=\"ScaleWorkers\","
                      "result=\"invalid_argument\"}"],
            1);
  EXPECT_DOUBLE_EQ(p.samples["process_cpu_seconds_total"], 2.25);
  EXPECT_EQ(p.samples["process_resident_memory_bytes"], 1 << 20);
  EXPECT_DOUBLE_EQ(p.samples["process_start_time_seconds"], 1'700'000'100.0);

  // App checks switched off: the app counts as up.
  app.enabled = false;
  in.app = app;
  p = Parse(e.Render(SyntheticSnapshot(), in));
  EXPECT_EQ(p.samples["forkd_app_up"], 1);
}

// App mode: one proxy worker (slot 0 of SyntheticSnapshot's rows) in front
// of three app processes.
PoolSnapshot AppSnapshot() {
  PoolSnapshot s = SyntheticSnapshot();
  s.app_mode = true;
  s.worker_class = config::WorkerClass::kSync;
  s.desired_workers = 3;
  s.in_flight_cap = 3;
  s.proxy_workers = 1;
  s.proxy_workers_ready = 1;
  s.ready_workers = 2;
  auto app = [](uint32_t slot, pid_t pid, scoreboard::AppState state) {
    app::AppProcessStatus a;
    a.slot = slot;
    a.pid = pid;
    a.state = state;
    a.cap = 1;
    return a;
  };
  s.apps = {app(0, 500, scoreboard::AppState::kReady),
            app(1, 501, scoreboard::AppState::kReady),
            app(2, 502, scoreboard::AppState::kStarting)};
  s.apps[0].in_flight = 1;
  s.apps[0].cpu_seconds = 3.5;
  s.apps[0].rss_bytes = 40 << 20;
  s.apps[1].cpu_seconds = 1.0;
  s.app_requests_by_slot = {{0, 100}, {1, 50}, {2, 0}, {3, 7}};
  s.app_restarts[app::AppExit::kCrash] = 2;
  s.app_restarts[app::AppExit::kMaxMemory] = 1;
  return s;
}

TEST(ExpositionTest, AppModeWorkersAreTheAppProcesses) {
  Exposition e;
  Parsed p = Parse(e.Render(AppSnapshot(), {}));
  // forkd_workers counts the app processes, forkd_proxy_workers forkd's.
  EXPECT_EQ(p.samples["forkd_workers{state=\"ready\"}"], 2);
  EXPECT_EQ(p.samples["forkd_workers{state=\"booting\"}"], 1);
  EXPECT_EQ(p.samples["forkd_workers{state=\"draining\"}"], 0);
  EXPECT_EQ(p.samples["forkd_workers_desired"], 3);
  EXPECT_EQ(p.samples["forkd_proxy_workers{state=\"ready\"}"], 1);
  EXPECT_EQ(p.samples["forkd_proxy_workers{state=\"booting\"}"], 1);
  EXPECT_EQ(p.samples["forkd_proxy_workers{state=\"draining\"}"], 1);
  EXPECT_EQ(p.samples["forkd_app_processes{state=\"ready\"}"], 2);
  EXPECT_EQ(p.samples["forkd_app_processes{state=\"starting\"}"], 1);
  EXPECT_EQ(p.samples["forkd_app_processes{state=\"retiring\"}"], 0);
  EXPECT_EQ(p.samples["forkd_app_processes{state=\"stopping\"}"], 0);
  EXPECT_EQ(p.samples["forkd_app_in_flight{slot=\"0\"}"], 1);
  EXPECT_EQ(p.samples["forkd_app_in_flight{slot=\"1\"}"], 0);
  EXPECT_EQ(p.samples["forkd_app_rss_bytes{slot=\"0\"}"], 40 << 20);
  EXPECT_DOUBLE_EQ(p.samples["forkd_app_cpu_seconds_total{slot=\"0\"}"], 3.5);
  // A slot with no process now keeps its requests counter.
  EXPECT_EQ(p.samples["forkd_app_requests_total{slot=\"0\"}"], 100);
  EXPECT_EQ(p.samples["forkd_app_requests_total{slot=\"3\"}"], 7);
  EXPECT_EQ(p.samples["forkd_app_restarts_total{reason=\"crash\"}"], 2);
  EXPECT_EQ(p.samples["forkd_app_restarts_total{reason=\"max_memory\"}"], 1);
  EXPECT_EQ(p.samples.count("forkd_app_restarts_total{reason=\"killed\"}"), 1u);
  EXPECT_EQ(p.types["forkd_app_requests_total"], "counter");
  EXPECT_EQ(p.types["forkd_app_rss_bytes"], "gauge");
  // Utilisation: what the app processes hold (1) over their cap (3), not
  // the proxy workers' threads.
  EXPECT_DOUBLE_EQ(p.samples["forkd_utilization_ratio"], 1.0 / 3);
  // The app is up when an app process is ready; no --upstream checks.
  EXPECT_EQ(p.samples["forkd_app_up"], 1);
  EXPECT_EQ(p.samples.count("forkd_app_checks_total{result=\"ok\"}"), 0u);
}

TEST(ExpositionTest, AppModeCpuPerSlotNeverGoesBackwards) {
  PoolSnapshot s = AppSnapshot();
  Exposition e;
  Parsed p = Parse(e.Render(s, {}));
  EXPECT_DOUBLE_EQ(p.samples["forkd_app_cpu_seconds_total{slot=\"0\"}"], 3.5);
  // Slot 0's process was replaced by pid 600, with less CPU so far.
  s.apps[0].pid = 600;
  s.apps[0].cpu_seconds = 0.5;
  s.ready_workers = 0;
  p = Parse(e.Render(s, {}));
  EXPECT_DOUBLE_EQ(p.samples["forkd_app_cpu_seconds_total{slot=\"0\"}"], 4.0);
  EXPECT_EQ(p.samples["forkd_app_up"], 0);
  // Slot 0 empty: its counter stays.
  s.apps.erase(s.apps.begin());
  p = Parse(e.Render(s, {}));
  EXPECT_DOUBLE_EQ(p.samples["forkd_app_cpu_seconds_total{slot=\"0\"}"], 4.0);
  EXPECT_EQ(p.samples.count("forkd_app_rss_bytes{slot=\"0\"}"), 0u);
}

TEST(ExpositionTest, SidecarModeHasNoAppProcessFamilies) {
  Exposition e;
  Parsed p = Parse(e.Render(SyntheticSnapshot(), {}));
  for (const auto& [name, type] : p.types) {
    EXPECT_FALSE(absl::StartsWith(name, "forkd_app_processes") ||
                 absl::StartsWith(name, "forkd_proxy_workers") ||
                 absl::StartsWith(name, "forkd_app_requests"))
        << name;
  }
}

TEST(ExpositionTest, NamesFollowPrometheusConventions) {
  ScrapeInputs in;
  in.health = probes::Health{};
  in.app = probes::AppStatus{};
  in.master = ProcStats{};
  in.boot_time_seconds = 1;
  in.listen_queues = {{"http://0.0.0.0:8000", 0, 1}};
  in.workers[100] = {};
  in.admin_commands = {{"Drain", "ok", 1}};
  Exposition e;
  std::string text = e.Render(SyntheticSnapshot(), in);
  text += Exposition().Render(AppSnapshot(), in);  // app mode's families
  Parsed p = Parse(text);
  ASSERT_GE(p.types.size(), 30u);
  ASSERT_EQ(p.types.count("forkd_app_cpu_seconds_total"), 1u);
  for (const auto& [name, type] : p.types) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(absl::StartsWith(name, "forkd_") ||
                absl::StartsWith(name, "process_"));
    EXPECT_FALSE(p.helps[name].empty());
    EXPECT_EQ(absl::EndsWith(name, "_total"), type == "counter");
    for (char ch : name) {
      EXPECT_TRUE(absl::ascii_islower(ch) || absl::ascii_isdigit(ch) ||
                  ch == '_');
    }
  }
  // No label is a pid: the worker series are keyed by slot.
  for (const auto& [series, v] : p.samples) {
    EXPECT_FALSE(absl::StrContains(series, "pid=")) << series;
  }
}

}  // namespace
}  // namespace forkd::metrics

namespace forkd::metrics {
namespace {

TEST(ExpositionTest, AutotuneFamilies) {
  Exposition e;
  PoolSnapshot s;
  s.tune.mode = config::AutotuneMode::kLimit;
  s.tune.phase = "running";
  s.tune.limit = 12;
  s.tune.workers = 3;
  s.tune.threads = 4;
  s.tune.min_rtt_seconds = 0.008;
  s.tune.gradient = 0.75;
  s.tune.decisions_by_rule = {{"gradient", 5}, {"min_rtt_done", 1}};
  s.app_limit_in_flight = 9;
  std::string text = e.Render(s, {});
  EXPECT_THAT(text, ::testing::HasSubstr("forkd_autotune_limit 12\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("forkd_autotune_limit_in_flight 9\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("forkd_autotune_workers 3\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("forkd_autotune_threads 4\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("forkd_autotune_gradient 0.75\n"));
  EXPECT_THAT(text,
              ::testing::HasSubstr("forkd_autotune_mode{mode=\"limit\"} 1\n"));
  EXPECT_THAT(text,
              ::testing::HasSubstr("forkd_autotune_mode{mode=\"off\"} 0\n"));
  EXPECT_THAT(text, ::testing::HasSubstr(
                        "forkd_autotune_phase{phase=\"running\"} 1\n"));
  EXPECT_THAT(text,
              ::testing::HasSubstr(
                  "forkd_autotune_decisions_total{rule=\"gradient\"} 5\n"));
  // Every rule is there from the start, at 0.
  EXPECT_THAT(text, ::testing::HasSubstr(
                        "forkd_autotune_decisions_total{rule=\"knee\"} 0\n"));
}

}  // namespace
}  // namespace forkd::metrics

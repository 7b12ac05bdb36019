#include "server/metrics/exposition.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <array>
#include <set>
#include <sstream>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/app/app_supervisor.h"
#include "server/scoreboard/scoreboard.h"

#ifndef FORKD_VERSION
#define FORKD_VERSION "unknown"
#endif

namespace forkd::metrics {
namespace {

using arbiter::ExitCause;
using arbiter::PoolSnapshot;
using scoreboard::CounterTotals;
using scoreboard::Method;
using scoreboard::Protocol;
using scoreboard::Rejection;
using scoreboard::UpstreamError;
using scoreboard::WorkerState;

constexpr std::array<const char*, 5> kStatusClasses = {"1xx", "2xx", "3xx",
                                                       "4xx", "5xx"};

struct RejectionLabel {
  const char* reason;
  const char* code;
};
constexpr std::array<RejectionLabel, static_cast<size_t>(Rejection::kCount)>
    kRejections = {{{"bad_request", "400"},
                    {"body_too_large", "413"},
                    {"uri_too_long", "414"},
                    {"headers_too_large", "431"},
                    {"over_capacity", "503"},
                    {"draining", "503"}}};

constexpr std::array<const char*, static_cast<size_t>(UpstreamError::kCount)>
    kUpstreamErrors = {"refused", "reset", "timeout", "bad_response"};

constexpr std::array<const char*,
                     static_cast<size_t>(scoreboard::TlsFailure::kCount)>
    kTlsFailures = {"closed", "protocol", "certificate"};

constexpr std::array<const char*,
                     static_cast<size_t>(scoreboard::FieldDrop::kCount)>
    kFieldDrops = {"underscore", "untrusted_forwarding"};

constexpr std::array<const char*, static_cast<size_t>(
                                      scoreboard::ProxyProtocolReject::kCount)>
    kProxyProtocolRejects = {"untrusted_peer", "malformed", "timeout",
                             "closed"};

constexpr std::array<const char*, scoreboard::Http2Counters::kCodeSlots>
    kHttp2ErrorCodes = {"NO_ERROR",
                        "PROTOCOL_ERROR",
                        "INTERNAL_ERROR",
                        "FLOW_CONTROL_ERROR",
                        "SETTINGS_TIMEOUT",
                        "STREAM_CLOSED",
                        "FRAME_SIZE_ERROR",
                        "REFUSED_STREAM",
                        "CANCEL",
                        "COMPRESSION_ERROR",
                        "CONNECT_ERROR",
                        "ENHANCE_YOUR_CALM",
                        "INADEQUATE_SECURITY",
                        "HTTP_1_1_REQUIRED",
                        "unknown"};

// A registry filled family by family. Builders are only ever called with
// constant, valid names, so prometheus-cpp's argument checks cannot throw.
class Families {
 public:
  prometheus::Family<prometheus::Counter>& Counter(const std::string& name,
                                                   const std::string& help) {
    return prometheus::BuildCounter().Name(name).Help(help).Register(registry_);
  }
  prometheus::Family<prometheus::Gauge>& Gauge(const std::string& name,
                                               const std::string& help) {
    return prometheus::BuildGauge().Name(name).Help(help).Register(registry_);
  }
  void SetGauge(const std::string& name, const std::string& help,
                double value) {
    Gauge(name, help).Add({}).Set(value);
  }
  void SetCounter(const std::string& name, const std::string& help,
                  double value) {
    Counter(name, help).Add({}).Increment(value);
  }
  void Histogram(const std::string& name, const std::string& help,
                 const CounterTotals::Hist& h) {
    prometheus::Histogram::BucketBoundaries bounds(
        scoreboard::kDurationBuckets.begin(),
        scoreboard::kDurationBuckets.end());
    std::vector<double> increments(h.buckets.begin(), h.buckets.end());
    prometheus::BuildHistogram()
        .Name(name)
        .Help(help)
        .Register(registry_)
        .Add({}, bounds)
        .ObserveMultiple(increments, static_cast<double>(h.sum_us) / 1e6);
  }
  std::string Serialize() const {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, registry_.Collect());
    return out.str();
  }

 private:
  prometheus::Registry registry_;
};

double D(uint64_t v) { return static_cast<double>(v); }

constexpr std::array<app::AppExit, 9> kAppExits = {
    app::AppExit::kCrash,     app::AppExit::kBootFailure,
    app::AppExit::kTimeout,   app::AppExit::kMaxRequests,
    app::AppExit::kMaxMemory, app::AppExit::kReload,
    app::AppExit::kScaleDown, app::AppExit::kKilled,  app::AppExit::kRefused};

void RenderApps(const PoolSnapshot& s,
                std::map<uint32_t, SlotCpu>& app_slot_cpu, Families& f) {
  auto& processes =
      f.Gauge("forkd_app_processes",
              "App mode: app processes by state: starting (not yet "
              "accepting), ready (in the rotation), retiring (out of it, "
              "finishing its requests), stopping (sent TERM or KILL).");
  std::array<int, 4> by_state{};
  for (const app::AppProcessStatus& a : s.apps) {
    if (a.state != scoreboard::AppState::kEmpty) {
      by_state[static_cast<size_t>(a.state) - 1]++;
    }
  }
  for (size_t i = 0; i < by_state.size(); ++i) {
    processes
        .Add({{"state", scoreboard::AppStateName(
                            static_cast<scoreboard::AppState>(i + 1))}})
        .Set(by_state[i]);
  }
  auto& in_flight = f.Gauge("forkd_app_in_flight",
                            "App mode: requests at the app process in a slot "
                            "right now.");
  auto& rss = f.Gauge("forkd_app_rss_bytes",
                      "App mode: resident memory of the app process in a "
                      "slot (what --max-worker-memory compares).");
  for (const app::AppProcessStatus& a : s.apps) {
    std::string slot = absl::StrCat(a.slot);
    in_flight.Add({{"slot", slot}}).Set(D(a.in_flight));
    rss.Add({{"slot", slot}}).Set(D(a.rss_bytes));
    // Per slot, CPU folds the slot's previous processes in (as for the
    // workers), so the counter only grows.
    SlotCpu& cpu = app_slot_cpu[a.slot];
    if (cpu.pid != a.pid) {
      cpu.retired += cpu.current;
      cpu.pid = a.pid;
      cpu.current = 0;
    }
    cpu.current = std::max(cpu.current, a.cpu_seconds);
  }
  auto& cpu_family =
      f.Counter("forkd_app_cpu_seconds_total",
                "App mode: CPU time (user + system) of the app processes "
                "that used a slot.");
  for (const auto& [slot, cpu] : app_slot_cpu) {
    cpu_family.Add({{"slot", absl::StrCat(slot)}})
        .Increment(cpu.retired + cpu.current);
  }
  auto& requests = f.Counter("forkd_app_requests_total",
                             "App mode: requests finished by the app "
                             "processes that used a slot.");
  for (const auto& [slot, n] : s.app_requests_by_slot) {
    requests.Add({{"slot", absl::StrCat(slot)}}).Increment(D(n));
  }
  auto& restarts = f.Counter(
      "forkd_app_restarts_total",
      "App mode: app processes that left, by reason; the master replaces "
      "them unless the pool shrank.");
  for (app::AppExit why : kAppExits) {
    auto it = s.app_restarts.find(why);
    restarts.Add({{"reason", app::AppExitName(why)}})
        .Increment(it == s.app_restarts.end() ? 0 : D(it->second));
  }
}

}  // namespace

std::string Exposition::Render(const PoolSnapshot& s, const ScrapeInputs& in) {
  Families f;
  const CounterTotals& t = s.totals;

  f.Gauge("forkd_build_info", "forkd's version; always 1.")
      .Add({{"version", FORKD_VERSION}})
      .Set(1);

  // --- Traffic ---------------------------------------------------------------
  auto& requests = f.Counter("forkd_requests_total",
                             "Requests answered (by the app or by forkd), by "
                             "method and status class.");
  for (size_t m = 0; m < static_cast<size_t>(Method::kCount); ++m) {
    for (size_t k = 0; k < kStatusClasses.size(); ++k) {
      requests
          .Add({{"method", scoreboard::MethodName(static_cast<Method>(m))},
                {"status_class", kStatusClasses[k]}})
          .Increment(D(t.requests[m][k]));
    }
  }
  auto& by_protocol =
      f.Counter("forkd_requests_by_protocol_total",
                "Requests answered, by the client's protocol (http1, http2) "
                "and status class; the same requests as forkd_requests_total.");
  for (size_t p = 0; p < static_cast<size_t>(Protocol::kCount); ++p) {
    for (size_t k = 0; k < kStatusClasses.size(); ++k) {
      by_protocol
          .Add(
              {{"protocol", scoreboard::ProtocolName(static_cast<Protocol>(p))},
               {"status_class", kStatusClasses[k]}})
          .Increment(D(t.requests_by_protocol[p][k]));
    }
  }
  f.Histogram("forkd_request_duration_seconds",
              "Time from the first byte of a request to the end of its "
              "response, as the client sees it.",
              t.request_duration);
  f.Histogram("forkd_upstream_duration_seconds",
              "Time the app took to answer: from sending the request to the "
              "end of its response.",
              t.upstream_duration);
  f.SetCounter("forkd_client_connections_accepted_total",
               "Client connections accepted by the workers.",
               D(t.connections_accepted));
  f.SetCounter("forkd_tls_handshakes_total",
               "TLS handshakes completed with clients (--certfile).",
               D(t.tls_handshakes));
  auto& tls_failures = f.Counter(
      "forkd_tls_handshake_failures_total",
      "TLS handshakes that failed, by reason: closed (the connection ended "
      "mid-handshake), protocol (not TLS, or no common version, cipher or "
      "ALPN protocol), certificate (a client certificate missing or "
      "rejected).");
  for (size_t i = 0; i < kTlsFailures.size(); ++i) {
    tls_failures.Add({{"reason", kTlsFailures[i]}})
        .Increment(D(t.tls_handshake_failures[i]));
  }
  auto& client_timeouts = f.Counter(
      "forkd_client_timeouts_total",
      "Client connections and HTTP/2 streams ended because the client was "
      "too slow, by phase: header (request head or TLS handshake not "
      "complete within --client-header-timeout), body (no request body "
      "bytes for --client-body-timeout), h2 (HTTP/2: no SETTINGS, a stalled "
      "header block or request body).");
  for (size_t i = 0; i < t.client_timeouts.size(); ++i) {
    client_timeouts
        .Add({{"phase", scoreboard::ClientTimeoutName(
                            static_cast<scoreboard::ClientTimeout>(i))}})
        .Increment(D(t.client_timeouts[i]));
  }
  auto& fields_dropped = f.Counter(
      "forkd_request_fields_dropped_total",
      "Request fields removed before the app saw them, by reason: "
      "underscore (a name with '_', --header-map drop), "
      "untrusted_forwarding (X-Forwarded-*, Forwarded or X-Real-IP from a "
      "peer outside --forwarded-allow-ips).");
  for (size_t i = 0; i < kFieldDrops.size(); ++i) {
    fields_dropped.Add({{"reason", kFieldDrops[i]}})
        .Increment(D(t.fields_dropped[i]));
  }
  f.SetCounter("forkd_queue_timeouts_total",
               "App mode: requests that waited --max-queue-time for a free "
               "app process and got 503.",
               D(t.queue_timeouts));
  f.SetCounter("forkd_queue_wait_seconds_total",
               "App mode: total time requests waited in forkd for a free "
               "app process (those that got one).",
               static_cast<double>(t.queue_wait_us) / 1e6);
  f.SetCounter("forkd_queue_waits_total",
               "App mode: requests that waited for a free app process, then "
               "got one.",
               D(t.queue_waits));
  f.SetCounter("forkd_proxy_protocol_headers_total",
               "PROXY protocol headers read (--proxy-protocol).",
               D(t.proxy_protocol_accepted));
  auto& pp_rejected = f.Counter(
      "forkd_proxy_protocol_rejected_total",
      "Connections closed before a PROXY protocol header was read, by "
      "reason: untrusted_peer (outside --proxy-allow-ips), malformed (no "
      "header or a bad one), timeout, closed (the peer left).");
  for (size_t i = 0; i < kProxyProtocolRejects.size(); ++i) {
    pp_rejected.Add({{"reason", kProxyProtocolRejects[i]}})
        .Increment(D(t.proxy_protocol_rejected[i]));
  }
  f.SetCounter("forkd_request_bytes_total",
               "Bytes received from clients (request heads and bodies).",
               D(t.bytes_in));
  f.SetCounter("forkd_response_bytes_total",
               "Response body bytes sent to clients.", D(t.bytes_out));

  auto& upstream_errors =
      f.Counter("forkd_upstream_errors_total",
                "Failed exchanges with the app, by kind: refused (connect "
                "failed), reset, timeout, bad_response.");
  for (size_t i = 0; i < kUpstreamErrors.size(); ++i) {
    upstream_errors.Add({{"kind", kUpstreamErrors[i]}})
        .Increment(D(t.upstream_errors[i]));
  }
  auto& rejected =
      f.Counter("forkd_rejected_requests_total",
                "Requests answered by forkd itself instead of the app, by "
                "reason and status code.");
  for (size_t i = 0; i < kRejections.size(); ++i) {
    rejected
        .Add({{"reason", kRejections[i].reason}, {"code", kRejections[i].code}})
        .Increment(D(t.rejected[i]));
  }

  // --- HTTP/2 ---------------------------------------------------------------
  const CounterTotals::Http2& h2 = t.http2;
  f.SetCounter("forkd_http2_connections_total",
               "HTTP/2 client connections (prior knowledge or Upgrade: h2c).",
               D(h2.connections));
  f.SetCounter("forkd_http2_streams_total",
               "HTTP/2 streams that carried a request to forkd.",
               D(h2.streams));
  auto per_code = [&](const std::string& name, const std::string& help,
                      const CounterTotals::Http2::PerCode& counts) {
    auto& family = f.Counter(name, help);
    for (size_t i = 0; i < kHttp2ErrorCodes.size(); ++i) {
      family.Add({{"error_code", kHttp2ErrorCodes[i]}}).Increment(D(counts[i]));
    }
  };
  per_code("forkd_http2_resets_sent_total",
           "RST_STREAM frames forkd sent, by error code.", h2.rst_sent);
  per_code("forkd_http2_resets_received_total",
           "RST_STREAM frames clients sent, by error code.", h2.rst_received);
  per_code("forkd_http2_goaways_sent_total",
           "GOAWAY frames forkd sent, by error code (NO_ERROR: graceful "
           "close).",
           h2.goaway_sent);
  auto& abuse = f.Counter(
      "forkd_http2_abuse_total",
      "HTTP/2 peers stopped for abuse, by kind: connections ended with "
      "GOAWAY(ENHANCE_YOUR_CALM), or requests refused (header_list_too_large: "
      "431).");
  abuse.Add({{"kind", "rapid_reset"}}).Increment(D(h2.rapid_resets));
  abuse.Add({{"kind", "ping_flood"}}).Increment(D(h2.ping_floods));
  abuse.Add({{"kind", "settings_flood"}}).Increment(D(h2.settings_floods));
  abuse.Add({{"kind", "ack_flood"}}).Increment(D(h2.ack_floods));
  abuse.Add({{"kind", "continuation_flood"}})
      .Increment(D(h2.continuation_floods));
  abuse.Add({{"kind", "header_list_too_large"}})
      .Increment(D(h2.header_lists_too_large));

  // --- Saturation ------------------------------------------------------------
  uint64_t in_flight = 0, busy = 0, active = 0, idle = 0, queued = 0;
  std::array<int, 4> by_state{};  // booting, ready, draining, exiting
  for (const arbiter::WorkerRow& w : s.workers) {
    in_flight += w.in_flight;
    busy += s.worker_class == config::WorkerClass::kAsync ? w.in_flight
                                                          : w.busy_threads;
    active += w.connections_active;
    idle += w.connections_idle;
    queued += w.queued;
    switch (w.state) {
      case WorkerState::kEmpty:
      case WorkerState::kBooting:
        by_state[0]++;
        break;
      case WorkerState::kReady:
        by_state[1]++;
        break;
      case WorkerState::kDraining:
        by_state[2]++;
        break;
      case WorkerState::kExiting:
        by_state[3]++;
        break;
    }
  }
  if (s.app_mode) {
    // The cap is the app processes' (desired x per-process cap): what is
    // busy is the requests they hold, not the proxy workers' threads.
    busy = 0;
    for (const app::AppProcessStatus& a : s.apps) busy += a.in_flight;
  }
  f.SetGauge("forkd_queue_requests",
             "App mode: requests waiting in forkd for a free app process.",
             D(queued));
  f.SetGauge("forkd_requests_in_flight",
             "Requests being served by the workers right now.", D(in_flight));
  f.SetGauge("forkd_requests_in_flight_limit",
             "The concurrency cap: desired workers x threads (gthread), x "
             "worker_connections (async), or x 1 (sync).",
             static_cast<double>(s.in_flight_cap));
  f.SetGauge("forkd_utilization_ratio",
             "Busy request slots (threads, or connections in async) divided "
             "by the concurrency cap.",
             s.in_flight_cap > 0
                 ? D(busy) / static_cast<double>(s.in_flight_cap)
                 : 0.0);
  auto& conns = f.Gauge("forkd_client_connections",
                        "Open client connections: active (a request in "
                        "progress) or idle (keep-alive, waiting).");
  conns.Add({{"state", "active"}}).Set(D(active));
  conns.Add({{"state", "idle"}}).Set(D(idle));

  auto& queue_len =
      f.Gauge("forkd_accept_queue_length",
              "Connections waiting in a listening socket's accept queue.");
  auto& queue_max =
      f.Gauge("forkd_accept_queue_max_length",
              "The accept queue limit of a listening socket (its backlog).");
  for (const ListenQueue& q : in.listen_queues) {
    queue_len.Add({{"listener", q.listener}}).Set(D(q.length));
    queue_max.Add({{"listener", q.listener}}).Set(D(q.max_length));
  }

  // --- Pool ------------------------------------------------------------------
  static constexpr const char* kStates[] = {"booting", "ready", "draining",
                                            "exiting"};
  if (s.app_mode) {
    // The Gunicorn words mean the app: forkd_workers counts app processes
    // (starting -> booting, retiring -> draining, stopping -> exiting) and
    // forkd's own processes are forkd_proxy_workers.
    auto& proxy = f.Gauge("forkd_proxy_workers",
                          "App mode: forkd's proxy worker processes by state.");
    for (size_t i = 0; i < by_state.size(); ++i) {
      proxy.Add({{"state", kStates[i]}}).Set(by_state[i]);
    }
    by_state = {};
    for (const app::AppProcessStatus& a : s.apps) {
      switch (a.state) {
        case scoreboard::AppState::kEmpty:
        case scoreboard::AppState::kStarting:
          by_state[0]++;
          break;
        case scoreboard::AppState::kReady:
          by_state[1]++;
          break;
        case scoreboard::AppState::kRetiring:
          by_state[2]++;
          break;
        case scoreboard::AppState::kStopping:
          by_state[3]++;
          break;
      }
    }
  }
  auto& workers = f.Gauge("forkd_workers",
                          "Worker processes by state (app mode: the app "
                          "processes).");
  for (size_t i = 0; i < by_state.size(); ++i) {
    workers.Add({{"state", kStates[i]}}).Set(by_state[i]);
  }
  f.SetGauge("forkd_workers_desired",
             "Workers the master keeps running (set by config, TTIN/TTOU or "
             "the admin API; app mode: app processes).",
             s.desired_workers);
  if (s.app_mode) RenderApps(s, app_slot_cpu_, f);
  f.SetGauge("forkd_workers_max", "The --max-workers limit.", s.max_workers);
  f.SetGauge("forkd_config_threads", "Request threads per worker (setting).",
             s.threads);
  f.SetGauge("forkd_config_worker_connections",
             "Connections per worker (setting).", s.worker_connections);
  f.SetGauge("forkd_config_generation",
             "Reload generation: starts at 1, one more per HUP.",
             D(s.generation));
  f.SetGauge("forkd_draining", "1 while forkd shuts down, else 0.",
             s.draining ? 1 : 0);
  auto& restarts = f.Counter(
      "forkd_worker_restarts_total",
      "Workers that left the pool, by reason; the master replaces them "
      "unless the pool shrank.");
  for (size_t i = 0; i < s.exits.size(); ++i) {
    restarts
        .Add({{"reason", arbiter::ExitCauseName(static_cast<ExitCause>(i))}})
        .Increment(D(s.exits[i]));
  }

  // Per slot: CPU folds the slot's previous processes in, so it only grows.
  std::set<uint32_t> live_slots;
  auto& rss = f.Gauge("forkd_worker_resident_memory_bytes",
                      "Resident memory of the worker in a scoreboard slot.");
  for (const arbiter::WorkerRow& w : s.workers) {
    auto stats = in.workers.find(w.pid);
    if (stats == in.workers.end()) continue;
    SlotCpu& cpu = slot_cpu_[w.slot];
    if (cpu.pid != w.pid) {
      cpu.retired += cpu.current;
      cpu.pid = w.pid;
      cpu.current = 0;
    }
    if (stats->second.cpu_seconds > cpu.current) {
      cpu.current = stats->second.cpu_seconds;
    }
    rss.Add({{"slot", absl::StrCat(w.slot)}})
        .Set(D(stats->second.resident_bytes));
  }
  auto& cpu_family =
      f.Counter("forkd_worker_cpu_seconds_total",
                "CPU time (user + system) of the workers that used a "
                "scoreboard slot.");
  for (const auto& [slot, cpu] : slot_cpu_) {
    cpu_family.Add({{"slot", absl::StrCat(slot)}})
        .Increment(cpu.retired + cpu.current);
  }

  // --- Health ----------------------------------------------------------------
  if (in.health) {
    auto& probe = f.Gauge("forkd_probe_success",
                          "1 when a Kubernetes probe endpoint would answer "
                          "200: live (/livez), ready (/readyz), started "
                          "(/startupz).");
    probe.Add({{"probe", "live"}}).Set(in.health->live.ok);
    probe.Add({{"probe", "ready"}}).Set(in.health->ready.ok);
    probe.Add({{"probe", "started"}}).Set(in.health->started.ok);
  }
  if (s.app_mode) {
    f.SetGauge("forkd_app_up",
               "1 when the app answers: sidecar mode, the last app check "
               "passed (or checks are off); app mode, an app process is "
               "ready.",
               s.ready_workers > 0 ? 1 : 0);
  } else if (in.app) {
    f.SetGauge("forkd_app_up",
               "1 when the last app check (connect, or GET "
               "--app-health-path) succeeded, or when checks are off.",
               !in.app->enabled || in.app->ok ? 1 : 0);
    auto& checks = f.Counter("forkd_app_checks_total", "App checks by result.");
    checks.Add({{"result", "ok"}}).Increment(D(in.app->ok_total));
    checks.Add({{"result", "failed"}}).Increment(D(in.app->failed_total));
  }

  // --- Autotune (server/autotune) ----------------------------------------
  // Written whatever the mode, every label initialised, so dashboards and
  // alerts see 0 rather than no data while autotune is off.
  const autotune::TuneStatus& tune = s.tune;
  {
    auto& mode = f.Gauge("forkd_autotune_mode",
                         "1 for the --autotune mode in force (off, limit, "
                         "full), else 0.");
    for (config::AutotuneMode m :
         {config::AutotuneMode::kOff, config::AutotuneMode::kLimit,
          config::AutotuneMode::kFull}) {
      mode.Add({{"mode", config::AutotuneModeName(m)}})
          .Set(m == tune.mode ? 1 : 0);
    }
    auto& phase = f.Gauge("forkd_autotune_phase",
                          "1 for the autotuner's phase now, else 0.");
    for (const char* p : {"off", "min_rtt", "running", "measure", "search",
                          "steady", "pinned"}) {
      phase.Add({{"phase", p}}).Set(tune.phase == p ? 1 : 0);
    }
    f.SetGauge("forkd_autotune_limit",
               "The adaptive limit on requests in flight to the app, shared "
               "by every worker; 0: no limit.",
               tune.limit);
    f.SetGauge("forkd_autotune_limit_in_flight",
               "Requests holding a place under that limit now (counted in "
               "every mode).",
               D(s.app_limit_in_flight));
    f.SetGauge("forkd_autotune_workers",
               "App processes (sidecar: workers) in force, as autotune or an "
               "operator set them.",
               tune.workers);
    f.SetGauge("forkd_autotune_threads", "Threads per app process in force.",
               tune.threads);
    f.SetGauge("forkd_autotune_min_rtt_seconds",
               "The app's latency without queueing, as the limit controller "
               "last measured it (0 before the first measurement).",
               tune.min_rtt_seconds);
    f.SetGauge("forkd_autotune_gradient",
               "The limit controller's last gradient: 1.25 x minRTT / sample, "
               "in 0.5..2.",
               tune.gradient);
    f.SetGauge("forkd_autotune_latency_target_seconds",
               "--latency-target (p99), 0: none.", tune.latency_target_seconds);
    auto& decisions = f.Counter(
        "forkd_autotune_decisions_total",
        "Autotune decisions by the rule that fired (each is also one JSON "
        "log line).");
    for (int r = 0; r <= static_cast<int>(autotune::Rule::kLast); ++r) {
      const char* name = autotune::RuleName(static_cast<autotune::Rule>(r));
      auto it = tune.decisions_by_rule.find(name);
      decisions.Add({{"rule", name}})
          .Increment(it == tune.decisions_by_rule.end() ? 0 : D(it->second));
    }
  }

  auto& admin = f.Counter("forkd_admin_commands_total",
                          "Admin API commands by name and result.");
  for (const AdminCommandCount& c : in.admin_commands) {
    admin.Add({{"command", c.command}, {"result", c.result}})
        .Increment(D(c.count));
  }

  // --- The master process
  // -----------------------------------------------------
  if (in.master) {
    f.SetCounter("process_cpu_seconds_total",
                 "CPU time (user + system) of the master process.",
                 in.master->cpu_seconds);
    f.SetGauge("process_resident_memory_bytes",
               "Resident memory of the master process.",
               D(in.master->resident_bytes));
    if (in.boot_time_seconds > 0) {
      f.SetGauge("process_start_time_seconds",
                 "When the master process started, in seconds since the "
                 "epoch.",
                 in.boot_time_seconds + in.master->start_time_seconds);
    }
  }
  return f.Serialize();
}

}  // namespace forkd::metrics

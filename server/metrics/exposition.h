// The Prometheus text exposition of forkd, built at scrape time from the
// arbiter's pool snapshot (whose counter totals already include the workers
// that left, so counters never go backwards) plus what is read per scrape
// (per-worker CPU and RSS, listen queues, probe results, admin commands).
//
// Metric families (all prefixed forkd_ except the master's process_*):
//   build_info{version}                    gauge 1
//   requests_total{method,status_class}     counter
//   requests_by_protocol_total{protocol,status_class}  counter
//   http2_connections_total, http2_streams_total  counters
//   http2_resets_sent_total{error_code}, http2_resets_received_total
//   {error_code}, http2_goaways_sent_total{error_code},
//   http2_abuse_total{kind}                 counters
//   request_duration_seconds               histogram (client view)
//   upstream_duration_seconds              histogram (the app's answer)
//   requests_in_flight, requests_in_flight_limit, utilization_ratio  gauges
//   client_connections{state=active|idle}  gauge
//   client_connections_accepted_total, request_bytes_total,
//   tls_handshakes_total, tls_handshake_failures_total{reason},
//   client_timeouts_total{phase},
//   response_bytes_total                    counters
//   request_fields_dropped_total{reason}, proxy_protocol_headers_total,
//   proxy_protocol_rejected_total{reason}   counters
//   upstream_errors_total{kind}, rejected_requests_total{reason,code}
//   workers{state}, workers_desired, workers_max  gauges
//   config_threads, config_worker_connections, config_generation  gauges
//   worker_restarts_total{reason}           counter
//   accept_queue_length{listener}, accept_queue_max_length{listener}
//   worker_cpu_seconds_total{slot}, worker_resident_memory_bytes{slot}
//   draining, probe_success{probe}, app_up  gauges; app_checks_total{result}
//   admin_commands_total{command,result}    counter
//   queue_requests (gauge), queue_timeouts_total, queue_wait_seconds_total,
//   queue_waits_total (counters)            app mode: wait for a process
//   App mode only: workers{state} and workers_desired count the app
//   processes; proxy_workers{state}, app_processes{state},
//   app_in_flight{slot}, app_rss_bytes{slot} gauges;
//   app_requests_total{slot}, app_cpu_seconds_total{slot},
//   app_restarts_total{reason} counters; app_up is "an app process ready".
//   autotune_mode{mode}, autotune_phase{phase}, autotune_limit,
//   autotune_limit_in_flight, autotune_workers, autotune_threads,
//   autotune_min_rtt_seconds, autotune_gradient,
//   autotune_latency_target_seconds gauges;
//   autotune_decisions_total{rule} counter (every mode, off included)
//   process_cpu_seconds_total, process_resident_memory_bytes,
//   process_start_time_seconds              (the master)
#ifndef FORKD_SERVER_METRICS_EXPOSITION_H_
#define FORKD_SERVER_METRICS_EXPOSITION_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "server/arbiter/pool_snapshot.h"
#include "server/common/proc_stats.h"
#include "server/metrics/listen_queue.h"
#include "server/probes/health_checker.h"
#include "server/probes/health_state.h"

namespace forkd::metrics {

struct AdminCommandCount {
  std::string command;  // e.g. "ScaleWorkers"
  std::string result;   // e.g. "ok", "invalid_argument"
  uint64_t count = 0;
};

// What a scrape reads besides the snapshot; every part is optional.
struct ScrapeInputs {
  std::map<pid_t, ProcStats> workers;  // by pid, for the snapshot's rows
  std::optional<ProcStats> master;
  double boot_time_seconds = 0;  // turns the master's start into epoch time
  std::vector<ListenQueue> listen_queues;
  std::optional<probes::Health> health;
  std::optional<probes::AppStatus> app;
  std::vector<AdminCommandCount> admin_commands;
};

// The CPU time of the processes that used one slot (a worker's scoreboard
// slot, or an app process's slot): folds the ones that left in.
struct SlotCpu {
  pid_t pid = 0;
  double current = 0;  // CPU of the process now in the slot
  double retired = 0;  // CPU of the processes that left it
};

class Exposition {
 public:
  // Renders every family in the text format (version 0.0.4). Remembers the
  // CPU time of workers (and app processes) that left each slot, so the
  // per-slot CPU counters never go backwards when a slot gets a new
  // process. One caller at a time (the metrics server's thread).
  std::string Render(const arbiter::PoolSnapshot& snapshot,
                     const ScrapeInputs& inputs);

 private:
  std::map<uint32_t, SlotCpu> slot_cpu_;      // worker slots
  std::map<uint32_t, SlotCpu> app_slot_cpu_;  // app slots (app mode)
};

// The Content-Type of Render()'s output.
inline constexpr char kExpositionContentType[] =
    "text/plain; version=0.0.4; charset=utf-8";

}  // namespace forkd::metrics

#endif  // FORKD_SERVER_METRICS_EXPOSITION_H_

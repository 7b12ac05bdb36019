// The master's observability plane on --metrics-bind: the health checker
// (probes::HealthChecker, feeding the shared HealthState) and the HTTP
// server for /metrics, /livez, /readyz and /startupz. main() starts it once
// the Arbiter exists and stops it when the master loop has returned.
#ifndef FORKD_SERVER_METRICS_METRICS_PLANE_H_
#define FORKD_SERVER_METRICS_METRICS_PLANE_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/arbiter/arbiter.h"
#include "server/arbiter/pool_snapshot.h"
#include "server/config/config.h"
#include "server/metrics/exposition.h"
#include "server/metrics/metrics_server.h"
#include "server/probes/health_checker.h"
#include "server/probes/health_state.h"

namespace forkd::metrics {

// Where the plane's numbers come from. Every function is called from the
// plane's own threads and must be thread-safe.
struct PlaneSources {
  std::function<arbiter::PoolSnapshot()> snapshot;          // Arbiter::Snapshot
  std::function<std::vector<ListenQueue>()> listen_queues;  // may be empty
  // Admin command counts (the admin service's stats); may be empty.
  std::function<std::vector<AdminCommandCount>()> admin_commands;
};

// Snapshot and listen queues from the master (both thread-safe there).
// `arbiter` must outlive the plane.
PlaneSources SourcesFromArbiter(const arbiter::Arbiter* arbiter);

// Answers one probe endpoint: 200 "ok: why" or 503 "why".
HttpResponse ProbeResponse(const probes::ProbeResult& result);

class MetricsPlane {
 public:
  // Starts the health checker (always: the gRPC health service reads the
  // same `health`) and, unless config.metrics_bind is empty, the HTTP
  // server. `health` must outlive the plane. With `wait_for_address` (USR2
  // master) a metrics address still in use is retried, not an error. Fails
  // when the metrics address cannot be bound or --upstream is malformed.
  static absl::StatusOr<std::unique_ptr<MetricsPlane>> Start(
      const config::Config& config, PlaneSources sources,
      probes::HealthState* health, bool wait_for_address = false);
  ~MetricsPlane();  // Stop()

  // Stops the server, then the checker. Idempotent.
  void Stop();

  // The HTTP port (0 when off or still waiting for the address).
  int port() const { return server_ ? server_->port() : 0; }
  probes::HealthChecker& checker() { return *checker_; }

  // Routes one request (the server's thread; tests).
  HttpResponse Handle(const HttpRequest& request);

 private:
  MetricsPlane(PlaneSources sources, probes::HealthState* health)
      : sources_(std::move(sources)), health_(health) {}
  std::string RenderMetrics();

  PlaneSources sources_;
  probes::HealthState* health_;
  std::unique_ptr<probes::HealthChecker> checker_;
  std::unique_ptr<MetricsServer> server_;
  std::mutex render_mu_;  // Exposition is single-caller
  Exposition exposition_;
  double boot_time_seconds_ = 0;
};

}  // namespace forkd::metrics

#endif  // FORKD_SERVER_METRICS_METRICS_PLANE_H_

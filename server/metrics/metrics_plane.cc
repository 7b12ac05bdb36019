#include "server/metrics/metrics_plane.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/probes/app_probe.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::metrics {
namespace {

constexpr int64_t kMaxAppCheckTimeoutMs = 2000;
constexpr int64_t kMinAppCheckTimeoutMs = 200;

constexpr char kIndex[] =
    "forkd metrics and probes\n"
    "  /metrics   Prometheus metrics\n"
    "  /livez     liveness: the master loop is turning\n"
    "  /readyz    readiness: not draining, a worker ready, the app "
    "reachable\n"
    "  /startupz  startup: first worker ready and the app reached once\n";

}  // namespace

PlaneSources SourcesFromArbiter(const arbiter::Arbiter* arbiter) {
  PlaneSources s;
  s.snapshot = [arbiter] { return arbiter->Snapshot(); };
  s.listen_queues = [arbiter] {
    std::vector<ListenQueue> queues;
    arbiter->VisitListeners([&](const arbiter::Listener& l) {
      absl::StatusOr<ListenQueue> q = ReadListenQueue(l.fd, l.url);
      if (q.ok()) queues.push_back(std::move(*q));
    });
    return queues;
  };
  return s;
}

HttpResponse ProbeResponse(const probes::ProbeResult& result) {
  HttpResponse r;
  r.status = result.ok ? 200 : 503;
  r.body = result.ok ? absl::StrCat("ok: ", result.why, "\n")
                     : absl::StrCat(result.why, "\n");
  return r;
}

absl::StatusOr<std::unique_ptr<MetricsPlane>> MetricsPlane::Start(
    const config::Config& config, PlaneSources sources,
    probes::HealthState* health, bool wait_for_address) {
  std::unique_ptr<MetricsPlane> plane(
      new MetricsPlane(std::move(sources), health));
  plane->boot_time_seconds_ = BootTimeSeconds();

  probes::CheckerOptions options;
  // App mode has no --upstream to check: the master checks every app
  // process itself and readiness reads that from the snapshot.
  options.app_interval_ms =
      config::AppMode(config)
          ? 0
          : static_cast<int64_t>(config.app_health_interval * 1000.0);
  probes::HealthChecker::AppCheckFn check_app;
  if (options.app_interval_ms > 0) {
    int64_t timeout = std::clamp(options.app_interval_ms, kMinAppCheckTimeoutMs,
                                 kMaxAppCheckTimeoutMs);
    absl::StatusOr<probes::AppProbe> probe = probes::AppProbe::Create(
        config.upstream, config.app_health_path, timeout);
    if (!probe.ok()) return probe.status();
    check_app = [p = std::move(*probe)] { return p.Check(); };
  }
  plane->checker_ = std::make_unique<probes::HealthChecker>(
      options, plane->sources_.snapshot, std::move(check_app),
      [] { return scoreboard::MonotonicMs(); }, health);

  if (!config.metrics_bind.empty()) {
    MetricsPlane* self = plane.get();
    absl::StatusOr<std::unique_ptr<MetricsServer>> server =
        MetricsServer::Create(
            config.metrics_bind,
            [self](const HttpRequest& r) { return self->Handle(r); },
            wait_for_address);
    if (!server.ok()) return server.status();
    plane->server_ = std::move(*server);
  }
  plane->checker_->Start();
  if (plane->server_) plane->server_->Start();
  return plane;
}

MetricsPlane::~MetricsPlane() { Stop(); }

void MetricsPlane::Stop() {
  if (server_) server_->Stop();
  if (checker_) checker_->Stop();
}

HttpResponse MetricsPlane::Handle(const HttpRequest& request) {
  const std::string& path = request.path;
  if (path == "/metrics") {
    HttpResponse r;
    r.content_type = kExpositionContentType;
    r.body = RenderMetrics();
    return r;
  }
  if (path == "/livez" || path == "/readyz" || path == "/startupz") {
    // Evaluated now, from the snapshot the loop published last: a TERM
    // shows at once, not at the checker's next turn.
    probes::Health h = checker_->Refresh();
    if (path == "/livez") return ProbeResponse(h.live);
    if (path == "/readyz") return ProbeResponse(h.ready);
    return ProbeResponse(h.started);
  }
  if (path == "/")
    return HttpResponse{200, "text/plain; charset=utf-8", kIndex};
  return HttpResponse{404, "text/plain; charset=utf-8",
                      absl::StrCat("not found: ", path, "\n", kIndex)};
}

std::string MetricsPlane::RenderMetrics() {
  arbiter::PoolSnapshot snapshot = sources_.snapshot();
  ScrapeInputs in;
  for (const arbiter::WorkerRow& w : snapshot.workers) {
    absl::StatusOr<ProcStats> stats = ReadProcStats(w.pid);
    if (stats.ok()) in.workers[w.pid] = *stats;
  }
  absl::StatusOr<ProcStats> master = ReadProcStats(getpid());
  if (master.ok()) in.master = *master;
  in.boot_time_seconds = boot_time_seconds_;
  if (sources_.listen_queues) in.listen_queues = sources_.listen_queues();
  in.health = health_->Get();
  in.app = checker_->app_status();
  if (sources_.admin_commands) in.admin_commands = sources_.admin_commands();
  std::lock_guard<std::mutex> lock(render_mu_);
  return exposition_.Render(snapshot, in);
}

}  // namespace forkd::metrics

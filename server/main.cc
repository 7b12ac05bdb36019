// forkd: the worker entry point when started as `forkd __worker ...`,
// otherwise the master (arbiter).
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <utility>

#include "server/admin/admin_server.h"
#include "server/admin/admin_stats.h"
#include "server/arbiter/arbiter.h"
#include "server/arbiter/listeners.h"
#include "server/os/sys_calls.h"
#include "server/arbiter/upgrade.h"
#include "server/common/log.h"
#include "server/common/process_title.h"
#include "server/config/config.h"
#include "server/metrics/metrics_plane.h"
#include "server/probes/health_state.h"
#include "server/tls/tls_context.h"
#include "server/worker/worker_main.h"

namespace {

// Start-up errors go to the error log and, when that is a file, to stderr
// too, so whoever started forkd sees why it stopped.
void Fatal(const forkd::config::Config& config, absl::string_view message) {
  LOG_CRITICAL("%s", message);
  if (!config.error_logfile.empty() && config.error_logfile != "-") {
    std::fprintf(stderr, "forkd: %.*s\n", static_cast<int>(message.size()),
                 message.data());
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace forkd;
  if (argc >= 2 && std::strcmp(argv[1], worker::kWorkerSubcommand) == 0) {
    return worker::WorkerMain(argc, argv);
  }
  // First, while nothing holds a pointer into the environment strings: the
  // master's title may use their memory too (common/process_title.h), so
  // that "forkd: master ADDRESS" fits even when argv is only "forkd".
  common::ProcessTitle title(argc, argv, environ);
  // Before any thread exists: the master reads these from a signalfd.
  arbiter::Arbiter::BlockSignals();
  arbiter::UpgradeHandoff handoff = arbiter::TakeUpgradeHandoff();

  config::Sources sources;
  sources.args.assign(argv + 1, argv + argc);
  sources.env = config::ProcessEnvironment();
  absl::StatusOr<config::ParseResult> parsed = config::Parse(sources);
  if (!parsed.ok()) {
    std::fprintf(stderr, "forkd: %s\n",
                 std::string(parsed.status().message()).c_str());
    return 2;
  }
  if (parsed->show_help) {
    std::fputs(config::HelpText().c_str(), stdout);
    return 0;
  }
  if (parsed->show_version) {
    std::printf("forkd %s\n", FORKD_VERSION);
    return 0;
  }
  // The TLS files load here once, so a bad one stops start-up naming its
  // flag; each worker loads them again (new workers after HUP: new files).
  if (absl::Status s = tls::CheckConfig(parsed->config); !s.ok()) {
    std::fprintf(stderr, "forkd: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  const config::Config& config = parsed->config;
  if (!log::Init(config.error_logfile,
                 static_cast<log::Level>(config.log_level))) {
    std::fprintf(stderr, "forkd: cannot open --error-logfile %s: %s\n",
                 config.error_logfile.c_str(), std::strerror(errno));
  }
  LOG_INFO("Starting forkd %s", FORKD_VERSION);
  if (!config.certfile.empty()) {
    LOG_INFO("TLS on every listener: certificate %s%s", config.certfile,
             config.ca_certs.empty() ? "" : ", client certificates required");
  }

  absl::StatusOr<std::string> exe = os::SelfExePath();
  if (!exe.ok()) {
    Fatal(config, exe.status().message());
    return 1;
  }
  absl::StatusOr<std::vector<arbiter::Listener>> listeners =
      arbiter::OpenListeners(config, handoff.inherited_fds);
  if (!listeners.ok()) {
    Fatal(config, listeners.status().message());
    return 1;
  }

  os::SysCallsImpl sys;
  arbiter::ArbiterOptions options;
  options.config = config;
  options.reload = [sources]() -> absl::StatusOr<config::Config> {
    absl::StatusOr<config::Config> next = config::Reload(sources);
    // A HUP with a broken certificate keeps the workers that serve.
    if (next.ok()) {
      if (absl::Status s = tls::CheckConfig(*next); !s.ok()) return s;
    }
    return next;
  };
  options.listeners = std::move(*listeners);
  options.exe_path = *exe;
  options.worker_exe_path = "/proc/self/exe";
  options.argv.assign(argv, argv + argc);
  // ps shows "forkd: master" and where it listens, as nginx's "nginx: master
  // process"; options.argv keeps the original command for USR2. Before the
  // admin and metrics threads start, so that they inherit the short name.
  if (!title.Set(common::MasterTitle(config.bind))) {
    title.Set("forkd: master");
  }
  common::SetThreadName(common::kMasterName);
  options.env = arbiter::CurrentEnvironment();
  options.old_master_pid = handoff.old_master_pid;
  options.ignore_winch = isatty(STDIN_FILENO) == 1;
  absl::StatusOr<std::unique_ptr<arbiter::Arbiter>> master =
      arbiter::Arbiter::Create(std::move(options), &sys);
  if (!master.ok()) {
    Fatal(config, master.status().message());
    return 1;
  }

  // Probes and metrics: the health checker fills `health` (which the admin
  // plane's gRPC health service reads too); /metrics, /livez, /readyz and
  // /startupz are served on --metrics-bind.
  probes::HealthState health;
  admin::AdminStats admin_stats;
  metrics::PlaneSources plane_sources =
      metrics::SourcesFromArbiter(master->get());
  plane_sources.admin_commands = [&admin_stats] {
    std::vector<metrics::AdminCommandCount> counts;
    for (const admin::AdminStats::Entry& e : admin_stats.Counts()) {
      counts.push_back({e.command, e.result, e.count});
    }
    return counts;
  };
  bool upgrading = handoff.old_master_pid != 0;  // it may hold the port
  absl::StatusOr<std::unique_ptr<metrics::MetricsPlane>> plane =
      metrics::MetricsPlane::Start(config, std::move(plane_sources), &health,
                                   /*wait_for_address=*/upgrading);
  if (!plane.ok()) {
    Fatal(config, plane.status().message());
    return 1;
  }

  // The admin plane: gRPC Admin + grpc.health.v1 + reflection on
  // --admin-bind. Its threads only Post() commands to the master's loop.
  admin::ArbiterPool admin_pool(master->get());
  std::unique_ptr<admin::AdminServer> admin_server;
  if (!config.admin_bind.empty()) {
    admin::AdminServerOptions admin_options;
    admin_options.bind = config.admin_bind;
    admin_options.token_file = config.admin_token_file;
    admin_options.version = FORKD_VERSION;
    admin_options.pool = &admin_pool;
    admin_options.stats = &admin_stats;
    admin_options.health = &health;
    absl::StatusOr<std::unique_ptr<admin::AdminServer>> started =
        admin::AdminServer::Start(std::move(admin_options));
    if (!started.ok()) {
      Fatal(config, started.status().message());
      (*plane)->Stop();
      return 1;
    }
    admin_server = std::move(*started);
  }
  int code = (*master)->Run();
  if (admin_server) admin_server->Shutdown();
  (*plane)->Stop();
  return code;
}

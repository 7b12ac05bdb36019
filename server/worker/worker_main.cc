#include "server/worker/worker_main.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/process_title.h"
#include "server/config/config.h"
#include "server/worker/worker_launch.h"
#include "server/worker/worker_runtime.h"

namespace forkd::worker {
namespace {

log::Level ToLogLevel(config::LogLevel l) {
  return static_cast<log::Level>(static_cast<int>(l));
}

// Reads the whole sealed memfd. The descriptor stays open (close-on-exec):
// `cat /proc/PID/fd/N` shows what a worker was started with.
absl::StatusOr<std::string> ReadLaunchMessage(int fd) {
  std::string out;
  char buf[4096];
  off_t off = 0;
  while (true) {
    ssize_t n = pread(fd, buf, sizeof(buf), off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot read the launch message (fd ", fd, "): ", strerror(errno)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  return out;
}

}  // namespace

int WorkerMain(int argc, char** argv) {
  // argv: TITLE __worker LAUNCH_FD (worker_launch.h).
  int launch_fd = -1;
  if (argc != 3 || !absl::SimpleAtoi(argv[2], &launch_fd) || launch_fd < 0) {
    fprintf(stderr, "forkd: %s is started by the forkd master, not by hand\n",
            kWorkerSubcommand);
    return kExitBootError;
  }
  absl::StatusOr<std::string> message = ReadLaunchMessage(launch_fd);
  if (!message.ok()) {
    fprintf(stderr, "forkd worker: %s\n",
            std::string(message.status().message()).c_str());
    return kExitBootError;
  }
  absl::StatusOr<WorkerLaunch> launch = DecodeWorkerLaunch(*message);
  if (!launch.ok()) {
    fprintf(stderr, "forkd worker: %s\n",
            std::string(launch.status().message()).c_str());
    return kExitBootError;
  }
  // From here `ps` shows only the title the master chose, and top the role.
  bool app_mode = config::AppMode(launch->config);
  common::SetProcessTitle(
      argc, argv,
      common::WorkerTitle(launch->slot, launch->generation, app_mode));
  // Before any thread starts, so that the worker's threads inherit it.
  common::SetThreadName(app_mode ? common::kProxyWorkerName
                                 : common::kWorkerName);

  WorkerRuntime::Args args;
  args.slot = launch->slot;
  args.generation = launch->generation;
  args.scoreboard_fd = launch->scoreboard_fd;
  args.listen_fds = launch->listen_fds;
  args.record_metrics = launch->record_metrics;
  args.config = std::move(launch->config);
  log::Init(args.config.error_logfile, ToLogLevel(args.config.log_level));

  auto rt = WorkerRuntime::Create(std::move(args));
  if (!rt.ok()) {
    LOG_ERROR("worker failed to boot: %s",
              std::string((*&rt).status().message()));
    return kExitBootError;
  }
  WorkerRuntime* runtime = rt->release();  // lives until the process exits
  switch (runtime->config().worker_class) {
    case config::WorkerClass::kAsync:
      RunAsyncWorker(runtime);
    case config::WorkerClass::kGthread:
      RunThreadedWorker(runtime, /*sync=*/false);
    case config::WorkerClass::kSync:
      RunThreadedWorker(runtime, /*sync=*/true);
  }
  return kExitBootError;
}

}  // namespace forkd::worker

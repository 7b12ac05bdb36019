#include "server/worker/worker_main.h"

#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "server/common/log.h"
#include "server/config/config.h"
#include "server/worker/worker_runtime.h"

namespace forkd::worker {
namespace {

log::Level ToLogLevel(config::LogLevel l) {
  return static_cast<log::Level>(static_cast<int>(l));
}

}  // namespace

int WorkerMain(int argc, char** argv) {
  // SLOT GENERATION SCOREBOARD_FD LISTEN_FDS -- CONFIG_ARGS...
  if (argc < 5 || std::string(argv[4]) != "--") {
    fprintf(stderr,
            "forkd: %s is started by the forkd master, not by hand\n",
            kWorkerSubcommand);
    return kExitBootError;
  }
  WorkerRuntime::Args args;
  if (!absl::SimpleAtoi(argv[0], &args.slot) ||
      !absl::SimpleAtoi(argv[1], &args.generation) ||
      !absl::SimpleAtoi(argv[2], &args.scoreboard_fd)) {
    fprintf(stderr, "forkd worker: bad arguments\n");
    return kExitBootError;
  }
  for (absl::string_view part :
       absl::StrSplit(argv[3], ',', absl::SkipEmpty())) {
    int fd;
    if (!absl::SimpleAtoi(part, &fd)) {
      fprintf(stderr, "forkd worker: bad listen fd list\n");
      return kExitBootError;
    }
    args.listen_fds.push_back(fd);
  }
  config::Sources sources;
  for (int i = 5; i < argc; ++i) sources.args.emplace_back(argv[i]);
  auto parsed = config::Parse(sources);  // no env: the master resolved it
  if (!parsed.ok()) {
    fprintf(stderr, "forkd worker: %s\n",
            std::string(parsed.status().message()).c_str());
    return kExitBootError;
  }
  args.config = parsed->config;
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

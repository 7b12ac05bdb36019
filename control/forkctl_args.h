// forkctl's command line, parsed without I/O:
//   forkctl [--addr localhost:9090] [--token-file F] [-o table|json] COMMAND
// with COMMAND one of status [--watch], scale N|+N|-N [--wait], threads N,
// connections N, reload, drain, resume, shutdown [--quick], kill PID,
// tune [report] [--mode M] [--pin KNOB=N] [--bounds B] [--latency-target D],
// version. Global flags may also follow the command.
#ifndef FORKD_CONTROL_FORKCTL_ARGS_H_
#define FORKD_CONTROL_FORKCTL_ARGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace forkd::control {

enum class Output { kTable, kJson };

enum class Verb {
  kHelp,
  kStatus,
  kScale,
  kThreads,
  kConnections,
  kReload,
  kDrain,
  kResume,
  kShutdown,
  kKill,
  kVersion,
  kTune,
};

struct Invocation {
  std::string addr = "localhost:9090";
  std::string token_file;
  Output output = Output::kTable;
  Verb verb = Verb::kHelp;
  int64_t value = 0;      // scale count/delta, threads, connections, pid
  bool relative = false;  // scale +N / -N
  bool watch = false;     // status --watch
  bool wait = false;      // scale --wait
  bool quick = false;     // shutdown --quick
  // tune: `tune report`, and SetTune's fields (empty: unchanged).
  bool report = false;
  std::string tune_mode;
  std::vector<std::string> pins;  // "workers=3"
  std::string bounds;
  std::string latency_target;
};

// Parses argv[1..]. InvalidArgument with a one-line reason on a bad
// command line (forkctl then prints it with the usage and exits 2).
absl::StatusOr<Invocation> ParseArgs(const std::vector<std::string>& args);

// The text of `forkctl --help`.
std::string Usage();

}  // namespace forkd::control

#endif  // FORKD_CONTROL_FORKCTL_ARGS_H_

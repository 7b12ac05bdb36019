// forkctl: the admin CLI. Runs one command against forkd's gRPC admin API
// and prints the answer as a table or JSON.
#ifndef FORKD_CONTROL_FORKCTL_H_
#define FORKD_CONTROL_FORKCTL_H_

#include <ostream>
#include <string>
#include <vector>

#include "control/forkctl_args.h"
#include "grpcpp/support/status.h"

namespace forkd::control {

// Exit codes: 0 success, 1 the call failed (or a wait fell short), 2 a bad
// command line.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

// Parses `args` (argv[1..]), runs the command, writes answers to `out` and
// errors to `err`; returns the exit code.
int RunForkctl(const std::vector<std::string>& args, std::ostream& out,
               std::ostream& err);

// What forkctl prints for a failed call to `addr`: the server's message,
// or for an unreachable server a hint to start `kubectl port-forward`.
std::string DescribeError(const grpc::Status& status, const std::string& addr);

}  // namespace forkd::control

#endif  // FORKD_CONTROL_FORKCTL_H_

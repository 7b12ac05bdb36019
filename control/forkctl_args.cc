#include "control/forkctl_args.h"

#include <cctype>
#include <map>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace forkd::control {
namespace {

const std::map<std::string, Verb>& Verbs() {
  static const auto* verbs = new std::map<std::string, Verb>{
      {"status", Verb::kStatus},   {"scale", Verb::kScale},
      {"threads", Verb::kThreads}, {"connections", Verb::kConnections},
      {"reload", Verb::kReload},   {"drain", Verb::kDrain},
      {"resume", Verb::kResume},   {"shutdown", Verb::kShutdown},
      {"kill", Verb::kKill},       {"version", Verb::kVersion},
      {"tune", Verb::kTune},       {"help", Verb::kHelp},
  };
  return *verbs;
}

// "-3" is a scale delta, not a flag.
bool LooksNumeric(const std::string& a) {
  return a.size() >= 2 && (a[0] == '-' || a[0] == '+') &&
         std::isdigit(static_cast<unsigned char>(a[1]));
}

absl::Status Bad(const std::string& why) {
  return absl::InvalidArgumentError(why);
}

}  // namespace

std::string Usage() {
  return R"(forkctl: operate a running forkd through its gRPC admin API.

Usage: forkctl [--addr HOST:PORT] [--token-file FILE] [-o table|json] COMMAND

Commands:
  status [--watch]         pool and per-worker status (--watch: every second);
                           app mode: the app processes and proxy workers
  scale N | +N | -N [--wait]
                           set the worker count, or add/remove workers (app
                           mode: app processes); --wait answers once the new
                           workers are ready
  threads N                request threads per gthread worker, live
  connections N            worker connections, live
  reload                   as HUP: re-read the config, replace the workers
  drain                    readiness off; finish in-flight work, take no more
  resume                   undo drain
  shutdown [--quick]       as TERM (graceful) or QUIT (--quick)
  kill PID                 stop one worker (or app process) gracefully; the
                           master replaces it
  tune [--mode off|limit|full] [--pin KNOB=N]... [--bounds B]
       [--latency-target D]
                           autotune: show the phase, the limit, workers and
                           threads and the last decisions with reasons; the
                           flags change it live (--pin workers=3 / threads=8
                           / limit=20, 0 unpins; --bounds
                           workers=1:8,threads=1:16,limit=3:200)
  tune report              what autotune learned: throughput and p50/p99
                           against concurrency, USL sigma/kappa, the knee and
                           the static flags it recommends
  version                  forkctl's and the server's versions

Flags:
  --addr HOST:PORT         admin API address (default localhost:9090); from
                           outside the pod: kubectl port-forward pod/<pod> 9090
  --token-file FILE        send the token in FILE (forkd --admin-token-file)
  -o, --output table|json  output format (default table)
  -h, --help               this text

Exit status: 0 on success, 1 when the call failed, 2 on a bad command line.
)";
}

absl::StatusOr<Invocation> ParseArgs(const std::vector<std::string>& args) {
  Invocation inv;
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.empty()) return Bad("empty argument");
    if (a[0] != '-' || LooksNumeric(a) || a == "-") {
      positional.push_back(a);
      continue;
    }
    std::string name = a;
    std::optional<std::string> value;
    size_t eq = a.find('=');
    if (absl::StartsWith(a, "--") && eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
    }
    auto take_value = [&]() -> absl::StatusOr<std::string> {
      if (value) return *value;
      if (i + 1 >= args.size())
        return Bad(absl::StrCat(name, " needs a value"));
      return args[++i];
    };
    if (name == "-h" || name == "--help") {
      inv.verb = Verb::kHelp;
      return inv;
    } else if (name == "--addr") {
      absl::StatusOr<std::string> v = take_value();
      if (!v.ok()) return v.status();
      if (v->empty()) return Bad("--addr needs HOST:PORT");
      inv.addr = *v;
    } else if (name == "--token-file") {
      absl::StatusOr<std::string> v = take_value();
      if (!v.ok()) return v.status();
      inv.token_file = *v;
    } else if (name == "-o" || name == "--output" ||
               absl::StartsWith(name, "-o")) {
      std::string v;
      if (name.size() > 2 && name[1] == 'o') {  // -ojson
        v = name.substr(2);
      } else {
        absl::StatusOr<std::string> got = take_value();
        if (!got.ok()) return got.status();
        v = *got;
      }
      if (v == "table") {
        inv.output = Output::kTable;
      } else if (v == "json") {
        inv.output = Output::kJson;
      } else {
        return Bad(absl::StrCat("-o: \"", v, "\" is not table or json"));
      }
    } else if (name == "--watch" || name == "-w") {
      inv.watch = true;
    } else if (name == "--wait") {
      inv.wait = true;
    } else if (name == "--quick") {
      inv.quick = true;
    } else if (name == "--mode" || name == "--pin" || name == "--bounds" ||
               name == "--latency-target") {
      absl::StatusOr<std::string> v = take_value();
      if (!v.ok()) return v.status();
      if (v->empty()) return Bad(absl::StrCat(name, " needs a value"));
      if (name == "--mode") inv.tune_mode = *v;
      if (name == "--pin") inv.pins.push_back(*v);
      if (name == "--bounds") inv.bounds = *v;
      if (name == "--latency-target") inv.latency_target = *v;
    } else {
      return Bad(absl::StrCat("unknown flag ", a));
    }
  }
  if (positional.empty()) {
    inv.verb = Verb::kHelp;
    return inv;
  }
  auto verb = Verbs().find(positional[0]);
  if (verb == Verbs().end()) {
    return Bad(absl::StrCat("unknown command \"", positional[0], "\""));
  }
  inv.verb = verb->second;
  std::vector<std::string> operands(positional.begin() + 1, positional.end());
  auto no_operands = [&]() -> absl::Status {
    if (!operands.empty()) {
      return Bad(absl::StrCat(positional[0], " takes no argument, got \"",
                              operands[0], "\""));
    }
    return absl::OkStatus();
  };
  auto one_number = [&](const char* what) -> absl::StatusOr<int64_t> {
    if (operands.size() != 1) {
      return Bad(absl::StrCat(positional[0], " needs exactly one ", what));
    }
    int64_t n = 0;
    if (!absl::SimpleAtoi(operands[0], &n)) {
      return Bad(absl::StrCat(positional[0], ": \"", operands[0],
                              "\" is not a whole number"));
    }
    return n;
  };
  if (inv.watch && inv.verb != Verb::kStatus) {
    return Bad("--watch goes with status");
  }
  if (inv.wait && inv.verb != Verb::kScale)
    return Bad("--wait goes with scale");
  if (inv.quick && inv.verb != Verb::kShutdown) {
    return Bad("--quick goes with shutdown");
  }
  const bool sets_tune = !inv.tune_mode.empty() || !inv.pins.empty() ||
                         !inv.bounds.empty() || !inv.latency_target.empty();
  if (sets_tune && inv.verb != Verb::kTune) {
    return Bad("--mode, --pin, --bounds and --latency-target go with tune");
  }
  switch (inv.verb) {
    case Verb::kScale: {
      absl::StatusOr<int64_t> n = one_number("worker count (N, +N or -N)");
      if (!n.ok()) return n.status();
      inv.relative = operands[0][0] == '+' || operands[0][0] == '-';
      inv.value = *n;
      break;
    }
    case Verb::kThreads:
    case Verb::kConnections:
    case Verb::kKill: {
      absl::StatusOr<int64_t> n =
          one_number(inv.verb == Verb::kKill ? "worker pid" : "number");
      if (!n.ok()) return n.status();
      if (operands[0][0] == '+' || operands[0][0] == '-') {
        return Bad(absl::StrCat(positional[0], " takes a plain number, got \"",
                                operands[0], "\""));
      }
      inv.value = *n;
      break;
    }
    case Verb::kTune:
      if (operands.size() == 1 && operands[0] == "report") {
        inv.report = true;
        if (sets_tune) return Bad("tune report takes no --mode/--pin/--bounds");
      } else if (!operands.empty()) {
        return Bad(absl::StrCat("tune: \"", operands[0],
                                "\" is not report (or a flag)"));
      }
      break;
    default:
      if (absl::Status s = no_operands(); !s.ok()) return s;
  }
  return inv;
}

}  // namespace forkd::control

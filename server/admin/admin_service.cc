#include "server/admin/admin_service.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "server/arbiter/arbiter.h"
#include "server/common/log.h"
#include "server/config/config.h"

namespace forkd::admin {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kMinWatchInterval{100};
constexpr milliseconds kMaxWatchInterval{60000};
constexpr milliseconds kDefaultWatchInterval{1000};
// Answer a little before the caller's deadline so the answer still counts.
constexpr milliseconds kDeadlineMargin{50};
// Cancellation is polled at least this often while a handler sleeps.
constexpr milliseconds kCancelCheck{100};

void FillCommandResponse(const arbiter::CommandResult& r,
                         v1::CommandResponse* out) {
  out->set_message(r.message);
  out->set_desired_workers(r.desired_workers);
  out->set_threads(r.threads);
  out->set_worker_connections(r.worker_connections);
  out->set_generation(r.generation);
  out->set_settings_generation(r.settings_generation);
}

std::vector<std::string> AuthorizationValues(grpc::ServerContext* context) {
  std::vector<std::string> values;
  auto range = context->client_metadata().equal_range("authorization");
  for (auto it = range.first; it != range.second; ++it) {
    values.emplace_back(it->second.data(), it->second.size());
  }
  return values;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

void ArbiterPool::Post(arbiter::Command command,
                       std::function<void(arbiter::CommandResult)> done) {
  arbiter_->Post(command, std::move(done));
}

arbiter::PoolSnapshot ArbiterPool::Snapshot() {
  return arbiter_->LiveSnapshot();
}

AdminService::AdminService(AdminServiceOptions options)
    : options_(std::move(options)) {}

void AdminService::BeginShutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutting_down_ = true;
  }
  cv_.notify_all();
}

bool AdminService::Pause(grpc::ServerContext* context, milliseconds d) {
  auto until = Clock::now() + d;
  std::unique_lock<std::mutex> lock(mu_);
  while (!shutting_down_) {
    if (context->IsCancelled()) return false;
    auto now = Clock::now();
    if (now >= until) return true;
    cv_.wait_until(lock, std::min(until, now + kCancelCheck));
  }
  return false;
}

AdminService::Clock::time_point AdminService::WaitDeadline(
    grpc::ServerContext* context, uint32_t timeout_ms) const {
  auto now = Clock::now();
  auto limit =
      now + (timeout_ms > 0 ? milliseconds(timeout_ms) : options_.default_wait);
  auto left = context->deadline() - std::chrono::system_clock::now();
  if (left < std::chrono::hours(24 * 365)) {  // else: no deadline
    auto call_limit = now + std::chrono::duration_cast<Clock::duration>(left) -
                      kDeadlineMargin;
    limit = std::min(limit, call_limit);
  }
  return limit;
}

absl::StatusOr<arbiter::CommandResult> AdminService::Run(
    const arbiter::Command& command, grpc::ServerContext* context) {
  struct Pending {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<arbiter::CommandResult> result;
  };
  // Shared with the callback: the loop may answer after we gave up.
  auto pending = std::make_shared<Pending>();
  options_.pool->Post(command, [pending](arbiter::CommandResult r) {
    {
      std::lock_guard<std::mutex> lock(pending->mu);
      pending->result = std::move(r);
    }
    pending->cv.notify_all();
  });
  auto limit = std::min(Clock::now() + options_.command_timeout,
                        WaitDeadline(context, 0));
  std::unique_lock<std::mutex> lock(pending->mu);
  if (!pending->cv.wait_until(lock, limit,
                              [&] { return pending->result.has_value(); })) {
    return absl::DeadlineExceededError(absl::StrCat(
        "the master did not answer ", arbiter::CommandKindName(command.kind),
        " in time; it may still run it"));
  }
  return std::move(*pending->result);
}

grpc::Status AdminService::Mutating(
    grpc::ServerContext* context, const char* rpc, const std::string& what,
    const std::function<grpc::Status(std::string* summary)>& body) {
  std::string peer = context->peer();
  std::optional<std::string> token;
  absl::StatusOr<Admission> admitted = Admission::kLoopback;
  if (options_.token != nullptr) {
    absl::StatusOr<std::string> current = options_.token->Current();
    if (current.ok()) {
      token = std::move(*current);
    } else {
      admitted = current.status();  // fail closed, loopback peers included
    }
  }
  if (admitted.ok()) {
    admitted = CheckMutatingCall(peer, AuthorizationValues(context), token);
  }
  if (!admitted.ok()) {
    options_.stats->Record(
        rpc,
        AdminStats::ResultName(static_cast<int>(admitted.status().code())));
    LOG_WARNING("admin: refused %s from %s: %s", what, peer,
                admitted.status().message());
    return ToGrpcStatus(admitted.status());
  }
  std::string summary;
  grpc::Status status = body(&summary);
  std::string result = AdminStats::ResultName(status.error_code());
  options_.stats->Record(rpc, result);
  if (status.ok()) {
    LOG_INFO("admin: %s by %s (%s): ok: %s", what, peer,
             AdmissionName(*admitted), summary);
  } else {
    LOG_WARNING("admin: %s by %s (%s): %s: %s", what, peer,
                AdmissionName(*admitted), result, status.error_message());
  }
  return status;
}

// --- Reads -------------------------------------------------------------------

grpc::Status AdminService::GetStatus(grpc::ServerContext* context,
                                     const v1::GetStatusRequest* request,
                                     v1::ServerStatus* response) {
  BuildServerStatus(options_.pool->Snapshot(), options_.version,
                    options_.read_process, response);
  options_.stats->Record("GetStatus", "ok");
  return grpc::Status::OK;
}

grpc::Status AdminService::WatchStatus(
    grpc::ServerContext* context, const v1::WatchStatusRequest* request,
    grpc::ServerWriter<v1::ServerStatus>* writer) {
  milliseconds interval =
      request->interval_ms() == 0
          ? kDefaultWatchInterval
          : std::clamp(milliseconds(request->interval_ms()), kMinWatchInterval,
                       kMaxWatchInterval);
  options_.stats->Record("WatchStatus", "ok");
  while (true) {
    v1::ServerStatus status;
    BuildServerStatus(options_.pool->Snapshot(), options_.version,
                      options_.read_process, &status);
    if (!writer->Write(status)) break;
    if (!Pause(context, interval)) break;
  }
  return grpc::Status::OK;
}

// --- Changes -----------------------------------------------------------------

grpc::Status AdminService::ScaleWorkers(grpc::ServerContext* context,
                                        const v1::ScaleWorkersRequest* request,
                                        v1::ScaleWorkersResponse* response) {
  std::string what = "ScaleWorkers";
  if (request->size_case() == v1::ScaleWorkersRequest::kCount) {
    absl::StrAppend(&what, " count=", request->count());
  } else if (request->size_case() == v1::ScaleWorkersRequest::kDelta) {
    absl::StrAppendFormat(&what, " delta=%+d", request->delta());
  }
  if (request->wait()) absl::StrAppend(&what, " wait");
  return Mutating(context, "ScaleWorkers", what, [&](std::string* summary) {
    arbiter::Command command;
    switch (request->size_case()) {
      case v1::ScaleWorkersRequest::kCount:
        command = arbiter::Command::ScaleTo(request->count());
        break;
      case v1::ScaleWorkersRequest::kDelta:
        command = arbiter::Command::ScaleBy(request->delta(), /*exact=*/true);
        break;
      default:
        return grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            "ScaleWorkers needs a worker count or a delta (+N / -N)");
    }
    auto start = Clock::now();
    absl::StatusOr<arbiter::CommandResult> r = Run(command, context);
    if (!r.ok()) return ToGrpcStatus(r.status());
    if (!r->status.ok()) return ToGrpcStatus(r->status);
    FillCommandResponse(*r, response->mutable_result());
    *summary = r->message;
    arbiter::PoolSnapshot snapshot = options_.pool->Snapshot();
    int ready = ReadyCurrentWorkers(snapshot);
    if (request->wait()) {
      response->set_waited(true);
      auto limit = WaitDeadline(context, request->timeout_ms());
      while (ready < r->desired_workers && Clock::now() < limit &&
             Pause(context, options_.poll_interval)) {
        snapshot = options_.pool->Snapshot();
        ready = ReadyCurrentWorkers(snapshot);
      }
      response->set_reached(ready >= r->desired_workers);
      response->set_waited_seconds(SecondsSince(start));
      absl::StrAppendFormat(summary, "; %d of %d ready after %.3f s", ready,
                            r->desired_workers, response->waited_seconds());
    } else {
      response->set_reached(ready >= r->desired_workers);
    }
    response->set_ready_workers(ready);
    return grpc::Status::OK;
  });
}

void AdminService::WaitConverged(grpc::ServerContext* context, bool wait,
                                 uint32_t timeout_ms,
                                 const arbiter::CommandResult& r, int threads,
                                 int connections,
                                 v1::SettingsResponse* response,
                                 std::string* summary) {
  auto start = Clock::now();
  auto [serving, converged] = ConvergedWorkers(
      options_.pool->Snapshot(), r.settings_generation, threads, connections);
  if (wait) {
    auto limit = WaitDeadline(context, timeout_ms);
    while (converged < serving && Clock::now() < limit &&
           Pause(context, options_.poll_interval)) {
      std::tie(serving, converged) =
          ConvergedWorkers(options_.pool->Snapshot(), r.settings_generation,
                           threads, connections);
    }
    response->set_waited(true);
    response->set_waited_seconds(SecondsSince(start));
    absl::StrAppendFormat(summary, "; %d of %d workers applied it after %.3f s",
                          converged, serving, response->waited_seconds());
  }
  response->set_workers(serving);
  response->set_converged_workers(converged);
  response->set_reached(converged >= serving);
}

grpc::Status AdminService::SetThreads(grpc::ServerContext* context,
                                      const v1::SetThreadsRequest* request,
                                      v1::SettingsResponse* response) {
  std::string what = absl::StrCat("SetThreads threads=", request->threads(),
                                  request->wait() ? " wait" : "");
  return Mutating(context, "SetThreads", what, [&](std::string* summary) {
    config::WorkerClass cls = options_.pool->Snapshot().worker_class;
    if (cls != config::WorkerClass::kGthread) {
      return grpc::Status(
          grpc::StatusCode::FAILED_PRECONDITION,
          absl::StrCat("threads apply to the gthread worker class; this "
                       "server runs ",
                       config::WorkerClassName(cls),
                       " workers (start it with --worker-class gthread)"));
    }
    absl::StatusOr<arbiter::CommandResult> r =
        Run(arbiter::Command::SetThreads(request->threads()), context);
    if (!r.ok()) return ToGrpcStatus(r.status());
    if (!r->status.ok()) return ToGrpcStatus(r->status);
    FillCommandResponse(*r, response->mutable_result());
    *summary = r->message;
    WaitConverged(context, request->wait(), request->timeout_ms(), *r,
                  r->threads, 0, response, summary);
    return grpc::Status::OK;
  });
}

grpc::Status AdminService::SetWorkerConnections(
    grpc::ServerContext* context,
    const v1::SetWorkerConnectionsRequest* request,
    v1::SettingsResponse* response) {
  std::string what = absl::StrCat(
      "SetWorkerConnections worker_connections=", request->worker_connections(),
      request->wait() ? " wait" : "");
  return Mutating(
      context, "SetWorkerConnections", what, [&](std::string* summary) {
        config::WorkerClass cls = options_.pool->Snapshot().worker_class;
        if (cls == config::WorkerClass::kSync) {
          return grpc::Status(
              grpc::StatusCode::FAILED_PRECONDITION,
              "worker connections apply to the gthread and async worker "
              "classes; this server runs sync workers (one connection "
              "each)");
        }
        absl::StatusOr<arbiter::CommandResult> r =
            Run(arbiter::Command::SetWorkerConnections(
                    request->worker_connections()),
                context);
        if (!r.ok()) return ToGrpcStatus(r.status());
        if (!r->status.ok()) return ToGrpcStatus(r->status);
        FillCommandResponse(*r, response->mutable_result());
        *summary = r->message;
        WaitConverged(context, request->wait(), request->timeout_ms(), *r, 0,
                      r->worker_connections, response, summary);
        return grpc::Status::OK;
      });
}

namespace {

// The body of a call that is one command and answers CommandResponse.
template <typename RunFn>
grpc::Status SimpleCommand(RunFn&& run, const arbiter::Command& command,
                           v1::CommandResponse* response,
                           std::string* summary) {
  absl::StatusOr<arbiter::CommandResult> r = run(command);
  if (!r.ok()) return ToGrpcStatus(r.status());
  if (!r->status.ok()) return ToGrpcStatus(r->status);
  FillCommandResponse(*r, response);
  *summary = r->message;
  return grpc::Status::OK;
}

}  // namespace

grpc::Status AdminService::Reload(grpc::ServerContext* context,
                                  const v1::ReloadRequest* request,
                                  v1::CommandResponse* response) {
  return Mutating(context, "Reload", "Reload", [&](std::string* summary) {
    return SimpleCommand([&](auto c) { return Run(c, context); },
                         arbiter::Command::Reload(), response, summary);
  });
}

grpc::Status AdminService::Drain(grpc::ServerContext* context,
                                 const v1::DrainRequest* request,
                                 v1::CommandResponse* response) {
  return Mutating(context, "Drain", "Drain", [&](std::string* summary) {
    return SimpleCommand([&](auto c) { return Run(c, context); },
                         arbiter::Command::Drain(), response, summary);
  });
}

grpc::Status AdminService::Resume(grpc::ServerContext* context,
                                  const v1::ResumeRequest* request,
                                  v1::CommandResponse* response) {
  return Mutating(context, "Resume", "Resume", [&](std::string* summary) {
    return SimpleCommand([&](auto c) { return Run(c, context); },
                         arbiter::Command::Resume(), response, summary);
  });
}

grpc::Status AdminService::Shutdown(grpc::ServerContext* context,
                                    const v1::ShutdownRequest* request,
                                    v1::CommandResponse* response) {
  std::string what = request->quick() ? "Shutdown quick" : "Shutdown graceful";
  return Mutating(context, "Shutdown", what, [&](std::string* summary) {
    return SimpleCommand([&](auto c) { return Run(c, context); },
                         request->quick() ? arbiter::Command::QuickStop()
                                          : arbiter::Command::GracefulStop(),
                         response, summary);
  });
}

grpc::Status AdminService::KillWorker(grpc::ServerContext* context,
                                      const v1::KillWorkerRequest* request,
                                      v1::CommandResponse* response) {
  std::string what = absl::StrCat("KillWorker pid=", request->pid());
  return Mutating(context, "KillWorker", what, [&](std::string* summary) {
    if (request->pid() <= 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "KillWorker needs the pid of a worker (see status)");
    }
    return SimpleCommand([&](auto c) { return Run(c, context); },
                         arbiter::Command::KillWorker(request->pid()), response,
                         summary);
  });
}

void BuildTuneStatus(const arbiter::PoolSnapshot& s, v1::TuneStatus* out) {
  const autotune::TuneStatus& t = s.tune;
  out->set_mode(config::AutotuneModeName(t.mode));
  out->set_phase(t.phase);
  out->set_limit(t.limit);
  out->set_limit_in_flight(s.app_limit_in_flight);
  out->set_workers(t.workers);
  out->set_threads(t.threads);
  out->set_min_rtt_seconds(t.min_rtt_seconds);
  out->set_gradient(t.gradient);
  out->set_latency_target_seconds(t.latency_target_seconds);
  out->set_bounds(config::FormatAutotuneBounds(t.bounds));
  out->set_pin_workers(t.pin_workers);
  out->set_pin_threads(t.pin_threads);
  out->set_pin_limit(t.pin_limit);
  out->set_windows(t.windows);
  for (const autotune::Decision& d : t.recent) {
    v1::TuneDecision* m = out->add_decisions();
    m->set_at_seconds(d.at_seconds);
    m->set_controller(d.controller);
    m->set_rule(autotune::RuleName(d.rule));
    m->set_knob(autotune::KnobName(d.knob));
    m->set_old_value(d.old_value);
    m->set_new_value(d.new_value);
    m->set_why(d.why);
    m->set_json(d.ToJson());
  }
  const autotune::Report& r = t.report;
  v1::TuneReport* rep = out->mutable_report();
  rep->set_app_class(r.app_class);
  for (const autotune::ReportPoint& p : r.points) {
    v1::TunePoint* m = rep->add_points();
    m->set_workers(p.workers);
    m->set_threads(p.threads);
    m->set_concurrency(p.concurrency);
    m->set_throughput(p.throughput);
    m->set_p50_seconds(p.p50_seconds);
    m->set_p99_seconds(p.p99_seconds);
  }
  rep->set_usl_valid(r.usl_valid);
  rep->set_sigma(r.sigma);
  rep->set_kappa(r.kappa);
  rep->set_knee(r.knee);
  rep->set_workers(r.workers);
  rep->set_threads(r.threads);
  rep->set_recommended_flags(r.RecommendedFlags());
  rep->set_text(r.ToText());
}

grpc::Status AdminService::GetTune(grpc::ServerContext* context,
                                   const v1::GetTuneRequest* request,
                                   v1::TuneStatus* response) {
  BuildTuneStatus(options_.pool->Snapshot(), response);
  options_.stats->Record("GetTune", "ok");
  return grpc::Status::OK;
}

grpc::Status AdminService::SetTune(grpc::ServerContext* context,
                                   const v1::SetTuneRequest* request,
                                   v1::TuneStatus* response) {
  std::string what = "SetTune";
  if (!request->mode().empty())
    absl::StrAppend(&what, " mode=", request->mode());
  for (const std::string& p : request->pin())
    absl::StrAppend(&what, " pin ", p);
  if (!request->bounds().empty()) {
    absl::StrAppend(&what, " bounds=", request->bounds());
  }
  if (!request->latency_target().empty()) {
    absl::StrAppend(&what, " latency_target=", request->latency_target());
  }
  return Mutating(context, "SetTune", what, [&](std::string* summary) {
    auto bad = [](std::string m) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::move(m));
    };
    autotune::TuneUpdate u;
    if (!request->mode().empty()) {
      u.mode = config::ParseAutotuneMode(request->mode());
      if (!u.mode) {
        return bad(absl::StrCat("mode \"", request->mode(),
                                "\" is not off, limit or full"));
      }
    }
    for (const std::string& p : request->pin()) {
      std::vector<std::string> kv = absl::StrSplit(p, '=');
      int n = 0;
      if (kv.size() != 2 || !absl::SimpleAtoi(kv[1], &n)) {
        return bad(absl::StrCat("pin \"", p,
                                "\": expected KNOB=N (workers, threads or "
                                "limit; 0 unpins)"));
      }
      if (kv[0] == "workers") {
        u.pin_workers = n;
      } else if (kv[0] == "threads") {
        u.pin_threads = n;
      } else if (kv[0] == "limit") {
        u.pin_limit = n;
      } else {
        return bad(absl::StrCat("pin \"", p, "\": unknown knob \"", kv[0],
                                "\" (workers, threads or limit)"));
      }
    }
    if (!request->bounds().empty()) {
      absl::StatusOr<config::AutotuneBounds> b =
          config::ParseAutotuneBounds(request->bounds());
      if (!b.ok()) {
        return bad(absl::StrCat("bounds \"", request->bounds(),
                                "\": ", b.status().message()));
      }
      u.bounds = *b;
    }
    if (!request->latency_target().empty()) {
      absl::StatusOr<double> d =
          config::ParseDuration(request->latency_target());
      if (!d.ok()) {
        return bad(absl::StrCat("latency_target \"", request->latency_target(),
                                "\" ", d.status().message()));
      }
      u.latency_target_seconds = *d;
    }
    if (!u.mode && !u.pin_workers && !u.pin_threads && !u.pin_limit &&
        !u.bounds && !u.latency_target_seconds) {
      return bad(
          "SetTune: nothing to change (mode, pin, bounds or "
          "latency_target)");
    }
    absl::StatusOr<arbiter::CommandResult> r =
        Run(arbiter::Command::SetTune(std::move(u)), context);
    if (!r.ok()) return ToGrpcStatus(r.status());
    if (!r->status.ok()) return ToGrpcStatus(r->status);
    BuildTuneStatus(options_.pool->Snapshot(), response);
    response->set_message(r->message);
    *summary = r->message;
    return grpc::Status::OK;
  });
}

}  // namespace forkd::admin

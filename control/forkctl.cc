#include "control/forkctl.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "control/forkctl_output.h"
#include "forkd/admin/v1/admin.grpc.pb.h"

namespace forkd::control {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr seconds kCallTimeout{10};
constexpr uint32_t kWaitMs = 60000;       // scale --wait, threads
constexpr milliseconds kWaitSlack{5000};  // beyond the server's wait
constexpr uint32_t kWatchIntervalMs = 1000;

std::string Port(const std::string& addr) {
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos || colon + 1 >= addr.size()) return "9090";
  return addr.substr(colon + 1);
}

int32_t ToInt32(int64_t v) {
  return static_cast<int32_t>(std::clamp<int64_t>(v, INT32_MIN, INT32_MAX));
}

class Client {
 public:
  Client(const Invocation& inv, std::ostream& out, std::ostream& err)
      : inv_(inv), out_(out), err_(err) {}

  int Run();

 private:
  std::unique_ptr<grpc::ClientContext> Context(milliseconds timeout) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + timeout);
    if (!token_.empty()) {
      ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token_));
    }
    return ctx;
  }
  int Fail(const grpc::Status& status) {
    err_ << DescribeError(status, inv_.addr);
    return kExitFailed;
  }
  void Print(const google::protobuf::Message& m, const std::string& text) {
    if (inv_.output == Output::kJson) {
      out_ << ToJson(m, /*pretty=*/true) << "\n";
    } else {
      out_ << text << "\n";
    }
  }
  int Status();
  int Watch();
  int Scale();
  int Settings(bool threads);
  int Simple();
  int Version();
  int Tune();

  const Invocation& inv_;
  std::ostream& out_;
  std::ostream& err_;
  std::string token_;
  std::unique_ptr<v1::Admin::Stub> stub_;
};

int Client::Run() {
  if (!inv_.token_file.empty()) {
    std::ifstream in(inv_.token_file);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) {
      err_ << "forkctl: cannot read --token-file " << inv_.token_file << "\n";
      return kExitFailed;
    }
    token_ = std::string(absl::StripAsciiWhitespace(text.str()));
    if (token_.empty()) {
      err_ << "forkctl: --token-file " << inv_.token_file << " is empty\n";
      return kExitFailed;
    }
  }
  stub_ = v1::Admin::NewStub(
      grpc::CreateChannel(inv_.addr, grpc::InsecureChannelCredentials()));
  switch (inv_.verb) {
    case Verb::kStatus:
      return inv_.watch ? Watch() : Status();
    case Verb::kScale:
      return Scale();
    case Verb::kThreads:
      return Settings(true);
    case Verb::kConnections:
      return Settings(false);
    case Verb::kVersion:
      return Version();
    case Verb::kTune:
      return Tune();
    default:
      return Simple();
  }
}

int Client::Status() {
  v1::ServerStatus status;
  auto ctx = Context(kCallTimeout);
  grpc::Status s = stub_->GetStatus(ctx.get(), v1::GetStatusRequest(), &status);
  if (!s.ok()) return Fail(s);
  if (inv_.output == Output::kJson) {
    out_ << ToJson(status, true) << "\n";
  } else {
    out_ << FormatStatus(status);
  }
  return kExitOk;
}

int Client::Watch() {
  grpc::ClientContext ctx;  // no deadline: until interrupted
  if (!token_.empty()) {
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", token_));
  }
  v1::WatchStatusRequest request;
  request.set_interval_ms(kWatchIntervalMs);
  auto reader = stub_->WatchStatus(&ctx, request);
  v1::ServerStatus status;
  bool first = true;
  while (reader->Read(&status)) {
    if (inv_.output == Output::kJson) {
      out_ << ToJson(status, /*pretty=*/false) << "\n";
    } else {
      if (!first) out_ << "\n";
      out_ << FormatStatus(status);
    }
    out_.flush();
    first = false;
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return Fail(s);
  return kExitOk;  // the server ended the stream (it is stopping)
}

int Client::Scale() {
  v1::ScaleWorkersRequest request;
  if (inv_.relative) {
    request.set_delta(ToInt32(inv_.value));
  } else {
    request.set_count(ToInt32(inv_.value));
  }
  request.set_wait(inv_.wait);
  milliseconds timeout = kCallTimeout;
  if (inv_.wait) {
    request.set_timeout_ms(kWaitMs);
    timeout = milliseconds(kWaitMs) + kWaitSlack;
  }
  v1::ScaleWorkersResponse response;
  auto ctx = Context(timeout);
  grpc::Status s = stub_->ScaleWorkers(ctx.get(), request, &response);
  if (!s.ok()) return Fail(s);
  std::string text = response.result().message();
  if (response.waited()) {
    absl::StrAppendFormat(
        &text, "; %d of %d workers ready after %.3fs", response.ready_workers(),
        response.result().desired_workers(), response.waited_seconds());
  }
  Print(response, text);
  if (response.waited() && !response.reached()) {
    err_ << "forkctl: not every new worker became ready in time; see "
            "`forkctl status` and forkd's error log\n";
    return kExitFailed;
  }
  return kExitOk;
}

int Client::Settings(bool threads) {
  v1::SettingsResponse response;
  auto ctx = Context(milliseconds(kWaitMs) + kWaitSlack);
  grpc::Status s;
  if (threads) {
    v1::SetThreadsRequest request;
    request.set_threads(ToInt32(inv_.value));
    request.set_wait(true);
    request.set_timeout_ms(kWaitMs);
    s = stub_->SetThreads(ctx.get(), request, &response);
  } else {
    v1::SetWorkerConnectionsRequest request;
    request.set_worker_connections(ToInt32(inv_.value));
    request.set_wait(true);
    request.set_timeout_ms(kWaitMs);
    s = stub_->SetWorkerConnections(ctx.get(), request, &response);
  }
  if (!s.ok()) return Fail(s);
  Print(response, absl::StrFormat(
                      "%s; %d of %d workers applied it after %.3fs",
                      response.result().message(), response.converged_workers(),
                      response.workers(), response.waited_seconds()));
  if (!response.reached()) {
    err_ << "forkctl: not every worker applied the change in time\n";
    return kExitFailed;
  }
  return kExitOk;
}

int Client::Simple() {
  v1::CommandResponse response;
  auto ctx = Context(kCallTimeout);
  grpc::Status s;
  switch (inv_.verb) {
    case Verb::kReload:
      s = stub_->Reload(ctx.get(), v1::ReloadRequest(), &response);
      break;
    case Verb::kDrain:
      s = stub_->Drain(ctx.get(), v1::DrainRequest(), &response);
      break;
    case Verb::kResume:
      s = stub_->Resume(ctx.get(), v1::ResumeRequest(), &response);
      break;
    case Verb::kShutdown: {
      v1::ShutdownRequest request;
      request.set_quick(inv_.quick);
      s = stub_->Shutdown(ctx.get(), request, &response);
      break;
    }
    case Verb::kKill: {
      v1::KillWorkerRequest request;
      request.set_pid(ToInt32(inv_.value));
      s = stub_->KillWorker(ctx.get(), request, &response);
      break;
    }
    default:
      return kExitUsage;
  }
  if (!s.ok()) return Fail(s);
  Print(response, response.message());
  return kExitOk;
}

int Client::Tune() {
  v1::TuneStatus t;
  auto ctx = Context(kCallTimeout);
  grpc::Status s;
  if (!inv_.tune_mode.empty() || !inv_.pins.empty() || !inv_.bounds.empty() ||
      !inv_.latency_target.empty()) {
    v1::SetTuneRequest request;
    request.set_mode(inv_.tune_mode);
    for (const std::string& p : inv_.pins) request.add_pin(p);
    request.set_bounds(inv_.bounds);
    request.set_latency_target(inv_.latency_target);
    s = stub_->SetTune(ctx.get(), request, &t);
  } else {
    s = stub_->GetTune(ctx.get(), v1::GetTuneRequest(), &t);
  }
  if (!s.ok()) return Fail(s);
  if (inv_.report) {
    if (inv_.output == Output::kJson) {
      out_ << ToJson(t.report(), /*pretty=*/true) << "\n";
    } else {
      out_ << t.report().text();
      if (!absl::EndsWith(t.report().text(), "\n")) out_ << "\n";
    }
    return kExitOk;
  }
  Print(t, FormatTune(t));
  return kExitOk;
}

int Client::Version() {
  v1::ServerStatus status;
  auto ctx = Context(kCallTimeout);
  grpc::Status s = stub_->GetStatus(ctx.get(), v1::GetStatusRequest(), &status);
  if (inv_.output == Output::kJson) {
    out_ << absl::StrFormat(
        "{\n  \"client\": \"%s\",\n  \"server\": \"%s\"\n}\n", FORKD_VERSION,
        s.ok() ? status.version() : "");
  } else {
    out_ << "forkctl " << FORKD_VERSION << "\n";
    if (s.ok()) {
      out_ << "forkd " << status.version() << " (master pid "
           << status.master_pid() << " at " << inv_.addr << ")\n";
    }
  }
  if (!s.ok()) return Fail(s);
  return kExitOk;
}

}  // namespace

std::string DescribeError(const grpc::Status& status, const std::string& addr) {
  std::string code;
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
          status.error_message().empty() ||
          status.error_message() == "Deadline Exceeded") {
        return absl::StrCat(
            "forkctl: cannot reach forkd's admin API at ", addr, " (",
            status.error_message(),
            ").\nIs forkd running with --admin-bind on that port? From "
            "outside the pod, forward it first:\n  kubectl port-forward "
            "pod/<pod> ",
            Port(addr),
            "\nthen run forkctl again (--addr localhost:", Port(addr), ").\n");
      }
      code = "deadline exceeded";
      break;
    case grpc::StatusCode::INVALID_ARGUMENT:
      code = "invalid argument";
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
      code = "unauthenticated";
      break;
    case grpc::StatusCode::PERMISSION_DENIED:
      code = "permission denied";
      break;
    case grpc::StatusCode::NOT_FOUND:
      code = "not found";
      break;
    case grpc::StatusCode::FAILED_PRECONDITION:
      code = "failed precondition";
      break;
    default:
      code = absl::StrCat("error ", static_cast<int>(status.error_code()));
  }
  return absl::StrCat("forkctl: ", code, ": ", status.error_message(), "\n");
}

int RunForkctl(const std::vector<std::string>& args, std::ostream& out,
               std::ostream& err) {
  absl::StatusOr<Invocation> inv = ParseArgs(args);
  if (!inv.ok()) {
    err << "forkctl: " << inv.status().message()
        << "\nRun `forkctl --help` for usage.\n";
    return kExitUsage;
  }
  if (inv->verb == Verb::kHelp) {
    out << Usage();
    return kExitOk;
  }
  Client client(*inv, out, err);
  return client.Run();
}

}  // namespace forkd::control

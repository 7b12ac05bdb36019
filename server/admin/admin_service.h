// The gRPC Admin service (forkd.admin.v1.Admin). Runs on the admin plane's
// gRPC threads in the master; never touches worker state: every change is
// a Command posted to the master's loop (the same code as the signals), and
// the handler waits for the loop's answer with a deadline. Reads come from
// the master's published snapshot plus /proc.
//
// This is the one place where absl::Status becomes grpc::Status.
#ifndef FORKD_SERVER_ADMIN_ADMIN_SERVICE_H_
#define FORKD_SERVER_ADMIN_ADMIN_SERVICE_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "forkd/admin/v1/admin.grpc.pb.h"
#include "server/admin/access_control.h"
#include "server/admin/admin_stats.h"
#include "server/admin/status_builder.h"
#include "server/arbiter/command.h"
#include "server/arbiter/pool_snapshot.h"

namespace forkd::arbiter {
class Arbiter;
}

namespace forkd::admin {

// What the service needs from the master. ArbiterPool adapts the Arbiter;
// tests pass a fake.
class PoolControl {
 public:
  virtual ~PoolControl() = default;
  // Any thread: queues `command` for the master's loop; `done` gets the
  // answer (see Arbiter::Post).
  virtual void Post(arbiter::Command command,
                    std::function<void(arbiter::CommandResult)> done) = 0;
  // Any thread: the pool with each worker's gauges read now.
  virtual arbiter::PoolSnapshot Snapshot() = 0;
};

class ArbiterPool : public PoolControl {
 public:
  explicit ArbiterPool(arbiter::Arbiter* arbiter) : arbiter_(arbiter) {}
  void Post(arbiter::Command command,
            std::function<void(arbiter::CommandResult)> done) override;
  arbiter::PoolSnapshot Snapshot() override;

 private:
  arbiter::Arbiter* arbiter_;
};

struct AdminServiceOptions {
  PoolControl* pool = nullptr;  // required; outlives the service
  AdminStats* stats = nullptr;  // required; outlives the service
  TokenFile* token = nullptr;   // null: no --admin-token-file (loopback rule)
  std::string version;
  ProcessStatsReader read_process = [](pid_t pid) {
    return ReadProcStats(pid);
  };
  // How long a handler waits for the master to run a command.
  std::chrono::milliseconds command_timeout{10000};
  // Default for the `timeout_ms` of calls that wait for workers.
  std::chrono::milliseconds default_wait{30000};
  // How often a waiting call looks at the pool again.
  std::chrono::milliseconds poll_interval{2};
};

class AdminService final : public v1::Admin::Service {
 public:
  explicit AdminService(AdminServiceOptions options);

  // Any thread: ends WatchStatus streams and waits in progress (they answer
  // with what they reached), so grpc::Server::Shutdown need not wait.
  void BeginShutdown();

  grpc::Status GetStatus(grpc::ServerContext* context,
                         const v1::GetStatusRequest* request,
                         v1::ServerStatus* response) override;
  grpc::Status WatchStatus(
      grpc::ServerContext* context, const v1::WatchStatusRequest* request,
      grpc::ServerWriter<v1::ServerStatus>* writer) override;
  grpc::Status ScaleWorkers(grpc::ServerContext* context,
                            const v1::ScaleWorkersRequest* request,
                            v1::ScaleWorkersResponse* response) override;
  grpc::Status SetThreads(grpc::ServerContext* context,
                          const v1::SetThreadsRequest* request,
                          v1::SettingsResponse* response) override;
  grpc::Status SetWorkerConnections(
      grpc::ServerContext* context,
      const v1::SetWorkerConnectionsRequest* request,
      v1::SettingsResponse* response) override;
  grpc::Status Reload(grpc::ServerContext* context,
                      const v1::ReloadRequest* request,
                      v1::CommandResponse* response) override;
  grpc::Status Drain(grpc::ServerContext* context,
                     const v1::DrainRequest* request,
                     v1::CommandResponse* response) override;
  grpc::Status Resume(grpc::ServerContext* context,
                      const v1::ResumeRequest* request,
                      v1::CommandResponse* response) override;
  grpc::Status Shutdown(grpc::ServerContext* context,
                        const v1::ShutdownRequest* request,
                        v1::CommandResponse* response) override;
  grpc::Status KillWorker(grpc::ServerContext* context,
                          const v1::KillWorkerRequest* request,
                          v1::CommandResponse* response) override;
  grpc::Status GetTune(grpc::ServerContext* context,
                       const v1::GetTuneRequest* request,
                       v1::TuneStatus* response) override;
  grpc::Status SetTune(grpc::ServerContext* context,
                       const v1::SetTuneRequest* request,
                       v1::TuneStatus* response) override;

 private:
  using Clock = std::chrono::steady_clock;

  // Checks access, runs `body`, then counts the call and (when admitted)
  // writes the audit line: who, what (`what`), the result and `summary`.
  grpc::Status Mutating(
      grpc::ServerContext* context, const char* rpc, const std::string& what,
      const std::function<grpc::Status(std::string* summary)>& body);
  // Posts `command` and waits for the loop's answer (until the command
  // timeout or the call's deadline).
  absl::StatusOr<arbiter::CommandResult> Run(const arbiter::Command& command,
                                             grpc::ServerContext* context);
  // Until when a call that waits for workers may wait: `timeout_ms` (or
  // the default), never past the call's own deadline.
  Clock::time_point WaitDeadline(grpc::ServerContext* context,
                                 uint32_t timeout_ms) const;
  // Sleeps `d` unless shutting down or cancelled; false then.
  bool Pause(grpc::ServerContext* context, std::chrono::milliseconds d);
  // Waits until the master reports `threads`/`connections` in every
  // serving worker (SetThreads/SetWorkerConnections with wait).
  void WaitConverged(grpc::ServerContext* context, bool wait,
                     uint32_t timeout_ms, const arbiter::CommandResult& r,
                     int threads, int connections,
                     v1::SettingsResponse* response, std::string* summary);

  AdminServiceOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool shutting_down_ = false;  // guarded by mu_
};

// Fills a TuneStatus message from the snapshot's autotune part.
void BuildTuneStatus(const arbiter::PoolSnapshot& s, v1::TuneStatus* out);

// grpc::Status with the same code and message (absl and gRPC share the
// code numbering).
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace forkd::admin

#endif  // FORKD_SERVER_ADMIN_ADMIN_SERVICE_H_

// The admin plane's gRPC server in the master: the Admin service,
// grpc.health.v1.Health (service "" = readiness, "liveness", "startup",
// fed by probes::HealthState) and server reflection, on --admin-bind.
//
// Its threads start after the master blocked its signals and only ever
// Post() to the arbiter; workers are fork+exec'd, so no gRPC state crosses
// a fork without exec.
#ifndef FORKD_SERVER_ADMIN_ADMIN_SERVER_H_
#define FORKD_SERVER_ADMIN_ADMIN_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/admin/admin_service.h"
#include "server/admin/admin_stats.h"
#include "server/probes/health_state.h"

namespace grpc {
class Server;
}

namespace forkd::admin {

struct AdminServerOptions {
  std::string bind;        // --admin-bind: "HOST:PORT", "[v6]:PORT", ":PORT"
  std::string token_file;  // --admin-token-file; empty: loopback rule
  std::string version;
  PoolControl* pool = nullptr;  // required; outlives the server
  AdminStats* stats = nullptr;  // required; outlives the server
  // Feeds grpc.health.v1; may be null (then "" and "liveness" report
  // SERVING while the server runs). Outlives the server.
  probes::HealthState* health = nullptr;
};

class AdminServer {
 public:
  // Reads the token file, then binds and starts serving. Fails (with a
  // message naming the flag) when the token file cannot be read or the
  // address cannot be bound. Main thread, after Arbiter::BlockSignals().
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(
      AdminServerOptions options);
  ~AdminServer();  // Shutdown()

  // The port bound (useful with port 0).
  int port() const { return port_; }

  // Reports NOT_SERVING on health, ends watch streams and waits in
  // progress, then stops the server, giving in-flight calls up to a second
  // to finish. Idempotent; main thread.
  void Shutdown();

 private:
  struct HealthLink;
  AdminServer() = default;

  std::unique_ptr<TokenFile> token_;
  std::unique_ptr<AdminService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<HealthLink> health_link_;
  int port_ = 0;
  bool stopped_ = false;
};

}  // namespace forkd::admin

#endif  // FORKD_SERVER_ADMIN_ADMIN_SERVER_H_

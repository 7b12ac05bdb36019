#include "server/admin/admin_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <chrono>
#include <mutex>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/address.h"
#include "server/common/log.h"

namespace forkd::admin {
namespace {

constexpr char kReadinessService[] = "";
constexpr char kLivenessService[] = "liveness";
constexpr char kStartupService[] = "startup";

}  // namespace

// Lets HealthState subscribers (which live as long as the HealthState)
// reach the health service only while the server exists.
struct AdminServer::HealthLink {
  std::mutex mu;
  grpc::HealthCheckServiceInterface* health = nullptr;  // guarded by mu

  void Apply(const probes::Health& h) {
    std::lock_guard<std::mutex> lock(mu);
    if (health == nullptr) return;
    health->SetServingStatus(kReadinessService, h.ready.ok);
    health->SetServingStatus(kLivenessService, h.live.ok);
    health->SetServingStatus(kStartupService, h.started.ok);
  }
};

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(
    AdminServerOptions options) {
  std::unique_ptr<AdminServer> self(new AdminServer());
  if (!options.token_file.empty()) {
    absl::StatusOr<std::unique_ptr<TokenFile>> token =
        TokenFile::Open(options.token_file);
    if (!token.ok()) return token.status();
    self->token_ = std::move(*token);
  }
  AdminServiceOptions service_options;
  service_options.pool = options.pool;
  service_options.stats = options.stats;
  service_options.token = self->token_.get();
  service_options.version = options.version;
  self->service_ = std::make_unique<AdminService>(std::move(service_options));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // A few threads are plenty for an operator's calls; watch streams each
  // hold one, so cap them rather than grow without bound.
  grpc::ResourceQuota quota("forkd-admin");
  quota.SetMaxThreads(32);
  builder.SetResourceQuota(quota);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS,
                              1);
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 2);
  absl::StatusOr<common::Address> parsed =
      common::ParseAddress(options.bind, common::AddressUse::kPlane);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--admin-bind: \"", options.bind, "\": ", parsed.status().message()));
  }
  const std::string address = parsed->HostPort();
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(),
                           &self->port_);
  builder.RegisterService(self->service_.get());
  self->server_ = builder.BuildAndStart();
  if (!self->server_ || self->port_ == 0) {
    if (self->server_) self->server_->Shutdown();
    return absl::UnavailableError(
        absl::StrCat("--admin-bind ", options.bind,
                     ": cannot listen there (address in use or not local?)"));
  }

  self->health_link_ = std::make_shared<HealthLink>();
  self->health_link_->health = self->server_->GetHealthCheckService();
  if (options.health != nullptr) {
    std::weak_ptr<HealthLink> link = self->health_link_;
    options.health->Subscribe([link](const probes::Health& h) {
      if (auto l = link.lock()) l->Apply(h);
    });
    self->health_link_->Apply(options.health->Get());
  } else {
    probes::Health up;
    up.live.ok = up.ready.ok = up.started.ok = true;
    self->health_link_->Apply(up);
  }
  LOG_INFO("Admin API (gRPC) listening at: %s%s", options.bind,
           self->token_ ? " (token required for changes)"
                        : " (changes from loopback only)");
  return self;
}

AdminServer::~AdminServer() { Shutdown(); }

void AdminServer::Shutdown() {
  if (stopped_ || !server_) return;
  stopped_ = true;
  {
    std::lock_guard<std::mutex> lock(health_link_->mu);
    if (health_link_->health != nullptr) {
      health_link_->health->Shutdown();  // NOT_SERVING, ends Watch streams
      health_link_->health = nullptr;
    }
  }
  service_->BeginShutdown();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server_->Wait();
}

}  // namespace forkd::admin

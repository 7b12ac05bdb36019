// The admin server end to end in-process: a real gRPC server on loopback
// port 0 and a real client, in front of a fake pool.
#include "server/admin/admin_server.h"

#include <grpcpp/grpcpp.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "forkd/admin/v1/admin.grpc.pb.h"
#include "gtest/gtest.h"

namespace forkd::admin {
namespace {

using arbiter::Command;
using arbiter::CommandKind;
using arbiter::CommandResult;
using arbiter::PoolSnapshot;
using arbiter::WorkerRow;
using scoreboard::WorkerState;

// Answers commands at once with `answer`; a ScaleTo/ScaleBy adds booting
// rows that turn ready after `ready_after` more snapshots (-1: never).
class FakePool : public PoolControl {
 public:
  void Post(Command command, std::function<void(CommandResult)> done) override {
    CommandResult r;
    {
      std::lock_guard<std::mutex> lock(mu_);
      posted_.push_back(command);
      r = answer_;
      if (r.status.ok() && command.kind == CommandKind::kScaleTo) {
        snapshot_.desired_workers = static_cast<int>(command.value);
        r.desired_workers = snapshot_.desired_workers;
        while (static_cast<int>(snapshot_.workers.size()) <
               snapshot_.desired_workers) {
          WorkerRow row;
          row.pid = getpid();
          row.slot = static_cast<uint32_t>(snapshot_.workers.size());
          row.generation = snapshot_.generation;
          row.state = WorkerState::kBooting;
          snapshot_.workers.push_back(row);
        }
        countdown_ = ready_after_;
      }
    }
    done(r);
  }
  PoolSnapshot Snapshot() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (countdown_ > 0 && --countdown_ == 0) {
      for (WorkerRow& row : snapshot_.workers) row.state = WorkerState::kReady;
    }
    return snapshot_;
  }

  std::vector<Command> posted() {
    std::lock_guard<std::mutex> lock(mu_);
    return posted_;
  }

  std::mutex mu_;
  PoolSnapshot snapshot_;
  CommandResult answer_;
  int ready_after_ = 3;
  int countdown_ = -1;
  std::vector<Command> posted_;
};

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pool_.snapshot_.master_pid = getpid();
    pool_.snapshot_.generation = 1;
    pool_.snapshot_.worker_class = config::WorkerClass::kGthread;
  }

  void Start(const std::string& token_file = "") {
    AdminServerOptions o;
    o.bind = "127.0.0.1:0";
    o.token_file = token_file;
    o.version = "1.2.3";
    o.pool = &pool_;
    o.stats = &stats_;
    absl::StatusOr<std::unique_ptr<AdminServer>> s =
        AdminServer::Start(std::move(o));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    ASSERT_GT(server_->port(), 0);
    stub_ = v1::Admin::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                            grpc::InsecureChannelCredentials()));
  }

  std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token = "") {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::seconds(10));
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    return ctx;
  }

  FakePool pool_;
  AdminStats stats_;
  std::unique_ptr<AdminServer> server_;
  std::unique_ptr<v1::Admin::Stub> stub_;
};

TEST_F(AdminServerTest, GetStatusReportsTheSnapshotAndTheProcess) {
  WorkerRow row;
  row.pid = getpid();
  row.state = WorkerState::kReady;
  pool_.snapshot_.workers.push_back(row);
  pool_.snapshot_.desired_workers = 1;
  Start();
  v1::ServerStatus status;
  grpc::Status s = stub_->GetStatus(Ctx().get(), {}, &status);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(status.version(), "1.2.3");
  EXPECT_EQ(status.master_pid(), getpid());
  ASSERT_EQ(status.workers_size(), 1);
  EXPECT_GT(status.workers(0).rss_bytes(), 0u);  // read from /proc
  EXPECT_GE(status.workers(0).os_threads(), 1u);
  EXPECT_EQ(stats_.Count("GetStatus", "ok"), 1u);
}

TEST_F(AdminServerTest, ScaleWithWaitAnswersWhenTheWorkersAreReady) {
  Start();
  v1::ScaleWorkersRequest req;
  req.set_count(3);
  req.set_wait(true);
  v1::ScaleWorkersResponse resp;
  grpc::Status s = stub_->ScaleWorkers(Ctx().get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(resp.waited());
  EXPECT_TRUE(resp.reached());
  EXPECT_EQ(resp.ready_workers(), 3);
  EXPECT_EQ(resp.result().desired_workers(), 3);
  ASSERT_EQ(pool_.posted().size(), 1u);
  EXPECT_EQ(pool_.posted()[0].kind, CommandKind::kScaleTo);
  EXPECT_EQ(stats_.Count("ScaleWorkers", "ok"), 1u);
}

TEST_F(AdminServerTest, ScaleWithWaitAnswersWhatWasReachedAtTheTimeout) {
  pool_.ready_after_ = -1;  // never ready
  Start();
  v1::ScaleWorkersRequest req;
  req.set_count(2);
  req.set_wait(true);
  req.set_timeout_ms(30);
  v1::ScaleWorkersResponse resp;
  grpc::Status s = stub_->ScaleWorkers(Ctx().get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(resp.waited());
  EXPECT_FALSE(resp.reached());
  EXPECT_EQ(resp.ready_workers(), 0);
}

TEST_F(AdminServerTest, DeltasAreExactAndRefusalsPassThrough) {
  pool_.answer_.status = absl::InvalidArgumentError(
      "workers would be 9 (2 +7): must be 1..4 (--max-workers is 4)");
  Start();
  v1::ScaleWorkersRequest req;
  req.set_delta(7);
  v1::ScaleWorkersResponse resp;
  grpc::Status s = stub_->ScaleWorkers(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "--max-workers"));
  ASSERT_EQ(pool_.posted().size(), 1u);
  EXPECT_EQ(pool_.posted()[0].kind, CommandKind::kScaleBy);
  EXPECT_EQ(pool_.posted()[0].value, 7);
  EXPECT_TRUE(pool_.posted()[0].exact);
  EXPECT_EQ(stats_.Count("ScaleWorkers", "invalid_argument"), 1u);

  // Neither count nor delta: refused before reaching the master.
  s = stub_->ScaleWorkers(Ctx().get(), v1::ScaleWorkersRequest(), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(pool_.posted().size(), 1u);
}

TEST_F(AdminServerTest, ThreadsOnlyForGthread) {
  pool_.snapshot_.worker_class = config::WorkerClass::kSync;
  Start();
  v1::SetThreadsRequest req;
  req.set_threads(4);
  v1::SettingsResponse resp;
  grpc::Status s = stub_->SetThreads(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "gthread"));
  EXPECT_TRUE(pool_.posted().empty());
}

TEST_F(AdminServerTest, TokenFileGuardsEveryChangeButNotReads) {
  char path[] = "/tmp/forkd-admin-token-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << "s3cret\n";
  Start(path);
  v1::CommandResponse resp;
  grpc::Status s = stub_->Drain(Ctx().get(), {}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  s = stub_->Drain(Ctx("wrong").get(), {}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(pool_.posted().empty());
  s = stub_->Drain(Ctx("s3cret").get(), {}, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(pool_.posted().size(), 1u);
  EXPECT_EQ(pool_.posted()[0].kind, CommandKind::kDrain);
  v1::ServerStatus status;
  EXPECT_TRUE(stub_->GetStatus(Ctx().get(), {}, &status).ok());
  EXPECT_EQ(stats_.Count("Drain", "unauthenticated"), 1u);
  EXPECT_EQ(stats_.Count("Drain", "permission_denied"), 1u);
  EXPECT_EQ(stats_.Count("Drain", "ok"), 1u);

  // A token file emptied (or gone) fails closed: the old token is refused,
  // loopback or not, with a message saying why; reads stay open.
  std::ofstream(path, std::ios::trunc) << "";
  s = stub_->Drain(Ctx("s3cret").get(), {}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "--admin-token-file"))
      << s.error_message();
  EXPECT_EQ(pool_.posted().size(), 1u);
  EXPECT_TRUE(stub_->GetStatus(Ctx().get(), {}, &status).ok());
  EXPECT_EQ(stats_.Count("Drain", "failed_precondition"), 1u);
  std::ofstream(path, std::ios::trunc) << "n3w\n";
  s = stub_->Drain(Ctx("n3w").get(), {}, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(pool_.posted().size(), 2u);
  unlink(path);
}

TEST_F(AdminServerTest, WatchEndsWhenTheServerShutsDown) {
  Start();
  grpc::ClientContext ctx;
  v1::WatchStatusRequest req;
  req.set_interval_ms(100);
  auto reader = stub_->WatchStatus(&ctx, req);
  v1::ServerStatus status;
  ASSERT_TRUE(reader->Read(&status));
  ASSERT_TRUE(reader->Read(&status));
  server_->Shutdown();
  while (reader->Read(&status)) {
  }
  reader->Finish();  // ended (OK or cancelled), not hung
}

}  // namespace
}  // namespace forkd::admin

#include "control/forkctl_output.h"

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "control/forkctl.h"
#include "gtest/gtest.h"

namespace forkd::control {
namespace {

TEST(ForkctlOutputTest, TablesAlignColumnsLikeKubectl) {
  EXPECT_EQ(FormatTable({{"NAME", "READY"}, {"a-long-name", "1/1"}, {"b", ""}}),
            "NAME          READY\n"
            "a-long-name   1/1\n"
            "b\n");
}

TEST(ForkctlOutputTest, AgesAndBytes) {
  EXPECT_EQ(FormatAge(0.25), "250ms");
  EXPECT_EQ(FormatAge(45.9), "45s");
  EXPECT_EQ(FormatAge(303), "5m3s");
  EXPECT_EQ(FormatAge(600), "10m");
  EXPECT_EQ(FormatAge(2 * 3600 + 5 * 60 + 7), "2h5m");
  EXPECT_EQ(FormatAge(3 * 86400 + 4 * 3600), "3d4h");
  EXPECT_EQ(FormatBytes(512), "512");
  EXPECT_EQ(FormatBytes(2048), "2.00Ki");
  EXPECT_EQ(FormatBytes(12900000), "12.3Mi");
  EXPECT_EQ(FormatBytes(300ull << 20), "300Mi");
}

TEST(ForkctlOutputTest, StatusShowsPoolAndWorkers) {
  v1::ServerStatus s;
  s.set_master_pid(7);
  s.set_version("0.1.0");
  s.set_worker_class("gthread");
  s.set_desired_workers(2);
  s.set_actual_workers(2);
  s.set_ready_workers(2);
  s.set_threads(4);
  s.set_draining(true);
  v1::WorkerStatus* w = s.add_workers();
  w->set_pid(1234);
  w->set_state(v1::WORKER_STATE_BUSY);
  w->set_rss_bytes(10 << 20);
  w->set_last_exit("crash");
  std::string text = FormatStatus(s);
  EXPECT_TRUE(absl::StartsWith(text, "MASTER   VERSION"));
  EXPECT_TRUE(absl::StrContains(text, "2/2")) << text;
  EXPECT_TRUE(absl::StrContains(text, "draining")) << text;
  EXPECT_TRUE(absl::StrContains(text, "1234")) << text;
  EXPECT_TRUE(absl::StrContains(text, "busy")) << text;
  EXPECT_TRUE(absl::StrContains(text, "10.0Mi")) << text;
  EXPECT_TRUE(absl::StrContains(text, "crash")) << text;
}

TEST(ForkctlOutputTest, AppModeShowsAModeLineAndTheAppProcesses) {
  v1::ServerStatus s;
  s.set_master_pid(7);
  s.set_worker_class("sync");
  s.set_desired_workers(2);
  s.set_actual_workers(2);
  s.set_ready_workers(1);
  s.set_mode("app");
  s.set_app_command("python3 app.py");
  s.set_proxy_workers(1);
  s.set_ready_proxy_workers(1);
  s.set_proxy_worker_class("async");
  v1::AppProcessStatus* a = s.add_app_processes();
  a->set_slot(0);
  a->set_pid(4321);
  a->set_state(v1::APP_PROCESS_STATE_READY);
  a->set_requests(17);
  a->set_cap(1);
  a->set_rss_bytes(30 << 20);
  a->set_restarts(2);
  a->set_last_exit("crash");
  a->set_last_exit_signal(9);
  a->set_last_exit_code(-1);
  v1::AppProcessStatus* b = s.add_app_processes();
  b->set_slot(1);
  b->set_pid(4322);
  b->set_state(v1::APP_PROCESS_STATE_STARTING);
  b->set_last_exit_code(-1);
  v1::WorkerStatus* w = s.add_workers();
  w->set_pid(999);
  w->set_state(v1::WORKER_STATE_READY);
  std::string text = FormatStatus(s);
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  ASSERT_GE(lines.size(), 10u) << text;
  EXPECT_TRUE(absl::StartsWith(lines[0], "MASTER   VERSION"));
  EXPECT_EQ(lines[2], "");
  EXPECT_EQ(lines[3],
            "Mode: app: 2 sync app processes of `python3 app.py`; 1/1 async "
            "proxy workers ready");
  EXPECT_EQ(lines[5], "APP PROCESSES");
  EXPECT_TRUE(absl::StartsWith(lines[6], "SLOT   PID    STATE")) << lines[6];
  EXPECT_TRUE(absl::StrContains(lines[7], "4321")) << text;
  EXPECT_TRUE(absl::StrContains(lines[7], "30.0Mi")) << text;
  EXPECT_TRUE(absl::EndsWith(lines[7], "2          crash (SIGKILL)")) << text;
  EXPECT_TRUE(absl::StrContains(lines[8], "starting")) << text;
  EXPECT_TRUE(absl::EndsWith(lines[8], "-")) << text;
  EXPECT_EQ(lines[10], "PROXY WORKERS");
  EXPECT_TRUE(absl::StrContains(lines[12], "999")) << text;
}

TEST(ForkctlOutputTest, LastExitNamesTheCodeOrTheSignal) {
  v1::AppProcessStatus a;
  a.set_last_exit_code(-1);
  EXPECT_EQ(FormatLastExit(a), "-");
  a.set_last_exit("timeout");
  a.set_last_exit_signal(6);
  EXPECT_EQ(FormatLastExit(a), "timeout (SIGABRT)");
  a.set_last_exit("crash");
  a.set_last_exit_signal(0);
  a.set_last_exit_code(3);
  EXPECT_EQ(FormatLastExit(a), "crash (code 3)");
}

TEST(ForkctlOutputTest, SidecarStatusHasNoModeLine) {
  v1::ServerStatus s;
  s.set_mode("sidecar");
  s.add_workers()->set_pid(5);
  std::string text = FormatStatus(s);
  EXPECT_FALSE(absl::StrContains(text, "Mode:")) << text;
  EXPECT_FALSE(absl::StrContains(text, "APP PROCESSES")) << text;
  EXPECT_FALSE(absl::StrContains(text, "PROXY WORKERS")) << text;
}

TEST(ForkctlOutputTest, JsonUsesProtoFieldNamesWithDefaults) {
  v1::CommandResponse r;
  r.set_message("draining");
  std::string json = ToJson(r, false);
  EXPECT_TRUE(absl::StrContains(json, "\"message\":\"draining\"")) << json;
  EXPECT_TRUE(absl::StrContains(json, "\"desired_workers\":0")) << json;
}

TEST(ForkctlOutputTest, UnreachableServerSuggestsPortForward) {
  std::string text = DescribeError(
      grpc::Status(grpc::StatusCode::UNAVAILABLE, "failed to connect"),
      "localhost:9090");
  EXPECT_TRUE(absl::StrContains(text, "kubectl port-forward pod/<pod> 9090"))
      << text;
  text = DescribeError(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                    "threads must be 1..16 (--max-threads)"),
                       "x:1");
  EXPECT_TRUE(absl::StrContains(text, "--max-threads")) << text;
  EXPECT_FALSE(absl::StrContains(text, "port-forward"));
}

}  // namespace
}  // namespace forkd::control

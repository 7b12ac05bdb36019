#include "server/worker/worker_launch.h"

#include <string>

#include "gtest/gtest.h"
#include "server/config/config.h"

namespace forkd::worker {
namespace {

WorkerLaunch Sample() {
  WorkerLaunch l;
  l.slot = 3;
  l.generation = 2;
  l.scoreboard_fd = 7;
  l.listen_fds = {4, 5};
  l.record_metrics = false;
  l.config.bind = {"127.0.0.1:0", "unix:/tmp/a,b.sock"};
  // netstring look-alikes
  l.config.access_logformat = "%(h)s \"%(r)s\" 12:34, 5:x,";
  l.config.workers = 4;
  return l;
}

TEST(WorkerLaunchTest, RoundTripsEveryField) {
  WorkerLaunch in = Sample();
  absl::StatusOr<WorkerLaunch> out = DecodeWorkerLaunch(EncodeWorkerLaunch(in));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, in);
  // What the worker gets is the master's Config, field for field.
  EXPECT_EQ(out->config.bind,
            (std::vector<std::string>{"127.0.0.1:0", "unix:/tmp/a,b.sock"}));
  EXPECT_EQ(out->config.access_logformat, "%(h)s \"%(r)s\" 12:34, 5:x,");
}

TEST(WorkerLaunchTest, CarriesAppModeButNoConfigFile) {
  WorkerLaunch in = Sample();
  in.config.app_cmd = "python3 app.py --port '{socket}'";
  in.config.proxy_workers = 2;
  in.config.config_file = "/etc/forkd.conf";  // the worker must not read it
  absl::StatusOr<WorkerLaunch> out = DecodeWorkerLaunch(EncodeWorkerLaunch(in));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(config::AppMode(out->config));
  EXPECT_EQ(out->config.app_cmd, in.config.app_cmd);
  EXPECT_EQ(out->config.proxy_workers, 2);
  EXPECT_EQ(out->config.config_file, "");
  in.config.config_file = "";
  in.config.upstream = out->config.upstream;  // app mode does not carry it
  EXPECT_EQ(*out, in);
}

TEST(WorkerLaunchTest, RefusesSettingsTheConfigRefuses) {
  // A well-formed message whose settings do not parse: the worker names the
  // setting instead of running with a default.
  WorkerLaunch in = Sample();
  in.config.timeout = -1;
  absl::StatusOr<WorkerLaunch> out = DecodeWorkerLaunch(EncodeWorkerLaunch(in));
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("settings"), absl::string_view::npos)
      << out.status();
  EXPECT_NE(out.status().message().find("--timeout"), absl::string_view::npos)
      << out.status();
}

TEST(WorkerLaunchTest, EmptyListsRoundTrip) {
  WorkerLaunch in;
  in.scoreboard_fd = 0;
  absl::StatusOr<WorkerLaunch> out = DecodeWorkerLaunch(EncodeWorkerLaunch(in));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, in);
}

TEST(WorkerLaunchTest, RefusesEveryTruncation) {
  std::string m = EncodeWorkerLaunch(Sample());
  for (size_t n = 0; n < m.size(); ++n) {
    EXPECT_FALSE(DecodeWorkerLaunch(m.substr(0, n)).ok()) << n;
  }
  EXPECT_FALSE(DecodeWorkerLaunch(m + "x").ok());
}

TEST(WorkerLaunchTest, RefusesAnotherVersionAndBadNumbers) {
  std::string m = EncodeWorkerLaunch(Sample());
  std::string other = m;
  other.replace(other.find("/1"), 2, "/2");
  absl::StatusOr<WorkerLaunch> r = DecodeWorkerLaunch(other);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("version"), absl::string_view::npos);

  WorkerLaunch bad = Sample();
  bad.scoreboard_fd = -1;
  EXPECT_FALSE(DecodeWorkerLaunch(EncodeWorkerLaunch(bad)).ok());
  EXPECT_FALSE(DecodeWorkerLaunch("99999999:x,").ok());
}

}  // namespace
}  // namespace forkd::worker

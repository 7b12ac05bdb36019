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
  config::Config c;
  c.bind = {"127.0.0.1:0", "unix:/tmp/a,b.sock"};
  c.access_logformat = "%(h)s \"%(r)s\" 12:34, 5:x,";  // netstring look-alikes
  l.config_args = config::ToArgs(c);
  return l;
}

TEST(WorkerLaunchTest, RoundTripsEveryField) {
  WorkerLaunch in = Sample();
  absl::StatusOr<WorkerLaunch> out = DecodeWorkerLaunch(EncodeWorkerLaunch(in));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, in);
  // What the worker parses is the master's Config, field for field.
  config::Sources sources;
  sources.args = out->config_args;
  absl::StatusOr<config::ParseResult> parsed = config::Parse(sources);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.bind,
            (std::vector<std::string>{"127.0.0.1:0", "unix:/tmp/a,b.sock"}));
  EXPECT_EQ(parsed->config.access_logformat, "%(h)s \"%(r)s\" 12:34, 5:x,");
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

TEST(WorkerLaunchTest, TitleIsWhatPsShows) {
  EXPECT_EQ(WorkerTitle(3, 2), "forkd: worker 3 (gen 2)");
}

}  // namespace
}  // namespace forkd::worker

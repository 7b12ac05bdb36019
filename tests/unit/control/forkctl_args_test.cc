#include "control/forkctl_args.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace forkd::control {
namespace {

Invocation Parse(std::vector<std::string> args) {
  absl::StatusOr<Invocation> inv = ParseArgs(args);
  EXPECT_TRUE(inv.ok()) << inv.status();
  return inv.ok() ? *inv : Invocation{};
}

absl::Status Error(std::vector<std::string> args) {
  return ParseArgs(args).status();
}

TEST(ForkctlArgsTest, DefaultsAndGlobalFlags) {
  Invocation inv = Parse({"status"});
  EXPECT_EQ(inv.addr, "localhost:9090");
  EXPECT_EQ(inv.output, Output::kTable);
  EXPECT_EQ(inv.verb, Verb::kStatus);
  EXPECT_FALSE(inv.watch);

  inv = Parse({"--addr", "127.0.0.1:7000", "--token-file", "/t", "-o", "json",
               "status", "--watch"});
  EXPECT_EQ(inv.addr, "127.0.0.1:7000");
  EXPECT_EQ(inv.token_file, "/t");
  EXPECT_EQ(inv.output, Output::kJson);
  EXPECT_TRUE(inv.watch);

  inv = Parse({"status", "--addr=h:1", "-ojson"});  // flags after the command
  EXPECT_EQ(inv.addr, "h:1");
  EXPECT_EQ(inv.output, Output::kJson);
  EXPECT_EQ(Parse({"-o", "table", "drain"}).output, Output::kTable);
}

TEST(ForkctlArgsTest, ScaleAbsoluteAndRelative) {
  Invocation inv = Parse({"scale", "6"});
  EXPECT_EQ(inv.verb, Verb::kScale);
  EXPECT_EQ(inv.value, 6);
  EXPECT_FALSE(inv.relative);
  inv = Parse({"scale", "+4", "--wait"});
  EXPECT_EQ(inv.value, 4);
  EXPECT_TRUE(inv.relative);
  EXPECT_TRUE(inv.wait);
  inv = Parse({"scale", "-2"});  // a delta, not a flag
  EXPECT_EQ(inv.value, -2);
  EXPECT_TRUE(inv.relative);
  EXPECT_EQ(Parse({"scale", "0"}).value, 0);  // the server names the limit
}

TEST(ForkctlArgsTest, EveryCommand) {
  EXPECT_EQ(Parse({"threads", "8"}).verb, Verb::kThreads);
  EXPECT_EQ(Parse({"threads", "8"}).value, 8);
  EXPECT_EQ(Parse({"connections", "500"}).verb, Verb::kConnections);
  EXPECT_EQ(Parse({"reload"}).verb, Verb::kReload);
  EXPECT_EQ(Parse({"drain"}).verb, Verb::kDrain);
  EXPECT_EQ(Parse({"resume"}).verb, Verb::kResume);
  EXPECT_EQ(Parse({"shutdown"}).verb, Verb::kShutdown);
  EXPECT_FALSE(Parse({"shutdown"}).quick);
  EXPECT_TRUE(Parse({"shutdown", "--quick"}).quick);
  EXPECT_EQ(Parse({"kill", "1234"}).value, 1234);
  EXPECT_EQ(Parse({"version"}).verb, Verb::kVersion);
  EXPECT_EQ(Parse({}).verb, Verb::kHelp);
  EXPECT_EQ(Parse({"--help"}).verb, Verb::kHelp);
  EXPECT_EQ(Parse({"scale", "-h"}).verb, Verb::kHelp);
}

TEST(ForkctlArgsTest, BadCommandLinesSayWhy) {
  EXPECT_TRUE(absl::StrContains(Error({"frobnicate"}).message(), "frobnicate"));
  EXPECT_TRUE(absl::StrContains(Error({"scale"}).message(), "scale"));
  EXPECT_TRUE(absl::StrContains(Error({"scale", "lots"}).message(), "lots"));
  EXPECT_FALSE(Error({"scale", "1", "2"}).ok());
  EXPECT_FALSE(Error({"threads", "+2"}).ok());
  EXPECT_FALSE(Error({"threads", "-2"}).ok());
  EXPECT_FALSE(Error({"kill"}).ok());
  EXPECT_FALSE(Error({"drain", "now"}).ok());
  EXPECT_FALSE(Error({"-o", "yaml", "status"}).ok());
  EXPECT_FALSE(Error({"--addr"}).ok());
  EXPECT_TRUE(
      absl::StrContains(Error({"--bogus", "status"}).message(), "--bogus"));
  EXPECT_FALSE(Error({"drain", "--wait"}).ok());
  EXPECT_FALSE(Error({"scale", "2", "--watch"}).ok());
  EXPECT_FALSE(Error({"reload", "--quick"}).ok());
}

TEST(ForkctlArgsTest, UsageListsEveryCommand) {
  std::string u = Usage();
  for (const char* c :
       {"status", "--watch", "scale", "--wait", "threads", "connections",
        "reload", "drain", "resume", "shutdown", "--quick", "kill", "version",
        "--addr", "--token-file", "port-forward"}) {
    EXPECT_TRUE(absl::StrContains(u, c)) << c;
  }
}

}  // namespace
}  // namespace forkd::control

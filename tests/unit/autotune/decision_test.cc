#include "server/autotune/decision.h"

#include <limits>

#include "gtest/gtest.h"

namespace forkd::autotune {
namespace {

TEST(Decision, RendersOneJsonLine) {
  Decision d;
  d.at_seconds = 12.5;
  d.controller = "capacity";
  d.rule = Rule::kProbe;
  d.knob = Knob::kThreads;
  d.old_value = 4;
  d.new_value = 8;
  d.inputs = {{"throughput", 812.25}, {"p99", 0.0421}};
  d.why = "expected gain 40% > 5%";
  EXPECT_TRUE(d.changes());
  EXPECT_EQ(d.ToJson(),
            "{\"at\":12.5,\"controller\":\"capacity\",\"rule\":\"probe\","
            "\"knob\":\"threads\",\"old\":4,\"new\":8,\"inputs\":{"
            "\"throughput\":812.25,\"p99\":0.0421},\"why\":\"expected gain "
            "40% > 5%\"}");
}

TEST(Decision, EscapesAndNonFiniteNumbers) {
  Decision d;
  d.why = "a \"quoted\"\nline\\";
  d.inputs = {{"x", std::numeric_limits<double>::infinity()}};
  const std::string j = d.ToJson();
  EXPECT_NE(j.find("\"why\":\"a \\\"quoted\\\"\\nline\\\\\""),
            std::string::npos)
      << j;
  EXPECT_NE(j.find("\"x\":null"), std::string::npos) << j;
  EXPECT_FALSE(d.changes());
  EXPECT_EQ(JsonQuote(std::string("\x01", 1)), "\"\\u0001\"");
}

TEST(Report, FlagsJsonAndText) {
  Report r;
  r.app_class = "io-bound";
  r.points = {{3, 4, 11.5, 220, 0.05, 0.12}, {3, 8, 23.0, 430, 0.05, 0.13}};
  r.usl_valid = true;
  r.sigma = 0.01;
  r.kappa = 0.0005;
  r.knee = 44.5;
  r.workers = 3;
  r.threads = 8;
  EXPECT_EQ(r.RecommendedFlags(), "-w 3 --threads 8");
  const std::string j = r.ToJson();
  EXPECT_NE(j.find("\"recommended\":\"-w 3 --threads 8\""), std::string::npos);
  EXPECT_NE(j.find("\"knee\":44.5"), std::string::npos) << j;
  EXPECT_NE(j.find("{\"workers\":3,\"threads\":8,\"concurrency\":23"),
            std::string::npos)
      << j;
  const std::string t = r.ToText();
  EXPECT_NE(t.find("knee 44.5"), std::string::npos) << t;
  EXPECT_NE(t.find("recommended: -w 3 --threads 8"), std::string::npos) << t;
}

}  // namespace
}  // namespace forkd::autotune

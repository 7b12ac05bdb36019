#include "server/config/autotune_settings.h"

#include "gtest/gtest.h"

namespace forkd::config {
namespace {

TEST(AutotuneSettingsTest, ModesParseAndName) {
  EXPECT_EQ(ParseAutotuneMode("off"), AutotuneMode::kOff);
  EXPECT_EQ(ParseAutotuneMode(" LIMIT "), AutotuneMode::kLimit);
  EXPECT_EQ(ParseAutotuneMode("full"), AutotuneMode::kFull);
  EXPECT_EQ(ParseAutotuneMode("on"), std::nullopt);
  EXPECT_STREQ(AutotuneModeName(AutotuneMode::kLimit), "limit");
}

TEST(AutotuneSettingsTest, BoundsRoundTrip) {
  absl::StatusOr<AutotuneBounds> b =
      ParseAutotuneBounds("threads=2:16, workers=1:8,limit=3:200");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->min_workers, 1);
  EXPECT_EQ(b->max_workers, 8);
  EXPECT_EQ(b->min_threads, 2);
  EXPECT_EQ(b->max_threads, 16);
  EXPECT_EQ(b->min_limit, 3);
  EXPECT_EQ(b->max_limit, 200);
  EXPECT_EQ(FormatAutotuneBounds(*b), "workers=1:8,threads=2:16,limit=3:200");
  EXPECT_EQ(*ParseAutotuneBounds(FormatAutotuneBounds(*b)), *b);
  EXPECT_TRUE(ParseAutotuneBounds("")->empty());
  EXPECT_EQ(FormatAutotuneBounds(AutotuneBounds{}), "");
}

TEST(AutotuneSettingsTest, BadBoundsSayWhichPart) {
  EXPECT_EQ(ParseAutotuneBounds("workers=1:8,threads=9:2").status().message(),
            "threads=9:2: min above max");
  EXPECT_EQ(ParseAutotuneBounds("limit=a:b").status().message(),
            "limit=a:b: the range is not MIN:MAX (two integers)");
  EXPECT_FALSE(ParseAutotuneBounds("workers").ok());
  EXPECT_FALSE(ParseAutotuneBounds("workers=1:200000").ok());
}

TEST(AutotuneSettingsTest, Durations) {
  EXPECT_DOUBLE_EQ(*ParseDuration("250ms"), 0.25);
  EXPECT_DOUBLE_EQ(*ParseDuration("1.5s"), 1.5);
  EXPECT_DOUBLE_EQ(*ParseDuration("2m"), 120);
  EXPECT_DOUBLE_EQ(*ParseDuration("0.3"), 0.3);
  EXPECT_FALSE(ParseDuration("ms").ok());
  EXPECT_FALSE(ParseDuration("-1s").ok());
  EXPECT_FALSE(ParseDuration("inf").ok());
  EXPECT_FALSE(ParseDuration("1h").ok());
}

}  // namespace
}  // namespace forkd::config

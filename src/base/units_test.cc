#include "base/units.h"

#include <gtest/gtest.h>

namespace agentfense {
namespace {

using std::chrono::nanoseconds;

TEST(ParseDuration, AcceptsGoStyle) {
  EXPECT_EQ(*ParseDuration("30s"), nanoseconds(30'000'000'000));
  EXPECT_EQ(*ParseDuration("1.5s"), nanoseconds(1'500'000'000));
  EXPECT_EQ(*ParseDuration("250ms"), nanoseconds(250'000'000));
  EXPECT_EQ(*ParseDuration("1h30m"), nanoseconds(5400'000'000'000));
  EXPECT_EQ(*ParseDuration("0"), nanoseconds(0));
  EXPECT_EQ(*ParseDuration("10us"), nanoseconds(10'000));
}

TEST(ParseDuration, RejectsBadInput) {
  for (const char* bad : {"", "s", "10", "-1s", "1x", "1.s5", "ms", "99999999999999h"}) {
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
  }
}

TEST(FormatDurationSeconds, RoundTrips) {
  EXPECT_EQ(FormatDurationSeconds(nanoseconds(30'000'000'000)), "30s");
  EXPECT_EQ(FormatDurationSeconds(nanoseconds(1'500'000'000)), "1.5s");
  EXPECT_EQ(*ParseDuration(FormatDurationSeconds(nanoseconds(123'456'789))), nanoseconds(123'456'789));
}

TEST(ParseSize, Units) {
  EXPECT_EQ(*ParseSize("1048576"), 1048576u);
  EXPECT_EQ(*ParseSize("512M"), 512u << 20);
  EXPECT_EQ(*ParseSize("2GiB"), 2ull << 30);
  EXPECT_EQ(*ParseSize("1.5K"), 1536u);
  for (const char* bad : {"", "M", "12Q", "-1", "99999999999T"}) {
    EXPECT_FALSE(ParseSize(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace agentfense

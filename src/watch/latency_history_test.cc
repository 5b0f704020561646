#include "watch/latency_history.h"

#include <gtest/gtest.h>

namespace backstop {
namespace {

constexpr int64_t kSecond = 1'000'000;
constexpr int64_t kStart = 1'800'000'000 * kSecond;

TEST(LatencyHistoryTest, OnePointPerBucketWithTheSlowestAndAnyFailure) {
  LatencyHistory h;
  h.Add(kStart, 5, true);
  h.Add(kStart + 2 * kSecond, 9, false);
  h.Add(kStart + 4 * kSecond, 3, true);
  h.Add(kStart + 10 * kSecond, 4, true);
  auto j = h.ToJson(kStart + 11 * kSecond);
  ASSERT_EQ(j.size(), 2u) << j.dump();
  EXPECT_EQ(j[0][0].get<int64_t>(), kStart / 1000);
  EXPECT_EQ(j[0][1].get<double>(), 9);
  EXPECT_EQ(j[0][2].get<int>(), 0);
  EXPECT_EQ(j[1][1].get<double>(), 4);
  EXPECT_EQ(j[1][2].get<int>(), 1);
}

TEST(LatencyHistoryTest, BoundedToTheLastHourHoweverLongItRuns) {
  LatencyHistory h;
  // A day of probes every second: memory stays at an hour of buckets.
  for (int64_t s = 0; s < 24 * 3600; ++s) h.Add(kStart + s * kSecond, double(s % 100), true);
  EXPECT_LE(h.size(), LatencyHistory::kMaxPoints);
  const int64_t now = kStart + 24 * 3600 * kSecond;
  auto j = h.ToJson(now);
  EXPECT_GE(j.size(), LatencyHistory::kMaxPoints - 1);
  EXPECT_GT(j.front()[0].get<int64_t>(), (now - LatencyHistory::kKeepUs) / 1000);
  // An hour later with no probe, nothing is shown.
  EXPECT_TRUE(h.ToJson(now + LatencyHistory::kKeepUs + LatencyHistory::kBucketUs).empty());
}

TEST(LatencyHistoryTest, AClockSteppingBackIsIgnored) {
  LatencyHistory h;
  h.Add(kStart + 100 * kSecond, 5, true);
  h.Add(kStart, 50, false);
  auto j = h.ToJson(kStart + 101 * kSecond);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0][1].get<double>(), 5);
}

}  // namespace
}  // namespace backstop

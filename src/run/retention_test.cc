// The retention policy against restore points at fixed times: exactly which
// are kept, and why, across an hour, a day, an ISO week and a month boundary.
#include "run/retention.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace backstop {
namespace {

// Microseconds since the epoch of a UTC time "YYYY-MM-DDTHH:MM".
int64_t At(const std::string& when) {
  struct tm tm {};
  strptime(when.c_str(), "%Y-%m-%dT%H:%M", &tm);
  return static_cast<int64_t>(timegm(&tm)) * 1000000;
}

RestorePoint Point(const std::string& id, const std::string& when) {
  RestorePoint rp;
  rp.id = id;
  rp.created_wall_us = At(when);
  return rp;
}

// Newest first: two in one hour, two in the hour before and that morning,
// a Sunday (ISO week 48) evening and morning, the Sunday before (week 47),
// and one in the month before.
std::vector<RestorePoint> Points() {
  return {Point("H", "2026-10-15T12:00"), Point("G", "2026-11-22T12:00"),
          Point("F", "2026-11-29T08:00"), Point("E", "2026-11-29T23:00"),
          Point("D", "2026-11-30T09:00"), Point("C", "2026-11-30T13:30"),
          Point("B", "2026-11-30T14:10"), Point("A", "2026-11-30T14:50")};
}

std::set<std::string> Ids(const std::map<std::string, std::vector<std::string>>& kept) {
  std::set<std::string> out;
  for (const auto& [id, reasons] : kept) out.insert(id);
  return out;
}

TEST(RetentionTest, KeepsTheNewestOfEachOfTheLastPeriodsThatHaveOne) {
  KeepPolicy policy;
  policy.last = 1;
  policy.hourly = 3;
  policy.daily = 3;
  policy.weekly = 3;
  policy.monthly = 2;
  auto kept = KeptByPolicy(Points(), policy);
  EXPECT_EQ(Ids(kept), (std::set<std::string>{"A", "C", "D", "E", "G", "H"}));
  EXPECT_EQ(kept["A"],
            (std::vector<std::string>{"last 1", "hourly 2026-11-30T14", "daily 2026-11-30",
                                      "weekly 2026-W49", "monthly 2026-11"}));
  EXPECT_EQ(kept["C"], (std::vector<std::string>{"hourly 2026-11-30T13"}));
  EXPECT_EQ(kept["D"], (std::vector<std::string>{"hourly 2026-11-30T09"}));
  EXPECT_EQ(kept["E"], (std::vector<std::string>{"daily 2026-11-29", "weekly 2026-W48"}));
  EXPECT_EQ(kept["G"], (std::vector<std::string>{"daily 2026-11-22", "weekly 2026-W47"}));
  EXPECT_EQ(kept["H"], (std::vector<std::string>{"monthly 2026-10"}));
}

TEST(RetentionTest, EachRuleCountsPeriodsNotRestorePoints) {
  KeepPolicy hourly;
  hourly.hourly = 2;  // the two newest hours that have one: 14h (A, not B) and 13h (C)
  EXPECT_EQ(Ids(KeptByPolicy(Points(), hourly)), (std::set<std::string>{"A", "C"}));
  KeepPolicy daily;
  daily.daily = 4;  // 11-30, 11-29, 11-22, 10-15: days without one are not counted
  EXPECT_EQ(Ids(KeptByPolicy(Points(), daily)), (std::set<std::string>{"A", "E", "G", "H"}));
  KeepPolicy monthly;
  monthly.monthly = 5;  // only two months have one
  EXPECT_EQ(Ids(KeptByPolicy(Points(), monthly)), (std::set<std::string>{"A", "H"}));
}

TEST(RetentionTest, LastKeepsTheNewestWhateverTheirTimes) {
  KeepPolicy policy;
  policy.last = 3;
  EXPECT_EQ(Ids(KeptByPolicy(Points(), policy)), (std::set<std::string>{"A", "B", "C"}));
}

TEST(RetentionTest, AnEmptyPolicyKeepsNothing) {
  KeepPolicy policy;
  EXPECT_TRUE(policy.empty());
  EXPECT_TRUE(KeptByPolicy(Points(), policy).empty());
  EXPECT_EQ(DescribeKeepPolicy(policy), "none");
  policy.last = 2;
  policy.daily = 7;
  EXPECT_EQ(DescribeKeepPolicy(policy), "last 2, daily 7");
}

}  // namespace
}  // namespace backstop

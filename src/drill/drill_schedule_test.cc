// Tests of the drill schedule (drill_schedule.h): calendar periods, cron,
// what is due over a simulated year on a FakeClock, the rotating component
// and the trend.
#include "drill/drill_schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "testing/test_env.h"
#include "testing/test_spec.h"

namespace backstop {
namespace {

constexpr int64_t kDayUs = 24LL * 3600 * 1'000'000;
// Monday 2026-11-30 00:00:00 UTC.
constexpr int64_t kMonday = 1'795'996'800LL * 1'000'000;

Spec RotationSpec() {
  Spec spec;
  testing::AddComponent(&spec, "config", ComponentKind::kConfig);
  testing::AddComponent(&spec, "postgres", ComponentKind::kDatabase);
  testing::AddComponent(&spec, "orchestrator", ComponentKind::kService);
  testing::AddComponent(&spec, "webui", ComponentKind::kService);
  return spec;
}

DrillSpec Weekly() {
  DrillSpec d;
  d.name = "weekly-component";
  d.scenario = "service_failure";
  d.schedule = "weekly";
  return d;
}

DrillRecord Ran(const DrillSpec& d, const std::string& id, int64_t at_us,
                const std::string& component = "") {
  DrillRecord r;
  r.id = id;
  r.name = d.name;
  r.scenario = d.scenario;
  r.component = component;
  r.status = DrillStatus::kPassed;
  r.started_us = at_us;
  return r;
}

TEST(DrillScheduleTest, CalendarPeriodsAreUtcWeeksMonthsQuartersAndYears) {
  EXPECT_EQ(DrillPeriod("weekly", kMonday), "2026-W49");
  EXPECT_EQ(DrillPeriod("weekly", kMonday - 1), "2026-W48");  // Sunday night
  EXPECT_EQ(DrillPeriod("monthly", kMonday), "2026-11");
  EXPECT_EQ(DrillPeriod("quarterly", kMonday), "2026-Q4");
  EXPECT_EQ(DrillPeriod("annually", kMonday), "2026");
  EXPECT_EQ(DrillPeriod("hourly", kMonday), "");
}

TEST(DrillScheduleTest, WeeklyIsDueOncePerIsoWeek) {
  DrillSpec d = Weekly();
  std::string why;
  EXPECT_TRUE(DrillDue(d, {}, kMonday, &why));
  EXPECT_EQ(why, "weekly: none yet in 2026-W49");
  std::vector<DrillRecord> history = {Ran(d, "d1", kMonday + 3600LL * 1'000'000)};
  EXPECT_FALSE(DrillDue(d, history, kMonday + 6 * kDayUs, &why));  // Sunday
  EXPECT_EQ(why, "weekly: done in 2026-W49 (drill d1)");
  EXPECT_TRUE(DrillDue(d, history, kMonday + 7 * kDayUs, &why));  // next Monday
  // Another drill's run does not count.
  DrillSpec other = d;
  other.name = "other";
  EXPECT_TRUE(DrillDue(other, history, kMonday + kDayUs, nullptr));
}

TEST(DrillScheduleTest, AYearOnAFakeClockRunsEachScheduleItsNumberOfTimes) {
  testing::FakeClock clock(0, kMonday);
  std::map<std::string, int> runs;
  std::vector<DrillRecord> history;
  std::vector<DrillSpec> drills;
  for (const char* s : {"weekly", "monthly", "quarterly", "annually"}) {
    DrillSpec d = Weekly();
    d.name = s;
    d.schedule = s;
    drills.push_back(d);
  }
  DrillSpec cron = Weekly();
  cron.name = "cron";
  cron.schedule = "0 3 1 * *";  // 03:00 on the first of each month
  drills.push_back(cron);
  // `drill --due` every hour for a year (2026-11-30 to 2027-11-29).
  for (int hour = 0; hour < 364 * 24; ++hour) {
    for (const auto& d : drills) {
      if (DrillDue(d, history, clock.WallMicros(), nullptr)) {
        history.push_back(Ran(d, d.name + std::to_string(hour), clock.WallMicros()));
        ++runs[d.name];
      }
    }
    clock.AdvanceMs(3'600'000);
  }
  EXPECT_EQ(runs["weekly"], 52);
  EXPECT_EQ(runs["monthly"], 13);   // November 2026, then December to November
  EXPECT_EQ(runs["quarterly"], 5);  // 2026-Q4, then four quarters of 2027
  EXPECT_EQ(runs["annually"], 2);   // 2026, 2027
  EXPECT_EQ(runs["cron"], 13);      // fired on 2026-11-01 (never run), then 12 firsts
}

TEST(DrillScheduleTest, CronFindsItsLastFiring) {
  // Monday 2026-11-30 00:00 UTC; "0 3 * * 1" (Mondays 03:00) last fired a week before.
  auto last = LastCronFiring("0 3 * * mon", kMonday);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(*last, kMonday - 7 * kDayUs + 3 * 3600LL * 1'000'000);
  EXPECT_EQ(LastCronFiring("*/15 * * * *", kMonday + 14 * 60'000'000LL), kMonday);
  EXPECT_EQ(LastCronFiring("5/15 * * * *", kMonday + 21 * 60'000'000LL),
            kMonday + 20 * 60'000'000LL);
  EXPECT_FALSE(LastCronFiring("0 3 * *", kMonday).has_value());  // four fields
  // Both day fields restricted: either matches (cron(8)). 2026-11-15 is a Sunday.
  EXPECT_EQ(LastCronFiring("0 0 15 * 0", kMonday), kMonday - 1 * kDayUs);  // Sunday the 29th
}

TEST(DrillScheduleTest, RotationTakesTheNextServiceInSpecOrderAndWraps) {
  Spec spec = RotationSpec();
  DrillSpec d = Weekly();
  EXPECT_EQ(NextRotatingComponent(spec, d, {}), "orchestrator");
  std::vector<DrillRecord> history = {Ran(d, "d1", kMonday, "orchestrator")};
  EXPECT_EQ(NextRotatingComponent(spec, d, history), "webui");
  history.push_back(Ran(d, "d2", kMonday + 7 * kDayUs, "webui"));
  EXPECT_EQ(NextRotatingComponent(spec, d, history), "orchestrator");
  // A component no longer in the spec starts the rotation again.
  history.push_back(Ran(d, "d3", kMonday + 14 * kDayUs, "gone"));
  EXPECT_EQ(NextRotatingComponent(spec, d, history), "orchestrator");
  DrillSpec db = d;
  db.name = "db";
  db.scenario = "database_corruption";
  EXPECT_EQ(NextRotatingComponent(spec, db, history), "postgres");
  DrillSpec fixed = d;
  fixed.component = "webui";
  EXPECT_EQ(NextRotatingComponent(spec, fixed, history), "webui");
}

TEST(DrillScheduleTest, TrendComparesTheNewerHalfWithTheOlder) {
  auto drill = [](int64_t detection, int64_t recovery, DrillStatus status) {
    DrillRecord r;
    r.status = status;
    r.detection_ms = detection;
    r.recovery_ms = recovery;
    r.target_ms = 300'000;
    return r;
  };
  // Newest first: recoveries get shorter.
  constexpr DrillStatus kPassed = DrillStatus::kPassed;
  std::vector<DrillRecord> history = {
      drill(1000, 60'000, kPassed), drill(2000, 80'000, kPassed), drill(3000, 200'000, kPassed),
      drill(4000, 400'000, DrillStatus::kFailed), drill(-1, -1, DrillStatus::kRunning)};
  DrillTrend t = ComputeTrend(history, 0);
  EXPECT_EQ(t.drills, 4);
  EXPECT_EQ(t.passed, 3);
  EXPECT_EQ(t.with_target, 4);
  EXPECT_EQ(t.targets_met, 3);
  EXPECT_EQ(t.avg_detection_ms, 2500);
  EXPECT_EQ(t.avg_recovery_ms, 185'000);
  EXPECT_EQ(t.direction, "improving");
  EXPECT_EQ(ComputeTrend(history, 1).direction, "");  // too few
  std::reverse(history.begin(), history.end());
  EXPECT_EQ(ComputeTrend(history, 0).direction, "worsening");
  EXPECT_EQ(ComputeTrend({}, 5).Describe(), "no finished drills yet");
}

}  // namespace
}  // namespace backstop

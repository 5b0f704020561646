// Tests of the drill report (drill_report.h): the JSON fields, the verdict
// against the target, and the private files.
#include "drill/drill_report.h"

#include <gtest/gtest.h>

#include "testing/test_env.h"

namespace backstop {
namespace {

DrillOutcome Passed() {
  DrillOutcome o;
  DrillRecord& r = o.record;
  r.id = "20261201T030000Z-ab12";
  r.scenario = "service_failure";
  r.component = "orchestrator";
  r.environment = "staging";
  r.status = DrillStatus::kPassed;
  r.reason = "detected in 3.00 s, recovered in 40.0 s";
  r.run_id = "run-1";
  r.restore_point = "rp-1";
  r.started_us = 1'790'000'000'000'000;
  r.ended_us = r.started_us + 50'000'000;
  r.detection_ms = 3'000;
  r.recovery_ms = 40'000;
  r.target_ms = 300'000;
  o.injected_us = r.started_us + 1'000'000;
  o.detected_us = o.injected_us + 3'000'000;
  o.recovered_us = o.injected_us + 40'000'000;
  o.trigger = "health_check_failures";
  o.trigger_component = "orchestrator";
  o.decision_scenario = "Single service failure";
  o.decision_acted = true;
  o.target_min_ms = 120'000;
  o.verified_back = true;
  o.end_state = {"orchestrator: as in rp-1"};
  return o;
}

TEST(DrillReportTest, JsonHasTheTimesAgainstTheTarget) {
  nlohmann::json j = Passed().ToJson();
  EXPECT_EQ(j["passed"], true);
  EXPECT_EQ(j["detection_ms"], 3000);
  EXPECT_EQ(j["recovery_ms"], 40000);
  EXPECT_EQ(j["target"]["recovery_max_ms"], 300000);
  EXPECT_EQ(j["target"]["recovery_min_ms"], 120000);
  EXPECT_EQ(j["target"]["met"], true);
  EXPECT_EQ(j["trigger"]["name"], "health_check_failures");
  EXPECT_EQ(j["decision"]["scenario"], "Single service failure");
  EXPECT_EQ(j["run_id"], "run-1");
  EXPECT_EQ(j["injected"], "2026-09-21T14:13:21.000Z");
  EXPECT_FALSE(j.contains("cleanup_run_id"));
}

TEST(DrillReportTest, AMissedTargetAndAnUndetectedFaultSaySo) {
  DrillOutcome missed = Passed();
  missed.record.recovery_ms = 400'000;
  missed.record.status = DrillStatus::kFailed;
  EXPECT_EQ(missed.ToJson()["target"]["met"], false);
  EXPECT_NE(RenderDrillReport(missed).find("| 6m40s | 5m00s | MISSED |"), std::string::npos)
      << RenderDrillReport(missed);

  DrillOutcome undetected = Passed();
  undetected.record.status = DrillStatus::kFailed;
  undetected.record.reason = "not detected: no trigger fired within 1m00s";
  undetected.record.detection_ms = -1;
  undetected.record.recovery_ms = -1;
  undetected.record.target_ms = 0;
  undetected.trigger.clear();
  undetected.cleanup_run_id = "run-2";
  nlohmann::json j = undetected.ToJson();
  EXPECT_TRUE(j["detection_ms"].is_null());
  EXPECT_TRUE(j["target"]["met"].is_null());
  EXPECT_EQ(j["cleanup_run_id"], "run-2");
  const std::string md = RenderDrillReport(undetected);
  EXPECT_NE(md.find("**FAILED**: not detected"), std::string::npos) << md;
  EXPECT_NE(md.find("| Trigger | none fired |"), std::string::npos) << md;
  EXPECT_NE(md.find("| Drill's own rollback | run-2 |"), std::string::npos) << md;
}

TEST(DrillReportTest, FilesArePrivate) {
  testing::TempDir dir;
  DrillOutcome o = Passed();
  ASSERT_TRUE(WriteDrillReport(Env::Default(), dir.path(), o).ok());
  const std::string folder = DrillDir(dir.path(), o.record.id);
  for (const char* name : {"drill.json", "drill.md"}) {
    auto info = Env::Default()->fs()->Stat(JoinPath(folder, name));
    ASSERT_TRUE(info.ok()) << name;
    EXPECT_EQ(info->mode, 0600u) << name;
  }
  auto folder_info = Env::Default()->fs()->Stat(folder);
  ASSERT_TRUE(folder_info.ok());
  EXPECT_EQ(folder_info->mode, 0700u);
  auto text = Env::Default()->fs()->ReadFile(JoinPath(folder, "drill.json"));
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(nlohmann::json::parse(*text), o.ToJson());
}

}  // namespace
}  // namespace backstop

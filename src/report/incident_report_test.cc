#include "report/incident_report.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "base/units.h"
#include "drivers/driver.h"
#include "report/checklist.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

constexpr int64_t kSecondUs = 1'000'000;
constexpr int64_t kMinuteUs = 60 * kSecondUs;
constexpr int64_t kT0 = 1'795'000'000LL * kSecondUs;  // 2026-11-18T...

class IncidentReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = StateDb::Open(dir_.Join("state.db"));
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(*db);
    spec_.environment = "staging";
    spec_.state_dir = dir_.path();
    spec_.decision_matrix = DefaultDecisionMatrix();
  }

  // A run of three steps (stop, restore, verify), each `step_us` long from `start_us`.
  void RecordRun(const std::string& id, const std::string& triggered_by, const std::string& scope,
                 int64_t start_us, int64_t step_us, RunStatus status = RunStatus::kSucceeded) {
    RunRecord run;
    run.id = id;
    run.kind = RunKind::kRollback;
    run.status = RunStatus::kRunning;
    run.command = triggered_by == "manual" ? "backstop rollback --all --to good"
                                           : "backstop watch (automatic)";
    run.triggered_by = triggered_by;
    run.plan = {{"kind", "rollback"}, {"scope", scope}, {"target", "good"}};
    run.restore_point = "rp-good";
    run.started_us = start_us;
    std::vector<StepRecord> steps;
    const StepAction actions[] = {StepAction::kStop, StepAction::kRestore, StepAction::kVerify};
    for (int i = 0; i < 3; ++i) {
      StepRecord s;
      s.index = i;
      s.action = actions[i];
      s.component = "webui";
      s.description = std::string(Name(actions[i])) + " webui";
      steps.push_back(s);
    }
    ASSERT_TRUE(db_->CreateRun(run, steps).ok());
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(db_->MarkStepStarted(id, i, start_us + i * step_us).ok());
      ASSERT_TRUE(db_->MarkStepDone(id, i, start_us + (i + 1) * step_us, "done", {}).ok());
    }
    DataLossReport loss;
    loss.items.push_back({"postgres", "tasks", "rows", 25, 2, 3});
    loss.items.push_back({"nats", "MisterSmith-Tasks", "messages", 20, 0, 0});
    nlohmann::json summary = {{"affected", {"postgres", "webui"}},
                              {"target", "good"},
                              {"data_loss", loss.ToJson()},
                              {"post_restore_point", "rp-" + id.substr(4) + "-post"}};
    ASSERT_TRUE(db_->FinishRun(id, status, start_us + 3 * step_us + kSecondUs, "", summary).ok());
  }

  void Append(EventKind kind, int64_t at_us, const std::string& run_id, const std::string& trigger,
              const std::string& message, nlohmann::json detail = nlohmann::json::object()) {
    Event e;
    e.kind = kind;
    e.at_us = at_us;
    e.run_id = run_id;
    e.trigger = trigger;
    e.component = trigger.empty() ? "" : "webui";
    e.message = message;
    e.detail = std::move(detail);
    ASSERT_TRUE(db_->AppendEvent(e).ok());
  }

  nlohmann::json Report(const std::string& id) {
    auto r = BuildIncidentReport(spec_, *db_, Env::Default()->fs(), id);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : nlohmann::json();
  }

  // The timeline entry named `what`.
  static nlohmann::json Moment(const nlohmann::json& report, const std::string& what) {
    for (const auto& m : report["timeline"]) {
      if (m["what"] == what) return m;
    }
    ADD_FAILURE() << "no timeline entry " << what << " in " << report["timeline"].dump(1);
    return nlohmann::json::object();
  }

  testing::TempDir dir_;
  std::unique_ptr<StateDb> db_;
  Spec spec_;
};

TEST_F(IncidentReportTest, ManualRunFieldsComeFromTheJournal) {
  RecordRun("run-1", "manual", "all", kT0, 2 * kMinuteUs);
  Append(EventKind::kRunStarted, kT0, "run-1", "", "rollback started", {{"user", "alice"}});
  nlohmann::json r = Report("run-1");
  EXPECT_EQ(r["run_id"], "run-1");
  EXPECT_EQ(r["date"], FormatRfc3339(kT0));
  EXPECT_EQ(r["triggered_by"]["type"], "manual");
  EXPECT_EQ(r["triggered_by"]["user"], "alice");
  EXPECT_EQ(r["triggered_by"]["command"], "backstop rollback --all --to good");
  EXPECT_EQ(r["reason"], "manual rollback: backstop rollback --all --to good");
  EXPECT_EQ(r["components_affected"], nlohmann::json({"postgres", "webui"}));
  ASSERT_EQ(r["steps"].size(), 3u);
  EXPECT_EQ(r["steps"][0]["action"], "stop");
  EXPECT_EQ(r["steps"][1]["duration_ms"], 2 * 60'000);
  EXPECT_EQ(r["duration_ms"], 6 * 60'000 + 1000);
  EXPECT_EQ(r["data_loss"]["any"], true);
  EXPECT_EQ(r["data_loss"]["rows"], 30);
  EXPECT_EQ(r["data_loss"]["messages"], 20);
  ASSERT_EQ(r["data_loss"]["objects"].size(), 2u);
  EXPECT_EQ(r["data_loss"]["objects"][0]["object"], "tasks");
  EXPECT_EQ(r["data_loss"]["objects"][0]["inserted"], 25);
  EXPECT_EQ(r["post_restore_point"], "rp-1-post");
  // Manual runs have no trigger lines; verified is the verify step's end.
  for (const auto& m : r["timeline"]) EXPECT_NE(m["what"], "trigger firing");
  EXPECT_EQ(Moment(r, "verified")["at_us"], kT0 + 6 * kMinuteUs);
  // Scope all: the "Partial migration failure" row, 15 to 20 minutes.
  EXPECT_EQ(r["recovery"]["scenario"], "Partial migration failure");
  EXPECT_EQ(r["recovery"]["measured_ms"], 6 * 60'000);
  EXPECT_EQ(r["recovery"]["target_max_ms"], 20 * 60'000);
  EXPECT_EQ(r["recovery"]["met"], true);
  std::string md = RenderIncidentReport(r);
  for (const char* heading : {"## Root Cause Analysis", "## Lessons Learned",
                              "## Follow-up Actions", "**Date/Time:**", "**Data Loss:**"}) {
    EXPECT_NE(md.find(heading), std::string::npos) << heading;
  }
}

TEST_F(IncidentReportTest, TriggeredRunMissesItsTargetFromTheFiring) {
  // An earlier episode of the same trigger, resolved: not this incident's.
  Append(EventKind::kTriggerPending, kT0 - 60 * kMinuteUs, "", "health_check_failures", "old");
  Append(EventKind::kTriggerResolved, kT0 - 59 * kMinuteUs, "", "health_check_failures", "ok");
  Append(EventKind::kTriggerPending, kT0, "", "health_check_failures", "1 failure");
  Append(EventKind::kTriggerFiring, kT0 + 30 * kSecondUs, "", "health_check_failures", "3 failures",
         {{"samples", {"fail", "fail", "fail"}}});
  Append(EventKind::kDecision, kT0 + 31 * kSecondUs, "", "health_check_failures",
         "Single service failure: roll back webui");
  // Three steps of 2 minutes: verified 6 min 2 s after the firing (target 5 min).
  RecordRun("run-2", "trigger:health_check_failures", "component", kT0 + 32 * kSecondUs,
            2 * kMinuteUs);
  nlohmann::json r = Report("run-2");
  EXPECT_EQ(r["triggered_by"]["type"], "automatic");
  EXPECT_EQ(r["triggered_by"]["rule"], "health_check_failures");
  EXPECT_EQ(r["triggered_by"]["samples"], nlohmann::json({"fail", "fail", "fail"}));
  EXPECT_EQ(r["reason"], "Single service failure: roll back webui");
  EXPECT_EQ(Moment(r, "fault first seen")["at_us"], kT0);
  EXPECT_EQ(Moment(r, "trigger pending")["at_us"], kT0);
  EXPECT_EQ(Moment(r, "trigger firing")["at_us"], kT0 + 30 * kSecondUs);
  EXPECT_EQ(Moment(r, "decision")["at_us"], kT0 + 31 * kSecondUs);
  EXPECT_EQ(r["recovery"]["scenario"], "Single service failure");
  EXPECT_EQ(r["recovery"]["measured_ms"], 6 * 60'000 + 2'000);
  EXPECT_EQ(r["recovery"]["met"], false);
  EXPECT_NE(r["recovery"]["verdict"].get<std::string>().find("missed"), std::string::npos);
}

TEST_F(IncidentReportTest, TriggeredRunWithinItsTargetIsMet) {
  Append(EventKind::kTriggerFiring, kT0, "", "health_check_failures", "3 failures");
  RecordRun("run-3", "trigger:health_check_failures", "component", kT0 + kSecondUs, kMinuteUs);
  nlohmann::json r = Report("run-3");
  EXPECT_EQ(r["recovery"]["measured_ms"], 3 * 60'000 + 1'000);
  EXPECT_EQ(r["recovery"]["met"], true);
  EXPECT_EQ(Moment(r, "trigger pending")["recorded"], false);
}

TEST_F(IncidentReportTest, RunWithNoEventsSaysNotRecorded) {
  RecordRun("run-4", "trigger:health_check_failures", "component", kT0, kMinuteUs);
  nlohmann::json r = Report("run-4");
  EXPECT_EQ(r["triggered_by"]["user"], "not recorded");
  EXPECT_EQ(r["triggered_by"]["samples"], "not recorded");
  EXPECT_EQ(r["reason"], "not recorded");
  for (const char* what : {"fault first seen", "trigger pending", "trigger firing", "decision"}) {
    EXPECT_EQ(Moment(r, what)["recorded"], false) << what;
    EXPECT_EQ(Moment(r, what)["detail"], "not recorded") << what;
  }
  // Without the firing there is nothing to measure from: neither met nor missed.
  EXPECT_TRUE(r["recovery"]["measured_ms"].is_null());
  EXPECT_TRUE(r["recovery"]["met"].is_null());
  EXPECT_EQ(r["recovery"]["scenario"], "Single service failure");
}

TEST_F(IncidentReportTest, FailedRunMissesItsTarget) {
  RecordRun("run-5", "manual", "component", kT0, kSecondUs, RunStatus::kFailed);
  nlohmann::json r = Report("run-5");
  EXPECT_EQ(r["recovery"]["scenario"], "Single service failure");
  EXPECT_EQ(r["recovery"]["met"], false);
  for (const auto& m : r["timeline"]) EXPECT_NE(m["what"], "verified");
}

TEST_F(IncidentReportTest, AcknowledgementsAppearAndFilesArePrivate) {
  RecordRun("run-6", "manual", "all", kT0, kSecondUs);
  ASSERT_TRUE(db_->AckChecklistItem({"run-6", "team-notified", "bob", "posted in #ops", kT0}).ok());
  ASSERT_TRUE(WriteIncidentReport(Env::Default(), spec_, *db_, "run-6").ok());
  for (const char* name : {"report.json", "report.md"}) {
    struct stat st;
    ASSERT_EQ(::stat(JoinPath(RunDir(spec_, "run-6"), name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << name;
  }
  auto text = Env::Default()->fs()->ReadFile(JoinPath(RunDir(spec_, "run-6"), "report.json"));
  ASSERT_TRUE(text.ok());
  nlohmann::json r = nlohmann::json::parse(*text);
  ASSERT_EQ(r["checklist_acks"].size(), 1u);
  EXPECT_EQ(r["checklist_acks"][0]["item"], "team-notified");
  EXPECT_EQ(r["checklist_acks"][0]["by"], "bob");
  EXPECT_EQ(r["checklist_acks"][0]["note"], "posted in #ops");
}

TEST(ChecklistItemsTest, OnlyPeopleItemsAreAcknowledged) {
  EXPECT_EQ(RecoveryChecklistItems().size(), 10u);
  auto by_id = AcknowledgeableItem("user-access");
  ASSERT_TRUE(by_id.ok());
  EXPECT_EQ((*by_id)->number, 6);
  auto by_number = AcknowledgeableItem("10");
  ASSERT_TRUE(by_number.ok());
  EXPECT_STREQ((*by_number)->id, "team-notified");
  EXPECT_EQ(AcknowledgeableItem("services-healthy").status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(AcknowledgeableItem("5").status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(AcknowledgeableItem("coffee").status().code(), Status::Code::kInvalidArgument);
}

TEST(ChecklistTest, JsonAndTextCarryTheStatusWordsAndAFailedItemIsNotOk) {
  const auto& items = RecoveryChecklistItems();
  Checklist checklist{"run-1",
                      {{&items[0], ChecklistStatus::kOk, {"webui: healthy"}},
                       {&items[4], ChecklistStatus::kNotMeasured, {}},
                       {&items[5], ChecklistStatus::kAwaitingAcknowledgement, {}}}};
  EXPECT_TRUE(checklist.ok());
  nlohmann::json j = checklist.ToJson();
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["items"][0]["id"], "services-healthy");
  EXPECT_EQ(j["items"][0]["status"], "ok");
  EXPECT_EQ(j["items"][0]["evidence"][0], "webui: healthy");
  EXPECT_EQ(j["items"][1]["status"], "not measured");
  EXPECT_EQ(j["items"][2]["status"], "awaiting acknowledgement");
  const std::string text = RenderChecklist(checklist);
  EXPECT_NE(text.find(" 5. Performance baselines met [performance-baselines]: not measured\n"),
            std::string::npos)
      << text;

  checklist.items.push_back({&items[3], ChecklistStatus::kFailed, {"3 rows discarded"}});
  EXPECT_FALSE(checklist.ok());
  EXPECT_EQ(checklist.ToJson()["ok"], false);
}

}  // namespace
}  // namespace backstop

// Tests of the drill's refusals (drill_runner.h, CheckDrillAllowed): each is
// checked before anything is touched and names what holds the drill.
#include "drill/drill_runner.h"

#include <gtest/gtest.h>

#include "testing/test_env.h"
#include "testing/test_spec.h"
#include "watch/rules.h"

namespace backstop {
namespace {

class DrillRefusalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_.environment = "staging";
    spec_.state_dir = dir_.path();
    testing::AddComponent(&spec_, "api", ComponentKind::kService);
    spec_.triggers = DefaultTriggers();
    auto db = StateDb::Open(dir_.Join("state.db"));
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(*db);
  }
  Status Check(bool confirm = false) {
    return CheckDrillAllowed(Env::Default(), spec_, *db_, confirm);
  }
  void AddRun(const std::string& id, const std::string& kind, const std::string& status,
              const std::string& triggered_by, int64_t started_us) {
    RunRecord r;
    r.id = id;
    r.kind = *ParseRunKind(kind);
    r.status = RunStatus::kRunning;
    r.triggered_by = triggered_by;
    r.started_us = started_us;
    ASSERT_TRUE(db_->CreateRun(r, {}).ok());
    if (status != "running") {
      ASSERT_TRUE(db_->FinishRun(id, *ParseRunStatus(status), started_us + 1, "", {}).ok());
    }
  }
  testing::TempDir dir_;
  Spec spec_;
  std::unique_ptr<StateDb> db_;
};

TEST_F(DrillRefusalTest, AQuietEnvironmentMayBeDrilled) { EXPECT_TRUE(Check().ok()); }

TEST_F(DrillRefusalTest, AnUnfinishedRunRefuses) {
  AddRun("run-1", "rollback", "running", "manual", 100);
  Status st = Check();
  EXPECT_EQ(st.code(), Status::Code::kAborted);
  EXPECT_NE(st.message().find("run-1 is unfinished"), std::string::npos) << st.message();
}

TEST_F(DrillRefusalTest, AFailedRunIsAnOpenIncidentUntilARunSucceeds) {
  AddRun("run-1", "deploy", "failed", "manual", 100);
  Status st = Check();
  EXPECT_EQ(st.code(), Status::Code::kAborted);
  EXPECT_NE(st.message().find("incident is open"), std::string::npos) << st.message();
  AddRun("run-2", "rollback", "succeeded", "manual", 200);
  EXPECT_TRUE(Check().ok());
  // A drill's own fault deploy fails by design: it opens nothing.
  AddRun("run-3", "deploy", "failed", "drill:weekly", 300);
  EXPECT_TRUE(Check().ok());
}

TEST_F(DrillRefusalTest, ATriggerFiringInTheDaemonsSavedStateRefuses) {
  RuleEngine rules(spec_.triggers, {{"api", ComponentKind::kService}});
  for (int i = 1; i <= 3; ++i) {
    Sample s;
    s.component = "api";
    s.signal = Signal::kHealth;
    s.t_us = i * 1'000'000;
    s.value = 0;
    rules.Observe(s);
  }
  rules.Evaluate(4'000'000);
  ASSERT_TRUE(db_->Put("watch.rules", rules.SaveState().dump()).ok());
  Status st = Check();
  EXPECT_EQ(st.code(), Status::Code::kAborted);
  EXPECT_NE(st.message().find("health_check_failures on api is firing"), std::string::npos)
      << st.message();
}

TEST_F(DrillRefusalTest, AProtectedEnvironmentNeedsConfirm) {
  spec_.requires_confirm = true;
  Status st = Check();
  EXPECT_EQ(st.code(), Status::Code::kAborted);
  EXPECT_NE(st.message().find("--confirm"), std::string::npos) << st.message();
  EXPECT_TRUE(Check(/*confirm=*/true).ok());
}

}  // namespace
}  // namespace backstop

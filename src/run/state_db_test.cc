#include "run/state_db.h"

#include <gtest/gtest.h>

#include "testing/test_env.h"

namespace backstop {
namespace {

class StateDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = StateDb::Open(dir_.Join("state.db"));
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(*db);
  }
  RunRecord MakeRun(const std::string& id, int64_t started) {
    RunRecord r;
    r.id = id;
    r.kind = "rollback";
    r.status = "running";
    r.command = "backstop rollback --all";
    r.started_us = started;
    r.plan = {{"kind", "rollback"}};
    return r;
  }
  std::vector<StepRecord> MakeSteps(int n) {
    std::vector<StepRecord> steps;
    for (int i = 0; i < n; ++i) {
      StepRecord s;
      s.index = i;
      s.action = "stop";
      s.component = "c" + std::to_string(i);
      s.description = "stop c" + std::to_string(i);
      steps.push_back(s);
    }
    return steps;
  }
  testing::TempDir dir_;
  std::unique_ptr<StateDb> db_;
};

TEST_F(StateDbTest, JournalsStepsAndSurvivesReopen) {
  ASSERT_TRUE(db_->CreateRun(MakeRun("run-1", 100), MakeSteps(3)).ok());
  ASSERT_TRUE(db_->MarkStepStarted("run-1", 0, 110).ok());
  ASSERT_TRUE(db_->MarkStepDone("run-1", 0, 120, "stopped", {{"x", 1}}).ok());
  ASSERT_TRUE(db_->MarkStepStarted("run-1", 1, 130).ok());
  db_.reset();  // as if the process died here

  auto reopened = StateDb::Open(dir_.Join("state.db"));
  ASSERT_TRUE(reopened.ok());
  auto steps = (*reopened)->GetSteps("run-1");
  ASSERT_TRUE(steps.ok());
  ASSERT_EQ(steps->size(), 3u);
  EXPECT_EQ((*steps)[0].status, "done");
  EXPECT_EQ((*steps)[0].result["x"], 1);
  EXPECT_EQ((*steps)[1].status, "started");
  EXPECT_EQ((*steps)[1].attempts, 1);
  EXPECT_EQ((*steps)[2].status, "pending");
  auto unfinished = (*reopened)->UnfinishedRuns();
  ASSERT_TRUE(unfinished.ok());
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ(unfinished->front().id, "run-1");

  ASSERT_TRUE((*reopened)->MarkStepStarted("run-1", 1, 140).ok());
  steps = (*reopened)->GetSteps("run-1");
  EXPECT_EQ((*steps)[1].attempts, 2);
  ASSERT_TRUE((*reopened)->FinishRun("run-1", "succeeded", 200, "", {{"ok", true}}).ok());
  EXPECT_TRUE((*reopened)->UnfinishedRuns()->empty());
  auto run = (*reopened)->GetRun("run-1");
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->status, "succeeded");
  EXPECT_EQ(run->ended_us, 200);
}

TEST_F(StateDbTest, ResolvesRunSelectors) {
  ASSERT_TRUE(db_->CreateRun(MakeRun("run-20260101-aaa", 1), {}).ok());
  ASSERT_TRUE(db_->CreateRun(MakeRun("run-20260102-bbb", 2), {}).ok());
  EXPECT_EQ(*db_->ResolveRunId("latest"), "run-20260102-bbb");
  EXPECT_EQ(*db_->ResolveRunId("run-20260101"), "run-20260101-aaa");
  EXPECT_EQ(db_->ResolveRunId("run-2026").status().code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(db_->ResolveRunId("nope").status().IsNotFound());
  EXPECT_TRUE(db_->GetRun("nope").status().IsNotFound());
}

TEST_F(StateDbTest, HistoryNumbersRevisionsAndSupersedes) {
  HistoryRecord h;
  h.component = "web";
  h.release = "v1";
  h.status = "deployed";
  h.run_id = "r1";
  ASSERT_TRUE(db_->AddHistory(h).ok());
  h.release = "v2";
  h.run_id = "r2";
  ASSERT_TRUE(db_->AddHistory(h).ok());
  ASSERT_TRUE(db_->SetHistoryStatus("web", "r2", "failed").ok());
  auto history = db_->History("web");
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[0].revision, 1);
  EXPECT_EQ((*history)[0].status, "superseded");
  EXPECT_EQ((*history)[1].revision, 2);
  EXPECT_EQ((*history)[1].status, "failed");
  EXPECT_TRUE(db_->History("other")->empty());
}

TEST_F(StateDbTest, KeyValue) {
  EXPECT_FALSE(db_->Get("k")->has_value());
  ASSERT_TRUE(db_->Put("k", "1").ok());
  ASSERT_TRUE(db_->Put("k", "2").ok());
  EXPECT_EQ(db_->Get("k")->value(), "2");
}

}  // namespace
}  // namespace backstop

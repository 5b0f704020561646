#include "run/state_db.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

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
    r.kind = RunKind::kRollback;
    r.status = RunStatus::kRunning;
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
      s.action = StepAction::kStop;
      s.component = "c" + std::to_string(i);
      s.description = "stop c" + std::to_string(i);
      steps.push_back(s);
    }
    return steps;
  }
  testing::TempDir dir_;
  std::unique_ptr<StateDb> db_;
};

// A name Backstop does not write, read back from the journal (a newer
// Backstop, a hand edit), is Corruption naming the value, the run and the
// table, never read as some default status.
TEST_F(StateDbTest, AnUnknownStatusOrActionInTheJournalIsCorruption) {
  ASSERT_TRUE(db_->CreateRun(MakeRun("run-1", 100), MakeSteps(2)).ok());
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.Join("state.db").c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw,
                         "UPDATE runs SET status = 'paused' WHERE id = 'run-1';"
                         "UPDATE steps SET action = 'reboot' WHERE idx = 1;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);

  auto run = db_->GetRun("run-1");
  EXPECT_EQ(run.status().code(), Status::Code::kCorruption);
  EXPECT_NE(run.status().message().find("run run-1"), std::string::npos) << run.status().message();
  EXPECT_NE(run.status().message().find("table runs): status 'paused'"), std::string::npos)
      << run.status().message();
  EXPECT_EQ(db_->ListRuns(0).status().code(), Status::Code::kCorruption);

  auto steps = db_->GetSteps("run-1");
  EXPECT_EQ(steps.status().code(), Status::Code::kCorruption);
  EXPECT_NE(steps.status().message().find("step 2 of run run-1"), std::string::npos)
      << steps.status().message();
  EXPECT_NE(steps.status().message().find("action 'reboot'"), std::string::npos)
      << steps.status().message();
}

TEST_F(StateDbTest, ListStoredRunsShowsADamagedRowBesideTheOthers) {
  ASSERT_TRUE(db_->CreateRun(MakeRun("run-1", 100), {}).ok());
  ASSERT_TRUE(db_->CreateRun(MakeRun("run-2", 200), {}).ok());
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.Join("state.db").c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "UPDATE runs SET kind = 'reboot' WHERE id = 'run-2'", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);

  auto rows = db_->ListStoredRuns(0);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 2u);
  const auto& damaged = (*rows)[0];
  EXPECT_EQ(damaged.run.id, "run-2");
  EXPECT_EQ(damaged.run.started_us, 200);
  EXPECT_EQ(damaged.run.command, "backstop rollback --all");
  EXPECT_EQ(damaged.damage.code(), Status::Code::kCorruption);
  EXPECT_NE(damaged.damage.message().find("run run-2 in the state database (table runs): kind "
                                          "'reboot'"),
            std::string::npos)
      << damaged.damage.message();
  EXPECT_TRUE((*rows)[1].damage.ok());
  EXPECT_EQ((*rows)[1].run.id, "run-1");
  EXPECT_EQ((*rows)[1].run.kind, RunKind::kRollback);
  // The strict list still refuses.
  EXPECT_EQ(db_->ListRuns(0).status().code(), Status::Code::kCorruption);
}

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
  EXPECT_EQ((*steps)[0].status, StepStatus::kDone);
  EXPECT_EQ((*steps)[0].result["x"], 1);
  EXPECT_EQ((*steps)[1].status, StepStatus::kStarted);
  EXPECT_EQ((*steps)[1].attempts, 1);
  EXPECT_EQ((*steps)[2].status, StepStatus::kPending);
  auto unfinished = (*reopened)->UnfinishedRuns();
  ASSERT_TRUE(unfinished.ok());
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ(unfinished->front().id, "run-1");

  ASSERT_TRUE((*reopened)->MarkStepStarted("run-1", 1, 140).ok());
  steps = (*reopened)->GetSteps("run-1");
  EXPECT_EQ((*steps)[1].attempts, 2);
  ASSERT_TRUE((*reopened)->FinishRun("run-1", RunStatus::kSucceeded, 200, "", {{"ok", true}}).ok());
  EXPECT_TRUE((*reopened)->UnfinishedRuns()->empty());
  auto run = (*reopened)->GetRun("run-1");
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->status, RunStatus::kSucceeded);
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

TEST_F(StateDbTest, ListsRunsNewestFirstAPageAtATime) {
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(db_->CreateRun(MakeRun("run-" + std::to_string(i), i * 10), {}).ok());
  }
  auto ids = [](const Result<std::vector<RunRecord>>& runs) {
    std::string out;
    for (const auto& r : *runs) out += r.id + " ";
    return out;
  };
  EXPECT_EQ(ids(db_->ListRuns(2)), "run-5 run-4 ");
  EXPECT_EQ(ids(db_->ListRuns(2, 2)), "run-3 run-2 ");
  EXPECT_EQ(ids(db_->ListRuns(2, 4)), "run-1 ");
  EXPECT_EQ(ids(db_->ListRuns(2, 5)), "");
  EXPECT_EQ(ids(db_->ListRuns(0, 3)), "run-2 run-1 ");
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

TEST_F(StateDbTest, DrillsAreReplacedByIdAndListedNewestFirst) {
  DrillRecord first;
  first.id = "d1";
  first.scenario = "service_failure";
  first.component = "orchestrator";
  first.started_us = 100;
  ASSERT_TRUE(db_->RecordDrill(first).ok());
  DrillRecord second = first;
  second.id = "d2";
  second.started_us = 200;
  ASSERT_TRUE(db_->RecordDrill(second).ok());
  first.status = DrillStatus::kPassed;
  first.detection_ms = 1200;
  first.recovery_ms = 9000;
  first.target_ms = 300000;
  ASSERT_TRUE(db_->RecordDrill(first).ok());  // the end of the drill replaces its start
  auto all = db_->ListDrills(0);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, "d2");
  EXPECT_EQ((*all)[0].status, DrillStatus::kRunning);
  EXPECT_EQ((*all)[0].detection_ms, -1);
  EXPECT_EQ((*all)[1].status, DrillStatus::kPassed);
  EXPECT_EQ((*all)[1].recovery_ms, 9000);
  EXPECT_EQ((*all)[1].target_ms, 300000);
  auto newest = db_->ListDrills(1);
  ASSERT_TRUE(newest.ok());
  ASSERT_EQ(newest->size(), 1u);
  EXPECT_EQ((*newest)[0].id, "d2");
}

TEST_F(StateDbTest, AnUnknownDrillStatusIsCorruptionNamingTheDrill) {
  DrillRecord drill;
  drill.id = "d1";
  drill.status = DrillStatus::kPassed;
  ASSERT_TRUE(db_->RecordDrill(drill).ok());
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.Join("state.db").c_str(), &raw), SQLITE_OK);
  sqlite3_stmt* select = nullptr;
  ASSERT_EQ(
      sqlite3_prepare_v2(raw, "SELECT status FROM drills WHERE id = 'd1'", -1, &select, nullptr),
      SQLITE_OK);
  ASSERT_EQ(sqlite3_step(select), SQLITE_ROW);
  // The table keeps the name, as it did before the enum.
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(select, 0)), "passed");
  sqlite3_finalize(select);
  ASSERT_EQ(sqlite3_exec(raw, "UPDATE drills SET status = 'skipped' WHERE id = 'd1'", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);

  auto drills = db_->ListDrills(0);
  EXPECT_EQ(drills.status().code(), Status::Code::kCorruption);
  EXPECT_NE(drills.status().message().find("drill d1 in the state database (table drills): "
                                           "status 'skipped' is not one Backstop writes"),
            std::string::npos)
      << drills.status().message();
}

TEST_F(StateDbTest, EventsAreListedOldestFirstWithGrowingIdsAndSurviveReopen) {
  Event pending;
  pending.at_us = 1'000'000;
  pending.kind = EventKind::kTriggerPending;
  pending.component = "orchestrator";
  pending.trigger = "orchestrator_down";
  pending.message = "orchestrator_down pending: health failed 2 of 3 probes";
  pending.detail = {{"samples", {0, 0, 1}}};
  auto first = db_->AppendEvent(pending);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  Event started;
  started.at_us = 2'000'000;
  started.kind = EventKind::kRunStarted;
  started.run_id = "run-1";
  auto second = db_->AppendEvent(started);
  ASSERT_TRUE(second.ok());
  EXPECT_GT(*second, *first);
  db_.reset();

  auto reopened = StateDb::Open(dir_.Join("state.db"));
  ASSERT_TRUE(reopened.ok());
  auto all = (*reopened)->ListEvents({});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, *first);
  EXPECT_EQ((*all)[0].kind, EventKind::kTriggerPending);
  EXPECT_EQ((*all)[0].trigger, "orchestrator_down");
  EXPECT_EQ((*all)[0].detail["samples"][2], 1);
  EXPECT_EQ((*all)[1].kind, EventKind::kRunStarted);
  EXPECT_EQ((*all)[1].detail, nlohmann::json::object());
}

TEST_F(StateDbTest, ListEventsFiltersByRunAndFollowsFromAnId) {
  for (int i = 0; i < 5; ++i) {
    Event e;
    e.at_us = i;
    e.kind = EventKind::kDecision;
    e.run_id = i % 2 == 0 ? "run-even" : "run-odd";
    ASSERT_TRUE(db_->AppendEvent(e).ok());
  }
  EventQuery by_run;
  by_run.run_id = "run-even";
  auto even = db_->ListEvents(by_run);
  ASSERT_TRUE(even.ok());
  ASSERT_EQ(even->size(), 3u);
  EXPECT_EQ((*even)[2].at_us, 4);
  EventQuery following;
  following.after_id = (*even)[1].id;
  following.limit = 1;
  auto after = db_->ListEvents(following);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ(after->front().at_us, 3);
}

TEST(EventKindTest, EveryKindHasANameThatParsesBack) {
  for (EventKind k :
       {EventKind::kTriggerPending, EventKind::kTriggerFiring, EventKind::kTriggerResolved,
        EventKind::kDecision, EventKind::kRunStarted, EventKind::kRunFinished,
        EventKind::kRunFailed, EventKind::kDrillStarted, EventKind::kDrillFinished,
        EventKind::kRestorePointTaken, EventKind::kRestorePointFailed}) {
    EXPECT_NE(EventKindName(k), "unknown");
    EXPECT_EQ(ParseEventKind(EventKindName(k)), k);
  }
  EXPECT_EQ(ParseEventKind("trigger.exploded"), std::nullopt);
}

TEST(EventTest, ToJsonNamesTheKindAndLeavesOutEmptyFields) {
  Event e;
  e.id = 7;
  e.at_us = 1'764'547'200'123'000;  // 2025-12-01T00:00:00.123Z
  e.kind = EventKind::kRunFailed;
  e.run_id = "run-x";
  nlohmann::json j = e.ToJson();
  EXPECT_EQ(j["kind"], "run.failed");
  EXPECT_EQ(j["at"], "2025-12-01T00:00:00.123Z");
  EXPECT_EQ(j["run_id"], "run-x");
  EXPECT_FALSE(j.contains("component"));
  EXPECT_FALSE(j.contains("trigger"));
}

}  // namespace
}  // namespace backstop

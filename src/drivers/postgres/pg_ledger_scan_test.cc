// Integration tests of the postgres driver's data-loss ledger against a real
// PostgreSQL 15 (the fixture: testing/pg_driver_fixture.h).
#include "testing/pg_driver_fixture.h"

namespace backstop::postgres {
namespace {

TEST_F(PostgresDriverTest, LedgerListsExactlyTheRowsWrittenSinceTheRestorePoint) {
  // A transaction that started before the restore point and commits after
  // it (from a savepoint): its row is not in the dump, so it must be listed.
  PGconn* early = PQconnectdb(server_->ConnInfo(db_, "app").c_str());
  ASSERT_EQ(PQstatus(early), CONNECTION_OK);
  PQclear(PQexec(early,
                 "BEGIN; SAVEPOINT s; INSERT INTO tasks (id, title) VALUES (90001, 'early');"
                 "RELEASE s;"));
  json e = Snap("rp-1");
  PQclear(PQexec(early, "COMMIT"));
  PQfinish(early);
  ASSERT_EQ(e["position"]["row_counts"]["public.tasks"], 2000);

  Sql("INSERT INTO tasks (id, title) VALUES (90002, 'late'), (90003, 'late');"
      "DELETE FROM tags WHERE task_id = 3 AND tag = 'red';"
      "INSERT INTO tags VALUES (3, 'green'), (4, 'tab\there');"
      "DELETE FROM tags WHERE task_id IN (20, 21); DELETE FROM tasks WHERE id IN (20, 21);"
      "UPDATE tasks SET payload = '{\"x\": 1}' WHERE id = 5;"
      "UPDATE tasks SET title = title WHERE id = 6;"  // rewritten, same content: no change
      "INSERT INTO notes VALUES ('unkeyed note');"
      "UPDATE agents SET name = 'agent-2-renamed' WHERE id = 2;");

  ComponentSpec c = Component();
  DriverContext ctx = Ctx("run1");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx).ok());
  auto loss = driver_->AssessLoss(c, e, ctx);
  ASSERT_TRUE(loss.ok()) << loss.status().ToString();
  std::set<std::string> expected = {
      "tasks inserted {\"id\":90001}",
      "tasks inserted {\"id\":90002}",
      "tasks inserted {\"id\":90003}",
      "tasks deleted {\"id\":20}",
      "tasks deleted {\"id\":21}",
      "tasks changed {\"id\":5}",
      "tags deleted {\"tag\":\"red\",\"task_id\":3}",
      "tags deleted {\"tag\":\"blue\",\"task_id\":20}",
      "tags deleted {\"tag\":\"red\",\"task_id\":20}",
      "tags deleted {\"tag\":\"blue\",\"task_id\":21}",
      "tags deleted {\"tag\":\"red\",\"task_id\":21}",
      "tags inserted {\"tag\":\"green\",\"task_id\":3}",
      "tags inserted {\"tag\":\"tab\\there\",\"task_id\":4}",
      "agents changed {\"id\":2}",
  };
  std::vector<json> ledger = ReadLedger("run1");
  std::set<std::string> got = RowChanges(ledger);
  // The table without a key reports its whole-row difference.
  std::set<std::string> unkeyed;
  for (const auto& l : ledger) {
    if (l["table"] == "notes" && l["change"] == "inserted") unkeyed.insert(l.dump());
  }
  EXPECT_EQ(unkeyed.size(), 1u);
  for (auto it = got.begin(); it != got.end();) {
    it = it->rfind("notes ", 0) == 0 ? got.erase(it) : std::next(it);
  }
  EXPECT_EQ(got, expected);
  ASSERT_NE(Item(*loss, "tasks"), nullptr);
  EXPECT_EQ(Item(*loss, "tasks")->inserted, 3u);
  EXPECT_EQ(Item(*loss, "tasks")->deleted, 2u);
  EXPECT_EQ(Item(*loss, "tasks")->changed, 1u);
  EXPECT_EQ(Item(*loss, "notes")->inserted, 1u);
  EXPECT_EQ(loss->TotalRows(), 15u);
  ASSERT_EQ(loss->ledger_files.size(), 1u);

  // The full comparison (no xmin shortcut) finds exactly the same rows.
  json full = e;
  full.erase("xid");
  DriverContext ctx_full = Ctx("run1full");
  ASSERT_TRUE(driver_->Prepare(c, full, ctx_full).ok());
  auto loss_full = driver_->AssessLoss(c, full, ctx_full);
  ASSERT_TRUE(loss_full.ok()) << loss_full.status().ToString();
  EXPECT_EQ(RowChanges(ReadLedger("run1full")), RowChanges(ledger));
  EXPECT_EQ(loss_full->TotalRows(), loss->TotalRows());

  // Without the table statistics hint the candidates are streamed in a second
  // scan instead of fetched with the count: same rows again.
  json two_scans = e;
  two_scans["xid"].erase("table_writes");
  DriverContext ctx_two = Ctx("run1two");
  ASSERT_TRUE(driver_->Prepare(c, two_scans, ctx_two).ok());
  auto loss_two = driver_->AssessLoss(c, two_scans, ctx_two);
  ASSERT_TRUE(loss_two.ok()) << loss_two.status().ToString();
  EXPECT_EQ(RowChanges(ReadLedger("run1two")), RowChanges(ledger));
}

TEST_F(PostgresDriverTest, RowsWrittenBetweenTheLedgerAndTheSwapAreListed) {
  json e = Snap("rp-1");
  Sql("INSERT INTO tasks (id, title) VALUES (90001, 'before the ledger')");
  ComponentSpec c = Component();

  // Nothing written after the ledger: its report stands.
  DriverContext ctx = Ctx("run1");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx).ok());
  auto loss = driver_->AssessLoss(c, e, ctx);
  ASSERT_TRUE(loss.ok()) << loss.status().ToString();
  EXPECT_EQ(Item(*loss, "tasks")->inserted, 1u);
  ASSERT_TRUE(driver_->Restore(c, e, ctx).ok());
  EXPECT_FALSE(driver_->LossRevisedByRestore(c).has_value());
  EXPECT_EQ(RowChanges(ReadLedger("run1")),
            (std::set<std::string>{"tasks inserted {\"id\":90001}"}));

  // A writer the run does not know about commits after the ledger and keeps
  // its session open until the swap ends it: the swap finds the write and
  // lists it.
  Sql("INSERT INTO tasks (id, title) VALUES (90002, 'before the ledger')");
  DriverContext ctx2 = Ctx("run2");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx2).ok());
  loss = driver_->AssessLoss(c, e, ctx2);
  ASSERT_TRUE(loss.ok()) << loss.status().ToString();
  EXPECT_EQ(Item(*loss, "tasks")->inserted, 1u);
  PGconn* writer = PQconnectdb(server_->ConnInfo(db_, "app").c_str());
  ASSERT_EQ(PQstatus(writer), CONNECTION_OK);
  PQclear(PQexec(writer,
                 "INSERT INTO tasks (id, title) VALUES (90003, 'after the ledger');"
                 "DELETE FROM tags WHERE task_id = 7;"));
  ASSERT_TRUE(driver_->Restore(c, e, ctx2).ok());
  PQfinish(writer);
  auto revised = driver_->LossRevisedByRestore(c);
  ASSERT_TRUE(revised.has_value());
  EXPECT_EQ(Item(*revised, "tasks")->inserted, 2u);
  ASSERT_NE(Item(*revised, "tags"), nullptr);
  EXPECT_EQ(Item(*revised, "tags")->inserted + Item(*revised, "tags")->deleted, 2u);
  std::set<std::string> got = RowChanges(ReadLedger("run2"));
  EXPECT_TRUE(got.count("tasks inserted {\"id\":90002}")) << ::testing::PrintToString(got);
  EXPECT_TRUE(got.count("tasks inserted {\"id\":90003}")) << ::testing::PrintToString(got);
  ASSERT_TRUE(driver_->VerifyRestored(c, e, ctx2).ok());

  // The restore step of a resumed run takes the ledger again after the swap:
  // the ledger taken before it stands.
  auto resumed = driver_->AssessLoss(c, e, ctx2);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_EQ(resumed->TotalRows(), revised->TotalRows());
  EXPECT_EQ(RowChanges(ReadLedger("run2")), got);

  // TRUNCATE bumps no row counter; the table's new file gives it away.
  Sql("INSERT INTO notes VALUES ('a note')");
  DriverContext ctx3 = Ctx("run3");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx3).ok());
  loss = driver_->AssessLoss(c, e, ctx3);
  ASSERT_TRUE(loss.ok()) << loss.status().ToString();
  Sql("TRUNCATE agents CASCADE");
  ASSERT_TRUE(driver_->Restore(c, e, ctx3).ok());
  revised = driver_->LossRevisedByRestore(c);
  ASSERT_TRUE(revised.has_value());
  ASSERT_NE(Item(*revised, "agents"), nullptr);
  EXPECT_GT(Item(*revised, "agents")->deleted, 0u);
}

TEST_F(PostgresDriverTest, LedgerIsEmptyWhenNothingChanged) {
  json e = Snap("rp-1");
  ComponentSpec c = Component();
  DriverContext ctx = Ctx("run1");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx).ok());
  auto loss = driver_->AssessLoss(c, e, ctx);
  ASSERT_TRUE(loss.ok()) << loss.status().ToString();
  EXPECT_TRUE(loss->items.empty());
  EXPECT_EQ(loss->Summary(), "Data loss: none");
  EXPECT_TRUE(ReadLedger("run1").empty());
  json full = e;
  full.erase("xid");
  auto loss_full = driver_->AssessLoss(c, full, ctx);
  ASSERT_TRUE(loss_full.ok());
  EXPECT_TRUE(loss_full->items.empty());
}

TEST_F(PostgresDriverTest, SequencesMovedBackAreListedAsRewinds) {
  json e = Snap("rp-1");
  Sql("INSERT INTO tasks (assigned_agent_id, title) SELECT 1, 'new ' || g FROM "
      "generate_series(1, 5) g;"
      "INSERT INTO agents (name) VALUES ('x'); DELETE FROM agents WHERE name = 'x';");
  ComponentSpec c = Component();
  DriverContext ctx = Ctx("run1");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx).ok());
  auto loss = driver_->AssessLoss(c, e, ctx);
  ASSERT_TRUE(loss.ok()) << loss.status().ToString();
  std::map<std::string, std::pair<int64_t, int64_t>> rewinds;
  for (const auto& r : loss->rewinds) {
    EXPECT_EQ(r.component, "db");
    EXPECT_EQ(r.unit, "values reissued");
    rewinds[r.object] = {r.from, r.to};
  }
  EXPECT_EQ(rewinds.size(), 2u);
  EXPECT_EQ(rewinds["public.tasks_id_seq"], std::make_pair(int64_t{2005}, int64_t{2000}));
  EXPECT_EQ(rewinds["public.agents_id_seq"], std::make_pair(int64_t{51}, int64_t{50}));
  EXPECT_NE(loss->Summary().find("public.tasks_id_seq"), std::string::npos) << loss->Summary();
  int lines = 0;
  for (const auto& l : ReadLedger("run1")) {
    if (l.value("change", "") != "rewound") continue;
    ++lines;
    if (l["sequence"] == "public.tasks_id_seq") {
      EXPECT_EQ(l.value("table", ""), "tasks") << "a rewound sequence names its table";
      EXPECT_EQ(l["from"], 2005);
      EXPECT_EQ(l["to"], 2000);
    }
  }
  EXPECT_EQ(lines, 2);
  struct stat st;
  ASSERT_EQ(::stat(tmp_.Join("state/runs/run1/ledger-db.jsonl").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the ledger is private";
  ASSERT_TRUE(driver_->Restore(c, e, ctx).ok());
  // Resumed after the swap: the ledger stands, rewinds included.
  auto again = driver_->AssessLoss(c, e, ctx);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->rewinds.size(), 2u);
  EXPECT_EQ(again->ToJson()["rewinds"], loss->ToJson()["rewinds"]);
}

// The rows a rollback discarded are read back from the replaced database
// (which opens for the salvage's session only) with all their values, and
// go back into the live database in one transaction, or not at all.

}  // namespace
}  // namespace backstop::postgres

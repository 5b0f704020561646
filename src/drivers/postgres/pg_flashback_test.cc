// Flashback in the postgres driver against a real PostgreSQL 15 with
// wal_level=logical: the slot a restore point keeps, rollback by undo, the
// fall back to the dump, and the slot's release.
#include "drivers/postgres/pg_flashback.h"

#include "base/units.h"
#include "drivers/postgres/pg_undo.h"
#include "store/restore_point.h"
#include "testing/pg_driver_fixture.h"

namespace backstop::postgres {
namespace {

class FlashbackDriverTest : public PostgresDriverTest {
 protected:
  static void SetUpTestSuite() {
    PgServer::Options o;
    o.logical_decoding = true;
    auto s = PgServer::Start(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = s->release();
    ASSERT_TRUE(server_->CreateUser("app", /*createdb=*/true).ok());
  }

  void SetUp() override {
    PostgresDriverTest::SetUp();
    // The undo sets session_replication_role: a superuser connection.
    settings_["connection"] = server_->ConnInfo(db_, "postgres");
    settings_["flashback"] = true;
    settings_["flashback_replica_identity"] = "full";
  }
  void TearDown() override {
    (void)server_->Exec("postgres",
                        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                        "WHERE database = '" +
                            db_ + "' AND NOT active");
  }

  Result<ChangeStream> Peek(const std::string& slot) {
    auto params = ConnParams::Parse(server_->ConnInfo(db_));
    if (!params.ok()) return params.status();
    BACKSTOP_ASSIGN_OR_RETURN(auto conn, PgConn::Connect(*params, db_, 10'000));
    return PeekChangeStream(*conn, slot);
  }

  std::string Slots() {
    return Sql(
        "SELECT coalesce(string_agg(slot_name, ',' ORDER BY slot_name), '') FROM "
        "pg_replication_slots WHERE database = '" +
            db_ + "'",
        "postgres");
  }
};

TEST_F(FlashbackDriverTest, SlotNameIsLowercaseAndAtMost63Characters) {
  EXPECT_EQ(SlotName("rp-20261202T0951Z-ab12CD", "shop_1"),
            "backstop_rp_20261202t0951z_ab12cd_shop_1");
  EXPECT_EQ(SlotName("rp-1", std::string(80, 'x')).size(), 63u);
}

TEST(FlashbackStream, AnUndosMarkerIsLeftOutAndFoundByRunId) {
  Transaction t;
  t.xid = 9;
  Change marker;
  marker.op = ChangeOp::kMessage;
  marker.text = "message: transactional: 1 prefix: backstop-flashback, sz: 4 content:run1";
  Change insert;
  insert.op = ChangeOp::kInsert;
  insert.schema = "public";
  insert.table = "notes";
  insert.has_new = true;
  insert.new_columns = {{"body", "text", "x", false}};
  t.changes = {insert, marker};
  ChangeStream stream;
  stream.transactions = {t};
  EXPECT_TRUE(HasUndoMessage(stream, "run1"));
  EXPECT_FALSE(HasUndoMessage(stream, "run"));
  auto txns = SelectForUndo(stream, std::nullopt);
  ASSERT_TRUE(txns.ok()) << txns.status().ToString();
  ASSERT_EQ(txns->size(), 1u);
  EXPECT_EQ((*txns)[0].changes.size(), 1u);
  // Anyone else's message is still refused.
  stream.transactions[0].changes[1].text =
      "message: transactional: 1 prefix: app, sz: 4 content:run1";
  EXPECT_FALSE(SelectForUndo(stream, std::nullopt).ok());
}

TEST_F(FlashbackDriverTest, SnapshotKeepsASlotWhoseStreamStartsAtTheDump) {
  json e = Snap("rp-1");
  ASSERT_TRUE(e.contains("flashback")) << e.dump();
  const std::string slot = SlotName("rp-1", db_);
  EXPECT_EQ(e["flashback"]["slot"], slot);
  EXPECT_FALSE(e["flashback"]["consistent_point"].get<std::string>().empty());
  EXPECT_EQ(Slots(), slot);
  // With flashback_replica_identity: full, every covered table got FULL identity.
  EXPECT_EQ(e["flashback"]["identity_set"],
            json::array({"public.agents", "public.notes", "public.tags", "public.tasks"}));
  EXPECT_EQ(e["flashback"]["without_full_identity"], json::array());
  EXPECT_EQ(Sql("SELECT string_agg(relreplident::text, '' ORDER BY relname) FROM pg_class WHERE "
                "relname IN ('agents', 'tasks', 'tags', 'notes')"),
            "ffff");
  // The sequences as they stood.
  bool saw_tasks_seq = false;
  for (const auto& s : e["flashback"]["sequences"]) {
    if (s["name"] == "tasks_id_seq") {
      saw_tasks_seq = true;
      EXPECT_EQ(s["last_value"], 2000);
    }
  }
  EXPECT_TRUE(saw_tasks_seq);
  // The stream holds what came after the dump and nothing before.
  EXPECT_EQ(e["position"]["row_counts"]["public.tasks"], 2000);
  Sql("INSERT INTO notes VALUES ('after')");
  auto stream = Peek(slot);
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  ASSERT_EQ(stream->transactions.size(), 1u);
  ASSERT_EQ(stream->transactions[0].changes.size(), 1u);
  EXPECT_EQ(stream->transactions[0].changes[0].table, "notes");
  // Describe shows the slot and the WAL it retains.
  DriverContext ctx = Ctx("");
  auto d = driver_->Describe(Component(), ctx);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ((*d)["flashback_slots"].size(), 1u);
  EXPECT_EQ((*d)["flashback_slots"][0]["slot"], slot);
  EXPECT_GT((*d)["flashback_slots"][0]["retained_wal_bytes"].get<int64_t>(), 0);
}

TEST_F(FlashbackDriverTest, WithoutConsentTheIdentityIsKeptAndListed) {
  settings_["flashback_replica_identity"] = "keep";
  json e = Snap("rp-1");
  ASSERT_TRUE(e.contains("flashback")) << e.dump();
  EXPECT_EQ(e["flashback"]["identity_set"], json::array());
  EXPECT_EQ(e["flashback"]["without_full_identity"],
            json::array({"public.agents", "public.notes", "public.tags", "public.tasks"}));
  EXPECT_EQ(Sql("SELECT string_agg(relreplident::text, '' ORDER BY relname) FROM pg_class WHERE "
                "relname IN ('agents', 'tasks', 'tags', 'notes')"),
            "dddd");
  EXPECT_NE(progress_.find("lack REPLICA IDENTITY FULL"), std::string::npos) << progress_;
}

TEST_F(FlashbackDriverTest, ARoleThatCannotUndoGetsTheDumpAndTheReason) {
  settings_["connection"] = server_->ConnInfo(db_, "app");
  json e = Snap("rp-1");
  EXPECT_FALSE(e.contains("flashback"));
  EXPECT_EQ(e["flashback_unavailable"],
            "role app is not a superuser: flashback's undo sets session_replication_role, which "
            "needs one");
  EXPECT_EQ(Slots(), "");
  EXPECT_FALSE(e["files"].empty());
  DriverContext ctx = Ctx("");
  auto d = driver_->Describe(Component(), ctx);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ((*d)["flashback_unavailable"], e["flashback_unavailable"]);
}

TEST_F(FlashbackDriverTest, DiscardingTheRestorePointDropsItsSlot) {
  json e = Snap("rp-1");
  ASSERT_EQ(Slots(), SlotName("rp-1", db_));
  DriverContext ctx = Ctx("");
  Status st = driver_->DiscardSnapshot(Component(), e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Slots(), "");
  // Twice is fine.
  EXPECT_TRUE(driver_->DiscardSnapshot(Component(), e, ctx).ok());
}

TEST_F(FlashbackDriverTest, PruneDropsASlotNoRestorePointHolds) {
  // What a crash between the slot and the manifest leaves.
  const std::string orphan = SlotName("rp-crashed", db_);
  Sql("SELECT pg_create_logical_replication_slot('" + orphan + "', 'test_decoding')");
  Sql("SELECT pg_create_logical_replication_slot('someone_elses_" + db_ + "', 'test_decoding')");
  DriverContext ctx = Ctx("");
  Status st = driver_->Prune(Component(), "", ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Slots(), "someone_elses_" + db_);
  Sql("SELECT pg_drop_replication_slot('someone_elses_" + db_ + "')");
}

constexpr char kBadDeploy[] =
    "INSERT INTO agents (name) VALUES ('late agent');"
    "INSERT INTO tasks (assigned_agent_id, title) SELECT 51, 'new ' || g FROM "
    "generate_series(1, 5) g;"
    "DELETE FROM tags WHERE task_id = 7; DELETE FROM tasks WHERE id IN (7, 1500, 1501);"
    "UPDATE tasks SET title = 'renamed' WHERE id IN (10, 11);"
    "UPDATE tasks SET title = 'renamed twice' WHERE id = 10;"
    "UPDATE notes SET body = 'edited' WHERE body = 'note 3';"
    "SELECT setval('tasks_id_seq', 9000);";

TEST_F(FlashbackDriverTest, RollbackByUndoRestoresTheExactContentsOnline) {
  json e = Snap("rp-1");
  ASSERT_TRUE(e.contains("flashback")) << e.dump();
  const std::string before = Fingerprint(db_);
  Sql(kBadDeploy);
  ASSERT_NE(Fingerprint(db_), before);

  ComponentSpec c = Component();
  DriverContext ctx = Ctx("run1");
  Status st = driver_->Prepare(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_NE(progress_.find("rolls back by undo of"), std::string::npos) << progress_;
  EXPECT_FALSE(server_->DatabaseExists(db_ + "_bs_shadow_run1"));

  auto loss = driver_->AssessLoss(c, e, ctx);
  ASSERT_TRUE(loss.ok()) << loss.status().ToString();
  ASSERT_NE(Item(*loss, "tasks"), nullptr);
  EXPECT_EQ(Item(*loss, "tasks")->inserted, 5u);
  EXPECT_EQ(Item(*loss, "tasks")->deleted, 3u);
  EXPECT_EQ(Item(*loss, "tasks")->changed, 2u);
  EXPECT_EQ(Item(*loss, "agents")->inserted, 1u);
  EXPECT_EQ(Item(*loss, "tags")->deleted, 2u);
  EXPECT_EQ(Item(*loss, "notes")->changed, 1u);
  // Sequences the undo sets back: the agent's insert and the setval.
  ASSERT_EQ(loss->rewinds.size(), 2u);
  EXPECT_EQ(loss->rewinds[0].object, "public.agents_id_seq");
  EXPECT_EQ(loss->rewinds[0].from, 51);
  EXPECT_EQ(loss->rewinds[0].to, 50);
  EXPECT_EQ(loss->rewinds[1].object, "public.tasks_id_seq");
  EXPECT_EQ(loss->rewinds[1].from, 9000);
  EXPECT_EQ(loss->rewinds[1].to, 2000);
  std::set<std::string> changes = RowChanges(ReadLedger("run1"));
  EXPECT_EQ(changes.count("tasks deleted {\"id\":7}"), 1u);
  EXPECT_EQ(changes.count("tasks changed {\"id\":10}"), 1u);
  EXPECT_EQ(changes.count("tags deleted {\"tag\":\"red\",\"task_id\":7}"), 1u);

  // A client stays connected through the rollback.
  PGconn* client = PQconnectdb(server_->ConnInfo(db_, "app").c_str());
  ASSERT_EQ(PQstatus(client), CONNECTION_OK);

  st = driver_->Restore(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  st = driver_->VerifyRestored(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_NE(progress_.find("flashback: undid "), std::string::npos) << progress_;
  EXPECT_NE(progress_.find("net to nothing"), std::string::npos) << progress_;

  EXPECT_EQ(Fingerprint(db_), before);
  EXPECT_EQ(Sql("SELECT nextval('tasks_id_seq')"), "2001");
  EXPECT_FALSE(server_->DatabaseExists(db_ + "_bs_shadow_run1"));
  EXPECT_FALSE(server_->DatabaseExists(db_ + "_pre_rollback_run1"));
  PGresult* r = PQexec(client, "SELECT count(*) FROM agents");
  EXPECT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
  EXPECT_EQ(std::string(PQgetvalue(r, 0, 0)), "50");
  PQclear(r);
  PQfinish(client);
}

TEST_F(FlashbackDriverTest, ARollbackToATimeUndoesOnlyWhatCommittedAfterIt) {
  json e = Snap("rp-1");
  Sql("UPDATE tasks SET title = 'kept' WHERE id = 20; TRUNCATE notes");
  const std::string at_the_time = Fingerprint(db_);
  const int64_t t = std::stoll(Sql("SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint"));
  // The next transaction commits after t (clock_timestamp moves on).
  Sql("SELECT pg_sleep(0.01)");
  Sql(kBadDeploy);
  ASSERT_NE(Fingerprint(db_), at_the_time);

  e["to_time_us"] = t;
  ComponentSpec c = Component();
  DriverContext ctx = Ctx("run1");
  // The TRUNCATE committed before t: it is not undone, so it is no obstacle.
  Status st = driver_->Prepare(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_NE(progress_.find("rolls back by undo of 1 transaction(s)"), std::string::npos)
      << progress_;
  auto loss = driver_->AssessLoss(c, e, ctx);
  ASSERT_TRUE(loss.ok()) << loss.status().ToString();
  ASSERT_NE(Item(*loss, "tasks"), nullptr);
  EXPECT_EQ(Item(*loss, "tasks")->inserted, 5u);
  EXPECT_EQ(Item(*loss, "tasks")->changed, 2u);
  EXPECT_TRUE(loss->rewinds.empty());  // sequences stay: their position at t is not known
  st = driver_->Restore(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  st = driver_->VerifyRestored(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  // The rows are those of the moment; the sequences (the fingerprint's last
  // line) stay where the bad deploy left them.
  auto rows = [](const std::string& fingerprint) {
    return fingerprint.substr(0, fingerprint.rfind('\n'));
  };
  EXPECT_EQ(rows(Fingerprint(db_)), rows(at_the_time));
  EXPECT_EQ(Sql("SELECT title FROM tasks WHERE id = 20"), "kept");
  EXPECT_EQ(Sql("SELECT nextval('tasks_id_seq')"), "9001");
  EXPECT_NE(progress_.find("since " + FormatRfc3339(t, true) + " net to nothing"),
            std::string::npos)
      << progress_;
}

TEST_F(FlashbackDriverTest, ARollbackToATimeThatUndoCannotReachIsRefusedNotRestored) {
  json e = Snap("rp-1");
  const int64_t t = std::stoll(Sql("SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint"));
  Sql("SELECT pg_sleep(0.01)");
  Sql(kBadDeploy);
  Sql("TRUNCATE notes");
  const std::string now = Fingerprint(db_);
  e["to_time_us"] = t;
  ComponentSpec c = Component();
  DriverContext ctx = Ctx("run1");
  Status st = driver_->Prepare(c, e, ctx);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("cannot be rolled back to"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("public.notes: TRUNCATE"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("without --to-time"), std::string::npos) << st.ToString();
  EXPECT_FALSE(server_->DatabaseExists(db_ + "_bs_shadow_run1"));
  EXPECT_EQ(Fingerprint(db_), now);
}

TEST_F(FlashbackDriverTest, AResumedRestoreAfterTheUndoCommittedDoesNothingTwice) {
  json e = Snap("rp-1");
  const std::string before = Fingerprint(db_);
  Sql(kBadDeploy);
  ComponentSpec c = Component();
  DriverContext ctx = Ctx("run1");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx).ok());
  ASSERT_TRUE(driver_->AssessLoss(c, e, ctx).ok());
  ASSERT_TRUE(driver_->Restore(c, e, ctx).ok());
  ASSERT_EQ(Fingerprint(db_), before);

  // The run resumes (a crash after the undo's commit): every call again.
  auto d = DriverRegistry::Global().Create("postgres");
  ASSERT_TRUE(d.ok());
  driver_ = std::move(d).value();
  progress_.clear();
  Status st = driver_->Prepare(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto loss = driver_->AssessLoss(c, e, ctx);
  ASSERT_TRUE(loss.ok()) << loss.status().ToString();
  ASSERT_NE(Item(*loss, "tasks"), nullptr);
  EXPECT_EQ(Item(*loss, "tasks")->inserted, 5u);
  st = driver_->Restore(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_NE(progress_.find("already committed in this run"), std::string::npos) << progress_;
  st = driver_->VerifyRestored(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Fingerprint(db_), before);
  EXPECT_FALSE(server_->DatabaseExists(db_ + "_bs_shadow_run1"));
}

TEST_F(FlashbackDriverTest, ATruncateSinceTheRestorePointTakesTheOrdinaryPath) {
  json e = Snap("rp-1");
  const std::string before = Fingerprint(db_);
  Sql(kBadDeploy);
  Sql("TRUNCATE notes");
  ComponentSpec c = Component();
  DriverContext ctx = Ctx("run1");
  Status st = driver_->Prepare(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_NE(progress_.find("cannot roll back database " + db_ +
                           " by undo: flashback cannot undo the changes since the restore point: "
                           "table public.notes: TRUNCATE (its rows are not in the stream); "
                           "restoring the dump instead"),
            std::string::npos)
      << progress_;
  EXPECT_TRUE(server_->DatabaseExists(db_ + "_bs_shadow_run1"));
  auto loss = driver_->AssessLoss(c, e, ctx);
  ASSERT_TRUE(loss.ok()) << loss.status().ToString();
  ASSERT_NE(Item(*loss, "notes"), nullptr);
  EXPECT_EQ(Item(*loss, "notes")->deleted, 20u);
  st = driver_->Restore(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  st = driver_->VerifyRestored(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Fingerprint(db_), before);
  EXPECT_TRUE(server_->DatabaseExists(db_ + "_pre_rollback_run1"));
  ASSERT_TRUE(driver_->Prune(c, "run1", ctx).ok());
}

TEST_F(FlashbackDriverTest, DdlSinceTheRestorePointTakesTheOrdinaryPath) {
  json e = Snap("rp-1");
  ASSERT_FALSE(e["flashback"].value("schema_md5", "").empty()) << e.dump();
  const std::string before = Fingerprint(db_);
  // Rows deleted before the column was added: their old rows fit the new
  // table too (the column would come back NULL), so only the recorded
  // definitions can tell that undo cannot reach the restore point.
  Sql("DELETE FROM notes WHERE body = 'note 4'; ALTER TABLE notes ADD COLUMN extra int");
  ComponentSpec c = Component();
  DriverContext ctx = Ctx("run1");
  Status st = driver_->Prepare(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_NE(progress_.find("cannot roll back database " + db_ +
                           " by undo: the tables' definitions changed since the restore point"),
            std::string::npos)
      << progress_;
  EXPECT_NE(progress_.find("restoring the dump instead"), std::string::npos) << progress_;
  ASSERT_TRUE(driver_->AssessLoss(c, e, ctx).ok());
  st = driver_->Restore(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  st = driver_->VerifyRestored(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Fingerprint(db_), before);
  EXPECT_EQ(Sql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'notes' "
                "AND column_name = 'extra'"),
            "0");
  ASSERT_TRUE(driver_->Prune(c, "run1", ctx).ok());
}

TEST_F(FlashbackDriverTest, ASlotPastFlashbackMaxWalIsReleasedAndTheDumpRestores) {
  json e = Snap("rp-1");
  ASSERT_TRUE(e.contains("flashback"));
  RestorePoint rp;
  rp.id = "rp-1";
  rp.created_wall_us = 1;
  rp.components["db"] = e;
  ASSERT_TRUE(WriteRestorePoint(*store_, rp).ok());
  const std::string before = Fingerprint(db_);
  Sql(kBadDeploy);
  // Within the limit: kept.
  settings_["flashback_max_wal"] = "1GB";
  DriverContext ctx = Ctx("");
  ASSERT_TRUE(driver_->Prune(Component(), "", ctx).ok());
  EXPECT_EQ(Slots(), SlotName("rp-1", db_));
  // Past it: released with a warning.
  settings_["flashback_max_wal"] = "1KB";
  Status st = driver_->Prune(Component(), "", ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Slots(), "");
  EXPECT_NE(progress_.find("warning: replication slot " + SlotName("rp-1", db_) + " retained "),
            std::string::npos)
      << progress_;
  // A new restore point checks the older ones' slots too.
  Sql("SELECT pg_create_logical_replication_slot('" + SlotName("rp-1", db_) +
      "', 'test_decoding')");
  Sql("INSERT INTO notes SELECT 'more ' || g FROM generate_series(1, 100) g");
  progress_.clear();
  json e2 = Snap("rp-2");
  EXPECT_EQ(Slots(), SlotName("rp-2", db_));
  EXPECT_NE(progress_.find("warning: replication slot " + SlotName("rp-1", db_) + " retained "),
            std::string::npos)
      << progress_;
  Sql("DELETE FROM notes WHERE body LIKE 'more %'");
  // The restore point rolls back from its dump.
  DriverContext run = Ctx("run1");
  ASSERT_TRUE(driver_->Prepare(Component(), e, run).ok());
  EXPECT_NE(progress_.find("is gone (released for flashback_max_wal, or dropped); restoring the "
                           "dump instead"),
            std::string::npos)
      << progress_;
  ASSERT_TRUE(driver_->AssessLoss(Component(), e, run).ok());
  ASSERT_TRUE(driver_->Restore(Component(), e, run).ok());
  ASSERT_TRUE(driver_->VerifyRestored(Component(), e, run).ok());
  EXPECT_EQ(Fingerprint(db_), before);
  ASSERT_TRUE(driver_->Prune(Component(), "run1", run).ok());
}

}  // namespace
}  // namespace backstop::postgres

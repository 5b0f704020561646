// Integration tests of the postgres driver's rollbacks (Prepare, Restore, VerifyRestored, undo,
// Prune, Health) against a real PostgreSQL 15 (the fixture: testing/pg_driver_fixture.h).
#include "testing/pg_driver_fixture.h"

namespace backstop::postgres {
namespace {

TEST_F(PostgresDriverTest, RollbackWithForeignKeysSequencesAndAnActiveClient) {
  json e = Snap("rp-1");
  const std::string before = Fingerprint(db_);
  const std::string before_dump = DataDumpHash(db_);
  Sql("INSERT INTO agents (name) VALUES ('late agent');"
      "INSERT INTO tasks (assigned_agent_id, title) SELECT 51, 'new ' || g FROM generate_series(1, "
      "5) g;"
      "DELETE FROM tags WHERE task_id = 7; DELETE FROM tasks WHERE id IN (7, 1500, 1501);"
      "UPDATE tasks SET title = 'renamed' WHERE id IN (10, 11);"
      "SELECT setval('tasks_id_seq', 9000);");
  const std::string after_bad_deploy = Fingerprint(db_);
  ASSERT_NE(before, after_bad_deploy);

  // An application connection that stays open in a transaction.
  PGconn* client = PQconnectdb(server_->ConnInfo(db_, "app").c_str());
  ASSERT_EQ(PQstatus(client), CONNECTION_OK);
  PQclear(PQexec(client, "BEGIN; SELECT count(*) FROM tasks;"));

  ComponentSpec c = Component();
  DriverContext ctx = Ctx("run1");
  json safety = Snap("rp-safety", "run1", RestorePointKind::kSafety);
  EXPECT_EQ(safety["retained_database"], db_ + "_pre_rollback_run1");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx).ok());
  auto loss = driver_->AssessLoss(c, e, ctx);
  ASSERT_TRUE(loss.ok()) << loss.status().ToString();
  ASSERT_NE(Item(*loss, "tasks"), nullptr);
  EXPECT_EQ(Item(*loss, "tasks")->inserted, 5u);
  EXPECT_EQ(Item(*loss, "tasks")->deleted, 3u);
  EXPECT_EQ(Item(*loss, "tasks")->changed, 2u);
  EXPECT_EQ(Item(*loss, "agents")->inserted, 1u);
  EXPECT_EQ(Item(*loss, "tags")->deleted, 2u);

  Status st = driver_->Restore(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  st = driver_->VerifyRestored(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();

  EXPECT_EQ(Fingerprint(db_), before);
  EXPECT_EQ(DataDumpHash(db_), before_dump);
  // Sequences continue where they were, not where the bad deploy left them.
  EXPECT_EQ(Sql("SELECT nextval('tasks_id_seq')"), "2001");
  // The client was disconnected; the replaced database is kept intact.
  PGresult* r = PQexec(client, "SELECT 1");
  EXPECT_NE(PQresultStatus(r), PGRES_TUPLES_OK);
  PQclear(r);
  PQfinish(client);
  EXPECT_FALSE(server_->DatabaseExists(db_ + "_bs_shadow_run1"));
  EXPECT_EQ(Sql("SELECT datallowconn FROM pg_database WHERE datname = '" + db_ + "'"), "t");
  EXPECT_EQ(
      Sql("SELECT datallowconn FROM pg_database WHERE datname = '" + db_ + "_pre_rollback_run1'"),
      "f");
  Sql("ALTER DATABASE " + db_ + "_pre_rollback_run1 ALLOW_CONNECTIONS true", "postgres");
  EXPECT_EQ(Fingerprint(db_ + "_pre_rollback_run1"), after_bad_deploy);

  auto checks = driver_->CheckIntegrity(c, e, ctx);
  ASSERT_TRUE(checks.ok()) << checks.status().ToString();
  bool saw_orphans = false, saw_query = false;
  for (const auto& ch : *checks) {
    EXPECT_TRUE(ch.passed) << ch.name << ": " << ch.detail;
    saw_orphans |= ch.name.rfind("orphans ", 0) == 0;
    saw_query |= ch.name == "orphaned tasks";
  }
  EXPECT_TRUE(saw_orphans);
  EXPECT_TRUE(saw_query);

  ASSERT_TRUE(driver_->Prune(c, "run1", ctx).ok());
  EXPECT_FALSE(server_->DatabaseExists(db_ + "_pre_rollback_run1"));
  EXPECT_TRUE(server_->DatabaseExists(db_));
}

TEST_F(PostgresDriverTest, DamagedDumpFailsPrepareAndLeavesLiveByteForByte) {
  // (The server trusts loopback, so the password is ignored; it must still
  // never show up in an entry, an error or a progress line.)
  const std::string password = "Sup3rSecretPw";
  settings_["connection"] = settings_["connection"].get<std::string>() + " password=" + password;
  json e = Snap("rp-1");
  EXPECT_EQ(e.dump().find(password), std::string::npos);
  // Find the data file of `tasks` and break one row in its middle: the file is
  // a valid blob (right digest for its content) but pg_restore fails half-way.
  bool damaged = false;
  for (auto& f : e["files"]) {
    auto content = store_->Get(f["digest"].get<std::string>());
    ASSERT_TRUE(content.ok());
    size_t pos = content->find("\ttask-1000\t");
    if (pos == std::string::npos) continue;
    size_t line = content->rfind('\n', pos) + 1;
    std::string broken = content->substr(0, line) + "not-a-number" + content->substr(pos);
    auto digest = store_->Put(broken);
    ASSERT_TRUE(digest.ok());
    f["digest"] = *digest;
    damaged = true;
  }
  ASSERT_TRUE(damaged);
  Sql("INSERT INTO agents (name) VALUES ('written after the restore point')");
  const std::string live_before = DataDumpHash(db_);
  const std::string fp_before = Fingerprint(db_);

  ComponentSpec c = Component();
  DriverContext ctx = Ctx("run1");
  Status st = driver_->Prepare(c, e, ctx);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("pg_restore"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("untouched"), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find(password), std::string::npos);
  EXPECT_EQ(progress_.find(password), std::string::npos);
  EXPECT_FALSE(server_->DatabaseExists(db_ + "_bs_shadow_run1"));
  EXPECT_EQ(DataDumpHash(db_), live_before);
  EXPECT_EQ(Fingerprint(db_), fp_before);
  // Restore refuses without a verified shadow.
  EXPECT_FALSE(driver_->Restore(c, e, ctx).ok());
  EXPECT_EQ(DataDumpHash(db_), live_before);

  // A blob corrupted on disk is caught while extracting (hash check), same outcome.
  json e2 = Snap("rp-2");
  std::string digest = e2["files"][0]["digest"];
  {
    std::fstream f(store_->BlobPath(digest), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.put('\x7f');
  }
  DriverContext ctx2 = Ctx("run2");
  st = driver_->Prepare(c, e2, ctx2);
  ASSERT_FALSE(st.ok());
  EXPECT_FALSE(server_->DatabaseExists(db_ + "_bs_shadow_run2"));
  EXPECT_EQ(DataDumpHash(db_), live_before);
}

TEST_F(PostgresDriverTest, SafetySnapshotUndoesTheRollback) {
  json e = Snap("rp-1");
  const std::string at_rp = Fingerprint(db_);
  Sql("INSERT INTO agents (name) VALUES ('kept by undo'); DELETE FROM notes;");
  const std::string bad = Fingerprint(db_);
  ComponentSpec c = Component();

  DriverContext ctx1 = Ctx("run1");
  json safety1 = Snap("rp-s1", "run1", RestorePointKind::kSafety);
  EXPECT_TRUE(safety1["blobs"].empty());
  ASSERT_TRUE(driver_->Prepare(c, e, ctx1).ok());
  ASSERT_TRUE(driver_->Restore(c, e, ctx1).ok());
  EXPECT_EQ(Fingerprint(db_), at_rp);

  // Undo: restore the safety entry of run1 in run2.
  DriverContext ctx2 = Ctx("run2");
  json safety2 = Snap("rp-s2", "run2", RestorePointKind::kSafety);
  ASSERT_TRUE(driver_->Prepare(c, safety1, ctx2).ok());
  auto loss = driver_->AssessLoss(c, safety1, ctx2);
  ASSERT_TRUE(loss.ok()) << loss.status().ToString();
  EXPECT_EQ(Item(*loss, "agents")->deleted, 1u);  // the undo brings the agent back
  EXPECT_EQ(Item(*loss, "notes")->inserted, 20u);
  Status st = driver_->Restore(c, safety1, ctx2);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_TRUE(driver_->VerifyRestored(c, safety1, ctx2).ok());
  EXPECT_EQ(Fingerprint(db_), bad);
  EXPECT_FALSE(server_->DatabaseExists(db_ + "_pre_rollback_run1"));  // swapped back in
  Sql("ALTER DATABASE " + db_ + "_pre_rollback_run2 ALLOW_CONNECTIONS true", "postgres");
  EXPECT_EQ(Fingerprint(db_ + "_pre_rollback_run2"), at_rp);
  // And the undo can itself be undone.
  DriverContext ctx3 = Ctx("run3");
  ASSERT_TRUE(driver_->Prepare(c, safety2, ctx3).ok());
  ASSERT_TRUE(driver_->Restore(c, safety2, ctx3).ok());
  EXPECT_EQ(Fingerprint(db_), at_rp);
  // A safety entry whose rollback never swapped has nothing to undo.
  json never = Snap("rp-s9", "run9", RestorePointKind::kSafety);
  DriverContext ctx10 = Ctx("run10");
  ASSERT_TRUE(driver_->Prepare(c, never, ctx10).ok());
  auto none = driver_->AssessLoss(c, never, ctx10);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->items.empty());
  ASSERT_TRUE(driver_->Restore(c, never, ctx10).ok());
  EXPECT_EQ(Fingerprint(db_), at_rp);
  // One that swapped but whose retained database was pruned cannot be undone.
  DriverContext ctx11 = Ctx("run11");
  json safety11 = Snap("rp-s11", "run11", RestorePointKind::kSafety);
  ASSERT_TRUE(driver_->Prepare(c, e, ctx11).ok());
  ASSERT_TRUE(driver_->Restore(c, e, ctx11).ok());
  ASSERT_TRUE(driver_->Prune(c, "run11", ctx11).ok());
  DriverContext ctx12 = Ctx("run12");
  Status p = driver_->Prepare(c, safety11, ctx12);
  EXPECT_FALSE(p.ok());
  EXPECT_NE(p.message().find("pruned"), std::string::npos) << p.message();
  EXPECT_FALSE(driver_->Restore(c, safety11, ctx12).ok());
  EXPECT_EQ(Fingerprint(db_), at_rp);
}

// Backstop connects as "app" (not a superuser). A superuser's session on the
// live database cannot be ended by it: the swap is refused, saying
// whose session it is (after 2 s, in case it was leaving), and the live
// database stays as it was.

TEST_F(PostgresDriverTest, SessionsTheRoleCannotEndRefuseTheSwap) {
  json e = Snap("rp-1");
  Sql("UPDATE tasks SET title = 'bad' WHERE id < 10");
  const std::string live_before = Fingerprint(db_);
  ComponentSpec c = Component();
  DriverContext ctx = Ctx("run1");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx).ok());
  PGconn* dba = PQconnectdb(server_->ConnInfo(db_, "postgres").c_str());
  ASSERT_EQ(PQstatus(dba), CONNECTION_OK);
  Status st = driver_->Restore(c, e, ctx);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("of role postgres"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("left in place"), std::string::npos) << st.ToString();
  EXPECT_EQ(PQstatus(dba), CONNECTION_OK);
  PQfinish(dba);
  EXPECT_EQ(Sql("SELECT datallowconn FROM pg_database WHERE datname = '" + db_ + "'"), "t");
  EXPECT_EQ(Fingerprint(db_), live_before);
  // Once that session is gone, the same run completes.
  st = driver_->Restore(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_NE(Fingerprint(db_), live_before);
}

TEST_F(PostgresDriverTest, PrepareAndRestoreAreIdempotentAcrossCrashes) {
  json e = Snap("rp-1");
  const std::string at_rp = Fingerprint(db_);
  Sql("UPDATE tasks SET title = 'bad' WHERE id < 10");
  ComponentSpec c = Component();
  DriverContext ctx = Ctx("run1");
  const std::string shadow = db_ + "_bs_shadow_run1";

  // A half-built shadow from a crashed attempt is dropped and rebuilt.
  Sql("CREATE DATABASE " + shadow + " OWNER app", "postgres");
  Sql("CREATE TABLE junk (x int)", shadow);
  ASSERT_TRUE(driver_->Prepare(c, e, ctx).ok());
  // A verified shadow is closed to everyone until the swap.
  EXPECT_EQ(Sql("SELECT datallowconn FROM pg_database WHERE datname = '" + shadow + "'"), "f");
  Sql("ALTER DATABASE " + shadow + " ALLOW_CONNECTIONS true", "postgres");
  EXPECT_EQ(Sql("SELECT count(*) FROM pg_tables WHERE tablename = 'junk'", shadow), "0");
  const std::string oid = Sql("SELECT oid FROM pg_database WHERE datname = '" + shadow + "'");
  // Prepared and verified already: the second call keeps it.
  ASSERT_TRUE(driver_->Prepare(c, e, ctx).ok());
  EXPECT_EQ(Sql("SELECT oid FROM pg_database WHERE datname = '" + shadow + "'"), oid);

  Status restored = driver_->Restore(c, e, ctx);
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  restored = driver_->Restore(c, e, ctx);
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  EXPECT_EQ(Fingerprint(db_), at_rp);
  ASSERT_TRUE(driver_->VerifyRestored(c, e, ctx).ok());

  // Crash between the two renames: live renamed aside, shadow not yet renamed.
  Sql("UPDATE tasks SET title = 'bad again' WHERE id < 10");
  DriverContext ctx2 = Ctx("run2");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx2).ok());
  Sql("ALTER DATABASE " + db_ + " ALLOW_CONNECTIONS false", "postgres");
  Sql("ALTER DATABASE " + db_ + " RENAME TO " + db_ + "_pre_rollback_run2", "postgres");
  ASSERT_FALSE(server_->DatabaseExists(db_));
  Status st = driver_->Restore(c, e, ctx2);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Fingerprint(db_), at_rp);
  EXPECT_EQ(Sql("SELECT datallowconn FROM pg_database WHERE datname = '" + db_ + "'"), "t");
  EXPECT_FALSE(server_->DatabaseExists(db_ + "_bs_shadow_run2"));
  EXPECT_TRUE(server_->DatabaseExists(db_ + "_pre_rollback_run2"));

  // Crash after refusing connections, before the first rename.
  DriverContext ctx3 = Ctx("run3");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx3).ok());
  Sql("ALTER DATABASE " + db_ + " ALLOW_CONNECTIONS false", "postgres");
  ASSERT_TRUE(driver_->Restore(c, e, ctx3).ok());
  EXPECT_EQ(Sql("SELECT datallowconn FROM pg_database WHERE datname = '" + db_ + "'"), "t");
  EXPECT_TRUE(server_->DatabaseExists(db_ + "_pre_rollback_run3"));
}

TEST_F(PostgresDriverTest, ShadowsOfAnotherDatabaseWithTheSameRestorePointAreNotAdopted) {
  // One restore point covers every component; two databases may share a cluster.
  const std::string other = db_ + "_other";
  ASSERT_TRUE(server_->CreateDb(other, "app").ok());
  ASSERT_TRUE(server_->Exec(other, "CREATE TABLE only_here (id int PRIMARY KEY)", "app").ok());
  json settings_a = settings_;
  settings_["connection"] = server_->ConnInfo(other, "app");
  settings_["integrity"] = json::array();
  json e_other = Snap("rp-same");
  ComponentSpec c_other = Component();
  settings_ = settings_a;
  json e = Snap("rp-same");
  ComponentSpec c = Component();

  DriverContext ctx1 = Ctx("run1");
  ASSERT_TRUE(driver_->Prepare(c_other, e_other, ctx1).ok());  // left unswapped
  DriverContext ctx2 = Ctx("run2");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx2).ok());
  EXPECT_TRUE(server_->DatabaseExists(other + "_bs_shadow_run1"));
  Sql("ALTER DATABASE " + db_ + "_bs_shadow_run2 ALLOW_CONNECTIONS true", "postgres");
  EXPECT_EQ(Sql("SELECT count(*) FROM tasks", db_ + "_bs_shadow_run2"), "2000");
}

TEST_F(PostgresDriverTest, RollbackBringsBackADroppedDatabase) {
  json e = Snap("rp-1");
  const std::string at_rp = Fingerprint(db_);
  Sql("DROP DATABASE " + db_ + " WITH (FORCE)", "postgres");
  ComponentSpec c = Component();
  DriverContext ctx = Ctx("run1");
  json safety = Snap("rp-s1", "run1", RestorePointKind::kSafety);
  EXPECT_EQ(safety["database_existed"], false);
  ASSERT_TRUE(driver_->Prepare(c, e, ctx).ok());
  auto loss = driver_->AssessLoss(c, e, ctx);
  ASSERT_TRUE(loss.ok()) << loss.status().ToString();
  EXPECT_TRUE(loss->items.empty());
  ASSERT_TRUE(driver_->Restore(c, e, ctx).ok());
  ASSERT_TRUE(driver_->VerifyRestored(c, e, ctx).ok());
  EXPECT_EQ(Fingerprint(db_), at_rp);
}

TEST_F(PostgresDriverTest, DatabaseSettingsLimitAndPrivilegesSurviveTheSwap) {
  const std::string reader = "reader_" + db_;
  Sql("CREATE ROLE " + reader + " LOGIN");
  Sql("ALTER DATABASE " + db_ + " CONNECTION LIMIT 30");
  Sql("ALTER DATABASE " + db_ + " SET search_path TO \"$user\", public, \"Odd Name\"", "postgres");
  Sql("ALTER DATABASE " + db_ + " SET work_mem TO '8MB'", "postgres");
  Sql("ALTER ROLE app IN DATABASE " + db_ + " SET statement_timeout TO '5min'", "postgres");
  // As the owner, so that the grantor is the owner as when the driver re-grants.
  ASSERT_TRUE(server_->Exec(db_, "REVOKE ALL ON DATABASE " + db_ + " FROM PUBLIC", "app").ok());
  ASSERT_TRUE(server_->Exec(db_, "GRANT CONNECT ON DATABASE " + db_ + " TO " + reader, "app").ok());
  auto props = [&] {
    return Sql("SELECT datconnlimit || ' ' || datacl::text FROM pg_database WHERE datname = '" +
               db_ + "'") +
           "\n" +
           Sql("SELECT string_agg(coalesce(pg_get_userbyid(nullif(setrole, 0)), '-') || ' ' || "
               "setconfig::text, '; ' ORDER BY setrole) FROM pg_db_role_setting "
               "WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = '" +
               db_ + "')");
  };
  const std::string before = props();
  ASSERT_NE(before.find(reader + "=c/app"), std::string::npos) << before;
  ComponentSpec c = Component();
  json cold = Snap("rp-1");
  DriverContext ctx1 = Ctx("run1");
  ASSERT_TRUE(driver_->Prepare(c, cold, ctx1).ok());
  ASSERT_TRUE(driver_->Restore(c, cold, ctx1).ok());
  EXPECT_EQ(props(), before);

  settings_["staged"] = "always";
  c = Component();
  json staged = Snap("rp-2");
  ASSERT_TRUE(staged.contains("staged_database"));
  DriverContext ctx2 = Ctx("run2");
  ASSERT_TRUE(driver_->Prepare(c, staged, ctx2).ok());
  ASSERT_TRUE(driver_->Restore(c, staged, ctx2).ok());
  EXPECT_EQ(props(), before);
}

TEST_F(PostgresDriverTest, HealthDistinguishesAcceptingRejectingAndNoResponse) {
  ComponentSpec c = Component();
  DriverContext ctx = Ctx("");
  HealthResult h = driver_->Health(c, ctx);
  EXPECT_TRUE(h.pass()) << h.detail;
  EXPECT_EQ(h.detail, "accepting connections");
  EXPECT_TRUE(h.signals.count("connect_time_ms"));

  Sql("ALTER DATABASE " + db_ + " ALLOW_CONNECTIONS false", "postgres");
  h = driver_->Health(c, ctx);
  EXPECT_FALSE(h.pass());
  EXPECT_EQ(h.detail.rfind("rejecting connections", 0), 0u) << h.detail;
  Sql("ALTER DATABASE " + db_ + " ALLOW_CONNECTIONS true", "postgres");

  json s = settings_;
  s["connection"] = "host=127.0.0.1 port=1 dbname=x user=app password=topsecretpw";
  c.settings = s;
  h = driver_->Health(c, ctx);
  EXPECT_FALSE(h.pass());
  EXPECT_EQ(h.detail.rfind("no response", 0), 0u) << h.detail;
  EXPECT_EQ(h.detail.find("topsecretpw"), std::string::npos);
}

TEST_F(PostgresDriverTest, VerifyRestoredProvesIdentityOrRecounts) {
  json e = Snap("rp-1");
  Sql("DELETE FROM notes");
  ComponentSpec c = Component();
  DriverContext ctx = Ctx("run1");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx).ok());
  ASSERT_TRUE(driver_->Restore(c, e, ctx).ok());
  progress_.clear();
  Status st = driver_->VerifyRestored(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_NE(progress_.find("is the shadow Prepare verified"), std::string::npos) << progress_;

  // After the swap, the restarted services write: the database is still the
  // verified one, so the rollback verifies; `verify --data` counts the rows.
  Sql("INSERT INTO notes VALUES ('written after the rollback')");
  st = driver_->VerifyRestored(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto checks = driver_->CheckIntegrity(c, e, ctx);
  ASSERT_TRUE(checks.ok()) << checks.status().ToString();
  bool counted_notes = false;
  for (const auto& ch : *checks) {
    if (ch.name == "row count notes") {
      counted_notes = true;
      EXPECT_FALSE(ch.passed) << ch.detail;
    }
  }
  EXPECT_TRUE(counted_notes);

  // Identity not provable: the rows are recounted, and the extra row found.
  const std::string record = tmp_.Join("state/runs/run1/postgres-db.verified");
  auto text = Env::Default()->fs()->ReadFile(record);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  json rec = json::parse(*text);
  // (a) the record names another database (oid).
  json other = rec;
  other["oid"] = rec["oid"].get<uint32_t>() + 1;
  ASSERT_TRUE(Env::Default()->fs()->WriteFileAtomic(record, other.dump()).ok());
  progress_.clear();
  st = driver_->VerifyRestored(c, e, ctx);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("row count notes"), std::string::npos) << st.message();
  EXPECT_NE(progress_.find("recounting"), std::string::npos) << progress_;
  // (b) no record at all.
  ASSERT_TRUE(Env::Default()->fs()->RemoveAll(record).ok());
  st = driver_->VerifyRestored(c, e, ctx);
  EXPECT_FALSE(st.ok());
  // (c) the record of another restore point.
  json rp2 = rec;
  rp2["restore_point_id"] = "rp-2";
  ASSERT_TRUE(Env::Default()->fs()->WriteFileAtomic(record, rp2.dump()).ok());
  EXPECT_FALSE(driver_->VerifyRestored(c, e, ctx).ok());
  // The true record again: identity proven.
  ASSERT_TRUE(Env::Default()->fs()->WriteFileAtomic(record, rec.dump()).ok());
  EXPECT_TRUE(driver_->VerifyRestored(c, e, ctx).ok());

  // A run whose live database was swapped by hand after the rollback.
  Sql("ALTER DATABASE " + db_ + " RENAME TO " + db_ + "_by_hand", "postgres");
  Sql("CREATE DATABASE " + db_ + " OWNER app", "postgres");
  st = driver_->VerifyRestored(c, e, ctx);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("row count"), std::string::npos) << st.message();
}

TEST_F(PostgresDriverTest, IntegrityQueriesCompareNumbersTypedInTheSpec) {
  // `expect` is an Expectation (spec_expect.h): compared as a number, so
  // "<= 0" and "0" hold for a count of 0 and a bad one fails with what it found.
  settings_["integrity"] =
      json::array({{{"name", "no tasks"},
                    {"sql", "SELECT count(*) FROM tasks WHERE false"},
                    {"expect", "<= 0"}},
                   {{"name", "zero as numeric"}, {"sql", "SELECT 0.0::numeric"}, {"expect", "0"}},
                   {{"name", "too few"}, {"sql", "SELECT 3"}, {"expect", "> 5"}}});
  ComponentSpec c = Component();
  DriverContext ctx = Ctx("");
  auto checks = driver_->CheckInvariants(c, json(), ctx);
  ASSERT_TRUE(checks.ok()) << checks.status().ToString();
  std::map<std::string, IntegrityCheck> by_name;
  for (const auto& ch : *checks) by_name[ch.name] = ch;
  EXPECT_TRUE(by_name["no tasks"].passed) << by_name["no tasks"].detail;
  EXPECT_TRUE(by_name["zero as numeric"].passed) << by_name["zero as numeric"].detail;
  EXPECT_FALSE(by_name["too few"].passed);
  EXPECT_EQ(by_name["too few"].detail, "expected > 5, found 3");

  // A value the spec parser would refuse is refused by the driver too.
  settings_["integrity"] = json::array({{{"name", "x"}, {"sql", "SELECT 1"}, {"expect", "zero"}}});
  c = Component();
  auto refused = driver_->CheckInvariants(c, json(), ctx);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::Code::kInvalidArgument);
}

// A rollback refused before its swap leaves a safety entry that holds no copy
// of the database: undoing it is right only while the database is provably
// unchanged since. Written since: refused, never "nothing to undo".

TEST_F(PostgresDriverTest, SafetyEntryOfARunThatNeverSwappedRestoresOnlyAnUnchangedDatabase) {
  json e = Snap("rp-1");
  ComponentSpec c = Component();
  WaitForNoSessions(db_);
  json safety1 = Snap("rp-s1", "run1", RestorePointKind::kSafety);
  DriverContext ctx1 = Ctx("run1");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx1).ok());  // then refused: no swap
  ASSERT_TRUE(driver_->Prune(c, "run1", ctx1).ok());

  // Unchanged since: the undo has nothing to do, and proves it.
  DriverContext ctx2 = Ctx("run2");
  ASSERT_TRUE(driver_->CheckRestorable(c, safety1, ctx2).ok());
  ASSERT_TRUE(driver_->Prepare(c, safety1, ctx2).ok());
  ASSERT_TRUE(driver_->Restore(c, safety1, ctx2).ok());
  Status v = driver_->VerifyRestored(c, safety1, ctx2);
  EXPECT_TRUE(v.ok()) << v.ToString();

  // Written since: every call says the entry cannot restore it.
  Sql("INSERT INTO agents (name) VALUES ('after the refusal')");
  WaitForNoSessions(db_);
  const std::string written = Fingerprint(db_);
  DriverContext ctx3 = Ctx("run3");
  Status r = driver_->CheckRestorable(c, safety1, ctx3);
  EXPECT_EQ(r.code(), Status::Code::kFailedPrecondition) << r.ToString();
  EXPECT_NE(r.message().find("never"), std::string::npos) << r.message();
  Status p = driver_->Prepare(c, safety1, ctx3);
  EXPECT_FALSE(p.ok());
  EXPECT_FALSE(driver_->Restore(c, safety1, ctx3).ok());
  EXPECT_FALSE(driver_->VerifyRestored(c, safety1, ctx3).ok());
  EXPECT_EQ(Fingerprint(db_), written);
}

// An undo swaps the retained database back in: the safety entry that named
// it can no longer restore anything, and says so (CheckRestorable) instead
// of passing `snapshots verify`; VerifyRestored proves the swapped-in
// database is the retained one by its oid.

TEST_F(PostgresDriverTest, SafetyEntryIsRestorableUntilItsRetainedDatabaseIsUsed) {
  json e = Snap("rp-1");
  ComponentSpec c = Component();
  Sql("INSERT INTO agents (name) VALUES ('bad deploy')");
  json safety1 = Snap("rp-s1", "run1", RestorePointKind::kSafety);
  DriverContext ctx1 = Ctx("run1");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx1).ok());
  ASSERT_TRUE(driver_->Restore(c, e, ctx1).ok());
  ASSERT_TRUE(driver_->VerifyRestored(c, e, ctx1).ok());

  DriverContext ctx2 = Ctx("run2");
  Status ok = driver_->CheckRestorable(c, safety1, ctx2);
  ASSERT_TRUE(ok.ok()) << ok.ToString();
  ASSERT_TRUE(driver_->Prepare(c, safety1, ctx2).ok());
  ASSERT_TRUE(driver_->AssessLoss(c, safety1, ctx2).ok());
  ASSERT_TRUE(driver_->Restore(c, safety1, ctx2).ok());
  Status v = driver_->VerifyRestored(c, safety1, ctx2);
  ASSERT_TRUE(v.ok()) << v.ToString();
  EXPECT_EQ(Sql("SELECT count(*) FROM agents"), "51");

  DriverContext ctx3 = Ctx("run3");
  Status gone = driver_->CheckRestorable(c, safety1, ctx3);
  EXPECT_EQ(gone.code(), Status::Code::kFailedPrecondition) << gone.ToString();
  EXPECT_NE(gone.message().find("run2"), std::string::npos) << gone.message();

  // A database put in its place by hand is not the retained one.
  DriverContext ctx4 = Ctx("run4");
  json safety4 = Snap("rp-s4", "run4", RestorePointKind::kSafety);
  ASSERT_TRUE(driver_->Prepare(c, e, ctx4).ok());
  ASSERT_TRUE(driver_->Restore(c, e, ctx4).ok());
  Sql("DROP DATABASE " + db_ + "_pre_rollback_run4", "postgres");
  Sql("CREATE DATABASE " + db_ + "_pre_rollback_run4 OWNER app", "postgres");
  DriverContext ctx5 = Ctx("run5");
  Status impostor = driver_->CheckRestorable(c, safety4, ctx5);
  EXPECT_EQ(impostor.code(), Status::Code::kFailedPrecondition) << impostor.ToString();
}

// A restore moves sequences back: values already handed out will be handed
// out again, so the ledger's keys will later name other rows. Each one is a
// rewind in the report and a line of the ledger, also for a resumed run.

TEST_F(PostgresDriverTest, LeftoversOfKilledRunsAreRemoved) {
  json e = Snap("rp-1");
  ComponentSpec c = Component();
  const std::string left = db_ + "_bs_shadow_killed1";
  Sql("CREATE DATABASE " + left + " OWNER app", "postgres");
  const std::string scratch = tmp_.Join("state/components/db/restore-killed1");
  ASSERT_TRUE(Env::Default()->fs()->CreateDirs(scratch).ok());
  DriverContext ctx = Ctx("run2");
  Status prepared = driver_->Prepare(c, e, ctx);
  ASSERT_TRUE(prepared.ok()) << prepared.ToString();
  EXPECT_FALSE(server_->DatabaseExists(left));
  EXPECT_FALSE(Env::Default()->fs()->Exists(scratch));
  EXPECT_TRUE(server_->DatabaseExists(db_ + "_bs_shadow_run2"));

  Sql("CREATE DATABASE " + left + " OWNER app", "postgres");
  DriverContext pctx = Ctx("");
  ASSERT_TRUE(driver_->Prune(c, "", pctx).ok());
  EXPECT_FALSE(server_->DatabaseExists(left));
  EXPECT_TRUE(server_->DatabaseExists(db_));
}

}  // namespace
}  // namespace backstop::postgres

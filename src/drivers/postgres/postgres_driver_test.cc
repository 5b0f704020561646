// Integration tests of the postgres driver against a real PostgreSQL 15
// started by testing::PgServer in a temporary directory.
#include "drivers/postgres/postgres_driver.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "base/hash.h"
#include "store/store.h"
#include "testing/pg_server.h"
#include "testing/test_env.h"

namespace backstop::postgres {
namespace {

using json = nlohmann::json;
using testing::PgServer;
using testing::TempDir;

constexpr char kSchema[] = R"sql(
CREATE TABLE agents (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE tasks (
  id bigserial PRIMARY KEY,
  assigned_agent_id int REFERENCES agents(id),
  title text NOT NULL,
  payload jsonb);
CREATE TABLE tags (task_id bigint REFERENCES tasks(id), tag text, PRIMARY KEY (task_id, tag));
CREATE TABLE notes (body text);
INSERT INTO agents (name) SELECT 'agent-' || g FROM generate_series(1, 50) g;
INSERT INTO tasks (assigned_agent_id, title, payload)
  SELECT 1 + g % 50, 'task-' || g, jsonb_build_object('n', g, 'tab', E'a\tb')
  FROM generate_series(1, 2000) g;
INSERT INTO tags SELECT id, t FROM tasks, unnest(ARRAY['red', 'blue']) t WHERE id <= 300;
INSERT INTO notes SELECT 'note ' || g FROM generate_series(1, 20) g;
)sql";

class PostgresDriverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto s = PgServer::Start();
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = s->release();
    ASSERT_TRUE(server_->CreateUser("app", /*createdb=*/true).ok());
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    db_ = "shop_" + std::to_string(++counter_);
    ASSERT_TRUE(server_->CreateDb(db_, "app").ok());
    ASSERT_TRUE(server_->Exec(db_, kSchema, "app").ok());
    auto store = Store::Open(Env::Default(), tmp_.Join("store"));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    settings_ = {
        {"connection", server_->ConnInfo(db_, "app")},
        {"jobs", 2},
        {"staged", "never"},
        {"integrity",
         {{{"name", "orphaned tasks"},
           {"sql",
            "SELECT count(*) FROM tasks t LEFT JOIN agents a ON t.assigned_agent_id = a.id "
            "WHERE t.assigned_agent_id IS NOT NULL AND a.id IS NULL"},
           {"expect", "0"}}}}};
    auto d = DriverRegistry::Global().Create("postgres");
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    driver_ = std::move(d).value();
  }

  ComponentSpec Component() const {
    ComponentSpec c;
    c.name = "db";
    c.kind = "database";
    c.driver = "postgres";
    c.settings = settings_;
    return c;
  }

  DriverContext Ctx(const std::string& run_id, const std::string& rp_id = "",
                    const std::string& kind = "manual") {
    DriverContext ctx;
    ctx.env = Env::Default();
    ctx.store = store_.get();
    ctx.state_dir = tmp_.Join("state");
    ctx.run_id = run_id;
    ctx.run_dir = run_id.empty() ? "" : tmp_.Join("state/runs/" + run_id);
    ctx.restore_point_id = rp_id;
    ctx.snapshot_kind = kind;
    ctx.progress = [this](const std::string& line) {
      std::cerr << "  progress: " << line << "\n";
      progress_ += line + "\n";
    };
    return ctx;
  }

  json Snap(const std::string& rp_id, const std::string& run_id = "",
            const std::string& kind = "manual") {
    DriverContext ctx = Ctx(run_id, rp_id, kind);
    auto e = driver_->Snapshot(Component(), ctx);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? *e : json();
  }

  std::string Sql(const std::string& sql, const std::string& db = "") {
    auto r = server_->Exec(db.empty() ? db_ : db, sql, "postgres");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : "";
  }

  // Everything a client could read: every table's rows and the sequences.
  std::string Fingerprint(const std::string& db) {
    std::string out;
    for (const char* t : {"agents", "tasks", "tags", "notes"}) {
      out += t + std::string(":") +
             Sql(std::string("SELECT count(*) || '/' || md5(coalesce(string_agg(t::text, E'\\n' "
                             "ORDER BY t::text), '')) FROM ") +
                     t + " t",
                 db) +
             "\n";
    }
    out +=
        Sql("SELECT string_agg(sequencename || '=' || coalesce(last_value::text, 'null'), ',' "
            "ORDER BY sequencename) FROM pg_sequences",
            db);
    return out;
  }

  // pg_dump --data-only of `db`, hashed: equal means byte-for-byte the same data.
  std::string DataDumpHash(const std::string& db) {
    auto out = server_->RunClient(
        {"pg_dump", "--data-only", "--no-password", "--restrict-key=fixedkey", "-d", db});
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? Sha256Hex(*out) : "";
  }

  std::vector<json> ReadLedger(const std::string& run_id) {
    std::vector<json> lines;
    std::ifstream f(tmp_.Join("state/runs/" + run_id + "/ledger-db.jsonl"));
    std::string line;
    while (std::getline(f, line)) lines.push_back(json::parse(line));
    return lines;
  }

  static std::set<std::string> RowChanges(const std::vector<json>& ledger) {
    std::set<std::string> out;
    for (const auto& l : ledger) {
      std::string change = l["change"];
      if (change == "inserted" || change == "deleted" || change == "changed") {
        out.insert(l["table"].get<std::string>() + " " + change + " " + l["key"].dump());
      }
    }
    return out;
  }

  // Waits until every client session on `db` has ended (a session flushes
  // its table statistics as it leaves).
  void WaitForNoSessions(const std::string& db) {
    while (Sql("SELECT count(*) FROM pg_stat_activity WHERE datname = '" + db +
                   "' AND pid <> pg_backend_pid()",
               "postgres") != "0") {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  static const DataLossItem* Item(const DataLossReport& r, const std::string& table) {
    for (const auto& i : r.items) {
      if (i.object == table) return &i;
    }
    return nullptr;
  }

  static PgServer* server_;
  static int counter_;
  TempDir tmp_;
  std::string db_;
  json settings_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Driver> driver_;
  std::string progress_;  // every progress line so far
};

PgServer* PostgresDriverTest::server_ = nullptr;
int PostgresDriverTest::counter_ = 0;

TEST_F(PostgresDriverTest, SnapshotRecordsPositionCountsKeysForeignKeysAndBlobs) {
  json e = Snap("rp-20260101T000000Z-aaaaaa");
  ASSERT_TRUE(e.is_object());
  EXPECT_EQ(e["position"]["row_counts"]["public.tasks"], 2000);
  EXPECT_EQ(e["position"]["row_counts"]["public.tags"], 600);
  EXPECT_EQ(e["position"]["row_counts"]["public.notes"], 20);
  EXPECT_EQ(e["position"]["max_keys"]["public.agents"], 50);
  EXPECT_EQ(e["position"]["sequences"]["public.tasks_id_seq"], 2000);
  EXPECT_FALSE(e["position"]["lsn"].get<std::string>().empty());
  EXPECT_EQ(e["foreign_keys"].size(), 2u);
  EXPECT_NE(std::find(e["roles"].begin(), e["roles"].end(), "app"), e["roles"].end());
  EXPECT_FALSE(e.contains("staged_database"));
  ASSERT_FALSE(e["blobs"].empty());
  for (const auto& b : e["blobs"]) EXPECT_TRUE(store_->Has(b.get<std::string>()));
  bool has_toc = false;
  for (const auto& f : e["files"]) has_toc |= f["name"] == "toc.dat";
  EXPECT_TRUE(has_toc);
  // The password never reaches the entry.
  EXPECT_EQ(e.dump().find("password"), std::string::npos);

  Sql("INSERT INTO notes VALUES ('one more')");
  DriverContext ctx = Ctx("");
  auto d = driver_->Describe(Component(), ctx);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ((*d)["position"]["row_counts"]["public.notes"], 21);
  EXPECT_EQ((*d)["server_version"].get<std::string>().rfind("15", 0), 0u);
}

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
  json safety = Snap("rp-safety", "run1", "safety");
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

TEST_F(PostgresDriverTest, StagedRestorePointIsSwappedIn) {
  settings_["staged"] = "always";
  json e = Snap("rp-20260101T000000Z-bbbbbb");
  ASSERT_TRUE(e.contains("staged_database")) << e.dump();
  const std::string staged = e["staged_database"];
  EXPECT_EQ(staged, db_ + "_bs_staged_20260101t000000z_bbbbbb");
  EXPECT_EQ(Sql("SELECT datallowconn FROM pg_database WHERE datname = '" + staged + "'"), "f");
  const std::string before = Fingerprint(db_);
  Sql("DELETE FROM tags; DELETE FROM tasks WHERE id > 100;");

  ComponentSpec c = Component();
  // A run that prepares but never swaps (refused, say): Prune gives the staged copy back.
  DriverContext ctx0 = Ctx("run0");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx0).ok());
  EXPECT_FALSE(server_->DatabaseExists(staged));
  ASSERT_TRUE(driver_->Prune(c, "run0", ctx0).ok());
  EXPECT_TRUE(server_->DatabaseExists(staged));
  EXPECT_FALSE(server_->DatabaseExists(db_ + "_bs_shadow_run0"));

  DriverContext ctx = Ctx("run1");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx).ok());
  EXPECT_FALSE(server_->DatabaseExists(staged));  // consumed: renamed to the shadow
  auto loss = driver_->AssessLoss(c, e, ctx);
  ASSERT_TRUE(loss.ok()) << loss.status().ToString();
  EXPECT_EQ(Item(*loss, "tasks")->deleted, 1900u);
  EXPECT_EQ(Item(*loss, "tags")->deleted, 600u);
  ASSERT_TRUE(driver_->Restore(c, e, ctx).ok());
  ASSERT_TRUE(driver_->VerifyRestored(c, e, ctx).ok());
  EXPECT_EQ(Fingerprint(db_), before);

  // The staged copy is gone; a second rollback to the same point restores from the dump.
  Sql("DELETE FROM notes");
  DriverContext ctx2 = Ctx("run2");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx2).ok());
  ASSERT_TRUE(driver_->Restore(c, e, ctx2).ok());
  EXPECT_EQ(Fingerprint(db_), before);
}

TEST_F(PostgresDriverTest, SafetySnapshotUndoesTheRollback) {
  json e = Snap("rp-1");
  const std::string at_rp = Fingerprint(db_);
  Sql("INSERT INTO agents (name) VALUES ('kept by undo'); DELETE FROM notes;");
  const std::string bad = Fingerprint(db_);
  ComponentSpec c = Component();

  DriverContext ctx1 = Ctx("run1");
  json safety1 = Snap("rp-s1", "run1", "safety");
  EXPECT_TRUE(safety1["blobs"].empty());
  ASSERT_TRUE(driver_->Prepare(c, e, ctx1).ok());
  ASSERT_TRUE(driver_->Restore(c, e, ctx1).ok());
  EXPECT_EQ(Fingerprint(db_), at_rp);

  // Undo: restore the safety entry of run1 in run2.
  DriverContext ctx2 = Ctx("run2");
  json safety2 = Snap("rp-s2", "run2", "safety");
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
  json never = Snap("rp-s9", "run9", "safety");
  DriverContext ctx10 = Ctx("run10");
  ASSERT_TRUE(driver_->Prepare(c, never, ctx10).ok());
  auto none = driver_->AssessLoss(c, never, ctx10);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->items.empty());
  ASSERT_TRUE(driver_->Restore(c, never, ctx10).ok());
  EXPECT_EQ(Fingerprint(db_), at_rp);
  // One that swapped but whose retained database was pruned cannot be undone.
  DriverContext ctx11 = Ctx("run11");
  json safety11 = Snap("rp-s11", "run11", "safety");
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

TEST_F(PostgresDriverTest, OnlyTheNewestStagedCopiesAreKept) {
  settings_["staged"] = "always";
  settings_["staged_keep"] = 2;
  json e1 = Snap("rp-20260101T000001Z-aaaaa1");
  json e2 = Snap("rp-20260101T000002Z-aaaaa2");
  json e3 = Snap("rp-20260101T000003Z-aaaaa3");
  EXPECT_FALSE(server_->DatabaseExists(e1["staged_database"]));
  EXPECT_TRUE(server_->DatabaseExists(e2["staged_database"]));
  EXPECT_TRUE(server_->DatabaseExists(e3["staged_database"]));
  // The oldest restore point still rolls back, from its dump.
  const std::string at_rp = Fingerprint(db_);
  Sql("DELETE FROM notes");
  ComponentSpec c = Component();
  DriverContext ctx = Ctx("run1");
  ASSERT_TRUE(driver_->Prepare(c, e1, ctx).ok());
  ASSERT_TRUE(driver_->Restore(c, e1, ctx).ok());
  EXPECT_EQ(Fingerprint(db_), at_rp);
}

TEST_F(PostgresDriverTest, RollbackBringsBackADroppedDatabase) {
  json e = Snap("rp-1");
  const std::string at_rp = Fingerprint(db_);
  Sql("DROP DATABASE " + db_ + " WITH (FORCE)", "postgres");
  ComponentSpec c = Component();
  DriverContext ctx = Ctx("run1");
  json safety = Snap("rp-s1", "run1", "safety");
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

TEST_F(PostgresDriverTest, BlobsNeededOnlyWhenTheStagedCopyCannotBeUsed) {
  ComponentSpec cold_c = Component();
  json cold = Snap("rp-20260101T000000Z-cccccc");
  DriverContext ctx = Ctx("run1");
  std::vector<std::string> all = cold["blobs"].get<std::vector<std::string>>();
  ASSERT_FALSE(all.empty());
  // No staged copy: every blob of the dump is read, so every one is checked.
  EXPECT_EQ(driver_->BlobsNeeded(cold_c, cold, ctx), all);

  settings_["staged"] = "always";
  ComponentSpec c = Component();
  json e = Snap("rp-20260101T000000Z-dddddd");
  const std::string staged = e["staged_database"];
  all = e["blobs"].get<std::vector<std::string>>();
  // Intact staged copy: Prepare restores from it and reads no blob.
  EXPECT_TRUE(driver_->BlobsNeeded(c, e, ctx).empty());

  // A database of that name whose marker is not this restore point's is not the copy.
  Sql("COMMENT ON DATABASE " + staged + " IS 'backstop:staged db=" + db_ + " rp=rp-other'",
      "postgres");
  EXPECT_EQ(driver_->BlobsNeeded(c, e, ctx), all);
  Sql("COMMENT ON DATABASE " + staged + " IS 'backstop:staged db=" + db_ +
          " rp=rp-20260101T000000Z-dddddd'",
      "postgres");
  EXPECT_TRUE(driver_->BlobsNeeded(c, e, ctx).empty());

  // This run's shadow, already prepared (a resumed run): no blob either.
  ASSERT_TRUE(driver_->Prepare(c, e, ctx).ok());
  EXPECT_FALSE(server_->DatabaseExists(staged));
  EXPECT_TRUE(driver_->BlobsNeeded(c, e, ctx).empty());
  // Another run, the staged copy consumed by run1: back to the dump.
  DriverContext ctx2 = Ctx("run2");
  EXPECT_EQ(driver_->BlobsNeeded(c, e, ctx2), all);

  // The staged copy dropped by hand: the dump is needed again.
  ASSERT_TRUE(driver_->Prune(c, "run1", ctx).ok());  // gives the staged copy back
  ASSERT_TRUE(server_->DatabaseExists(staged));
  EXPECT_TRUE(driver_->BlobsNeeded(c, e, ctx2).empty());
  Sql("DROP DATABASE " + staged, "postgres");
  EXPECT_EQ(driver_->BlobsNeeded(c, e, ctx2), all);
  // ... and Prepare then restores from the dump.
  ASSERT_TRUE(driver_->Prepare(c, e, ctx2).ok());
  EXPECT_NE(progress_.find("ready from dump"), std::string::npos) << progress_;
}

TEST_F(PostgresDriverTest, DiscardSnapshotDropsOnlyItsStagedCopy) {
  settings_["staged"] = "always";
  settings_["staged_keep"] = 5;
  ComponentSpec c = Component();
  json e1 = Snap("rp-20260101T000001Z-eeeee1");
  json e2 = Snap("rp-20260101T000002Z-eeeee2");
  const std::string staged1 = e1["staged_database"], staged2 = e2["staged_database"];
  ASSERT_TRUE(server_->DatabaseExists(staged1));
  ASSERT_TRUE(server_->DatabaseExists(staged2));
  DriverContext ctx = Ctx("");

  DriverContext dry = Ctx("");
  dry.dry_run = true;
  ASSERT_TRUE(driver_->DiscardSnapshot(c, e1, dry).ok());
  EXPECT_TRUE(server_->DatabaseExists(staged1));

  ASSERT_TRUE(driver_->DiscardSnapshot(c, e1, ctx).ok());
  EXPECT_FALSE(server_->DatabaseExists(staged1));
  EXPECT_TRUE(server_->DatabaseExists(staged2));
  EXPECT_TRUE(server_->DatabaseExists(db_));
  // Idempotent: nothing left to drop.
  ASSERT_TRUE(driver_->DiscardSnapshot(c, e1, ctx).ok());

  // A database that has the staged name but is not the copy (no marker) stays.
  Sql("CREATE DATABASE " + staged1 + " OWNER app", "postgres");
  ASSERT_TRUE(driver_->DiscardSnapshot(c, e1, ctx).ok());
  EXPECT_TRUE(server_->DatabaseExists(staged1));

  // Entries without a staged copy (cold, safety) discard nothing.
  settings_["staged"] = "never";
  json cold = Snap("rp-20260101T000003Z-eeeee3");
  ASSERT_TRUE(driver_->DiscardSnapshot(Component(), cold, ctx).ok());
  json safety = Snap("rp-s", "run9", "safety");
  ASSERT_TRUE(driver_->DiscardSnapshot(Component(), safety, ctx).ok());
  EXPECT_TRUE(server_->DatabaseExists(staged2));
  EXPECT_TRUE(server_->DatabaseExists(db_));
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

TEST_F(PostgresDriverTest, StagedCopyIsRecountedWhenASessionTouchedIt) {
  settings_["staged"] = "always";
  ComponentSpec c = Component();
  json e = Snap("rp-20260101T000000Z-ffffff");
  const std::string staged = e["staged_database"];
  ASSERT_TRUE(e.contains("staged_verified")) << e.dump();
  const std::string at_rp = Fingerprint(db_);
  Sql("DELETE FROM tags");

  // Untouched since Stage counted it: not recounted.
  DriverContext ctx0 = Ctx("run0");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx0).ok());
  EXPECT_NE(progress_.find("untouched since it was verified"), std::string::npos) << progress_;
  ASSERT_TRUE(driver_->Prune(c, "run0", ctx0).ok());  // back to being the staged copy
  ASSERT_TRUE(server_->DatabaseExists(staged));

  // Someone opens the staged copy and changes it: Prepare must notice.
  Sql("ALTER DATABASE " + staged + " ALLOW_CONNECTIONS true", "postgres");
  Sql("DELETE FROM notes WHERE body = 'note 3'", staged);
  Sql("ALTER DATABASE " + staged + " ALLOW_CONNECTIONS false", "postgres");
  progress_.clear();
  DriverContext ctx = Ctx("run1");
  Status st = driver_->Prepare(c, e, ctx);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("row count notes"), std::string::npos) << st.message();
  EXPECT_NE(progress_.find("recounting the rows of the staged copy"), std::string::npos)
      << progress_;
  EXPECT_FALSE(driver_->Restore(c, e, ctx).ok());

  // A session that changed nothing is enough to force the recount, which then passes.
  json e2 = Snap("rp-20260101T000001Z-ffffff");
  const std::string staged2 = e2["staged_database"];
  Sql("ALTER DATABASE " + staged2 + " ALLOW_CONNECTIONS true", "postgres");
  Sql("SELECT 1", staged2);
  Sql("ALTER DATABASE " + staged2 + " ALLOW_CONNECTIONS false", "postgres");
  progress_.clear();
  DriverContext ctx2 = Ctx("run2");
  ASSERT_TRUE(driver_->Prepare(c, e2, ctx2).ok());
  EXPECT_NE(progress_.find("recounting the rows of the staged copy"), std::string::npos)
      << progress_;
  ASSERT_TRUE(driver_->Restore(c, e2, ctx2).ok());
  EXPECT_EQ(Sql("SELECT count(*) FROM tags"), "0");  // e2 was taken after the delete
  (void)at_rp;
}

TEST_F(PostgresDriverTest, LargeDumpFilesAreStreamedIntoPgRestore) {
  // A table whose dump file is well over the 1 MiB streaming threshold.
  Sql("CREATE TABLE big (id int PRIMARY KEY, body text);"
      "INSERT INTO big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 40000) g;"
      "ALTER TABLE big OWNER TO app");
  json e = Snap("rp-1");
  const std::string at_rp =
      Fingerprint(db_) + Sql("SELECT md5(string_agg(body, ',' ORDER BY id)) FROM big");
  Sql("DELETE FROM big WHERE id % 7 = 0; UPDATE big SET body = 'x' WHERE id < 100");
  ComponentSpec c = Component();
  DriverContext ctx = Ctx("run1");
  Status st = driver_->Prepare(c, e, ctx);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_NE(progress_.find("1 dump files streamed"), std::string::npos) << progress_;
  ASSERT_TRUE(driver_->Restore(c, e, ctx).ok());
  ASSERT_TRUE(driver_->VerifyRestored(c, e, ctx).ok());
  EXPECT_EQ(Fingerprint(db_) + Sql("SELECT md5(string_agg(body, ',' ORDER BY id)) FROM big"),
            at_rp);
  // No scratch copy or pipe is left behind.
  EXPECT_FALSE(Env::Default()->fs()->Exists(tmp_.Join("state/components/db/restore-run1")));

  // The streamed blob damaged on disk: pg_restore may load what it got, but
  // the stream's hash check fails Prepare, the shadow is dropped, live untouched.
  const std::string live_before = DataDumpHash(db_);
  std::string big_digest;
  uint64_t big_size = 0;
  for (const auto& f : e["files"]) {
    if (f["size"].get<uint64_t>() > big_size) {
      big_size = f["size"];
      big_digest = f["digest"];
    }
  }
  ASSERT_GT(big_size, 1u << 20);
  {
    auto raw = Env::Default()->fs()->ReadFile(store_->BlobPath(big_digest));
    ASSERT_TRUE(raw.ok());
    std::string damaged = *raw;
    damaged[damaged.size() / 2] ^= 0x20;
    ASSERT_TRUE(Env::Default()->fs()->WriteFileAtomic(store_->BlobPath(big_digest), damaged).ok());
  }
  DriverContext ctx2 = Ctx("run2");
  st = driver_->Prepare(c, e, ctx2);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find(big_digest), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("untouched"), std::string::npos) << st.message();
  EXPECT_FALSE(server_->DatabaseExists(db_ + "_bs_shadow_run2"));
  EXPECT_EQ(DataDumpHash(db_), live_before);
  EXPECT_FALSE(driver_->Restore(c, e, ctx2).ok());
  EXPECT_EQ(DataDumpHash(db_), live_before);
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
  json safety1 = Snap("rp-s1", "run1", "safety");
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
  json safety1 = Snap("rp-s1", "run1", "safety");
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
  json safety4 = Snap("rp-s4", "run4", "safety");
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
TEST_F(PostgresDriverTest, SalvageExportsDiscardedRowsAndAppliesThemAllOrNothing) {
  json e = Snap("rp-1");
  Sql("INSERT INTO agents (name) VALUES ('taken during the bad deploy');"
      "INSERT INTO tasks (assigned_agent_id, title, payload) SELECT 51, 'order ' || g, "
      "jsonb_build_object('g', g) FROM generate_series(1, 4) g;"
      "UPDATE tasks SET title = 'renamed' WHERE id = 10;");
  ComponentSpec c = Component();
  DriverContext ctx = Ctx("run1");
  ASSERT_TRUE(driver_->Prepare(c, e, ctx).ok());
  ASSERT_TRUE(driver_->AssessLoss(c, e, ctx).ok());
  ASSERT_TRUE(driver_->Restore(c, e, ctx).ok());
  const std::string aside = db_ + "_pre_rollback_run1";
  auto read_lines = [](const std::string& path) {
    std::vector<json> out;
    std::ifstream f(path);
    for (std::string line; std::getline(f, line);) out.push_back(json::parse(line));
    return out;
  };

  SalvageRequest req;
  req.run_id = "run1";
  req.run_dir = tmp_.Join("state/runs/run1");
  req.object = "tasks";
  req.output_path = tmp_.Join("tasks.jsonl");
  auto all = driver_->Salvage(c, req, ctx);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->exported, 5u);  // 4 inserted, 1 changed
  std::vector<json> lines = read_lines(req.output_path);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0]["table"], "tasks");
  EXPECT_EQ(lines[0]["key"], json({{"id", 10}}));
  EXPECT_EQ(lines[0]["row"]["title"], "renamed");
  EXPECT_EQ(lines[1]["row"]["payload"], json({{"g", 1}}));
  EXPECT_EQ(Sql("SELECT datallowconn FROM pg_database WHERE datname = '" + aside + "'"), "f");

  // Filtered by an SQL condition, or by ledger keys.
  req.where = "payload ->> 'g' = '2'";
  auto where = driver_->Salvage(c, req, ctx);
  ASSERT_TRUE(where.ok()) << where.status().ToString();
  EXPECT_EQ(where->exported, 1u);
  req.where = "no_such_column = 1";
  auto bad_where = driver_->Salvage(c, req, ctx);
  EXPECT_EQ(bad_where.status().code(), Status::Code::kInvalidArgument)
      << bad_where.status().ToString();
  req.where.clear();
  // A key the run did not discard is a mistake, not a choice of nothing.
  req.keys = {json{{"id", 2001}}, json{{"id", 99999}}};
  auto stray = driver_->Salvage(c, req, ctx);
  EXPECT_TRUE(stray.status().IsNotFound()) << stray.status().ToString();
  EXPECT_NE(stray.status().message().find("99999"), std::string::npos);
  req.keys.clear();
  EXPECT_EQ(Sql("SELECT datallowconn FROM pg_database WHERE datname = '" + aside + "'"), "f");
  req.where.clear();

  // Applying the changed row too: its key is taken live, so nothing goes in.
  req.apply = true;
  auto conflict = driver_->Salvage(c, req, ctx);
  ASSERT_TRUE(conflict.ok()) << conflict.status().ToString();
  EXPECT_EQ(conflict->applied, 0u);
  ASSERT_EQ(conflict->conflicts.size(), 5u);  // 10 is taken; the others need agent 51
  EXPECT_EQ(Sql("SELECT count(*) FROM tasks"), "2000");

  // The orders and the agent they reference: all go back, parents first.
  SalvageRequest both = req;
  both.object.clear();
  both.keys = {json{{"table", "agents"}, {"key", {{"id", 51}}}}};
  for (int id = 2001; id <= 2004; ++id) {
    both.keys.push_back(json{{"table", "tasks"}, {"key", {{"id", id}}}});
  }
  auto applied = driver_->Salvage(c, both, ctx);
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  EXPECT_TRUE(applied->conflicts.empty()) << applied->conflicts.front();
  EXPECT_EQ(applied->applied, 5u);
  EXPECT_EQ(Sql("SELECT count(*) FROM tasks WHERE title LIKE 'order %'"), "4");
  EXPECT_EQ(Sql("SELECT name FROM agents WHERE id = 51"), "taken during the bad deploy");
  // The sequences move past the keys that went back.
  EXPECT_EQ(Sql("SELECT nextval('tasks_id_seq')"), "2005");
  EXPECT_EQ(Sql("SELECT nextval('agents_id_seq')"), "52");
  EXPECT_EQ(Sql("SELECT datallowconn FROM pg_database WHERE datname = '" + aside + "'"), "f");
}

// Shadows and scratch directories of killed runs are removed by the next
// Prepare and by prune (Prune with no run id), never the current run's.
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

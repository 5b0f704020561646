// PostgresDriverTest, the fixture of the postgres driver's tests
// (src/drivers/postgres/*_test.cc) against a real PostgreSQL 15 started by
// testing::PgServer in a temporary directory: a fresh database per test
// holding the schema below, a store, a driver, and helpers to read what the
// driver did.
//
// Ownership: each test owns its database, store and driver; the server is
// shared by the tests of one executable.
// Thread-safety: GoogleTest's, one test at a time.
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "base/hash.h"
#include "drivers/postgres/postgres_driver.h"
#include "store/store.h"
#include "testing/pg_server.h"
#include "testing/test_env.h"

namespace backstop::postgres {

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
    c.kind = ComponentKind::kDatabase;
    c.driver = "postgres";
    c.settings = settings_;
    return c;
  }

  DriverContext Ctx(const std::string& run_id, const std::string& rp_id = "",
                    RestorePointKind kind = RestorePointKind::kManual) {
    DriverContext ctx(*Env::Default());
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
            RestorePointKind kind = RestorePointKind::kManual) {
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

  inline static PgServer* server_ = nullptr;
  inline static int counter_ = 0;
  TempDir tmp_;
  std::string db_;
  json settings_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Driver> driver_;
  std::string progress_;  // every progress line so far
};

}  // namespace backstop::postgres

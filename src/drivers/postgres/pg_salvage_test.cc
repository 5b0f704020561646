// Integration tests of the postgres driver's salvage against a real
// PostgreSQL 15 (the fixture: testing/pg_driver_fixture.h).
#include "testing/pg_driver_fixture.h"

namespace backstop::postgres {
namespace {

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

}  // namespace
}  // namespace backstop::postgres

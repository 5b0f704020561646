// Flashback's undo against a real PostgreSQL 15 with wal_level=logical: a
// test_decoding slot made at the "restore point", changes made, the slot
// peeked, parsed and undone, and the tables compared with what they held.
#include "drivers/postgres/pg_undo.h"

#include <gtest/gtest.h>

#include "drivers/postgres/pg_sequences.h"
#include "testing/pg_server.h"

namespace backstop::postgres {
namespace {

using testing::PgServer;

class UndoTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    PgServer::Options o;
    o.logical_decoding = true;
    auto s = PgServer::Start(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  // A database of its own per test, and a slot in it named after it.
  void SetUp() override {
    db_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : db_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ASSERT_TRUE(server_->CreateDb(db_).ok());
    auto params = ConnParams::Parse(server_->ConnInfo(db_));
    ASSERT_TRUE(params.ok());
    auto conn = PgConn::Connect(*params, db_, 10'000);
    ASSERT_TRUE(conn.ok()) << conn.status().ToString();
    conn_ = std::move(*conn);
  }
  void TearDown() override {
    conn_.reset();
    (void)server_->Exec("postgres",
                        "SELECT pg_drop_replication_slot(slot_name) FROM "
                        "pg_replication_slots WHERE database = '" +
                            db_ + "'");
  }

  std::string Sql(const std::string& sql) {
    auto r = server_->Exec(db_, sql);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : "";
  }
  void CreateSlot() {
    Sql("SELECT pg_create_logical_replication_slot('" + db_ + "', 'test_decoding')");
  }
  // Every row of each table, in one fingerprint per table.
  std::string Contents(const std::vector<std::string>& tables) {
    std::string out;
    for (const auto& t : tables) {
      out += t + "=" +
             Sql("SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY "
                 "t::text)), '') FROM " +
                 t + " t") +
             "\n";
    }
    return out;
  }
  Result<ChangeStream> Peek() { return PeekChangeStream(*conn_, db_); }

  static PgServer* server_;
  std::string db_;
  std::unique_ptr<PgConn> conn_;
};

PgServer* UndoTest::server_ = nullptr;

const std::vector<std::string> kTables = {
    "parent", "child", "comp", "tkey", "nokey", "docs", "\"Odd \"\"Name\"\".x\""};

constexpr const char* kSchema = R"sql(
    CREATE TABLE parent (id int PRIMARY KEY, name text);
    CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id), note text);
    ALTER TABLE parent ADD COLUMN favourite_child int REFERENCES child (id);
    CREATE TABLE comp (a int, b text, v numeric(10, 2), c character(5), PRIMARY KEY (a, b));
    CREATE TABLE tkey (k text PRIMARY KEY, n numeric, f float8, flag boolean, tags text[],
                       ts timestamptz, gen int GENERATED ALWAYS AS (length(k)) STORED);
    CREATE TABLE nokey (x int, y text, j json, p point);
    CREATE TABLE docs (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text, meta jsonb,
                       counter int);
    CREATE TABLE "Odd ""Name"".x" ("Some Col" text, "it's" int);
    CREATE SEQUENCE seq;
    SELECT nextval('seq');
    INSERT INTO parent VALUES (1, 'one', NULL), (2, 'two', NULL);
    INSERT INTO child VALUES (10, 1, 'ten'), (11, 2, 'eleven');
    UPDATE parent SET favourite_child = 10 WHERE id = 1;
    INSERT INTO comp VALUES (1, 'x', 1.50, 'ab'), (1, 'y', NULL, NULL);
    INSERT INTO tkey VALUES ('k1', 1.0, 0.1, true, '{a,"b c"}', '2024-05-01 12:00:00+00'),
                            ('nulls', NULL, NULL, NULL, NULL, NULL);
    INSERT INTO nokey VALUES (1, 'dup', '{"a": 1}', '(1,2)'), (1, 'dup', '{"a": 1}', '(1,2)'),
                             (2, 'two', '{"b": [1, 2]}', '(0,0)'), (NULL, NULL, NULL, NULL);
    INSERT INTO docs (body, meta, counter)
      SELECT string_agg(md5(i::text), '' ORDER BY i), '{"k": "v"}', 0
      FROM generate_series(1, 3200) i;
    INSERT INTO "Odd ""Name"".x" VALUES ('line 1
line 2 with ''quotes'' and "dq"', 1);
    ALTER TABLE parent REPLICA IDENTITY FULL;
    ALTER TABLE child REPLICA IDENTITY FULL;
    ALTER TABLE comp REPLICA IDENTITY FULL;
    ALTER TABLE tkey REPLICA IDENTITY FULL;
    ALTER TABLE nokey REPLICA IDENTITY FULL;
    ALTER TABLE docs REPLICA IDENTITY FULL;
    ALTER TABLE "Odd ""Name"".x" REPLICA IDENTITY FULL;
  )sql";

TEST_F(UndoTest, UndoBringsEveryTableBackExactly) {
  Sql(kSchema);
  CreateSlot();
  const std::string before = Contents(kTables);
  auto seqs = ReadSequencePositions(*conn_);
  ASSERT_TRUE(seqs.ok()) << seqs.status().ToString();

  // Parent before child, and child before parent.
  Sql("BEGIN;"
      "INSERT INTO parent VALUES (3, 'three', NULL);"
      "INSERT INTO child VALUES (30, 3, 'thirty');"
      "UPDATE parent SET favourite_child = 30 WHERE id = 3;"
      "DELETE FROM child WHERE id = 11;"
      "DELETE FROM parent WHERE id = 2;"
      "INSERT INTO parent VALUES (99, 'gone again', NULL);"
      "COMMIT;");
  // Key columns, numerics, a row changed many times, NULLs both ways.
  Sql("BEGIN;"
      "UPDATE comp SET a = 2, b = 'z', v = 2.25 WHERE a = 1 AND b = 'x';"
      "UPDATE comp SET v = 0.10, c = 'abc' WHERE b = 'y';"
      "UPDATE tkey SET n = 2 WHERE k = 'k1';"
      "UPDATE tkey SET n = 3, f = 1e-300, tags = tags || '{\"it''s\"}'::text[] WHERE k = 'k1';"
      "UPDATE tkey SET k = 'k1 renamed', ts = '2030-01-01 00:00:00.123456+05:30' WHERE k = "
      "'k1';"
      "UPDATE tkey SET n = NULL, flag = false WHERE k = 'k1 renamed';"
      "UPDATE tkey SET n = 7, tags = '{}' WHERE k = 'nulls';"
      "DELETE FROM parent WHERE id = 99;"
      "SELECT nextval('seq') FROM generate_series(1, 5);"
      "COMMIT;");
  // Duplicates without a key, json and point (no equality operator), the
  // TOASTed row, odd identifiers.
  Sql("DELETE FROM nokey WHERE ctid = (SELECT ctid FROM nokey WHERE x = 1 LIMIT 1);"
      "UPDATE nokey SET j = '{\"b\": [1, 2, 3]}', p = '(5,5)' WHERE x = 2;"
      "UPDATE nokey SET y = 'was null' WHERE x IS NULL;"
      "INSERT INTO nokey VALUES (1, 'dup', '{\"a\": 1}', '(1,2)'), (3, 'new', '[]', '(9,9)');"
      "UPDATE docs SET counter = counter + 1;"
      "UPDATE docs SET counter = counter + 1, meta = meta || '{\"n\": 2}';"
      "UPDATE docs SET body = body || 'tail';"
      "INSERT INTO docs (body, meta, counter) VALUES ('small', NULL, NULL);"
      "UPDATE \"Odd \"\"Name\"\".x\" SET \"it's\" = 2, \"Some Col\" = 'x''y';"
      "INSERT INTO \"Odd \"\"Name\"\".x\" VALUES (NULL, NULL);");
  ASSERT_NE(Contents(kTables), before);

  auto stream = Peek();
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  ASSERT_EQ(stream->transactions.size(), 3u);
  // The body really lives out of line: updates of other columns print it
  // as unchanged-toast-datum.
  bool saw_toast = false;
  for (const auto& t : stream->transactions) {
    for (const auto& c : t.changes) {
      for (const auto& col : c.new_columns) saw_toast |= col.unchanged_toast;
    }
  }
  EXPECT_TRUE(saw_toast);
  auto txns = SelectForUndo(*stream, std::nullopt);
  ASSERT_TRUE(txns.ok()) << txns.status().ToString();

  auto loss = SummarizeLoss(*txns);
  ASSERT_TRUE(loss.ok()) << loss.status().ToString();
  ASSERT_GE(loss->size(), 1u);
  const TableLoss& parent = (*loss)[0];
  EXPECT_EQ(parent.table, "parent");
  // 99 came and went: no loss.
  EXPECT_EQ(parent.inserted,
            (std::vector<RowImage>{{{"id", "3"}, {"name", "three"}, {"favourite_child", "30"}}}));
  EXPECT_EQ(parent.deleted, (std::vector<RowImage>{{{"id", "2"}, {"name", "two"}}}));
  EXPECT_TRUE(parent.changed.empty());

  auto stats = ApplyUndo(*conn_, *txns);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->transactions, 3u);
  EXPECT_EQ(Contents(kTables), before);

  ASSERT_TRUE(RewindSequences(*conn_, *seqs).ok());
  auto after = ReadSequencePositions(*conn_);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, *seqs);
  EXPECT_EQ(Sql("SELECT nextval('seq')"), "2");
}

TEST_F(UndoTest, ToTimeUndoesOnlyTheTransactionsCommittedAfterIt) {
  Sql("CREATE TABLE t (id int PRIMARY KEY, v text); ALTER TABLE t REPLICA IDENTITY FULL;"
      "INSERT INTO t VALUES (1, 'one');");
  CreateSlot();
  Sql("INSERT INTO t VALUES (2, 'early')");
  const std::string at_t = Contents({"t"});
  const std::string t_micros =
      Sql("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint");
  Sql("BEGIN; INSERT INTO t VALUES (3, 'late'); UPDATE t SET v = 'changed' WHERE id = 2;"
      "UPDATE t SET id = 10 WHERE id = 1; COMMIT;");
  auto stream = Peek();
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  ASSERT_EQ(stream->transactions.size(), 2u);
  auto txns = SelectForUndo(*stream, std::stoll(t_micros));
  ASSERT_TRUE(txns.ok()) << txns.status().ToString();
  ASSERT_EQ(txns->size(), 1u);
  ASSERT_TRUE(ApplyUndo(*conn_, *txns).ok());
  EXPECT_EQ(Contents({"t"}), at_t);
  EXPECT_EQ(Sql("SELECT string_agg(id || v, ',' ORDER BY id) FROM t"), "1one,2early");
}

TEST_F(UndoTest, TruncateIsRefusedNamingTheTable) {
  Sql("CREATE TABLE t (id int); CREATE TABLE u (id int);"
      "ALTER TABLE t REPLICA IDENTITY FULL; ALTER TABLE u REPLICA IDENTITY FULL;"
      "INSERT INTO t VALUES (1); INSERT INTO u VALUES (1);");
  CreateSlot();
  Sql("INSERT INTO u VALUES (2); TRUNCATE t;");
  const std::string now = Contents({"t", "u"});
  auto stream = Peek();
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  auto txns = SelectForUndo(*stream, std::nullopt);
  ASSERT_FALSE(txns.ok());
  EXPECT_EQ(txns.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(txns.status().message().find("table public.t: TRUNCATE"), std::string::npos)
      << txns.status().message();
  EXPECT_NE(txns.status().message().find("restore the dump instead"), std::string::npos);
  EXPECT_EQ(Contents({"t", "u"}), now);
}

TEST_F(UndoTest, DefaultReplicaIdentityIsRefused) {
  Sql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b');");
  CreateSlot();
  // An UPDATE that keeps the key prints no old row at all.
  Sql("UPDATE t SET v = 'c' WHERE id = 1");
  auto stream = Peek();
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  auto txns = SelectForUndo(*stream, std::nullopt);
  ASSERT_FALSE(txns.ok());
  EXPECT_NE(txns.status().message().find("table public.t: UPDATE without the old row"),
            std::string::npos)
      << txns.status().message();

  // A DELETE prints the key only, which the stream cannot tell from a full
  // row with NULLs: the catalog check refuses it, before any row is touched.
  Sql("SELECT pg_drop_replication_slot('" + db_ + "')");
  CreateSlot();
  Sql("INSERT INTO t VALUES (3, 'd'); DELETE FROM t WHERE id = 2;");
  const std::string now = Contents({"t"});
  stream = Peek();
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  txns = SelectForUndo(*stream, std::nullopt);
  ASSERT_TRUE(txns.ok()) << txns.status().ToString();
  auto stats = ApplyUndo(*conn_, *txns);
  ASSERT_FALSE(stats.ok());
  EXPECT_NE(stats.status().message().find("table public.t: its replica identity is DEFAULT"),
            std::string::npos)
      << stats.status().message();
  EXPECT_EQ(Contents({"t"}), now);
}

TEST_F(UndoTest, ARowChangedOutsideTheStreamFailsTheUndoAndChangesNothing) {
  Sql("CREATE TABLE t (id int PRIMARY KEY, v text); ALTER TABLE t REPLICA IDENTITY FULL;"
      "INSERT INTO t VALUES (1, 'one'), (2, 'two');");
  CreateSlot();
  Sql("INSERT INTO t VALUES (3, 'three')");  // undone last
  Sql("UPDATE t SET v = 'TWO' WHERE id = 2; DELETE FROM t WHERE id = 1;");
  auto stream = Peek();
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  auto txns = SelectForUndo(*stream, std::nullopt);
  ASSERT_TRUE(txns.ok()) << txns.status().ToString();
  // A write the stream read before does not show: row 3 is not as it left it.
  Sql("UPDATE t SET v = 'three, edited' WHERE id = 3");
  const std::string now = Contents({"t"});
  auto stats = ApplyUndo(*conn_, *txns);
  ASSERT_FALSE(stats.ok());
  EXPECT_EQ(stats.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(stats.status().message().find("undoing INSERT on public.t"), std::string::npos)
      << stats.status().message();
  EXPECT_NE(stats.status().message().find("found no row as the change left it"), std::string::npos);
  EXPECT_EQ(Contents({"t"}), now);  // rows 1 and 2 were undone, then rolled back
  EXPECT_EQ(Sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                "state LIKE 'idle in transaction%'"),
            "0");
}

TEST_F(UndoTest, ColumnsChangedSinceTheStreamAreRefused) {
  Sql("CREATE TABLE t (id int, v text); ALTER TABLE t REPLICA IDENTITY FULL;");
  CreateSlot();
  Sql("INSERT INTO t VALUES (1, 'a')");
  Sql("ALTER TABLE t ADD COLUMN w int");
  const std::string now = Contents({"t"});
  auto stream = Peek();
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  auto txns = SelectForUndo(*stream, std::nullopt);
  ASSERT_TRUE(txns.ok()) << txns.status().ToString();
  auto stats = ApplyUndo(*conn_, *txns);
  ASSERT_FALSE(stats.ok());
  EXPECT_NE(stats.status().message().find("table public.t: the stream has 2 columns, the table 3 "
                                          "(its definition changed since the restore point)"),
            std::string::npos)
      << stats.status().message();
  EXPECT_EQ(Contents({"t"}), now);
}

// ---- The loss summary, from a stream alone ----

StreamColumn C(std::string name, std::optional<std::string> v) {
  return StreamColumn{std::move(name), "integer", std::move(v), false};
}

Change Ins(std::vector<StreamColumn> row) {
  Change c;
  c.op = ChangeOp::kInsert;
  c.schema = "public";
  c.table = "t";
  c.has_new = true;
  c.new_columns = std::move(row);
  return c;
}
Change Del(std::vector<StreamColumn> row) {
  Change c = Ins({});
  c.op = ChangeOp::kDelete;
  c.has_new = false;
  c.has_old = true;
  c.old_columns = std::move(row);
  return c;
}
Change Upd(std::vector<StreamColumn> old_row, std::vector<StreamColumn> new_row) {
  Change c = Ins(std::move(new_row));
  c.op = ChangeOp::kUpdate;
  c.has_old = true;
  c.old_columns = std::move(old_row);
  return c;
}

TEST(UndoLossTest, FollowsEachRowThroughItsVersions) {
  Transaction t;
  t.changes = {
      Ins({C("id", "1"), C("v", std::nullopt)}),  // inserted, then changed: inserted as now
      Upd({C("id", "1")}, {C("id", "1"), C("v", "5")}),
      Ins({C("id", "2"), C("v", "2")}),  // inserted then deleted: no loss
      Del({C("id", "2"), C("v", "2")}),
      Upd({C("id", "3"), C("v", "3")}, {C("id", "30"), C("v", "3")}),  // changed twice
      Upd({C("id", "30"), C("v", "3")}, {C("id", "31"), C("v", "4")}),
      Upd({C("id", "4"), C("v", "4")}, {C("id", "4"), C("v", "40")}),  // changed back
      Upd({C("id", "4"), C("v", "40")}, {C("id", "4"), C("v", "4")}),
      Del({C("id", "5")}),               // deleted, v was NULL
      Del({C("id", "6"), C("v", "6")}),  // deleted and put back as it was
      Ins({C("id", "6"), C("v", "6")}),
  };
  auto loss = SummarizeLoss({t});
  ASSERT_TRUE(loss.ok()) << loss.status().ToString();
  ASSERT_EQ(loss->size(), 1u);
  const TableLoss& l = loss->front();
  EXPECT_EQ(l.inserted, (std::vector<RowImage>{{{"id", "1"}, {"v", "5"}}}));
  EXPECT_EQ(l.deleted, (std::vector<RowImage>{{{"id", "5"}}}));
  ASSERT_EQ(l.changed.size(), 1u);
  EXPECT_EQ(l.changed[0].first, (RowImage{{"id", "3"}, {"v", "3"}}));
  EXPECT_EQ(l.changed[0].second, (RowImage{{"id", "31"}, {"v", "4"}}));
}

}  // namespace
}  // namespace backstop::postgres

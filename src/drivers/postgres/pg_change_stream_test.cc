// Unit tests of the test_decoding parser: no server needed. The rows are
// written as test_decoding prints them (contrib/test_decoding, PostgreSQL 15).
#include "drivers/postgres/pg_change_stream.h"

#include <gtest/gtest.h>

namespace backstop::postgres {
namespace {

StreamColumn Col(std::string name, std::string type, std::optional<std::string> value) {
  return StreamColumn{std::move(name), std::move(type), std::move(value), false};
}

Change One(std::string_view data) {
  auto r = ParseTableRow(data);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok() || r->size() != 1) return Change{};
  return r->front();
}

TEST(ChangeStreamTest, ParsesTransactionsWithTheirCommitTimeAndLsn) {
  std::vector<StreamRow> rows = {
      {"0/1500000", "BEGIN 742"},
      {"0/1500010", "table public.t: INSERT: id[integer]:1 name[text]:'a'"},
      {"0/1500020", "COMMIT 742 (at 2024-05-01 12:00:00.5+00)"},
      {"0/1500100", "BEGIN 743"},
      {"0/1500110", "table public.t: DELETE: id[integer]:1 name[text]:'a'"},
      {"0/1500120", "COMMIT 743 (at 2024-05-01 14:00:01+02)"},
  };
  auto s = ParseChangeStream(rows);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->transactions.size(), 2u);
  const Transaction& t = s->transactions[0];
  EXPECT_EQ(t.xid, 742u);
  EXPECT_EQ(t.commit_lsn, "0/1500020");
  EXPECT_EQ(t.commit_wall_micros, 1714564800'500000);
  ASSERT_EQ(t.changes.size(), 1u);
  EXPECT_EQ(t.changes[0].op, ChangeOp::kInsert);
  EXPECT_EQ(t.changes[0].lsn, "0/1500010");
  EXPECT_EQ(t.changes[0].new_columns,
            (std::vector<StreamColumn>{Col("id", "integer", "1"), Col("name", "text", "a")}));
  // 14:00:01+02 is 12:00:01 UTC.
  EXPECT_EQ(s->transactions[1].commit_wall_micros, 1714564801'000000);
  EXPECT_EQ(s->transactions[1].changes[0].op, ChangeOp::kDelete);
  EXPECT_TRUE(s->transactions[1].changes[0].has_old);
}

TEST(ChangeStreamTest, QuotesInsideValuesAreUndoubled) {
  Change c = One("table public.t: INSERT: a[text]:'it''s' b[text]:'''' c[text]:'' d[text]:'null'");
  EXPECT_EQ(c.new_columns,
            (std::vector<StreamColumn>{Col("a", "text", "it's"), Col("b", "text", "'"),
                                       Col("c", "text", ""), Col("d", "text", "null")}));
}

TEST(ChangeStreamTest, QuotedIdentifiersWithSpacesQuotesDotsAndColons) {
  Change c =
      One("table \"my schema\".\"Order.\"\"Items\"\": x\": INSERT: \"col [1]\"[integer]:5 "
          "\"a\"\"b:c\"[text]:'v'");
  EXPECT_EQ(c.schema, "my schema");
  EXPECT_EQ(c.table, "Order.\"Items\": x");
  EXPECT_EQ(c.new_columns, (std::vector<StreamColumn>{Col("col [1]", "integer", "5"),
                                                      Col("a\"b:c", "text", "v")}));
}

TEST(ChangeStreamTest, MultiLineValuesStayInOneRow) {
  std::vector<StreamRow> rows = {
      {"0/1", "BEGIN 9"},
      {"0/2", "table public.t: INSERT: id[integer]:1 body[text]:'line 1\nline 2\n\ttable x: y'"},
      {"0/3", "COMMIT 9 (at 2024-05-01 12:00:00+00)"},
  };
  auto s = ParseChangeStream(rows);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->transactions[0].changes[0].new_columns[1].value, "line 1\nline 2\n\ttable x: y");
}

TEST(ChangeStreamTest, ArraysJsonNumbersBooleansBitsAndUserTypes) {
  Change c =
      One("table public.t: INSERT: tags[text[]]:'{a,\"b c\",NULL}' doc[jsonb]:'{\"k\": \"it''s\"}' "
          "n[numeric]:-1.50 f[double precision]:NaN ok[boolean]:true bits[bit]:B'0101' "
          "m[public.\"My ]:Type\"]:'x' w[timestamp with time zone]:'2024-05-01 12:00:00+00'");
  EXPECT_EQ(c.new_columns,
            (std::vector<StreamColumn>{
                Col("tags", "text[]", "{a,\"b c\",NULL}"), Col("doc", "jsonb", "{\"k\": \"it's\"}"),
                Col("n", "numeric", "-1.50"), Col("f", "double precision", "NaN"),
                Col("ok", "boolean", "true"), Col("bits", "bit", "0101"),
                Col("m", "public.\"My ]:Type\"", "x"),
                Col("w", "timestamp with time zone", "2024-05-01 12:00:00+00")}));
}

TEST(ChangeStreamTest, NullsAndUnchangedToast) {
  Change c =
      One("table public.t: UPDATE: old-key: id[integer]:1 big[text]:'xyz' new-tuple: id[integer]:2 "
          "note[text]:null big[text]:unchanged-toast-datum");
  EXPECT_EQ(c.op, ChangeOp::kUpdate);
  EXPECT_TRUE(c.has_old);
  EXPECT_TRUE(c.has_new);
  EXPECT_EQ(c.old_columns,
            (std::vector<StreamColumn>{Col("id", "integer", "1"), Col("big", "text", "xyz")}));
  StreamColumn toast = Col("big", "text", std::nullopt);
  toast.unchanged_toast = true;
  EXPECT_EQ(c.new_columns, (std::vector<StreamColumn>{Col("id", "integer", "2"),
                                                      Col("note", "text", std::nullopt), toast}));
}

TEST(ChangeStreamTest, OldPartsThatAreAbsentOrEmpty) {
  // Default replica identity, key unchanged: no old part at all.
  Change kept = One("table public.t: UPDATE: id[integer]:1 v[text]:'b'");
  EXPECT_FALSE(kept.has_old);
  EXPECT_EQ(kept.new_columns.size(), 2u);
  // FULL identity, every old value NULL: an empty old part.
  Change nulls = One("table public.t: UPDATE: old-key: new-tuple: v[text]:'b'");
  EXPECT_TRUE(nulls.has_old);
  EXPECT_TRUE(nulls.old_columns.empty());
  Change del = One("table public.t: DELETE:");
  EXPECT_TRUE(del.has_old);
  EXPECT_TRUE(del.old_columns.empty());
  Change nothing = One("table public.t: DELETE: (no-tuple-data)");
  EXPECT_FALSE(nothing.has_old);
  // A column may be named like a keyword of the format; quote_identifier quotes it.
  Change tricky =
      One("table public.t: UPDATE: old-key: \"new-tuple\"[text]:'a' new-tuple: "
          "\"new-tuple\"[text]:'b'");
  EXPECT_EQ(tricky.old_columns, (std::vector<StreamColumn>{Col("new-tuple", "text", "a")}));
  EXPECT_EQ(tricky.new_columns, (std::vector<StreamColumn>{Col("new-tuple", "text", "b")}));
}

TEST(ChangeStreamTest, TruncateIsOneChangePerTable) {
  auto r = ParseTableRow("table public.a, \"x y\".b: TRUNCATE: restart_seqs cascade");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].op, ChangeOp::kTruncate);
  EXPECT_EQ((*r)[0].table, "a");
  EXPECT_EQ((*r)[1].schema, "x y");
  EXPECT_EQ((*r)[1].table, "b");
  auto single = ParseTableRow("table public.a: TRUNCATE: (no-flags)");
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(single->size(), 1u);
}

TEST(ChangeStreamTest, MessagesInsideAndBetweenTransactions) {
  std::vector<StreamRow> rows = {
      {"0/1", "message: transactional: 0 prefix: p, sz: 1 content:x"},
      {"0/2", "BEGIN 9"},
      {"0/3", "message: transactional: 1 prefix: p, sz: 1 content:y"},
      {"0/4", "COMMIT 9 (at 2024-05-01 12:00:00+00)"},
  };
  auto s = ParseChangeStream(rows);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->loose_messages, std::vector<std::string>{rows[0].data});
  ASSERT_EQ(s->transactions[0].changes.size(), 1u);
  EXPECT_EQ(s->transactions[0].changes[0].op, ChangeOp::kMessage);
  EXPECT_EQ(s->transactions[0].changes[0].text, rows[2].data);
}

TEST(ChangeStreamTest, BadInputNamesTheRowAndWhatWasExpected) {
  auto check = [](std::vector<StreamRow> rows, const std::string& want) {
    auto s = ParseChangeStream(rows);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), Status::Code::kInvalidArgument);
    EXPECT_NE(s.status().message().find(want), std::string::npos) << s.status().message();
  };
  const StreamRow begin{"0/1", "BEGIN 9"};
  const StreamRow commit{"0/3", "COMMIT 9 (at 2024-05-01 12:00:00+00)"};
  check({begin, {"0/2", "table public.t: INSERT: a[text]:'open"}, commit},
        "change stream row 2 (lsn 0/2): unterminated quoted value");
  check({begin, {"0/2", "table public.t: UPSERT: a[text]:'x'"}, commit},
        "expected INSERT:, UPDATE:, DELETE: or TRUNCATE:");
  check({begin, {"0/2", "table public.t: INSERT: a[text:'x'"}, commit}, "closed by \"]:\"");
  check({begin, {"0/2", "table public.t: INSERT: a[integer]:"}, commit}, "expected a value");
  check({{"0/2", "table public.t: INSERT: a[integer]:1"}}, "row 1 (lsn 0/2): change outside");
  check({begin, {"0/3", "COMMIT 9"}}, "peek the slot with 'include-timestamp', '1'");
  check({{"0/1", "BEGIN"}}, "'include-xids', '1'");
  check({begin}, "transaction 9 has no COMMIT row");
  check({begin, {"0/2", "streaming change for TXN 9"}, commit}, "not a test_decoding row");
}

}  // namespace
}  // namespace backstop::postgres

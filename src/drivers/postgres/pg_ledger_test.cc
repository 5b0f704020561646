// Unit tests of the ledger merge-join, COPY text decoding, derived names and
// settings parsing: no server needed.
#include "drivers/postgres/pg_ledger.h"

#include <gtest/gtest.h>

#include "drivers/postgres/pg_catalog.h"
#include "drivers/postgres/pg_conn.h"

namespace backstop::postgres {
namespace {

KeyedRow R(std::vector<std::string> key, std::string hash = "") {
  return KeyedRow{std::move(key), std::move(hash)};
}

struct Seen {
  std::vector<std::pair<RowChange, std::string>> changes;
  ChangeSink Sink() {
    return [this](RowChange c, const KeyedRow& r) {
      std::string k;
      for (const auto& f : r.key) k += (k.empty() ? "" : ",") + f;
      changes.emplace_back(c, k);
      return Status::OK();
    };
  }
};

TEST(MergeCompareTest, ReportsInsertedDeletedChangedByKey) {
  VectorRowSource live({R({"1"}, "a"), R({"2"}, "B"), R({"4"}, "d"), R({"10"}, "x")});
  VectorRowSource rp({R({"1"}, "a"), R({"2"}, "b"), R({"3"}, "c"), R({"4"}, "d")});
  Seen seen;
  auto counts = MergeCompare(live, rp, {KeyKind::kInteger}, true, seen.Sink());
  ASSERT_TRUE(counts.ok()) << counts.status().ToString();
  EXPECT_EQ(counts->inserted, 1u);
  EXPECT_EQ(counts->deleted, 1u);
  EXPECT_EQ(counts->changed, 1u);
  EXPECT_EQ(counts->unchanged, 2u);
  ASSERT_EQ(seen.changes.size(), 3u);
  EXPECT_EQ(seen.changes[0], std::make_pair(RowChange::kChanged, std::string("2")));
  EXPECT_EQ(seen.changes[1], std::make_pair(RowChange::kDeleted, std::string("3")));
  EXPECT_EQ(seen.changes[2], std::make_pair(RowChange::kInserted, std::string("10")));
}

TEST(MergeCompareTest, IntegerKeysCompareByValueNotText) {
  // "9" < "10" numerically although "10" < "9" as bytes.
  VectorRowSource live({R({"-5"}, "m"), R({"9"}, "a"), R({"10"}, "b")});
  VectorRowSource rp({R({"-5"}, "m"), R({"9"}, "a"), R({"10"}, "b")});
  auto counts = MergeCompare(live, rp, {KeyKind::kInteger}, true, nullptr);
  ASSERT_TRUE(counts.ok()) << counts.status().ToString();
  EXPECT_EQ(counts->unchanged, 3u);
  EXPECT_EQ(counts->inserted + counts->deleted + counts->changed, 0u);
}

TEST(MergeCompareTest, UnsortedInputIsAnErrorNotAWrongLedger) {
  VectorRowSource live({R({"b"}, "1"), R({"a"}, "1")});
  VectorRowSource rp({R({"a"}, "1"), R({"b"}, "1")});
  auto counts = MergeCompare(live, rp, {KeyKind::kText}, true, nullptr);
  ASSERT_FALSE(counts.ok());
  EXPECT_NE(counts.status().message().find("not sorted"), std::string::npos);
}

TEST(MergeCompareTest, CompositeAndTextKeysAndMultisets) {
  VectorRowSource live({R({"1", "a"}, "h"), R({"1", "b"}, "h"), R({"2", "a"}, "h")});
  VectorRowSource rp({R({"1", "a"}, "h"), R({"2", "a"}, "h"), R({"2", "b"}, "h")});
  Seen seen;
  auto counts = MergeCompare(live, rp, {KeyKind::kInteger, KeyKind::kText}, true, seen.Sink());
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->inserted, 1u);
  EXPECT_EQ(counts->deleted, 1u);
  EXPECT_EQ(seen.changes[0].second, "1,b");
  EXPECT_EQ(seen.changes[1].second, "2,b");

  // Whole-row hashes as keys (tables without a primary key): duplicates pair up.
  VectorRowSource l2({R({"aa"}), R({"aa"}), R({"bb"})});
  VectorRowSource r2({R({"aa"}), R({"bb"}), R({"bb"})});
  auto c2 = MergeCompare(l2, r2, {KeyKind::kText}, false, nullptr);
  ASSERT_TRUE(c2.ok());
  EXPECT_EQ(c2->inserted, 1u);
  EXPECT_EQ(c2->deleted, 1u);
  EXPECT_EQ(c2->unchanged, 2u);
}

TEST(MergeCompareTest, KeysOnlyNeverReportsChanges) {
  VectorRowSource live({R({"1"}, "x")});
  VectorRowSource rp({R({"1"}, "y")});
  auto counts = MergeCompare(live, rp, {KeyKind::kInteger}, false, nullptr);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->changed, 0u);
  EXPECT_EQ(counts->unchanged, 1u);
}

TEST(CopyTextTest, UnescapesAndSplits) {
  bool is_null = false;
  EXPECT_EQ(CopyUnescape("a\\tb\\\\c\\nd", &is_null), "a\tb\\c\nd");
  EXPECT_FALSE(is_null);
  CopyUnescape("\\N", &is_null);
  EXPECT_TRUE(is_null);
  EXPECT_EQ(CopyUnescape("\\101\\x42", &is_null), "AB");
  auto f = SplitCopyLine("1\tx\\ty\t");
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[1], "x\\ty");
  EXPECT_EQ(f[2], "");
}

TEST(NamesTest, DerivedNamesFitTheIdentifierLimit) {
  EXPECT_EQ(ShadowName("shop", "run-20261126T021947Z-a1b2c3"),
            "shop_bs_shadow_run_20261126t021947z_a1b2c3");
  EXPECT_EQ(PreRollbackName("shop", "r1"), "shop_pre_rollback_r1");
  EXPECT_EQ(StagedName("shop", "rp-20261126T021947Z-a1b2c3"),
            "shop_bs_staged_20261126t021947z_a1b2c3");
  std::string long_db(60, 'd');
  std::string a = PreRollbackName(long_db, "run-1"), b = PreRollbackName(long_db + "x", "run-1");
  EXPECT_LE(a.size(), 63u);
  EXPECT_LE(b.size(), 63u);
  EXPECT_NE(a, b);  // the hash keeps different databases apart
  EXPECT_NE(a.find("_pre_rollback_run_1"), std::string::npos);
}

TEST(ConnParamsTest, PasswordNeverShown) {
  auto p = ConnParams::Parse("host=127.0.0.1 port=5 dbname=shop user=app password=s3cretpw");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->dbname(), "shop");
  EXPECT_EQ(p->Display().find("s3cretpw"), std::string::npos);
  EXPECT_EQ(p->ForCommandLine("other").find("s3cretpw"), std::string::npos);
  EXPECT_NE(p->ForCommandLine("other").find("dbname='other'"), std::string::npos);
  EXPECT_EQ(p->ChildEnv(10'000).at("PGPASSWORD"), "s3cretpw");
  EXPECT_EQ(p->Mask("failed for s3cretpw here"), "failed for **** here");
  EXPECT_FALSE(ConnParams::Parse("host=127.0.0.1 user=app").ok());  // no dbname
  auto bad = ConnParams::Parse("host=x dbname=y password=hunter22 bogus=1");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().find("hunter22"), std::string::npos);
}

TEST(SettingsTest, DefaultsAndRawForms) {
  auto s = ParsePgSettings({{"connection", "dbname=x"}});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->admin_dbname, "postgres");
  EXPECT_EQ(s->schemas, std::vector<std::string>{"public"});
  EXPECT_EQ(s->staged, "auto");
  EXPECT_EQ(s->jobs, 2);
  auto t = ParsePgSettings({{"connection", "dbname=x"},
                            {"staged_max_size", "1MB"},
                            {"connect_timeout", "3s"},
                            {"integrity", {{{"name", "n"}, {"sql", "SELECT 0"}, {"expect", 0}}}}});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->staged_max_size, 1'000'000u);
  EXPECT_EQ(t->connect_timeout_ms, 3000);
  EXPECT_EQ(t->integrity.at(0).expect, "0");
  EXPECT_FALSE(ParsePgSettings({{"connection", "dbname=x"}, {"staged", "sometimes"}}).ok());
  EXPECT_FALSE(ParsePgSettings(nlohmann::json::object()).ok());
}

TEST(MarkerTest, ParsesKeyValues) {
  auto m =
      ParseMarker(std::string("backstop:shadow rp=rp-1 run=r2 from=staged:x verified"), "shadow");
  EXPECT_EQ(m["rp"], "rp-1");
  EXPECT_EQ(m["from"], "staged:x");
  EXPECT_TRUE(m.count("verified"));
  EXPECT_TRUE(ParseMarker(std::string("backstop:staged rp=1"), "shadow").empty());
  EXPECT_TRUE(ParseMarker(std::nullopt, "shadow").empty());
}

}  // namespace
}  // namespace backstop::postgres

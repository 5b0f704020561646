// Integration tests of the postgres driver's restore points (pg_dump, staged copies, the blobs a
// rollback needs) against a real PostgreSQL 15 (the fixture: testing/pg_driver_fixture.h).
#include "testing/pg_driver_fixture.h"

namespace backstop::postgres {
namespace {

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
  json safety = Snap("rp-s", "run9", RestorePointKind::kSafety);
  ASSERT_TRUE(driver_->DiscardSnapshot(Component(), safety, ctx).ok());
  EXPECT_TRUE(server_->DatabaseExists(staged2));
  EXPECT_TRUE(server_->DatabaseExists(db_));
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

}  // namespace
}  // namespace backstop::postgres

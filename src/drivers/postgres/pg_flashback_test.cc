// Flashback in the postgres driver against a real PostgreSQL 15 with
// wal_level=logical: the slot a restore point keeps, rollback by undo, the
// fall back to the dump, and the slot's release.
#include "drivers/postgres/pg_flashback.h"

#include "drivers/postgres/pg_undo.h"
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
    return Sql("SELECT coalesce(string_agg(slot_name, ',' ORDER BY slot_name), '') FROM "
               "pg_replication_slots WHERE database = '" +
                   db_ + "'",
               "postgres");
  }
};

TEST_F(FlashbackDriverTest, SlotNameIsLowercaseAndAtMost63Characters) {
  EXPECT_EQ(SlotName("rp-20261202T0951Z-ab12CD", "shop_1"), "backstop_rp_20261202t0951z_ab12cd_shop_1");
  EXPECT_EQ(SlotName("rp-1", std::string(80, 'x')).size(), 63u);
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

}  // namespace
}  // namespace backstop::postgres

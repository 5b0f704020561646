#include "drivers/postgres/postgres_driver_impl.h"

#include <algorithm>
#include <set>

#include "base/crash_point.h"
#include "base/parallel_for.h"
#include "base/units.h"
#include "drivers/postgres/pg_admin.h"
#include "drivers/postgres/pg_flashback.h"
#include "drivers/postgres/pg_markers.h"
#include "store/store.h"

namespace backstop::postgres {
namespace {

// Flashback at a restore point: the covered tables' replica identity (set to
// FULL only with the spec's consent), then the slot whose exported snapshot
// the dump uses. nullopt with *why_not when the server does not allow it.
Result<std::optional<CreatedSlot>> OpenFlashbackSlot(const Loaded& l, PgConn& live,
                                                     DriverContext& ctx, json* info,
                                                     std::string* why_not) {
  auto reason = FlashbackUnavailableReason(live);
  if (!reason.ok()) {
    *why_not = reason.status().message();
    return std::optional<CreatedSlot>();
  }
  if (!reason->empty()) {
    *why_not = *reason;
    return std::optional<CreatedSlot>();
  }
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<TableInfo> tables, ListTables(live, l.settings));
  json full = json::array(), set_now = json::array(), without = json::array();
  for (const auto& t : tables) {
    BACKSTOP_ASSIGN_OR_RETURN(
        std::string ident, live.Value("SELECT relreplident::text FROM pg_class WHERE oid = $1::oid",
                                      {std::to_string(t.oid)}));
    if (ident != "f" && l.settings.flashback_replica_identity == "full") {
      BACKSTOP_RETURN_IF_ERROR(live.Run("ALTER TABLE " + t.Sql() + " REPLICA IDENTITY FULL"));
      ctx.Progress("flashback: set REPLICA IDENTITY FULL on table " + t.Display() +
                   " (flashback_replica_identity: full), so that its changes carry the old rows");
      set_now.push_back(t.Qualified());
      ident = "f";
    }
    (ident == "f" ? full : without).push_back(t.Qualified());
  }
  if (!without.empty()) {
    ctx.Progress("flashback: " + std::to_string(without.size()) +
                 " table(s) lack REPLICA IDENTITY FULL (" + without[0].get<std::string>() +
                 (without.size() > 1 ? ", ..." : "") +
                 "): an UPDATE or DELETE of them makes the rollback restore the dump; "
                 "flashback_replica_identity: full sets it");
  }
  const std::string slot = SlotName(ctx.restore_point_id, l.db());
  BACKSTOP_RETURN_IF_ERROR(DropSlot(live, slot));  // a crashed earlier attempt
  BACKSTOP_ASSIGN_OR_RETURN(
      CreatedSlot made,
      CreateSlotWithSnapshot(l.params, l.db(), l.settings.connect_timeout_ms, slot));
  CrashPointForTest("postgres.flashback_slot_created");
  *info = {{"slot", made.slot},
           {"consistent_point", made.consistent_point},
           {"full_identity", full},
           {"identity_set", set_now},
           {"without_full_identity", without}};
  ctx.Progress("flashback: replication slot " + made.slot + " at " + made.consistent_point);
  return std::optional<CreatedSlot>(std::move(made));
}

// Drops the slot of a snapshot that failed, unless it was handed over.
struct SlotGuard {
  PgConn* live = nullptr;
  std::optional<CreatedSlot>* slot = nullptr;
  bool keep = false;
  ~SlotGuard() {
    if (keep || live == nullptr || slot == nullptr || !*slot) return;
    (*slot)->conn.reset();
    (void)live->Run("ROLLBACK");  // a failed statement may have left the transaction aborted
    (void)DropSlot(*live, (*slot)->slot);
  }
};

}  // namespace

Result<json> PostgresDriver::SafetySnapshot(const Loaded& l, DriverContext& ctx) {
  json entry = {{"driver", "postgres"},
                {"format", "retained-database"},
                {"restore_point_id", ctx.restore_point_id},
                {"database", l.db()},
                {"retained_database", PreRollbackName(l.db(), ctx.run_id)},
                {"run_id", ctx.run_id},
                {"blobs", json::array()}};
  if (ctx.run_id.empty()) {
    return Status::InvalidArgument("a safety snapshot of database " + l.db() +
                                   " needs a run id (it names the retained database)");
  }
  {
    // A rollback may be what brings back a database that was dropped: then
    // there is nothing to set aside, and nothing to undo later.
    BACKSTOP_ASSIGN_OR_RETURN(PgConn * admin, Admin(l));
    BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo live_info, GetDatabase(*admin, l.db()));
    if (!live_info.exists) {
      entry["database_existed"] = false;
      return entry;
    }
  }
  BACKSTOP_ASSIGN_OR_RETURN(auto live, ConnectTo(l, l.db()));
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult r,
      live->Exec("SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
                 "ELSE pg_current_wal_lsn() END::text, current_setting('server_version'), "
                 "(SELECT oid::bigint FROM pg_database WHERE datname = current_database())"));
  // If the run stops before replacing the database, this entry holds no copy
  // of it: it can then restore it only while it is provably this database
  // with nothing written since (UnchangedSinceSafety).
  entry["live_oid"] = static_cast<uint32_t>(r.GetInt(0, 2));
  BACKSTOP_ASSIGN_OR_RETURN(std::string stamp, WriteStamp(*live, l.settings));
  entry["write_stamp"] = stamp;
  entry["position"] = {{"lsn", r.Get(0, 0)}};
  entry["server_version"] = r.Get(0, 1);
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<ForeignKey> fks, ListForeignKeys(*live, l.settings));
  json fk_json = json::array();
  for (const auto& fk : fks) fk_json.push_back(fk.ToJson());
  entry["foreign_keys"] = fk_json;
  return entry;
}

Result<json> PostgresDriver::Snapshot(const ComponentSpec& c, DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(Loaded l, Load(c));
  if (ctx.snapshot_kind == RestorePointKind::kSafety) return SafetySnapshot(l, ctx);
  if (ctx.store == nullptr) return Status::FailedPrecondition("postgres snapshot: no store");
  Env* env = ctx.env;
  const std::string& db = l.db();
  int64_t t0 = NowMs(ctx);

  BACKSTOP_ASSIGN_OR_RETURN(auto live, ConnectTo(l, db));
  std::string system_id;
  if (auto v = live->Value("SELECT system_identifier::text FROM pg_control_system()"); v.ok()) {
    system_id = *v;
  }
  std::optional<CreatedSlot> slot;
  json flashback;
  std::string flashback_unavailable;
  SlotGuard slot_guard;
  if (l.settings.flashback && !ctx.restore_point_id.empty() && !ctx.dry_run) {
    BACKSTOP_ASSIGN_OR_RETURN(slot,
                              OpenFlashbackSlot(l, *live, ctx, &flashback, &flashback_unavailable));
    if (slot) {
      slot_guard.live = live.get();
      slot_guard.slot = &slot;
    } else {
      ctx.Progress("flashback unavailable for database " + db + ": " + flashback_unavailable +
                   " (the restore point rolls back from its dump)");
    }
  }
  // One REPEATABLE READ snapshot, exported to pg_dump, so that the counts
  // below describe exactly the rows of the dump. With flashback, the slot's
  // exported snapshot: the dump and the change stream meet exactly.
  BACKSTOP_RETURN_IF_ERROR(live->Run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  std::string snapshot_id;
  if (slot) {
    snapshot_id = slot->snapshot_name;
    BACKSTOP_RETURN_IF_ERROR(live->Run("SET TRANSACTION SNAPSHOT " + live->Literal(snapshot_id)));
    BACKSTOP_ASSIGN_OR_RETURN(std::vector<SequencePosition> seqs, ReadSequencePositions(*live));
    flashback["sequences"] = SequencesToJson(seqs);
    BACKSTOP_ASSIGN_OR_RETURN(std::string schema, SchemaFingerprint(*live));
    flashback["schema_md5"] = schema;
  } else {
    BACKSTOP_ASSIGN_OR_RETURN(snapshot_id, live->Value("SELECT pg_export_snapshot()"));
  }
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult info,
      live->Exec("SELECT pg_snapshot_xmin(pg_current_snapshot())::text, "
                 "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
                 "ELSE pg_current_wal_lsn() END::text, "
                 "pg_database_size(current_database()), current_setting('server_version'), "
                 "current_setting('server_version_num')::int"));
  const int64_t size = info.GetInt(0, 2);
  const int server_num = static_cast<int>(info.GetInt(0, 4));
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<TableInfo> tables, ListTables(*live, l.settings));
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<ForeignKey> fks, ListForeignKeys(*live, l.settings));
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<std::string> roles, ListNeededRoles(*live));
  BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo props, GetDatabase(*live, db));

  json row_counts = json::object(), max_keys = json::object(), tables_json = json::array();
  for (const auto& t : tables) {
    bool int_key = t.pk.size() == 1 && t.Column(t.pk[0]) && t.Column(t.pk[0])->is_integer;
    std::string sql = "SELECT count(*)" +
                      (int_key ? ", max(" + QuoteIdent(t.pk[0]) + ")::text" : std::string()) +
                      " FROM ONLY " + t.Sql();
    BACKSTOP_ASSIGN_OR_RETURN(PgResult r, live->Exec(sql));
    row_counts[t.Qualified()] = r.GetInt(0, 0);
    if (int_key) {
      max_keys[t.Qualified()] = r.IsNull(0, 1) ? json(nullptr) : json(r.GetInt(0, 1));
    }
    tables_json.push_back({{"schema", t.schema}, {"name", t.name}, {"oid", t.oid}, {"pk", t.pk}});
  }
  // Table statistics (rows written so far): a hint for the ledger's scans.
  json table_writes = json::object();
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult writes,
      live->Exec("SELECT schemaname || '.' || relname, n_tup_ins + n_tup_upd + n_tup_del "
                 "FROM pg_stat_user_tables WHERE schemaname = ANY($1::text[])",
                 {ArrayLiteral(l.settings.schemas)}));
  for (int i = 0; i < writes.rows(); ++i) table_writes[writes.Get(i, 0)] = writes.GetInt(i, 1);
  json sequences = json::object();
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult seq, live->Exec("SELECT schemaname || '.' || sequencename, last_value::text "
                               "FROM pg_sequences WHERE schemaname = ANY($1::text[]) ORDER BY 1",
                               {ArrayLiteral(l.settings.schemas)}));
  for (int i = 0; i < seq.rows(); ++i) {
    sequences[seq.Get(i, 0)] = seq.IsNull(i, 1) ? json(nullptr) : json(seq.GetInt(i, 1));
  }

  const std::string work = WorkDir(ctx, c);
  const std::string dump_dir = JoinPath(
      work, "dump-" + Sanitized(ctx.restore_point_id.empty() ? "adhoc" : ctx.restore_point_id));
  BACKSTOP_RETURN_IF_ERROR(env->fs()->RemoveAll(dump_dir));  // a crashed earlier attempt
  BACKSTOP_RETURN_IF_ERROR(env->fs()->CreateDirs(work, 0700));
  const std::string bin_dir = BinDir(l.settings, server_num, env);
  ctx.Progress("pg_dump of database " + db + " (" + FormatThousands(size / 1'000'000) + " MB)");
  // -Z0: the store compresses (zstd) and deduplicates; gzip here would only cost time.
  Status dumped = RunTool(
      ctx, l,
      {Tool(bin_dir, "pg_dump"), "--format=directory", "--jobs=" + std::to_string(l.settings.jobs),
       "--compress=0", "--snapshot=" + snapshot_id, "--no-password", "--file=" + dump_dir,
       "--dbname=" + l.params.ForCommandLine(db)},
      "pg_dump of database " + db);
  (void)live->Run("COMMIT");
  if (slot) slot->conn.reset();  // the slot stays; its snapshot is no longer needed
  if (!dumped.ok()) {
    (void)env->fs()->RemoveAll(dump_dir);
    return dumped;
  }
  int64_t t_dump = NowMs(ctx);

  auto names = env->fs()->ListDir(dump_dir);
  if (!names.ok()) return names.status();
  std::vector<json> files(names->size());
  Status put = ParallelFor(names->size(), l.settings.jobs, [&](size_t i) -> Status {
    const std::string path = JoinPath(dump_dir, (*names)[i]);
    auto st = env->fs()->Stat(path);
    if (!st.ok()) return st.status();
    auto digest = ctx.store->PutFile(path);
    if (!digest.ok()) return digest.status().WithContext("storing " + path);
    files[i] = {{"name", (*names)[i]}, {"digest", *digest}, {"size", st->size}};
    return Status::OK();
  });
  if (!put.ok()) {
    (void)env->fs()->RemoveAll(dump_dir);
    return put;
  }
  int64_t t_store = NowMs(ctx);
  std::set<std::string> blob_set;
  for (const auto& f : files) blob_set.insert(f["digest"].get<std::string>());

  json fk_json = json::array();
  for (const auto& fk : fks) fk_json.push_back(fk.ToJson());
  json entry = {
      {"driver", "postgres"},
      {"format", kFormat},
      {"restore_point_id", ctx.restore_point_id},
      {"database", db},
      {"files", files},
      {"blobs", std::vector<std::string>(blob_set.begin(), blob_set.end())},
      {"position",
       {{"lsn", info.Get(0, 1)},
        {"row_counts", row_counts},
        {"max_keys", max_keys},
        {"sequences", sequences}}},
      {"tables", tables_json},
      {"foreign_keys", fk_json},
      {"roles", roles},
      {"database_properties", props.ToJson()},
      {"size_bytes", size},
      {"server_version", info.Get(0, 3)},
      {"server_version_num", server_num},
      {"xid",
       {{"snapshot_xmin", info.Get(0, 0)},
        {"system_identifier", system_id},
        {"table_writes", table_writes}}},
  };
  json timings = {{"dump_ms", t_dump - t0}, {"store_ms", t_store - t_dump}};
  if (slot) {
    entry["flashback"] = flashback;
  } else if (l.settings.flashback && !flashback_unavailable.empty()) {
    entry["flashback_unavailable"] = flashback_unavailable;
  }

  bool stage =
      l.settings.staged == "always" ||
      (l.settings.staged == "auto" && static_cast<uint64_t>(size) <= l.settings.staged_max_size);
  if (stage && !ctx.restore_point_id.empty() && !ctx.dry_run) {
    Status st = Stage(l, ctx, bin_dir, dump_dir, props, entry);
    if (!st.ok()) {
      // The dump is in the store: the restore point stays valid, only slower to roll back to.
      entry["staged_error"] = st.message();
      ctx.Progress("staging database " + db +
                   " failed (the restore point is still complete): " + st.message());
    }
    timings["stage_ms"] = NowMs(ctx) - t_store;
  }
  entry["timings"] = timings;
  (void)env->fs()->RemoveAll(dump_dir);
  slot_guard.keep = true;  // the entry holds it now
  if (slot) {
    // The older restore points' slots against flashback_max_wal (each new
    // restore point is a moment to check, the watch daemon's schedule too).
    auto admin = Admin(l);
    Status upkeep =
        admin.ok() ? FlashbackUpkeep(c, l, **admin, ctx, /*drop_orphans=*/false) : admin.status();
    if (!upkeep.ok())
      ctx.Progress("flashback: checking the slots' WAL failed: " + upkeep.message());
  }
  return entry;
}

Status PostgresDriver::Stage(const Loaded& l, DriverContext& ctx, const std::string& bin_dir,
                             const std::string& dump_dir, const DatabaseInfo& props, json& entry) {
  const std::string name = StagedName(l.db(), ctx.restore_point_id);
  BACKSTOP_ASSIGN_OR_RETURN(PgConn * admin, Admin(l));
  BACKSTOP_RETURN_IF_ERROR(DropDatabase(*admin, name));  // a crashed earlier attempt
  ctx.Progress("staging restore point " + ctx.restore_point_id + " into database " + name);
  Status st = CreateDatabaseLike(*admin, name, props);
  if (st.ok()) st = RestoreDump(ctx, l, bin_dir, dump_dir, name);
  if (st.ok()) st = ApplyDatabaseProperties(*admin, name, props);
  if (st.ok()) {
    // Closed from here on: the verification below is the last session on it
    // until a rollback (ConnectToClosed ends any other).
    auto conn = ConnectToClosed(*admin, l, name);
    if (!conn.ok()) {
      st = conn.status();
    } else {
      auto checks =
          RunChecks(**conn, entry, l.settings,
                    {.row_counts = true, .foreign_keys = true, .orphans = false, .queries = false});
      if (!checks.ok()) {
        st = checks.status();
      } else if (std::string f = DescribeFailures(*checks); !f.empty()) {
        st = Status::FailedPrecondition("staged database " + name + " does not match: " + f);
      }
    }
  }
  // Our session has ended; wait until its backend has exited (and so
  // written its statistics) before reading the session count below.
  if (st.ok()) st = TerminateSessions(*admin, name);
  if (st.ok())
    st = admin->Run(CommentSql(*admin, name, StagedMarker(l.db(), ctx.restore_point_id)));
  if (!st.ok()) {
    (void)DropDatabase(*admin, name);
    return st;
  }
  entry["staged_database"] = name;
  // The copy as verified: Prepare skips recounting it when no session has
  // been opened on it since (StagedCopyUntouched).
  if (auto stats = GetSessionStats(*admin, name); stats.ok() && stats->open == 0) {
    entry["staged_verified"] = {
        {"oid", stats->oid}, {"sessions", stats->sessions}, {"stats_reset", stats->stats_reset}};
  }
  // Each staged copy is a whole database: keep the newest few only (their
  // restore points stay complete, they just roll back from the dump).
  auto older = admin->Exec(
      "SELECT d.datname FROM pg_database d WHERE d.datname <> $1 AND "
      "shobj_description(d.oid, 'pg_database') LIKE $2 ORDER BY d.oid DESC OFFSET $3",
      {name, LikePrefix("backstop:staged db=" + MarkerValue(l.db()) + " "),
       std::to_string(std::max(0, l.settings.staged_keep - 1))});
  if (older.ok()) {
    for (int i = 0; i < older->rows(); ++i) {
      if (DropDatabase(*admin, older->Get(i, 0)).ok()) {
        ctx.Progress("dropped older staged database " + older->Get(i, 0) + " (staged_keep " +
                     std::to_string(l.settings.staged_keep) + ")");
      }
    }
  }
  return Status::OK();
}

Result<json> PostgresDriver::Describe(const ComponentSpec& c, DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(Loaded l, Load(c));
  BACKSTOP_ASSIGN_OR_RETURN(auto live, ConnectTo(l, l.db()));
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult r, live->Exec("SELECT current_setting('server_version'), "
                             "pg_database_size(current_database()), "
                             "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
                             "ELSE pg_current_wal_lsn() END::text"));
  json out = {{"database", l.db()},
              {"server_version", r.Get(0, 0)},
              {"size_bytes", r.GetInt(0, 1)},
              {"position", {{"lsn", r.Get(0, 2)}}}};
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<TableInfo> tables, ListTables(*live, l.settings));
  json counts = json::object();
  for (const auto& t : tables) {
    BACKSTOP_ASSIGN_OR_RETURN(std::string n, live->Value("SELECT count(*) FROM ONLY " + t.Sql()));
    counts[t.Qualified()] = std::stoll(n);
  }
  out["position"]["row_counts"] = counts;
  // Databases this driver keeps aside, for status and prune.
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult kept, live->Exec("SELECT d.datname FROM pg_database d WHERE "
                                "shobj_description(d.oid, 'pg_database') LIKE $1 ORDER BY 1",
                                {LikePrefix("backstop:staged db=" + MarkerValue(l.db()) + " ")}));
  json staged = json::array();
  for (int i = 0; i < kept.rows(); ++i) staged.push_back(kept.Get(i, 0));
  out["staged_databases"] = staged;
  BACKSTOP_ASSIGN_OR_RETURN(PgResult retained,
                            live->Exec("SELECT datname FROM pg_database WHERE datname LIKE $1 "
                                       "ORDER BY 1",
                                       {LikePrefix(PreRollbackName(l.db(), ""))}));
  json rets = json::array();
  for (int i = 0; i < retained.rows(); ++i) rets.push_back(retained.Get(i, 0));
  out["retained_databases"] = rets;
  // Flashback: whether the server allows it, and the WAL each slot retains.
  if (l.settings.flashback) {
    BACKSTOP_ASSIGN_OR_RETURN(std::string why_not, FlashbackUnavailableReason(*live));
    if (!why_not.empty()) out["flashback_unavailable"] = why_not;
  }
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult slots,
      live->Exec("SELECT slot_name, coalesce(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), "
                 "restart_lsn), 0)::bigint FROM pg_replication_slots WHERE database = $1 AND "
                 "starts_with(slot_name, $2) ORDER BY 1",
                 {l.db(), std::string(kSlotPrefix)}));
  json slot_list = json::array();
  for (int i = 0; i < slots.rows(); ++i) {
    slot_list.push_back({{"slot", slots.Get(i, 0)}, {"retained_wal_bytes", slots.GetInt(i, 1)}});
  }
  if (l.settings.flashback || !slot_list.empty()) out["flashback_slots"] = slot_list;
  return out;
}

}  // namespace backstop::postgres

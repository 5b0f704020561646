#include "drivers/postgres/postgres_driver_impl.h"

#include <algorithm>

#include "base/crash_point.h"
#include "base/units.h"
#include "drivers/postgres/pg_admin.h"
#include "drivers/postgres/pg_dump_feed.h"
#include "drivers/postgres/pg_markers.h"
#include "store/store.h"

namespace backstop::postgres {

Status PostgresDriver::VerifyShadow(const Loaded& l, PgConn& admin, const json& entry,
                                    const std::string& shadow, bool recount) {
  // The shadow stays closed to everyone else from now on (ConnectToClosed).
  BACKSTOP_ASSIGN_OR_RETURN(auto conn, ConnectToClosed(admin, l, shadow));
  BACKSTOP_ASSIGN_OR_RETURN(
      std::vector<IntegrityCheck> checks,
      RunChecks(*conn, entry, l.settings,
                {.row_counts = recount, .foreign_keys = true, .orphans = false, .queries = true}));
  std::string failures = DescribeFailures(checks);
  if (!failures.empty()) {
    return Status::FailedPrecondition("verification of shadow database " + shadow +
                                      " failed: " + failures);
  }
  return Status::OK();
}

Status PostgresDriver::BuildFromDump(const ComponentSpec& c, const Loaded& l, PgConn& admin,
                                     const json& entry, DriverContext& ctx,
                                     const std::string& shadow) {
  if (ctx.store == nullptr) return Status::FailedPrecondition("postgres prepare: no store");
  Env* env = ctx.env;
  if (entry.contains("roles")) {
    std::vector<std::string> roles = entry["roles"].get<std::vector<std::string>>();
    BACKSTOP_ASSIGN_OR_RETURN(std::vector<std::string> missing, MissingRoles(admin, roles));
    if (!missing.empty()) {
      std::string names;
      for (const auto& m : missing) names += (names.empty() ? "" : ", ") + m;
      return Status::FailedPrecondition("the dump of database " + l.db() +
                                        " needs roles that do not exist on this server: " + names +
                                        "; create them (CREATE ROLE ...) and retry");
    }
  }
  const std::string dir =
      JoinPath(WorkDir(ctx, c), "restore-" + Sanitized(ctx.run_id.empty() ? "adhoc" : ctx.run_id));
  BACKSTOP_RETURN_IF_ERROR(env->fs()->RemoveAll(dir));
  BACKSTOP_RETURN_IF_ERROR(env->fs()->CreateDirs(dir, 0700));
  std::vector<DumpFile> files;
  for (const auto& f : entry["files"]) {
    files.push_back({f.value("name", ""), f.value("digest", ""), f.value("size", uint64_t{0})});
  }
  int64_t t0 = NowMs(ctx);
  // The large data files are streamed into pg_restore through named pipes
  // (decoded and verified while it loads them), the rest extracted first.
  std::unique_ptr<DumpFeeder> feeder;
  Status st;
  if (auto made = DumpFeeder::Create(ctx.store, dir, files,
                                     {.extract_threads = std::max(1, l.settings.jobs)});
      made.ok()) {
    feeder = std::move(made).value();
  } else {
    st = made.status();
  }
  int64_t t1 = NowMs(ctx);
  if (st.ok()) {
    DatabaseInfo props = DatabaseInfo::FromJson(entry.value("database_properties", json()));
    st = CreateDatabaseLike(admin, shadow, props);
    if (st.ok()) {
      ctx.Progress("pg_restore -j " + std::to_string(l.settings.jobs) + " into " + shadow + " (" +
                   std::to_string(feeder->streamed()) + " dump files streamed, " +
                   std::to_string(feeder->extracted()) + " extracted)");
      int server_num = entry.value("server_version_num", admin.server_version());
      feeder->Start();
      st =
          RestoreDump(ctx, l, BinDir(l.settings, std::max(server_num, admin.server_version()), env),
                      dir, shadow);
      // Every stream must have reached its end with the right hash, whatever
      // pg_restore made of it. A damaged blob explains a failed pg_restore.
      Status fed = feeder->Finish();
      if (!fed.ok() && (st.ok() || fed.code() == Status::Code::kCorruption)) {
        st = st.ok() ? fed : fed.WithContext("pg_restore failed (" + st.message() + ")");
      }
    }
    // After the data: a setting such as default_transaction_read_only must not hinder pg_restore.
    if (st.ok()) st = ApplyDatabaseProperties(admin, shadow, props);
  }
  feeder.reset();  // joins its threads before the directory goes
  (void)env->fs()->RemoveAll(dir);
  if (st.ok()) {
    ctx.Progress("shadow " + shadow + " restored from the dump (extract " +
                 FormatDurationMs(t1 - t0) + ", pg_restore " + FormatDurationMs(NowMs(ctx) - t1) +
                 ")");
  }
  return st;
}

Result<bool> PostgresDriver::RetainedNothingToUndo(const ComponentSpec& c, const Loaded& l,
                                                   const json& entry, DriverContext& ctx) {
  const std::string db = l.db();
  const std::string retained = entry["retained_database"].get<std::string>();
  const std::string run = entry.value("run_id", "");
  const std::string rp = EntryRestorePointId(entry);
  BACKSTOP_ASSIGN_OR_RETURN(PgConn * admin, Admin(l));
  BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo info, GetDatabase(*admin, retained));
  BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo live, GetDatabase(*admin, db));
  if (entry.value("database_existed", true) == false) {
    if (!live.exists) return true;
    return Status::FailedPrecondition(
        "restore point " + rp + " cannot restore database " + db + ": it did not exist when run " +
        run + " began (that run created it); drop or rename it by hand if it must go");
  }
  if (info.exists) {
    const json marker = ReadRecord(ctx, SwapMarkerPath(ctx, c.name, run));
    if (marker.is_null()) {
      return Status::FailedPrecondition("database " + retained + " exists, but run " + run +
                                        " recorded no swap that set it aside (resume that run "
                                        "first if it is unfinished)");
    }
    if (marker.contains("oid") && marker.value("oid", 0u) != info.oid) {
      return Status::FailedPrecondition(
          "database " + retained + " is not the database run " + run + " set aside (oid " +
          std::to_string(info.oid) + ", set aside with oid " +
          std::to_string(marker.value("oid", 0u)) + "): restore point " + rp +
          " cannot restore database " + db);
    }
    return false;
  }
  if (const json back = ReadRecord(ctx, SwappedBackPath(ctx, c.name, run)); !back.is_null()) {
    return Status::FailedPrecondition(
        "restore point " + rp + " can no longer restore database " + db +
        ": its retained database " + retained + " was swapped back in by run " +
        back.value("by_run", "?") +
        " (an undo); roll back to that run's safety restore point or to a full restore point");
  }
  if (NeverSwapped(ctx, c, entry)) {
    if (!live.exists) {
      return Status::FailedPrecondition("restore point " + rp + " cannot restore database " + db +
                                        ": it no longer exists, and run " + run +
                                        " never set it aside");
    }
    BACKSTOP_ASSIGN_OR_RETURN(auto conn, ConnectTo(l, db));
    BACKSTOP_RETURN_IF_ERROR(UnchangedSinceSafety(*conn, l.settings, entry, live.oid, db));
    return true;
  }
  return Status::FailedPrecondition("cannot undo: retained database " + retained +
                                    " (the database " + db + " replaced by run " + run +
                                    ") no longer exists; was it pruned?");
}

Status PostgresDriver::CheckRestorable(const ComponentSpec& c, const json& entry,
                                       DriverContext& ctx) {
  if (!entry.is_object()) return Status::OK();
  BACKSTOP_ASSIGN_OR_RETURN(Loaded l, Load(c));
  if (IsRetainedEntry(entry)) return RetainedNothingToUndo(c, l, entry, ctx).status();
  // A staged copy only makes the rollback faster: without it the dump in the
  // store (whose blobs are verified apart) restores the database.
  const std::string staged = entry.value("staged_database", "");
  if (staged.empty()) return Status::OK();
  BACKSTOP_ASSIGN_OR_RETURN(PgConn * admin, Admin(l));
  BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo info, GetDatabase(*admin, staged));
  if (!info.exists || !IsStagedCopy(info.comment, l.db(), EntryRestorePointId(entry))) {
    ctx.Progress("staged database " + staged + " is gone: a rollback restores " + l.db() +
                 " from the dump");
  }
  return Status::OK();
}

Status PostgresDriver::PrepareRetained(const ComponentSpec& c, const Loaded& l, const json& entry,
                                       DriverContext& ctx) {
  const std::string retained = entry["retained_database"].get<std::string>();
  BACKSTOP_ASSIGN_OR_RETURN(bool nothing_to_undo, RetainedNothingToUndo(c, l, entry, ctx));
  if (nothing_to_undo) {
    ctx.Progress("nothing to undo for database " + l.db() + ": run " + entry.value("run_id", "?") +
                 " never replaced it, and it is unchanged since");
    return Status::OK();
  }
  if (ctx.dry_run) {
    ctx.Progress("would swap retained database " + retained + " back in as " + l.db());
    return Status::OK();
  }
  // It stays closed to everyone else until the swap (ConnectToClosed), so
  // what is checked here is what comes back.
  BACKSTOP_ASSIGN_OR_RETURN(PgConn * admin, Admin(l));
  BACKSTOP_ASSIGN_OR_RETURN(auto conn, ConnectToClosed(*admin, l, retained));
  BACKSTOP_ASSIGN_OR_RETURN(
      std::vector<IntegrityCheck> checks,
      RunChecks(*conn, entry, l.settings,
                {.row_counts = false, .foreign_keys = true, .orphans = false, .queries = false}));
  std::string failures = DescribeFailures(checks);
  if (!failures.empty()) {
    return Status::FailedPrecondition("retained database " + retained +
                                      " does not match: " + failures);
  }
  ctx.Progress("retained database " + retained + " is ready to be swapped back in");
  return Status::OK();
}

Status PostgresDriver::Prepare(const ComponentSpec& c, const json& entry, DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(Loaded l, Load(c));
  if (IsRetainedEntry(entry)) return PrepareRetained(c, l, entry, ctx);
  if (!entry.is_object() || entry.value("format", "") != kFormat || !entry.contains("files")) {
    return Status::InvalidArgument("component " + c.name +
                                   ": the restore point entry is not a postgres dump entry");
  }
  if (ctx.run_id.empty()) return Status::InvalidArgument("postgres prepare needs a run id");
  BACKSTOP_ASSIGN_OR_RETURN(bool by_undo, PrepareUndo(c, l, entry, ctx));
  if (by_undo) return Status::OK();
  const std::string db = l.db();
  const std::string rp = EntryRestorePointId(entry);
  const std::string shadow = ShadowName(db, ctx.run_id);
  BACKSTOP_ASSIGN_OR_RETURN(PgConn * admin, Admin(l));
  BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo existing, GetDatabase(*admin, shadow));
  if (existing.exists && IsVerifiedShadow(existing.comment, db, rp, ctx.run_id)) {
    ctx.Progress("shadow database " + shadow + " already prepared and verified");
    // A crash may have come between the marker and the identity record. The
    // shadow was closed before the marker was set; if it is still closed,
    // nobody has used it since. Otherwise no record: VerifyRestored recounts.
    if (std::string path = IdentityPath(ctx, c.name, ctx.run_id); !ctx.dry_run && !path.empty() &&
                                                                  !ctx.env->fs()->Exists(path) &&
                                                                  !existing.allow_connections) {
      BACKSTOP_RETURN_IF_ERROR(
          RecordIdentity(c, l, *admin, ctx, shadow, rp, MarkerFrom(existing.comment), true));
    }
    return Status::OK();
  }
  // Only one run is ever unfinished (this one): shadows of other runs are
  // leftovers of killed or refused runs. Those verified for this restore
  // point are adopted below; a staged copy renamed to a shadow goes back.
  // They never hold up the rollback.
  if (!ctx.dry_run) {
    if (Status st = RemoveLeftovers(c, l, *admin, ctx, shadow, rp); !st.ok()) {
      ctx.Progress("leftovers of earlier runs stay (prune retries): " + st.message());
    }
  }
  std::string staged = entry.value("staged_database", "");
  DatabaseInfo staged_info;
  if (!staged.empty()) {
    BACKSTOP_ASSIGN_OR_RETURN(staged_info, GetDatabase(*admin, staged));
  }
  bool staged_ready = staged_info.exists && IsStagedCopy(staged_info.comment, db, rp);
  if (ctx.dry_run) {
    ctx.Progress(std::string("would build shadow database ") + shadow + " from " +
                 (staged_ready ? "staged database " + staged : "the dump") + " and verify it");
    return Status::OK();
  }
  int64_t t0 = NowMs(ctx);
  std::string from = "dump";
  // A staged copy (or an adopted shadow) already renamed to the shadow by a
  // crashed attempt of this run: verify it rather than restore again.
  bool have_shadow = existing.exists && IsStagedCopy(existing.comment, db, rp);
  if (have_shadow) {
    from = "staged:" + staged;
  } else if (existing.exists && IsVerifiedShadow(existing.comment, db, rp, "")) {
    from = MarkerFrom(existing.comment);
    have_shadow = true;
  } else if (existing.exists) {
    ctx.Progress("dropping incomplete shadow database " + shadow + " left by an earlier attempt");
    BACKSTOP_RETURN_IF_ERROR(DropDatabase(*admin, shadow));
  }
  if (!have_shadow && staged_ready) {
    // O(1) whatever the size: the staged copy becomes the shadow (and is consumed by the swap).
    BACKSTOP_RETURN_IF_ERROR(RenameDatabase(*admin, staged, shadow));
    from = "staged:" + staged;
    have_shadow = true;
  }
  if (!have_shadow) {
    // A verified shadow of this restore point left by a run that did not swap
    // (refused for data loss, say): adopt it instead of restoring again.
    BACKSTOP_ASSIGN_OR_RETURN(
        PgResult r,
        admin->Exec("SELECT d.datname, shobj_description(d.oid, 'pg_database') FROM pg_database d "
                    "WHERE d.datname <> $1 AND shobj_description(d.oid, 'pg_database') LIKE $2",
                    {shadow, LikePrefix("backstop:shadow db=" + MarkerValue(db) +
                                        " rp=" + MarkerValue(rp) + " ")}));
    for (int i = 0; i < r.rows() && !have_shadow; ++i) {
      std::string name = r.Get(i, 0);
      if (name == db) continue;
      std::optional<std::string> comment = r.Get(i, 1);
      if (!IsVerifiedShadow(comment, db, rp, "")) continue;
      BACKSTOP_RETURN_IF_ERROR(SetAllowConnections(*admin, name, false));
      if (RenameDatabase(*admin, name, shadow).ok()) {
        ctx.Progress("adopted shadow database " + name +
                     ", verified by an earlier run that did not swap it in");
        from = MarkerFrom(comment);
        have_shadow = true;
      }
    }
  }
  if (!have_shadow) {
    Status st = BuildFromDump(c, l, *admin, entry, ctx, shadow);
    if (!st.ok()) {
      (void)DropDatabase(*admin, shadow);
      return st.WithContext("building shadow database " + shadow + " (live database " + db +
                            " untouched)");
    }
  }
  CrashPointForTest("postgres.shadow-built");
  int64_t t1 = NowMs(ctx);
  bool recount = true;
  if (from.rfind("staged:", 0) == 0) {
    std::string why_not;
    recount = !StagedCopyUntouched(*admin, shadow, entry, &why_not);
    ctx.Progress(recount ? "recounting the rows of the staged copy: " + why_not
                         : "staged copy untouched since it was verified (no session opened on "
                           "it since): row counts not recounted");
  }
  Status st = VerifyShadow(l, *admin, entry, shadow, recount);
  if (!st.ok()) {
    (void)DropDatabase(*admin, shadow);
    return st.WithContext("live database " + db + " untouched");
  }
  BACKSTOP_RETURN_IF_ERROR(
      admin->Run(CommentSql(*admin, shadow, ShadowMarker(db, rp, ctx.run_id, from))));
  CrashPointForTest("postgres.shadow-verified");
  BACKSTOP_RETURN_IF_ERROR(RecordIdentity(c, l, *admin, ctx, shadow, rp, from, recount));
  ctx.Progress("shadow database " + shadow + " ready from " + from + " (build " +
               FormatDurationMs(t1 - t0) + ", verify " + FormatDurationMs(NowMs(ctx) - t1) + ")");
  return Status::OK();
}

Status PostgresDriver::RecordIdentity(const ComponentSpec& c, const Loaded& l, PgConn& admin,
                                      DriverContext& ctx, const std::string& shadow,
                                      const std::string& rp, const std::string& from,
                                      bool counted) {
  const std::string path = IdentityPath(ctx, c.name, ctx.run_id);
  if (path.empty()) return Status::OK();  // outside a run: VerifyRestored recounts
  BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo info, GetDatabase(admin, shadow));
  if (!info.exists) return Status::Internal("shadow database " + shadow + " vanished");
  json record = {
      {"database", l.db()},
      {"verified_database", shadow},
      {"oid", info.oid},
      {"system_identifier", SystemIdentifier(admin)},
      {"restore_point_id", rp},
      {"run_id", ctx.run_id},
      {"from", from},
      {"checks", counted
                     ? "row counts, foreign keys, integrity queries"
                     : "foreign keys, integrity queries (row counts: by Stage, untouched since)"}};
  return WriteRecord(ctx, path, record);
}

Status PostgresDriver::RecordRetainedIdentity(const ComponentSpec& c, const Loaded& l,
                                              PgConn& admin, DriverContext& ctx, const json& entry,
                                              const std::string& name, uint32_t oid) {
  const std::string path = IdentityPath(ctx, c.name, ctx.run_id);
  if (path.empty() || ctx.env->fs()->Exists(path)) return Status::OK();
  return WriteRecord(ctx, path,
                     {{"database", l.db()},
                      {"verified_database", name},
                      {"oid", oid},
                      {"system_identifier", SystemIdentifier(admin)},
                      {"restore_point_id", EntryRestorePointId(entry)},
                      {"run_id", ctx.run_id},
                      {"from", "retained:" + entry.value("run_id", "")},
                      {"checks", "the database the restore point names, by oid"}});
}

bool PostgresDriver::ProveIdentity(const ComponentSpec& c, const Loaded& l, PgConn& live,
                                   const json& entry, DriverContext& ctx, std::string* why_not) {
  const std::string path = IdentityPath(ctx, c.name, ctx.run_id);
  if (path.empty()) {
    *why_not = "no run directory";
    return false;
  }
  auto text = ctx.env->fs()->ReadFile(path);
  if (!text.ok()) {
    *why_not = "Prepare of run " + ctx.run_id + " recorded no verified shadow (" +
               text.status().message() + ")";
    return false;
  }
  json record;
  try {
    record = json::parse(*text);
  } catch (const std::exception& e) {
    *why_not = "unreadable " + path + ": " + e.what();
    return false;
  }
  if (!record.is_object() || record.value("database", "") != l.db() ||
      record.value("run_id", "") != ctx.run_id ||
      record.value("restore_point_id", "") != EntryRestorePointId(entry)) {
    *why_not = path + " is about another database, run or restore point";
    return false;
  }
  const std::string sysid = record.value("system_identifier", "");
  if (sysid.empty()) {
    *why_not = "the cluster's system identifier was not readable when the shadow was verified";
    return false;
  }
  auto now = live.Exec(
      "SELECT d.oid::bigint, (SELECT system_identifier::text FROM pg_control_system()) "
      "FROM pg_database d WHERE d.datname = current_database()");
  if (!now.ok() || now->rows() != 1) {
    *why_not = "cannot read the live database's oid: " +
               (now.ok() ? std::string("no row") : now.status().message());
    return false;
  }
  const uint32_t oid = record.value("oid", 0u);
  if (now->Get(0, 1) != sysid || static_cast<uint32_t>(now->GetInt(0, 0)) != oid) {
    *why_not = "the live database (oid " + now->Get(0, 0) + ") is not the shadow " +
               record.value("verified_database", "?") + " verified by Prepare (oid " +
               std::to_string(oid) + ")";
    return false;
  }
  return true;
}

}  // namespace backstop::postgres

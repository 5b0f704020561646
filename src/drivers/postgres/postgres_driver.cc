#include "drivers/postgres/postgres_driver.h"

#include <libpq-fe.h>

#include <set>

#include "base/crash_point.h"
#include "base/units.h"
#include "drivers/postgres/pg_admin.h"
#include "drivers/postgres/pg_flashback.h"
#include "drivers/postgres/pg_ledger_scan.h"
#include "drivers/postgres/pg_markers.h"
#include "drivers/postgres/postgres_driver_impl.h"
#include "store/restore_point.h"

namespace backstop::postgres {
namespace {

// An admin connection idle longer than this is not reused (a watch daemon
// keeps its drivers for days).
constexpr auto kAdminIdle = std::chrono::seconds(30);

}  // namespace

Result<PgConn*> PostgresDriver::Admin(const Loaded& l) {
  const std::string key =
      l.params.Display() + "\n" + l.settings.admin_dbname + "\n" + l.params.password();
  const auto now = std::chrono::steady_clock::now();
  if (admin_ && admin_key_ == key && now - admin_used_ < kAdminIdle &&
      admin_->Run("SELECT 1").ok()) {
    admin_used_ = now;
    return admin_.get();
  }
  admin_.reset();
  BACKSTOP_ASSIGN_OR_RETURN(admin_, ConnectAdmin(l));
  admin_key_ = key;
  admin_used_ = now;
  return admin_.get();
}

Result<DataLossReport> PostgresDriver::AssessLoss(const ComponentSpec& c, const json& entry,
                                                  DriverContext& ctx) {
  if (DecidedUndo(c, entry, ctx)) {
    BACKSTOP_ASSIGN_OR_RETURN(Loaded l, Load(c));
    return UndoLedger(c, l, entry, ctx, nullptr);
  }
  return TakeLedger(c, entry, ctx, nullptr);
}

Result<DataLossReport> PostgresDriver::TakeLedger(const ComponentSpec& c, const json& entry,
                                                  DriverContext& ctx, PgConn* live_in_window) {
  if (!live_in_window) ledger_taken_.reset();
  BACKSTOP_ASSIGN_OR_RETURN(Loaded l, Load(c));
  const std::string db = l.db();
  DataLossReport report;
  BACKSTOP_ASSIGN_OR_RETURN(PgConn * admin, Admin(l));
  const std::string ledger_path =
      ctx.run_dir.empty() ? "" : JoinPath(ctx.run_dir, "ledger-" + c.name + ".jsonl");
  if (!ctx.run_id.empty() && !live_in_window) {
    // A resumed run whose swap already began: what it discarded is in
    // <db>_pre_rollback_<run> and in the ledger taken before the swap. Checked
    // before the live database, which a kill between the two renames leaves
    // missing.
    BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo aside,
                              GetDatabase(*admin, PreRollbackName(db, ctx.run_id)));
    if (aside.exists) {
      ctx.Progress("database " + db + " was already swapped by this run: its ledger stands");
      if (ledger_path.empty()) return report;
      return ReportFromLedger(ctx.env->fs(), c.name, ledger_path);
    }
  }
  BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo live_info, GetDatabase(*admin, db));
  if (!live_info.exists) {
    ctx.Progress("database " + db + " does not exist: a rollback discards nothing");
    return report;
  }
  // The restore point's side: the shadow (or, before Prepare, the staged copy),
  // or for an undo the retained database.
  std::string rp_db;
  if (IsRetainedEntry(entry)) {
    rp_db = entry["retained_database"].get<std::string>();
    BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo r, GetDatabase(*admin, rp_db));
    if (!r.exists && NeverSwapped(ctx, c, entry)) return report;  // nothing to undo
  } else {
    std::string shadow = ctx.run_id.empty() ? "" : ShadowName(db, ctx.run_id);
    std::string staged = entry.value("staged_database", "");
    if (!shadow.empty()) {
      BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo s, GetDatabase(*admin, shadow));
      if (s.exists) rp_db = shadow;
    }
    if (rp_db.empty() && !staged.empty()) {
      BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo s, GetDatabase(*admin, staged));
      if (s.exists) rp_db = staged;
    }
    if (rp_db.empty()) {
      return Status::FailedPrecondition(
          "cannot assess the data loss of database " + db +
          ": no copy of the restore point to compare with (Prepare builds " +
          (shadow.empty() ? std::string("the shadow") : shadow) + ")");
    }
  }
  BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo rp_info, GetDatabase(*admin, rp_db));
  if (!rp_info.exists) {
    return Status::FailedPrecondition("database " + rp_db + " does not exist (pruned?)");
  }
  int64_t t0 = NowMs(ctx);
  std::unique_ptr<PgConn> own_live;
  PgConn* live = live_in_window;
  if (!live) {
    BACKSTOP_ASSIGN_OR_RETURN(own_live, ConnectTo(l, db));
    live = own_live.get();
  }
  // Read before the ledger's snapshot: a write that snapshot misses commits
  // after it, so reaches the statistics after this (see WriteStamp).
  std::string write_stamp;
  if (!live_in_window) {
    BACKSTOP_ASSIGN_OR_RETURN(write_stamp, WriteStamp(*live, l.settings));
  }
  std::unique_ptr<PgConn> rp;
  // A verified shadow, a staged copy or a retained database stays closed to
  // everyone else (VerifyRestored relies on it: see Prepare).
  BACKSTOP_ASSIGN_OR_RETURN(rp, ConnectToClosed(*admin, l, rp_db));

  BACKSTOP_ASSIGN_OR_RETURN(LedgerScan scan, ScanLedger(live, rp.get(), entry, live_info.oid,
                                                        l.settings, c.name, ledger_path, ctx));
  report = std::move(scan.report);
  ctx.Progress("data-loss ledger of " + db + " against " + rp_db + " (" +
               (scan.incremental ? "rows written since the restore point" : "every row compared") +
               "): " + report.Summary() + " in " + FormatDurationMs(NowMs(ctx) - t0));
  if (!live_in_window && !ctx.run_id.empty()) ledger_taken_ = LedgerTaken{ctx.run_id, write_stamp};
  return report;
}

Status PostgresDriver::CheckLateWrites(const ComponentSpec& c, const Loaded& l, PgConn& admin,
                                       PgConn& guard, const json& entry, DriverContext& ctx) {
  const std::string db = l.db();
  const int guard_pid = PQbackendPID(guard.raw());
  std::string left = "0";
  for (int attempt = 0; attempt < 3; ++attempt) {
    BACKSTOP_RETURN_IF_ERROR(TerminateSessions(admin, db, guard_pid));
    BACKSTOP_ASSIGN_OR_RETURN(left,
                              admin.Value(std::string("SELECT count(*) ") + kOtherClientSessions,
                                          {db, std::to_string(guard_pid)}));
    if (left == "0") break;
  }
  if (left != "0") {
    return Status::Unavailable(left + " session(s) on database " + db +
                               " did not end within 5 s of being terminated; nothing was swapped");
  }
  BACKSTOP_ASSIGN_OR_RETURN(std::string now, WriteStamp(guard, l.settings));
  if (!now.empty() && now == ledger_taken_->write_stamp) return Status::OK();
  ctx.Progress(now.empty() ? "table statistics are off (track_counts) on " + db +
                                 ": cannot tell whether rows were written after the ledger; "
                                 "taking it again with connections refused"
                           : "rows of " + db +
                                 " were written after the ledger was taken: taking it again "
                                 "with connections refused");
  BACKSTOP_ASSIGN_OR_RETURN(DataLossReport report, TakeLedger(c, entry, ctx, &guard));
  CrashPointForTest("postgres.ledger-retaken");
  revised_loss_ = std::move(report);
  return Status::OK();
}

Status PostgresDriver::Restore(const ComponentSpec& c, const json& entry, DriverContext& ctx) {
  revised_loss_.reset();
  BACKSTOP_ASSIGN_OR_RETURN(Loaded l, Load(c));
  if (ctx.run_id.empty()) return Status::InvalidArgument("postgres restore needs a run id");
  if (DecidedUndo(c, entry, ctx)) return RestoreByUndo(c, l, entry, ctx);
  const std::string db = l.db();
  const bool retained = IsRetainedEntry(entry);
  const std::string source =
      retained ? entry["retained_database"].get<std::string>() : ShadowName(db, ctx.run_id);
  const std::string aside = PreRollbackName(db, ctx.run_id);
  if (source == aside || source == db) {
    return Status::FailedPrecondition("restore point entry of " + db + " names database " + source +
                                      ", which this run would replace");
  }
  // The comment the database had when the restore point was taken (the
  // shadow carries Backstop's marker instead).
  std::optional<std::string> comment;
  if (!retained)
    comment = DatabaseInfo::FromJson(entry.value("database_properties", json())).comment;

  BACKSTOP_ASSIGN_OR_RETURN(PgConn * admin, Admin(l));
  BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo L, GetDatabase(*admin, db));
  BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo S, GetDatabase(*admin, source));
  BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo A, GetDatabase(*admin, aside));

  const std::string marker = SwapMarkerPath(ctx, c.name, ctx.run_id);
  // `aside_oid`: the database set aside (the swap marker names it by oid, so
  // that an undo can tell it from one put in its place).
  auto finish = [&](bool set_aside, uint32_t aside_oid) -> Status {
    BACKSTOP_RETURN_IF_ERROR(SetAllowConnections(*admin, db, true));
    if (!retained) BACKSTOP_RETURN_IF_ERROR(admin->Run(CommentSql(*admin, db, comment)));
    if (set_aside) {
      BACKSTOP_RETURN_IF_ERROR(WriteRecord(
          ctx, marker, {{"database", db}, {"retained_database", aside}, {"oid", aside_oid}}));
    }
    if (retained) {
      // The safety entry's database is live again: that entry holds nothing now.
      BACKSTOP_RETURN_IF_ERROR(
          WriteRecord(ctx, SwappedBackPath(ctx, c.name, entry.value("run_id", "")),
                      {{"database", db}, {"retained_database", source}, {"by_run", ctx.run_id}}));
    }
    return Status::OK();
  };
  if (L.exists && !S.exists && A.exists) {
    ctx.Progress("database " + db + " already swapped (previous database kept as " + aside + ")");
    if (ctx.dry_run) return Status::OK();
    if (retained)
      BACKSTOP_RETURN_IF_ERROR(RecordRetainedIdentity(c, l, *admin, ctx, entry, source, L.oid));
    CrashPointForTest("postgres.swap-done");
    return finish(true, A.oid);
  }
  if (!L.exists && S.exists && A.exists) {
    // Interrupted between the two renames: complete the swap.
    if (ctx.dry_run) return Status::OK();
    ctx.Progress("completing an interrupted swap: " + source + " -> " + db);
    if (retained)
      BACKSTOP_RETURN_IF_ERROR(RecordRetainedIdentity(c, l, *admin, ctx, entry, source, S.oid));
    BACKSTOP_RETURN_IF_ERROR(RenameDatabase(*admin, source, db));
    CrashPointForTest("postgres.swap-done");
    return finish(true, A.oid);
  }
  if (retained && !S.exists && !A.exists && L.exists && NeverSwapped(ctx, c, entry)) {
    return RestoreUnchanged(c, l, *admin, entry, ctx, L);
  }
  if (!S.exists) {
    return Status::FailedPrecondition(
        "cannot swap database " + db + ": " + source + " does not exist" +
        (A.exists ? " while " + aside + " does; put it back with ALTER DATABASE " +
                        QuoteIdent(aside) + " RENAME TO " + QuoteIdent(db)
                  : std::string(retained ? " (pruned?)" : "; Prepare builds it")));
  }
  if (A.exists) {
    return Status::FailedPrecondition("cannot swap database " + db + ": " + aside +
                                      " already exists while " + source + " still does");
  }
  if (!retained) {
    if (!IsVerifiedShadow(S.comment, db, EntryRestorePointId(entry), ctx.run_id)) {
      return Status::FailedPrecondition("shadow database " + source +
                                        " was not verified by Prepare of this run; run Prepare");
    }
  }
  if (ctx.dry_run) {
    ctx.Progress("would rename " + db + " -> " + aside + " and " + source + " -> " + db);
    return Status::OK();
  }
  if (!L.exists) {
    ctx.Progress("database " + db + " does not exist: " + source + " takes its name");
    if (retained)
      BACKSTOP_RETURN_IF_ERROR(RecordRetainedIdentity(c, l, *admin, ctx, entry, source, S.oid));
    BACKSTOP_RETURN_IF_ERROR(RenameDatabase(*admin, source, db));
    return finish(false, 0);
  }

  // Rows written to the live database after AssessLoss took the ledger would
  // be discarded unlisted. A session opened now, before connections are
  // refused, checks once every other one has ended that nothing was written
  // since, and takes the ledger again if something was (CheckLateWrites).
  std::unique_ptr<PgConn> guard;
  if (ledger_taken_ && ledger_taken_->run_id == ctx.run_id) {
    BACKSTOP_ASSIGN_OR_RETURN(guard, ConnectTo(l, db));
  }
  int64_t t0 = NowMs(ctx);
  // Nobody may use the shadow or the live database while names change.
  BACKSTOP_RETURN_IF_ERROR(SetAllowConnections(*admin, source, false));
  BACKSTOP_RETURN_IF_ERROR(SetAllowConnections(*admin, db, false));
  if (guard) {
    Status checked = CheckLateWrites(c, l, *admin, *guard, entry, ctx);
    guard.reset();
    // The ledger taken again may have opened a retained source.
    if (checked.ok()) checked = SetAllowConnections(*admin, source, false);
    if (!checked.ok()) {
      (void)SetAllowConnections(*admin, db, true);
      return checked.WithContext("checking for writes after the ledger (database " + db +
                                 " left in place)");
    }
  }
  if (retained) {
    Status recorded = RecordRetainedIdentity(c, l, *admin, ctx, entry, source, S.oid);
    if (!recorded.ok()) {
      (void)SetAllowConnections(*admin, db, true);
      return recorded;
    }
  }
  Status st = RenameDatabase(*admin, db, aside);
  if (!st.ok()) {
    (void)SetAllowConnections(*admin, db, true);
    return st.WithContext("swapping in " + source + " (database " + db + " left in place)");
  }
  CrashPointForTest("postgres.between-renames");
  st = RenameDatabase(*admin, source, db);
  if (!st.ok()) {
    Status back = RenameDatabase(*admin, aside, db);
    if (back.ok()) back = SetAllowConnections(*admin, db, true);
    if (!back.ok()) {
      return Status::FailedPrecondition(
          "swapping in " + source + " failed (" + st.message() + ") and putting " + db +
          " back failed too (" + back.message() + "); run: ALTER DATABASE " + QuoteIdent(aside) +
          " RENAME TO " + QuoteIdent(db) + "; ALTER DATABASE " + QuoteIdent(db) +
          " ALLOW_CONNECTIONS true");
    }
    return st.WithContext("swapping in " + source + " (database " + db + " put back)");
  }
  CrashPointForTest("postgres.swap-done");
  BACKSTOP_RETURN_IF_ERROR(finish(true, L.oid));
  ctx.Progress("swapped " + source + " in as " + db + " in " + FormatDurationMs(NowMs(ctx) - t0) +
               "; previous database kept as " + aside + " until prune");
  return Status::OK();
}

Status PostgresDriver::RestoreUnchanged(const ComponentSpec& c, const Loaded& l, PgConn& admin,
                                        const json& entry, DriverContext& ctx,
                                        const DatabaseInfo& live) {
  const std::string db = l.db();
  BACKSTOP_ASSIGN_OR_RETURN(auto guard, ConnectTo(l, db));
  if (ctx.dry_run) return UnchangedSinceSafety(*guard, l.settings, entry, live.oid, db);
  // A session still open could write after the check: the check runs
  // alone, and every session that ran before has flushed its statistics.
  BACKSTOP_RETURN_IF_ERROR(SetAllowConnections(admin, db, false));
  Status st = TerminateSessions(admin, db, PQbackendPID(guard->raw()));
  if (st.ok()) st = UnchangedSinceSafety(*guard, l.settings, entry, live.oid, db);
  guard.reset();
  if (st.ok()) st = RecordRetainedIdentity(c, l, admin, ctx, entry, db, live.oid);
  Status reopened = SetAllowConnections(admin, db, true);
  BACKSTOP_RETURN_IF_ERROR(st);
  BACKSTOP_RETURN_IF_ERROR(reopened);
  ctx.Progress("nothing to undo for database " + db + ": run " + entry.value("run_id", "?") +
               " never replaced it, and nothing was written to it since");
  return Status::OK();
}

Status PostgresDriver::VerifyRestored(const ComponentSpec& c, const json& entry,
                                      DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(Loaded l, Load(c));
  if (IsRetainedEntry(entry) && entry.value("database_existed", true) == false) {
    BACKSTOP_ASSIGN_OR_RETURN(PgConn * admin, Admin(l));
    BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo info, GetDatabase(*admin, l.db()));
    if (!info.exists) return Status::OK();
    return Status::FailedPrecondition("database " + l.db() +
                                      " exists, but did not at restore point " +
                                      EntryRestorePointId(entry));
  }
  if (DecidedUndo(c, entry, ctx)) return VerifyUndo(l, entry, ctx);
  BACKSTOP_ASSIGN_OR_RETURN(auto live, ConnectTo(l, l.db()));
  // A safety entry holds no rows to count: the live database must be
  // proven to be the one it names (by oid, recorded by Restore).
  if (IsRetainedEntry(entry)) {
    std::string why_not;
    if (!ProveIdentity(c, l, *live, entry, ctx, &why_not)) {
      return Status::FailedPrecondition("database " + l.db() +
                                        " cannot be proven to be the one restore point " +
                                        EntryRestorePointId(entry) + " names: " + why_not);
    }
  }
  // Prepare verified the shadow in full (row counts, foreign keys, integrity
  // queries) and kept it closed to everyone else until the swap. When the
  // live database provably is that shadow (same oid in the same cluster),
  // recounting every table would only re-read what was verified, and would
  // count rows the restarted services wrote since as a mismatch. Otherwise
  // (an undo, a run without a record, a database swapped by hand since) the
  // rows are recounted. `backstop verify --data` always checks in full.
  std::string why_not;
  const bool counted =
      entry.is_object() && entry.contains("position") && entry["position"].contains("row_counts");
  const bool identity =
      counted && !IsRetainedEntry(entry) && ProveIdentity(c, l, *live, entry, ctx, &why_not);
  if (identity) {
    ctx.Progress("database " + l.db() +
                 " is the shadow Prepare verified (same oid): row counts not recounted");
  } else if (counted) {
    ctx.Progress("recounting the rows of " + l.db() + ": " + why_not);
  }
  BACKSTOP_ASSIGN_OR_RETURN(
      std::vector<IntegrityCheck> checks,
      RunChecks(
          *live, entry, l.settings,
          {.row_counts = !identity, .foreign_keys = true, .orphans = false, .queries = false}));
  std::string failures = DescribeFailures(checks);
  if (!failures.empty()) {
    return Status::FailedPrecondition("database " + l.db() +
                                      " does not match the restore point: " + failures);
  }
  return Status::OK();
}

Result<std::vector<IntegrityCheck>> PostgresDriver::CheckIntegrity(const ComponentSpec& c,
                                                                   const json& entry,
                                                                   DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(Loaded l, Load(c));
  BACKSTOP_ASSIGN_OR_RETURN(auto live, ConnectTo(l, l.db()));
  return RunChecks(*live, entry, l.settings,
                   {.row_counts = true, .foreign_keys = true, .orphans = true, .queries = true});
}

Result<std::vector<IntegrityCheck>> PostgresDriver::CheckInvariants(const ComponentSpec& c,
                                                                    const json& entry,
                                                                    DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(Loaded l, Load(c));
  BACKSTOP_ASSIGN_OR_RETURN(auto live, ConnectTo(l, l.db()));
  // Read-only, and never holding up the database: a check that waits for a
  // lock gives up rather than queue writers behind it.
  BACKSTOP_RETURN_IF_ERROR(live->Run("SET default_transaction_read_only = on"));
  BACKSTOP_RETURN_IF_ERROR(live->Run("SET lock_timeout = '5s'"));
  return RunChecks(*live, entry, l.settings,
                   {.row_counts = false, .foreign_keys = true, .orphans = true, .queries = true});
}

HealthResult PostgresDriver::Health(const ComponentSpec& c, DriverContext& ctx) {
  HealthResult h;
  auto l = Load(c);
  if (!l.ok()) {
    h.state = HealthResult::State::kUnknown;
    h.detail = l.status().message();
    return h;
  }
  Clock* clock = ctx.env->clock();
  int64_t t0 = clock->NowMicros();
  auto conn = ConnectTo(*l, l->db());
  int64_t elapsed_ms = (clock->NowMicros() - t0) / 1000;
  h.latency_ms = elapsed_ms;
  h.signals["connect_time_ms"] = static_cast<double>(elapsed_ms);
  if (conn.ok()) {
    h.state = HealthResult::State::kPass;
    h.detail = "accepting connections";
    h.signals["accepting"] = 1;
    return h;
  }
  // Like pg_isready: did the server answer at all, and how?
  auto kv = l->params.KeywordsFor(l->db(), l->settings.connect_timeout_ms);
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : kv) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGPing ping = PQpingParams(keys.data(), values.data(), 0);
  std::string msg = conn.status().message();
  h.state = HealthResult::State::kFail;
  h.signals["accepting"] = 0;
  switch (ping) {
    case PQPING_NO_RESPONSE:
      h.detail = "no response: " + msg;
      h.signals["responding"] = 0;
      break;
    case PQPING_NO_ATTEMPT:
      h.state = HealthResult::State::kUnknown;
      h.detail = "bad connection parameters: " + msg;
      break;
    case PQPING_REJECT:  // starting up, shutting down, in recovery
    case PQPING_OK:      // the server answered but refused this session
    default:
      h.detail = "rejecting connections: " + msg;
      h.signals["responding"] = 1;
      break;
  }
  return h;
}

Status PostgresDriver::ReleaseShadow(const Loaded& l, PgConn& admin, const std::string& shadow,
                                     DriverContext& ctx) {
  const std::string db = l.db();
  BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo S, GetDatabase(admin, shadow));
  if (!S.exists) return Status::OK();
  if (ctx.dry_run) {
    ctx.Progress("would remove unused shadow " + shadow);
    return Status::OK();
  }
  // A shadow made from a staged copy that was never swapped in goes back to
  // being the staged copy, so the restore point stays fast to roll back to.
  auto m = ParseMarker(S.comment, "shadow");
  auto staged_m = ParseMarker(S.comment, "staged");
  std::string rp, staged_name;
  if (m.count("verified") && m["db"] == MarkerValue(db)) {
    rp = MarkerDecode(m["rp"]);
    std::string from = MarkerFrom(S.comment);
    if (from.rfind("staged:", 0) == 0) staged_name = from.substr(7);
  } else if (staged_m.count("rp") && staged_m["db"] == MarkerValue(db)) {
    // Renamed from the staged copy by a Prepare that crashed before verifying it.
    rp = MarkerDecode(staged_m["rp"]);
    staged_name = StagedName(db, rp);
  }
  if (!staged_name.empty() && !rp.empty()) {
    BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo existing, GetDatabase(admin, staged_name));
    if (!existing.exists) {
      BACKSTOP_RETURN_IF_ERROR(SetAllowConnections(admin, shadow, false));
      BACKSTOP_RETURN_IF_ERROR(RenameDatabase(admin, shadow, staged_name));
      BACKSTOP_RETURN_IF_ERROR(admin.Run(CommentSql(admin, staged_name, StagedMarker(db, rp))));
      ctx.Progress("unused shadow " + shadow + " renamed back to staged database " + staged_name);
      return Status::OK();
    }
  }
  BACKSTOP_RETURN_IF_ERROR(DropDatabase(admin, shadow));
  ctx.Progress("dropped unused shadow " + shadow);
  return Status::OK();
}

Status PostgresDriver::RemoveLeftovers(const ComponentSpec& c, const Loaded& l, PgConn& admin,
                                       DriverContext& ctx, const std::string& keep_shadow,
                                       const std::string& adoptable_rp) {
  const std::string db = l.db();
  // Shadows by name (a half-built one has no marker yet) and by marker (a
  // name shortened for PostgreSQL's identifier limit does not keep the prefix).
  Status first_error;  // the others are still removed
  const std::string prefix = ShadowName(db, "");
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult r,
      admin.Exec("SELECT d.datname, shobj_description(d.oid, 'pg_database') FROM pg_database d "
                 "WHERE d.datname <> $1 AND d.datname <> $2 AND (d.datname LIKE $3 OR "
                 "shobj_description(d.oid, 'pg_database') LIKE $4) ORDER BY 1",
                 {db, keep_shadow, prefix.rfind(db, 0) == 0 ? LikePrefix(prefix) : "",
                  LikePrefix("backstop:shadow db=" + MarkerValue(db) + " ")}));
  for (int i = 0; i < r.rows(); ++i) {
    const std::string name = r.Get(i, 0);
    std::optional<std::string> comment;
    if (!r.IsNull(i, 1)) comment = r.Get(i, 1);
    // Kept for the caller to adopt: verified for the restore point it prepares.
    if (!adoptable_rp.empty() && IsVerifiedShadow(comment, db, adoptable_rp, "")) continue;
    Status st = ReleaseShadow(l, admin, name, ctx);
    if (!st.ok() && first_error.ok()) {
      first_error = st.WithContext("removing shadow database " + name + " left by an earlier run");
    }
  }
  // Scratch directories of restores that were killed.
  Env* env = ctx.env;
  const std::string work = WorkDir(ctx, c);
  const std::string keep_dir = ctx.run_id.empty() ? "" : "restore-" + Sanitized(ctx.run_id);
  if (auto names = env->fs()->ListDir(work); names.ok()) {
    for (const auto& n : *names) {
      if (n.rfind("restore-", 0) != 0 || n == keep_dir) continue;
      if (ctx.dry_run) {
        ctx.Progress("would remove scratch directory " + JoinPath(work, n));
        continue;
      }
      Status st = env->fs()->RemoveAll(JoinPath(work, n));
      if (!st.ok() && first_error.ok()) first_error = st;
    }
  }
  return first_error;
}

Status PostgresDriver::Prune(const ComponentSpec& c, const std::string& run_id,
                             DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(Loaded l, Load(c));
  BACKSTOP_ASSIGN_OR_RETURN(PgConn * admin, Admin(l));
  if (run_id.empty()) {
    BACKSTOP_RETURN_IF_ERROR(RemoveLeftovers(c, l, *admin, ctx, "", ""));
    return FlashbackUpkeep(c, l, *admin, ctx);
  }
  const std::string db = l.db();
  const std::string aside = PreRollbackName(db, run_id);
  BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo A, GetDatabase(*admin, aside));
  if (A.exists) {
    if (ctx.dry_run) {
      ctx.Progress("would drop " + aside);
    } else {
      BACKSTOP_RETURN_IF_ERROR(DropDatabase(*admin, aside));
      ctx.Progress("dropped " + aside);
    }
  }
  BACKSTOP_RETURN_IF_ERROR(ReleaseShadow(l, *admin, ShadowName(db, run_id), ctx));
  if (!ctx.dry_run) {
    (void)ctx.env->fs()->RemoveAll(JoinPath(WorkDir(ctx, c), "restore-" + Sanitized(run_id)));
  }
  return Status::OK();
}

std::vector<std::string> PostgresDriver::BlobsNeeded(const ComponentSpec& c, const json& entry,
                                                     DriverContext& ctx) {
  std::vector<std::string> all = Driver::BlobsNeeded(c, entry, ctx);
  if (all.empty() || IsRetainedEntry(entry) || !entry.is_object()) return all;
  // Prepare restores from the staged copy when it is intact (its marker names
  // this database and restore point), or keeps this run's shadow when it is
  // already there (a resumed run): then no dump blob is read. If the copy
  // vanished between this call and Prepare, Prepare extracts the dump after
  // all, and every blob is verified while it is extracted (a damaged one
  // fails Prepare, before anything live is touched).
  auto l = Load(c);
  if (!l.ok()) return all;
  auto admin_or = Admin(*l);
  if (!admin_or.ok()) return all;
  PgConn* admin = *admin_or;
  const std::string db = l->db(), rp = EntryRestorePointId(entry);
  if (!ctx.run_id.empty()) {
    auto shadow = GetDatabase(*admin, ShadowName(db, ctx.run_id));
    if (shadow.ok() && shadow->exists &&
        (IsVerifiedShadow(shadow->comment, db, rp, ctx.run_id) ||
         IsStagedCopy(shadow->comment, db, rp))) {
      return {};
    }
  }
  const std::string staged = entry.value("staged_database", "");
  if (staged.empty()) return all;
  auto info = GetDatabase(*admin, staged);
  if (!info.ok() || !info->exists || !IsStagedCopy(info->comment, db, rp)) return all;
  return {};
}

Status PostgresDriver::FlashbackUpkeep(const ComponentSpec& c, const Loaded& l, PgConn& admin,
                                       DriverContext& ctx, bool drop_orphans) {
  // The slots the restore points of this component hold.
  std::set<std::string> held;
  if (ctx.store == nullptr) return Status::OK();
  std::vector<std::string> errors;
  for (const auto& rp : ListRestorePoints(*ctx.store, &errors)) {
    if (!rp.components.is_object() || !rp.components.contains(c.name)) continue;
    const json& e = rp.components[c.name];
    if (e.is_object() && e.contains("flashback") && e["flashback"].is_object()) {
      held.insert(e["flashback"].value("slot", ""));
    }
  }
  // An unreadable manifest may hold a slot: orphans are then left alone.
  if (errors.empty() && drop_orphans) {
    BACKSTOP_ASSIGN_OR_RETURN(
        PgResult slots,
        admin.Exec("SELECT slot_name FROM pg_replication_slots WHERE database = $1 AND "
                   "starts_with(slot_name, $2) AND NOT active ORDER BY 1",
                   {l.db(), std::string(kSlotPrefix)}));
    for (int i = 0; i < slots.rows(); ++i) {
      const std::string slot = slots.Get(i, 0);
      if (held.count(slot)) continue;
      if (ctx.dry_run) {
        ctx.Progress("would drop replication slot " + slot + " (no restore point holds it)");
        continue;
      }
      BACKSTOP_RETURN_IF_ERROR(DropSlot(admin, slot));
      ctx.Progress("dropped replication slot " + slot +
                   " (left by a restore point that was never written)");
    }
  }
  const uint64_t limit = l.settings.flashback_max_wal > 0
                             ? l.settings.flashback_max_wal
                             : DefaultMaxWal(ctx.state_dir.empty() ? "/" : ctx.state_dir);
  for (const std::string& slot : held) {
    if (slot.empty()) continue;
    BACKSTOP_ASSIGN_OR_RETURN(std::optional<int64_t> wal, SlotRetainedWal(admin, slot));
    if (!wal || static_cast<uint64_t>(*wal) <= limit) continue;
    if (ctx.dry_run) {
      ctx.Progress("would release replication slot " + slot);
      continue;
    }
    BACKSTOP_RETURN_IF_ERROR(DropSlot(admin, slot));
    ctx.Progress("warning: replication slot " + slot + " retained " + FormatBytes(*wal) +
                 " of WAL, more than flashback_max_wal (" + FormatBytes(limit) +
                 "): released; its restore point rolls back from its dump");
  }
  return Status::OK();
}

Status PostgresDriver::DiscardSnapshot(const ComponentSpec& c, const json& entry,
                                       DriverContext& ctx) {
  if (!entry.is_object() || IsRetainedEntry(entry)) return Status::OK();
  const std::string slot = entry.contains("flashback") && entry["flashback"].is_object()
                               ? entry["flashback"].value("slot", "")
                               : "";
  if (!slot.empty()) {
    BACKSTOP_ASSIGN_OR_RETURN(Loaded l, Load(c));
    BACKSTOP_ASSIGN_OR_RETURN(PgConn * admin, Admin(l));
    if (ctx.dry_run) {
      ctx.Progress("would drop replication slot " + slot);
    } else {
      BACKSTOP_RETURN_IF_ERROR(DropSlot(*admin, slot)
                                   .WithContext("restore point " + EntryRestorePointId(entry) +
                                                " (drop it by hand: SELECT "
                                                "pg_drop_replication_slot('" +
                                                slot + "'))"));
      ctx.Progress("dropped replication slot " + slot);
    }
  }
  const std::string staged = entry.value("staged_database", "");
  if (staged.empty()) return Status::OK();
  BACKSTOP_ASSIGN_OR_RETURN(Loaded l, Load(c));
  BACKSTOP_ASSIGN_OR_RETURN(PgConn * admin, Admin(l));
  BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo info, GetDatabase(*admin, staged));
  // Only the copy this entry staged: the name alone could belong to anything.
  if (!info.exists || !IsStagedCopy(info.comment, l.db(), EntryRestorePointId(entry))) {
    return Status::OK();
  }
  if (ctx.dry_run) {
    ctx.Progress("would drop staged database " + staged);
    return Status::OK();
  }
  Status st = DropDatabase(*admin, staged);
  if (!st.ok()) {
    return st.WithContext("dropping staged database " + staged + " of restore point " +
                          EntryRestorePointId(entry) + " (drop it by hand: DROP DATABASE " +
                          QuoteIdent(staged) + ")");
  }
  ctx.Progress("dropped staged database " + staged);
  return Status::OK();
}

DriverInfo PostgresDriverInfo() {
  using T = SettingSchema::Type;
  DriverInfo info;
  info.name = "postgres";
  info.own_health = true;
  info.kinds = {"database"};
  info.summary =
      "PostgreSQL database: pg_dump restore points (optionally staged), rollback into a "
      "verified shadow database swapped in by rename, data-loss ledger by primary key";
  info.settings = {
      MakeSetting("connection", T::kString, true,
                  "libpq conninfo of the live database, e.g. \"host=127.0.0.1 port=5432 "
                  "dbname=mistersmith user=mistersmith\""),
      MakeSetting("admin_dbname", T::kString, false,
                  "database to connect to for CREATE/ALTER/DROP DATABASE", "postgres"),
      MakeSetting("schemas", T::kStringList, false, "schemas whose tables are counted and compared",
                  nlohmann::json::array({"public"})),
      MakeSetting("tables", T::kStringList, false,
                  "tables to count and compare (\"table\" or \"schema.table\"); default every "
                  "ordinary table of the schemas"),
      MakeSetting("integrity", T::kObjectList, false,
                  "checks run on the shadow before the swap and by verify --data", nullptr, {},
                  {MakeSetting("name", T::kString, true, "what the check is called"),
                   MakeSetting("sql", T::kString, true,
                               "a query; the first column of its first row is compared"),
                   MakeSetting("expect", T::kComparison, true,
                               "what the first column must be: a number (0) or a comparison "
                               "('<= 0', '> 5')")}),
      MakeSetting("staged", T::kString, false,
                  "restore each dump into a staging database right away (rollback then only "
                  "swaps it in): auto (databases up to staged_max_size), always, never",
                  "auto", {"auto", "always", "never"}),
      MakeSetting("staged_max_size", T::kBytes, false, "largest database that auto stages", "2GB"),
      MakeSetting("staged_keep", T::kInt, false,
                  "how many staged databases to keep (the newest); older restore points then roll "
                  "back from their dump",
                  2),
      MakeSetting("jobs", T::kInt, false, "parallel jobs of pg_dump and pg_restore", 2),
      MakeSetting("bin_dir", T::kPath, false,
                  "directory of pg_dump and pg_restore; default /usr/lib/postgresql/<server "
                  "major>/bin if present, else PATH"),
      MakeSetting("connect_timeout", T::kDuration, false, "libpq connect timeout", "10s"),
      MakeSetting("baseline_query", T::kString, false,
                  "a read-only query timed for the performance baseline (seed 4.3: \"SELECT "
                  "COUNT(*) FROM tasks\"); none: the database records no query time"),
      MakeSetting("flashback", T::kBool, false,
                  "keep a logical replication slot per restore point and roll back by undoing "
                  "the changes since (needs wal_level=logical; docs/flashback.md)",
                  false),
      MakeSetting("flashback_replica_identity", T::kString, false,
                  "full: a restore point sets REPLICA IDENTITY FULL on covered tables that lack "
                  "it (undo needs the old rows); keep: never changes it",
                  "keep", {"keep", "full"}),
      MakeSetting("flashback_max_wal", T::kBytes, false,
                  "WAL a restore point's slot may retain before it is released (the restore "
                  "point then rolls back from its dump); default 10% of the disk's free space"),
  };
  info.factory = [] { return std::unique_ptr<Driver>(new PostgresDriver()); };
  return info;
}

}  // namespace backstop::postgres

// Flashback's rollback (docs/flashback.md): when the restore point's entry
// holds a slot and everything its stream holds can be undone, Prepare builds
// no shadow, AssessLoss reads the loss from the stream, Restore undoes the
// changes in the live database (which stays online), and VerifyRestored
// checks that the stream up to the undo nets to nothing. Otherwise the
// ordinary path, unchanged.
//
// The decision is Prepare's, recorded in <run_dir>/postgres-<c>.flashback
// ({"mode": "undo"} or {"mode": "restore", "why"}), so that every later call
// of the run takes the same path. Restore commits the undo with a
// transactional logical message whose content is the run id: a resumed
// Restore that finds it in the stream knows the undo committed.
#include <algorithm>

#include "base/crash_point.h"
#include "base/json_lines.h"
#include "base/units.h"
#include "drivers/postgres/pg_flashback.h"
#include "drivers/postgres/pg_ledger_scan.h"
#include "drivers/postgres/pg_markers.h"
#include "drivers/postgres/pg_undo.h"
#include "drivers/postgres/postgres_driver_impl.h"

namespace backstop::postgres {
namespace {

std::string DecisionPath(const DriverContext& ctx, const std::string& component) {
  if (ctx.state_dir.empty() || ctx.run_id.empty()) return "";
  return JoinPath(ctx.state_dir, "runs/" + ctx.run_id + "/postgres-" + component + ".flashback");
}

std::string EntrySlot(const json& entry) {
  if (!entry.is_object() || !entry.contains("flashback") || !entry["flashback"].is_object()) {
    return "";
  }
  return entry["flashback"].value("slot", "");
}

// `rollback --to-time`: undo only what committed after this moment.
std::optional<int64_t> EntryToTime(const json& entry) {
  if (!entry.is_object() || !entry.contains("to_time_us") ||
      !entry["to_time_us"].is_number_integer()) {
    return std::nullopt;
  }
  return entry["to_time_us"].get<int64_t>();
}

size_t CountChanges(const std::vector<Transaction>& txns) {
  size_t n = 0;
  for (const auto& t : txns) n += t.changes.size();
  return n;
}

// The transactions of `stream` up to and including the one that carries the
// undo marker of `run_id`; nullopt when there is none.
std::optional<ChangeStream> UpToUndo(const ChangeStream& stream, const std::string& run_id) {
  ChangeStream out;
  for (const auto& t : stream.transactions) {
    out.transactions.push_back(t);
    ChangeStream one;
    one.transactions.push_back(t);
    if (HasUndoMessage(one, run_id)) return out;
  }
  return std::nullopt;
}

// Primary keys by "schema.table", from the entry.
std::map<std::string, std::vector<std::string>> EntryKeys(const json& entry) {
  std::map<std::string, std::vector<std::string>> out;
  if (!entry.contains("tables") || !entry["tables"].is_array()) return out;
  for (const auto& t : entry["tables"]) {
    out[t.value("schema", "") + "." + t.value("name", "")] =
        t.value("pk", std::vector<std::string>{});
  }
  return out;
}

}  // namespace

Result<PostgresDriver::UndoPlan> PostgresDriver::PlanUndo(const Loaded& l, PgConn& live,
                                                          const json& entry, DriverContext& ctx) {
  UndoPlan plan;
  plan.slot = EntrySlot(entry);
  BACKSTOP_ASSIGN_OR_RETURN(std::optional<int64_t> wal, SlotRetainedWal(live, plan.slot));
  if (!wal) {
    plan.why_not = "its replication slot " + plan.slot +
                   " is gone (released for flashback_max_wal, or dropped)";
    return plan;
  }
  auto stream = PeekChangeStream(live, plan.slot);
  if (!stream.ok()) {
    plan.why_not = stream.status().message();
    return plan;
  }
  plan.stream = std::move(stream).value();
  if (HasUndoMessage(plan.stream, ctx.run_id)) {
    plan.undo = true;
    plan.done = true;
    return plan;
  }
  // DDL is not in the stream: the tables' definitions must be those the
  // restore point saw (an entry without the digest predates it: the trial
  // below is the only check).
  if (const std::string then = entry["flashback"].value("schema_md5", ""); !then.empty()) {
    BACKSTOP_ASSIGN_OR_RETURN(std::string now, SchemaFingerprint(live));
    if (now != then) {
      plan.why_not =
          "the tables' definitions changed since the restore point (a table created, dropped "
          "or renamed, or a column added, dropped or retyped), and the change stream carries "
          "no DDL";
      return plan;
    }
  }
  auto txns = SelectForUndo(plan.stream, EntryToTime(entry));
  if (!txns.ok()) {
    plan.why_not = txns.status().message();
    return plan;
  }
  plan.txns = std::move(txns).value();
  // The catalog checks (tables dropped or altered since, identity), tried
  // in a transaction that is rolled back: nothing changes.
  BACKSTOP_RETURN_IF_ERROR(live.Run("BEGIN"));
  auto trial = ApplyUndoInTransaction(live, plan.txns);
  BACKSTOP_RETURN_IF_ERROR(live.Run("ROLLBACK"));
  if (!trial.ok()) {
    plan.why_not = trial.status().message();
    return plan;
  }
  (void)l;
  plan.undo = true;
  return plan;
}

bool PostgresDriver::DecidedUndo(const ComponentSpec& c, const json& entry, DriverContext& ctx) {
  if (EntrySlot(entry).empty()) return false;
  json d = ReadRecord(ctx, DecisionPath(ctx, c.name));
  return d.is_object() && d.value("mode", "") == "undo";
}

Result<bool> PostgresDriver::PrepareUndo(const ComponentSpec& c, const Loaded& l, const json& entry,
                                         DriverContext& ctx) {
  const std::optional<int64_t> to_time = EntryToTime(entry);
  // The dump holds the restore point's state, not a later moment's: a
  // rollback to a time is an undo or nothing.
  auto no_dump_for_a_time = [&](const std::string& why) {
    return Status::FailedPrecondition(
        "database " + l.db() + " cannot be rolled back to " + FormatRfc3339(*to_time, true) + ": " +
        why +
        "; the restore point's dump holds only its own moment: roll back to the "
        "restore point without --to-time");
  };
  if (EntrySlot(entry).empty()) {
    if (to_time) return no_dump_for_a_time("the restore point kept no change stream");
    return false;
  }
  const std::string path = DecisionPath(ctx, c.name);
  if (path.empty()) return false;
  // A resumed run keeps the path it took.
  if (json d = ReadRecord(ctx, path); d.is_object() && d.value("mode", "") == "restore") {
    return false;
  }
  BACKSTOP_ASSIGN_OR_RETURN(auto live, ConnectTo(l, l.db()));
  BACKSTOP_ASSIGN_OR_RETURN(UndoPlan plan, PlanUndo(l, *live, entry, ctx));
  if (!plan.undo && to_time) {
    constexpr std::string_view kCoreAdvice = "; restore the dump instead";
    if (plan.why_not.ends_with(kCoreAdvice))
      plan.why_not.resize(plan.why_not.size() - kCoreAdvice.size());
    return no_dump_for_a_time(plan.why_not);
  }
  if (!plan.undo) {
    constexpr std::string_view kCoreAdvice = "; restore the dump instead";
    if (plan.why_not.ends_with(kCoreAdvice))
      plan.why_not.resize(plan.why_not.size() - kCoreAdvice.size());
    ctx.Progress("flashback cannot roll back database " + l.db() + " by undo: " + plan.why_not +
                 "; restoring the dump instead");
    if (!ctx.dry_run) {
      BACKSTOP_RETURN_IF_ERROR(
          WriteRecord(ctx, path, {{"mode", "restore"}, {"why", plan.why_not}}));
    }
    return false;
  }
  if (plan.done) {
    ctx.Progress("flashback: database " + l.db() + " was already rolled back by undo in this run");
  } else {
    ctx.Progress("flashback: database " + l.db() + " rolls back by undo of " +
                 std::to_string(plan.txns.size()) + " transaction(s), " +
                 std::to_string(CountChanges(plan.txns)) + " row change(s) since " +
                 (to_time ? FormatRfc3339(*to_time, true) : std::string("the restore point")) +
                 " (no shadow database; it stays online)");
  }
  if (!ctx.dry_run) BACKSTOP_RETURN_IF_ERROR(WriteRecord(ctx, path, {{"mode", "undo"}}));
  return true;
}

Result<DataLossReport> PostgresDriver::UndoLedger(const ComponentSpec& c, const Loaded& l,
                                                  const json& entry, DriverContext& ctx,
                                                  const std::vector<Transaction>* undone) {
  const std::string ledger_path =
      ctx.run_dir.empty() ? "" : JoinPath(ctx.run_dir, "ledger-" + c.name + ".jsonl");
  BACKSTOP_ASSIGN_OR_RETURN(auto live, ConnectTo(l, l.db()));
  std::vector<Transaction> txns;
  if (undone != nullptr) {
    txns = *undone;
  } else {
    BACKSTOP_ASSIGN_OR_RETURN(ChangeStream stream, PeekChangeStream(*live, EntrySlot(entry)));
    if (HasUndoMessage(stream, ctx.run_id)) {
      ctx.Progress("database " + l.db() + " was already rolled back by undo: its ledger stands");
      if (ledger_path.empty()) return DataLossReport();
      return ReportFromLedger(ctx.env->fs(), c.name, ledger_path);
    }
    BACKSTOP_ASSIGN_OR_RETURN(txns, SelectForUndo(stream, EntryToTime(entry)));
  }
  const int64_t t0 = NowMs(ctx);
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<TableLoss> loss, SummarizeLoss(txns));
  std::vector<json> lines = LossLedgerLines(loss, EntryKeys(entry));
  // Sequences the undo sets back (not for a time: their positions at that
  // moment are not known, and moving on is safe: no value is handed out twice).
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<SequencePosition> now, ReadSequencePositions(*live));
  const std::vector<SequencePosition> then_positions =
      EntryToTime(entry) ? std::vector<SequencePosition>()
                         : SequencesFromJson(entry["flashback"].value("sequences", json()));
  for (const auto& then : then_positions) {
    for (const auto& n : now) {
      if (n.schema == then.schema && n.name == then.name && n.last_value > then.last_value) {
        lines.push_back({{"sequence", n.schema + "." + n.name},
                         {"change", "rewound"},
                         {"unit", "values reissued"},
                         {"from", n.last_value},
                         {"to", then.last_value}});
      }
    }
  }
  DataLossReport report;
  if (!ledger_path.empty()) {
    FileSystem* fs = ctx.env->fs();
    BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(Dirname(ledger_path)));
    BACKSTOP_ASSIGN_OR_RETURN(auto writer, JsonLinesWriter::Create(fs, ledger_path));
    for (const auto& line : lines) BACKSTOP_RETURN_IF_ERROR(writer->Append(line));
    BACKSTOP_RETURN_IF_ERROR(writer->Close());
    BACKSTOP_ASSIGN_OR_RETURN(report, ReportFromLedger(fs, c.name, ledger_path));
  }
  ctx.Progress("data-loss ledger of " + l.db() + " from the change stream (" +
               std::to_string(txns.size()) + " transaction(s) since the restore point): " +
               report.Summary() + " in " + FormatDurationMs(NowMs(ctx) - t0));
  undo_ledger_txns_ = txns.size();
  return report;
}

Status PostgresDriver::RestoreByUndo(const ComponentSpec& c, const Loaded& l, const json& entry,
                                     DriverContext& ctx) {
  const std::string slot = EntrySlot(entry);
  const std::string db = l.db();
  BACKSTOP_ASSIGN_OR_RETURN(auto live, ConnectTo(l, db));
  BACKSTOP_ASSIGN_OR_RETURN(auto peeker, ConnectTo(l, db));
  // Sequences go back only with the restore point itself (UndoLedger says why).
  const std::vector<SequencePosition> seqs =
      EntryToTime(entry) ? std::vector<SequencePosition>()
                         : SequencesFromJson(entry["flashback"].value("sequences", json()));
  BACKSTOP_ASSIGN_OR_RETURN(ChangeStream stream, PeekChangeStream(*peeker, slot));
  if (HasUndoMessage(stream, ctx.run_id)) {
    ctx.Progress("flashback: the undo of database " + db + " already committed in this run");
    if (ctx.dry_run) return Status::OK();
    return RewindSequences(*live, seqs);
  }
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<Transaction> txns,
                            SelectForUndo(stream, EntryToTime(entry)));
  if (ctx.dry_run) {
    ctx.Progress("would undo " + std::to_string(txns.size()) + " transaction(s) in " + db);
    return Status::OK();
  }
  CrashPointForTest("postgres.flashback_before_undo");
  const int64_t t0 = NowMs(ctx);
  // Writes committed between the peek and the undo's table locks are not in
  // `txns`: with the locks held, the stream is read again; if it grew, the
  // undo is rolled back and made again from it.
  UndoStats stats;
  for (int attempt = 0;; ++attempt) {
    BACKSTOP_RETURN_IF_ERROR(live->Run("BEGIN"));
    auto applied = [&]() -> Status {
      BACKSTOP_RETURN_IF_ERROR(live->Run("SET LOCAL synchronous_commit = on"));
      BACKSTOP_ASSIGN_OR_RETURN(stats, ApplyUndoInTransaction(*live, txns));
      return Status::OK();
    }();
    if (!applied.ok()) {
      (void)live->Run("ROLLBACK");
      return applied.WithContext("flashback undo of database " + db + " (nothing was changed)");
    }
    BACKSTOP_ASSIGN_OR_RETURN(ChangeStream again, PeekChangeStream(*peeker, slot));
    auto again_txns = SelectForUndo(again, EntryToTime(entry));
    if (!again_txns.ok()) {
      (void)live->Run("ROLLBACK");
      return again_txns.status().WithContext("flashback undo of database " + db +
                                             " (nothing was changed; run the rollback again to "
                                             "restore the dump)");
    }
    if (again_txns->size() == txns.size()) break;
    (void)live->Run("ROLLBACK");
    if (attempt >= 3) {
      return Status::Unavailable("flashback undo of database " + db +
                                 ": transactions kept committing on tables outside the undo; "
                                 "nothing was changed");
    }
    txns = std::move(again_txns).value();
  }
  Status marked = live->Run("SELECT pg_logical_emit_message(true, $1, $2)",
                            {std::string(kUndoMessagePrefix), ctx.run_id});
  if (!marked.ok()) {
    (void)live->Run("ROLLBACK");
    return marked.WithContext("flashback undo of database " + db);
  }
  BACKSTOP_RETURN_IF_ERROR(live->Run("COMMIT"));
  CrashPointForTest("postgres.flashback_undo_committed");
  BACKSTOP_RETURN_IF_ERROR(RewindSequences(*live, seqs));
  ctx.Progress("flashback: undid " + std::to_string(stats.transactions) + " transaction(s), " +
               std::to_string(stats.statements) + " row change(s) in " + db + " (" +
               Join(stats.tables, ", ") + ") in " + FormatDurationMs(NowMs(ctx) - t0) +
               (EntryToTime(entry) ? "; sequences left where they are (a rollback to a time)"
                                   : "; sequences set back") +
               "; the database stayed online");
  // Rows written after AssessLoss took the ledger were undone too: the
  // ledger is taken again from what was undone.
  if (undo_ledger_txns_ && *undo_ledger_txns_ != txns.size()) {
    BACKSTOP_ASSIGN_OR_RETURN(DataLossReport revised, UndoLedger(c, l, entry, ctx, &txns));
    revised_loss_ = std::move(revised);
  }
  return Status::OK();
}

Status PostgresDriver::VerifyUndo(const Loaded& l, const json& entry, DriverContext& ctx) {
  const std::string db = l.db();
  BACKSTOP_ASSIGN_OR_RETURN(auto live, ConnectTo(l, db));
  BACKSTOP_ASSIGN_OR_RETURN(ChangeStream stream, PeekChangeStream(*live, EntrySlot(entry)));
  std::optional<ChangeStream> upto = UpToUndo(stream, ctx.run_id);
  if (!upto) {
    return Status::FailedPrecondition("database " + db +
                                      ": the change stream holds no undo of run " + ctx.run_id);
  }
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<Transaction> txns,
                            SelectForUndo(*upto, EntryToTime(entry)));
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<TableLoss> net, SummarizeLoss(txns));
  std::vector<std::string> left;
  for (const auto& t : net) {
    size_t n = t.inserted.size() + t.deleted.size() + t.changed.size();
    if (n > 0) left.push_back(t.schema + "." + t.table + " (" + std::to_string(n) + " row(s))");
  }
  if (!left.empty()) {
    return Status::FailedPrecondition("database " + db +
                                      " does not match the restore point after the undo: the "
                                      "changes since do not net to nothing on " +
                                      Join(left, ", "));
  }
  BACKSTOP_ASSIGN_OR_RETURN(
      std::vector<IntegrityCheck> checks,
      RunChecks(*live, entry, l.settings,
                {.row_counts = false, .foreign_keys = true, .orphans = false, .queries = true}));
  if (std::string failures = DescribeFailures(checks); !failures.empty()) {
    return Status::FailedPrecondition("database " + db + " after the undo: " + failures);
  }
  const std::optional<int64_t> to_time = EntryToTime(entry);
  ctx.Progress("flashback: the " + std::to_string(txns.size()) + " transaction(s) of " + db +
               " since " +
               (to_time ? FormatRfc3339(*to_time, true) : std::string("the restore point")) +
               " net to nothing with the undo; foreign keys and integrity queries pass");
  return Status::OK();
}

}  // namespace backstop::postgres

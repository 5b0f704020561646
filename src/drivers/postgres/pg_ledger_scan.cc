#include "drivers/postgres/pg_ledger_scan.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include "base/crash_point.h"
#include "base/json_lines.h"
#include "base/units.h"
#include "drivers/postgres/pg_component.h"
#include "drivers/postgres/pg_ledger.h"
#include "drivers/postgres/pg_markers.h"

namespace backstop::postgres {
namespace {

// Candidate rows looked up in the restore point's copy per query.
constexpr size_t kLookupBatch = 2000;
// Below this many rows written since the restore point (per the table
// statistics), the ledger fetches a table's candidate rows in the same scan
// that counts it.
constexpr int64_t kOneScanMaxWrites = 20'000;
// The xmin shortcut of the ledger is used while fewer xids than this have
// been consumed since the restore point (age() is a 32-bit quantity).
constexpr uint64_t kMaxXidDistance = 1ull << 30;
// Tables whose ledger takes longer are named in the progress output.
constexpr int64_t kSlowTableMs = 100;

// How one table is compared.
struct TablePlan {
  std::string display;
  std::string live_sql, rp_sql;  // quoted table names ("" when the table is absent)
  std::vector<std::string> key;  // key columns; empty: whole-row hashes
  std::vector<KeyKind> kinds;
  std::vector<std::string> key_types;       // format_type of each key column (restore point side)
  std::string hash_expr;                    // md5 over the common columns
  std::vector<std::string> added, removed;  // columns
};

std::string KeySelect(const TablePlan& p) {
  if (p.key.empty()) return p.hash_expr;
  std::string out;
  for (const auto& k : p.key) out += (out.empty() ? "" : ", ") + ("t." + QuoteIdent(k));
  return out + ", " + p.hash_expr;
}

std::string KeyOrder(const TablePlan& p) {
  if (p.key.empty()) return p.hash_expr + " COLLATE \"C\"";
  std::string out;
  for (size_t i = 0; i < p.key.size(); ++i) {
    std::string col = "t." + QuoteIdent(p.key[i]);
    out += (i ? ", " : "") + (p.kinds[i] == KeyKind::kInteger ? col : col + "::text COLLATE \"C\"");
  }
  return out;
}

// Only the keys (for finding deleted rows without hashing anything).
std::string KeysOnlySelect(const TablePlan& p) {
  std::string out;
  for (const auto& k : p.key) out += (out.empty() ? "" : ", ") + ("t." + QuoteIdent(k));
  return out;
}

json KeyJson(const TablePlan& p, const KeyedRow& row) {
  json key = json::object();
  if (p.key.empty()) {
    key["row_md5"] = row.key.empty() ? "" : row.key[0];
    return key;
  }
  for (size_t i = 0; i < p.key.size() && i < row.key.size(); ++i) {
    if (p.kinds[i] == KeyKind::kInteger) {
      char* end = nullptr;
      long long v = std::strtoll(row.key[i].c_str(), &end, 10);
      if (end && *end == '\0') {
        key[p.key[i]] = v;
        continue;
      }
    }
    key[p.key[i]] = row.key[i];
  }
  return key;
}

TablePlan PlanTable(const TableInfo* live, const TableInfo* rp) {
  TablePlan p;
  const TableInfo* any = rp ? rp : live;
  p.display = any->Display();
  if (live) p.live_sql = live->Sql();
  if (rp) p.rp_sql = rp->Sql();
  // Columns compared: the restore point's, in its order, that still exist live.
  std::vector<std::string> common;
  if (live && rp) {
    for (const auto& c : rp->columns) {
      if (live->Column(c.name)) {
        common.push_back(c.name);
      } else {
        p.removed.push_back(c.name);
      }
    }
    for (const auto& c : live->columns) {
      if (!rp->Column(c.name)) p.added.push_back(c.name);
    }
  } else {
    for (const auto& c : any->columns) common.push_back(c.name);
  }
  std::string row;
  for (const auto& c : common) row += (row.empty() ? "" : ", ") + ("t." + QuoteIdent(c));
  p.hash_expr = common.empty() ? "md5('')" : "md5(ROW(" + row + ")::text)";
  auto all_in = [](const std::vector<std::string>& cols, const TableInfo* t) {
    if (!t) return true;
    for (const auto& c : cols) {
      if (!t->Column(c)) return false;
    }
    return true;
  };
  if (rp && !rp->pk.empty() && all_in(rp->pk, live)) {
    p.key = rp->pk;
  } else if (live && !live->pk.empty() && all_in(live->pk, rp)) {
    p.key = live->pk;
  }
  for (const auto& k : p.key) {
    const ColumnInfo* lc = live ? live->Column(k) : nullptr;
    const ColumnInfo* rc = rp ? rp->Column(k) : nullptr;
    bool integer = (!lc || lc->is_integer) && (!rc || rc->is_integer);
    p.kinds.push_back(integer ? KeyKind::kInteger : KeyKind::kText);
    p.key_types.push_back(rc ? rc->type : lc->type);
  }
  return p;
}

struct LedgerContext {
  PgConn* live = nullptr;
  PgConn* rp = nullptr;
  JsonLinesWriter* writer = nullptr;  // none when no ledger file is wanted
  // Set when the xmin shortcut applies: age() of the restore point's snapshot
  // xmin (rows with age(xmin) <= it may be newer than the restore point; age()
  // is stable within the live transaction), and the restore point's row
  // counts and table oids.
  std::optional<int64_t> horizon_age;
  const json* row_counts = nullptr;
  std::map<std::string, uint32_t> table_oids;
  // Rows written per table (n_tup_ins + n_tup_upd + n_tup_del) at the restore
  // point and now: a hint for choosing how to scan, never for the result.
  std::map<std::string, int64_t> writes_at_rp, writes_now;
};

std::string CopyOf(const std::string& select) { return "COPY (" + select + ") TO STDOUT"; }

std::string FullSelect(const TablePlan& p, const std::string& table_sql,
                       const std::string& where = "") {
  return "SELECT " + KeySelect(p) + " FROM ONLY " + table_sql + " t" +
         (where.empty() ? "" : " WHERE " + where) + " ORDER BY " + KeyOrder(p);
}

// Appends `line` to the ledger file, if one is written.
Status Record(LedgerContext& lc, const json& line) {
  return lc.writer != nullptr ? lc.writer->Append(line) : Status::OK();
}

Status WriteChange(LedgerContext& lc, const TablePlan& p, RowChange change, const KeyedRow& row) {
  return Record(
      lc, {{"table", p.display}, {"change", RowChangeName(change)}, {"key", KeyJson(p, row)}});
}

ChangeSink SinkFor(LedgerContext& lc, const TablePlan& p, bool deleted_only = false) {
  return [&lc, &p, deleted_only](RowChange change, const KeyedRow& row) -> Status {
    if (deleted_only && change != RowChange::kDeleted) return Status::OK();
    return WriteChange(lc, p, change, row);
  };
}

// Both sides streamed and merge-joined: O(rows), bounded memory.
Result<MergeCounts> CompareFull(LedgerContext& lc, const TablePlan& p) {
  size_t key_count = p.key.empty() ? 1 : p.key.size();
  bool with_hash = !p.key.empty();
  std::unique_ptr<RowSource> live_src, rp_src;
  if (!p.live_sql.empty()) {
    auto src = std::make_unique<CopyRowSource>(lc.live, key_count, with_hash);
    BACKSTOP_RETURN_IF_ERROR(src->Begin(CopyOf(FullSelect(p, p.live_sql))));
    live_src = std::move(src);
  } else {
    live_src = std::make_unique<VectorRowSource>(std::vector<KeyedRow>{});
  }
  if (!p.rp_sql.empty()) {
    auto src = std::make_unique<CopyRowSource>(lc.rp, key_count, with_hash);
    BACKSTOP_RETURN_IF_ERROR(src->Begin(CopyOf(FullSelect(p, p.rp_sql))));
    rp_src = std::move(src);
  } else {
    rp_src = std::make_unique<VectorRowSource>(std::vector<KeyedRow>{});
  }
  std::vector<KeyKind> kinds = p.key.empty() ? std::vector<KeyKind>{KeyKind::kText} : p.kinds;
  return MergeCompare(*live_src, *rp_src, kinds, with_hash, SinkFor(lc, p));
}

// Looks `batch` (live candidates, sorted) up in the restore point's copy and
// merges: unknown keys are inserted rows, different hashes changed rows.
Status LookupBatch(LedgerContext& lc, const TablePlan& p, std::vector<KeyedRow>& batch,
                   MergeCounts* total) {
  if (batch.empty()) return Status::OK();
  std::string where;
  Params params;
  if (p.key.size() == 1) {
    where = "t." + QuoteIdent(p.key[0]) + " = ANY($1::" + p.key_types[0] + "[])";
  } else {
    std::string cols, args;
    for (size_t i = 0; i < p.key.size(); ++i) {
      cols += (i ? ", " : "") + ("t." + QuoteIdent(p.key[i]));
      args += (i ? ", " : "") + ("$" + std::to_string(i + 1) + "::" + p.key_types[i] + "[]");
    }
    where = "(" + cols + ") IN (SELECT * FROM unnest(" + args + "))";
  }
  for (size_t i = 0; i < p.key.size(); ++i) {
    std::vector<std::string> values;
    values.reserve(batch.size());
    for (const auto& r : batch) values.push_back(r.key[i]);
    params.push_back(ArrayLiteral(values));
  }
  BACKSTOP_ASSIGN_OR_RETURN(PgResult r, lc.rp->Exec(FullSelect(p, p.rp_sql, where), params));
  std::vector<KeyedRow> found(r.rows());
  for (int i = 0; i < r.rows(); ++i) {
    found[i].key.resize(p.key.size());
    for (size_t k = 0; k < p.key.size(); ++k) found[i].key[k] = r.Get(i, static_cast<int>(k));
    found[i].hash = r.Get(i, static_cast<int>(p.key.size()));
  }
  VectorRowSource live_src(std::move(batch)), rp_src(std::move(found));
  BACKSTOP_ASSIGN_OR_RETURN(MergeCounts c,
                            MergeCompare(live_src, rp_src, p.kinds, true, SinkFor(lc, p)));
  total->inserted += c.inserted;
  total->changed += c.changed;
  total->unchanged += c.unchanged;
  batch = {};
  return Status::OK();
}

Result<std::optional<MergeCounts>> FinishIncremental(LedgerContext& lc, const TablePlan& p,
                                                     int64_t rp_rows, int64_t old_rows,
                                                     MergeCounts counts);

// The xmin shortcut. Rows whose xmin precedes the restore point's snapshot
// xmin were committed before the snapshot and not touched since, so they are
// in the restore point unchanged; every other live row is a candidate, looked
// up by key. Rows of the restore point missing live are found by count and,
// only when there are some, by a key-only merge. Returns nullopt when the
// table should be compared in full instead.
//
// `writes_hint` (table statistics: rows written since the restore point, -1
// when unknown) only picks the strategy: when it is small, the count and the
// candidates' ctids come from one scan and the candidates are fetched by ctid;
// otherwise a count scan is followed by a streamed scan of the candidates.
Result<std::optional<MergeCounts>> CompareIncremental(LedgerContext& lc, const TablePlan& p,
                                                      int64_t rp_rows, int64_t writes_hint) {
  const std::string horizon = "age(t.xmin) <= " + std::to_string(*lc.horizon_age);
  MergeCounts counts;
  int64_t candidates = 0, old_rows = 0;
  std::string candidate_filter;  // selects the candidate rows live
  if (!p.key.empty() && writes_hint >= 0 && writes_hint <= kOneScanMaxWrites) {
    // The scan collects only the candidates' ctids: naming the whole row
    // here would make it build every one of them (twice the time at 1M
    // rows). They are then fetched by ctid, which is stable within this
    // REPEATABLE READ transaction.
    BACKSTOP_ASSIGN_OR_RETURN(
        PgResult r, lc.live->Exec("SELECT count(*), count(*) FILTER (WHERE c), "
                                  "array_agg(ctid) FILTER (WHERE c)::text FROM (SELECT t.ctid, " +
                                  horizon + " AS c FROM ONLY " + p.live_sql + " t OFFSET 0) t"));
    candidates = r.GetInt(0, 1);
    old_rows = r.GetInt(0, 0) - candidates;
    if (candidates == 0 && old_rows == rp_rows) return std::optional<MergeCounts>(counts);
    // Server-made tid literals ("(page,item)"), so safe to inline: COPY takes no parameters.
    candidate_filter = r.IsNull(0, 2) ? "false" : "t.ctid = ANY('" + r.Get(0, 2) + "'::tid[])";
  } else {
    // One scan, one age() per row: the table's rows and how many are candidates.
    BACKSTOP_ASSIGN_OR_RETURN(PgResult r,
                              lc.live->Exec("SELECT count(*) FILTER (WHERE " + horizon +
                                            "), count(*) FROM ONLY " + p.live_sql + " t"));
    candidates = r.GetInt(0, 0);
    old_rows = r.GetInt(0, 1) - candidates;
    if (candidates == 0 && old_rows == rp_rows) return std::optional<MergeCounts>(counts);
    // Without a key the candidates cannot be looked up; with very many of them
    // a full merge is cheaper than lookups.
    if (p.key.empty() || candidates > std::max<int64_t>(rp_rows / 2, 10'000)) {
      return std::optional<MergeCounts>();
    }
    candidate_filter = horizon;
  }
  CopyRowSource cand(lc.live, p.key.size(), true);
  BACKSTOP_RETURN_IF_ERROR(cand.Begin(CopyOf(FullSelect(p, p.live_sql, candidate_filter))));
  std::vector<KeyedRow> batch;
  for (;;) {
    KeyedRow row;
    BACKSTOP_ASSIGN_OR_RETURN(bool more, cand.Next(&row));
    if (!more) break;
    batch.push_back(std::move(row));
    if (batch.size() >= kLookupBatch) BACKSTOP_RETURN_IF_ERROR(LookupBatch(lc, p, batch, &counts));
  }
  BACKSTOP_RETURN_IF_ERROR(LookupBatch(lc, p, batch, &counts));
  return FinishIncremental(lc, p, rp_rows, old_rows, counts);
}

// After the candidates: rows of the restore point that are gone live.
Result<std::optional<MergeCounts>> FinishIncremental(LedgerContext& lc, const TablePlan& p,
                                                     int64_t rp_rows, int64_t old_rows,
                                                     MergeCounts counts) {
  int64_t still_there = old_rows + static_cast<int64_t>(counts.changed + counts.unchanged);
  int64_t deleted = rp_rows - still_there;
  if (deleted < 0) {
    return Status::Internal("ledger of table " + p.display + ": " + std::to_string(still_there) +
                            " live rows match the restore point's " + std::to_string(rp_rows) +
                            "; the restore point's row counts do not fit this table");
  }
  if (deleted > 0) {
    // Key-only merge; inserted rows were already written above.
    TablePlan keys = p;
    keys.hash_expr.clear();
    auto live_src = std::make_unique<CopyRowSource>(lc.live, p.key.size(), false);
    auto rp_src = std::make_unique<CopyRowSource>(lc.rp, p.key.size(), false);
    std::string order = KeyOrder(p);
    BACKSTOP_RETURN_IF_ERROR(live_src->Begin(CopyOf("SELECT " + KeysOnlySelect(p) + " FROM ONLY " +
                                                    p.live_sql + " t ORDER BY " + order)));
    BACKSTOP_RETURN_IF_ERROR(rp_src->Begin(
        CopyOf("SELECT " + KeysOnlySelect(p) + " FROM ONLY " + p.rp_sql + " t ORDER BY " + order)));
    BACKSTOP_ASSIGN_OR_RETURN(MergeCounts k, MergeCompare(*live_src, *rp_src, p.kinds, false,
                                                          SinkFor(lc, p, /*deleted_only=*/true)));
    counts.deleted = k.deleted;
  }
  return std::optional<MergeCounts>(counts);
}

Result<DataLossItem> CompareTable(LedgerContext& lc, const std::string& component,
                                  const TableInfo* live, const TableInfo* rp) {
  TablePlan p = PlanTable(live, rp);
  if (!p.added.empty() || !p.removed.empty()) {
    BACKSTOP_RETURN_IF_ERROR(Record(lc, {{"table", p.display},
                                         {"change", "columns"},
                                         {"added_since", p.added},
                                         {"removed_since", p.removed}}));
  }
  std::optional<MergeCounts> counts;
  if (live && rp && lc.horizon_age && lc.row_counts) {
    std::string q = rp->Qualified();
    auto oid = lc.table_oids.find(q);
    bool same_table = oid != lc.table_oids.end() && oid->second == live->oid;
    bool unique_key = p.key.empty() || p.key == live->pk;
    if (same_table && unique_key && lc.row_counts->contains(q)) {
      int64_t hint = -1;
      auto then = lc.writes_at_rp.find(q), now = lc.writes_now.find(q);
      if (then != lc.writes_at_rp.end() && now != lc.writes_now.end() &&
          now->second >= then->second) {
        hint = now->second - then->second;
      }
      BACKSTOP_ASSIGN_OR_RETURN(
          counts, CompareIncremental(lc, p, (*lc.row_counts)[q].get<int64_t>(), hint));
    }
  }
  if (!counts) {
    BACKSTOP_ASSIGN_OR_RETURN(MergeCounts full, CompareFull(lc, p));
    counts = full;
  }
  if (p.key.empty() && (counts->inserted || counts->deleted)) {
    BACKSTOP_RETURN_IF_ERROR(Record(
        lc, {{"table", p.display},
             {"change", "unkeyed"},
             {"detail", "table has no primary key; " + std::to_string(counts->inserted) +
                            " rows written and " + std::to_string(counts->deleted) +
                            " rows gone since the restore point (compared as whole rows)"}}));
  }
  DataLossItem item;
  item.component = component;
  item.object = p.display;
  item.unit = "rows";
  item.inserted = counts->inserted;
  item.deleted = counts->deleted;
  item.changed = counts->changed;
  return item;
}

// The last value each ascending sequence of `schemas` has handed out (a
// sequence never used: its start value minus one step). Descending ones are
// left out: a rewind there moves the other way, and none was seen in use.
Result<std::map<std::string, int64_t>> SequencePositions(PgConn& conn, const PgSettings& settings) {
  BACKSTOP_ASSIGN_OR_RETURN(PgResult r,
                            conn.Exec("SELECT schemaname || '.' || sequencename, last_value::text, "
                                      "start_value::text, increment_by::text FROM pg_sequences "
                                      "WHERE schemaname = ANY($1::text[]) AND increment_by > 0",
                                      {ArrayLiteral(settings.schemas)}));
  std::map<std::string, int64_t> out;
  for (int i = 0; i < r.rows(); ++i) {
    int64_t value = 0;
    if (!r.IsNull(i, 1)) {
      value = r.GetInt(i, 1);
    } else if (__builtin_sub_overflow(r.GetInt(i, 2), r.GetInt(i, 3), &value)) {
      continue;
    }
    out[r.Get(i, 0)] = value;
  }
  return out;
}

// The table each sequence belongs to (serial and identity columns), by
// schema-qualified names: a rewound sequence's ledger line names its table,
// so that `backstop ledger --table T` shows the values T will reissue.
Result<std::map<std::string, std::string>> SequenceTables(PgConn& conn) {
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec("SELECT sn.nspname || '.' || s.relname, tn.nspname || '.' || t.relname "
                "FROM pg_class s JOIN pg_namespace sn ON sn.oid = s.relnamespace "
                "JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid "
                "AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') "
                "JOIN pg_class t ON t.oid = d.refobjid "
                "JOIN pg_namespace tn ON tn.oid = t.relnamespace WHERE s.relkind = 'S'"));
  std::map<std::string, std::string> out;
  for (int i = 0; i < r.rows(); ++i) out[r.Get(i, 0)] = r.Get(i, 1);
  return out;
}

}  // namespace

Result<DataLossReport> ReportFromLedger(FileSystem* fs, const std::string& component,
                                        const std::string& path) {
  DataLossReport report;
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<json> lines, ReadJsonLines(fs, path));
  std::map<std::string, DataLossItem> items;
  for (const json& l : lines) {
    if (!l.is_object()) continue;
    if (l.value("change", "") == "rewound") {
      PositionRewind r;
      r.component = component;
      r.object = l.value("sequence", "");
      r.unit = l.value("unit", "values reissued");
      r.from = l.value("from", int64_t{0});
      r.to = l.value("to", int64_t{0});
      report.rewinds.push_back(r);
      continue;
    }
    DataLossItem& item = items[l.value("table", "")];
    item.component = component;
    item.object = l.value("table", "");
    item.unit = "rows";
    const std::string change = l.value("change", "");
    if (change == "inserted") ++item.inserted;
    if (change == "deleted") ++item.deleted;
    if (change == "changed") ++item.changed;
  }
  for (auto& [name, item] : items) {
    if (item.total() > 0) report.items.push_back(item);
  }
  if (!report.items.empty() || !report.rewinds.empty()) report.ledger_files.push_back(path);
  return report;
}

Result<LedgerScan> ScanLedger(PgConn* live, PgConn* rp, const json& entry, uint32_t live_oid,
                              const PgSettings& settings, const std::string& component,
                              const std::string& ledger_path, const DriverContext& ctx) {
  DataLossReport report;
  BACKSTOP_RETURN_IF_ERROR(live->Run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  BACKSTOP_RETURN_IF_ERROR(rp->Run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<TableInfo> live_tables, ListTables(*live, settings));
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<TableInfo> rp_tables, ListTables(*rp, settings));

  LedgerContext lc;
  lc.live = live;
  lc.rp = rp;
  // The xmin shortcut needs the very database (and cluster) the restore point
  // was taken from, and a snapshot xmin still comparable with 32-bit xids.
  if (!IsRetainedEntry(entry) && entry.contains("xid") && entry.contains("position")) {
    std::string xmin_s = entry["xid"].value("snapshot_xmin", "");
    std::string sysid = entry["xid"].value("system_identifier", "");
    uint32_t oid = entry.value("database_properties", json::object()).value("oid", 0u);
    auto now = live->Exec(
        "SELECT pg_snapshot_xmax(pg_current_snapshot())::text, "
        "(SELECT system_identifier::text FROM pg_control_system())");
    if (now.ok() && !xmin_s.empty() && !sysid.empty() && now->Get(0, 1) == sysid &&
        oid == live_oid) {
      uint64_t xmin = std::stoull(xmin_s), xmax_now = std::stoull(now->Get(0, 0));
      auto age = live->Value("SELECT age('" + std::to_string(xmin & 0xffffffffu) + "'::xid)");
      if (xmax_now >= xmin && xmax_now - xmin < kMaxXidDistance && age.ok() &&
          std::stoll(*age) >= 0) {
        lc.horizon_age = std::stoll(*age);
        lc.row_counts = &entry["position"]["row_counts"];
        for (const auto& t : entry.value("tables", json::array())) {
          lc.table_oids[t.value("schema", "") + "." + t.value("name", "")] = t.value("oid", 0u);
        }
        const json writes_at_rp = entry["xid"].value("table_writes", json::object());
        for (const auto& [q, n] : writes_at_rp.items()) {
          if (n.is_number_integer()) lc.writes_at_rp[q] = n.get<int64_t>();
        }
        auto writes = live->Exec(
            "SELECT schemaname || '.' || relname, n_tup_ins + n_tup_upd + n_tup_del "
            "FROM pg_stat_user_tables WHERE schemaname = ANY($1::text[])",
            {ArrayLiteral(settings.schemas)});
        if (!writes.ok()) return writes.status();
        for (int i = 0; i < writes->rows(); ++i) {
          lc.writes_now[writes->Get(i, 0)] = writes->GetInt(i, 1);
        }
      }
    } else if (!now.ok()) {
      // pg_control_system() may be revoked: compare in full.
      (void)live->Run("ROLLBACK");
      BACKSTOP_RETURN_IF_ERROR(live->Run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    }
  }

  std::unique_ptr<JsonLinesWriter> writer;
  if (!ledger_path.empty()) {
    FileSystem* fs = ctx.env->fs();
    BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(Dirname(ledger_path)));
    BACKSTOP_ASSIGN_OR_RETURN(writer, JsonLinesWriter::Create(fs, ledger_path));
  }
  lc.writer = writer.get();

  std::map<std::string, std::pair<const TableInfo*, const TableInfo*>> all;
  for (const auto& t : live_tables) all[t.Qualified()].first = &t;
  for (const auto& t : rp_tables) all[t.Qualified()].second = &t;
  for (const auto& [name, sides] : all) {
    int64_t t_table = NowMs(ctx);
    auto item = CompareTable(lc, component, sides.first, sides.second);
    if (!item.ok()) return item.status().WithContext("data-loss ledger of " + live->dbname());
    if (item->total() > 0) report.items.push_back(*item);
    if (int64_t ms = NowMs(ctx) - t_table; ms >= kSlowTableMs) {
      ctx.Progress("ledger of table " + item->object + ": " + FormatDurationMs(ms));
    }
  }
  // Sequences the restore moves back: the values handed out since will be
  // handed out again (a sequence created since goes with its table).
  BACKSTOP_ASSIGN_OR_RETURN(auto live_seqs, SequencePositions(*live, settings));
  BACKSTOP_ASSIGN_OR_RETURN(auto rp_seqs, SequencePositions(*rp, settings));
  BACKSTOP_ASSIGN_OR_RETURN(auto seq_tables, SequenceTables(*live));
  std::map<std::string, std::string> table_display;
  for (const auto& t : live_tables) table_display[t.Qualified()] = t.Display();
  for (const auto& [name, now] : live_seqs) {
    auto then = rp_seqs.find(name);
    if (then == rp_seqs.end() || now <= then->second) continue;
    PositionRewind r;
    r.component = component;
    r.object = name;
    r.unit = "values reissued";
    r.from = now;
    r.to = then->second;
    report.rewinds.push_back(r);
    json line = {{"sequence", name},
                 {"change", "rewound"},
                 {"unit", r.unit},
                 {"from", r.from},
                 {"to", r.to}};
    auto owner = seq_tables.find(name);
    if (owner != seq_tables.end()) {
      auto display = table_display.find(owner->second);
      line["table"] = display != table_display.end() ? display->second : owner->second;
    }
    BACKSTOP_RETURN_IF_ERROR(Record(lc, line));
  }
  if (writer) BACKSTOP_RETURN_IF_ERROR(writer->Close());
  CrashPointForTest("postgres.ledger-written");
  if (!ledger_path.empty()) report.ledger_files.push_back(ledger_path);
  (void)live->Run("COMMIT");
  (void)rp->Run("COMMIT");
  return LedgerScan{std::move(report), lc.horizon_age.has_value()};
}

}  // namespace backstop::postgres

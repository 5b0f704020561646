#include "drivers/postgres/postgres_driver_impl.h"

#include <map>
#include <set>

#include "base/json_lines.h"
#include "drivers/postgres/pg_admin.h"
#include "drivers/postgres/pg_markers.h"

namespace backstop::postgres {
namespace {

// The key of a ledger line as text, the way ::text renders the column.
std::string KeyText(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// One discarded row to salvage: its table and ledger key, then its values.
struct SalvagedRow {
  const TableInfo* table = nullptr;
  json key;
  json row;
};

// Inserts `rows` into the live database in one transaction; any row that
// cannot go in as it is (key taken, a referenced row missing) is a conflict,
// and with any conflict nothing is applied. Rows whose referenced row is
// among the salvaged ones are retried after the others.
Result<uint64_t> ApplySalvage(PgConn& live, const std::vector<TableInfo>& live_tables,
                              std::vector<SalvagedRow>& rows, std::vector<std::string>* conflicts) {
  std::map<std::string, const TableInfo*> by_name;
  for (const auto& t : live_tables) by_name[t.Qualified()] = &t;
  BACKSTOP_RETURN_IF_ERROR(live.Run("BEGIN"));
  std::vector<SalvagedRow*> pending;
  for (auto& r : rows) pending.push_back(&r);
  std::vector<std::pair<SalvagedRow*, std::string>> failed;
  uint64_t applied = 0;
  for (bool progress = true; progress && !pending.empty();) {
    progress = false;
    failed.clear();
    for (SalvagedRow* r : pending) {
      auto live_table = by_name.find(r->table->Qualified());
      if (live_table == by_name.end()) {
        failed.push_back({r, "table no longer exists"});
        continue;
      }
      std::string cols;
      for (const auto& col : r->table->columns) {
        if (!live_table->second->Column(col.name)) continue;
        cols += (cols.empty() ? "" : ", ") + QuoteIdent(col.name);
      }
      const std::string sql = "INSERT INTO " + live_table->second->Sql() + " (" + cols +
                              ") OVERRIDING SYSTEM VALUE SELECT " + cols +
                              " FROM jsonb_populate_record(NULL::" + live_table->second->Sql() +
                              ", $1::jsonb)";
      BACKSTOP_RETURN_IF_ERROR(live.Run("SAVEPOINT salvage_row"));
      Status st = live.Run(sql, {r->row.dump()});
      if (st.ok()) {
        BACKSTOP_RETURN_IF_ERROR(live.Run("RELEASE SAVEPOINT salvage_row"));
        ++applied;
        progress = true;
      } else {
        BACKSTOP_RETURN_IF_ERROR(live.Run("ROLLBACK TO SAVEPOINT salvage_row"));
        failed.push_back({r, st.message()});
      }
    }
    pending.clear();
    for (auto& [r, why] : failed) pending.push_back(r);
  }
  for (auto& [r, why] : failed) {
    conflicts->push_back(r->table->Display() + " " + r->key.dump() + ": " + why);
  }
  if (!conflicts->empty()) {
    BACKSTOP_RETURN_IF_ERROR(live.Run("ROLLBACK"));
    return uint64_t{0};
  }
  // Keys handed out by a sequence that the restore moved back: the sequence
  // moves past them again, or the next insert would collide with them.
  std::set<std::string> tables_done;
  for (const auto& r : rows) {
    auto live_table = by_name.find(r.table->Qualified());
    if (live_table == by_name.end() || !tables_done.insert(r.table->Qualified()).second) continue;
    for (const auto& col : live_table->second->columns) {
      if (!col.is_integer) continue;
      const std::string column = "t." + QuoteIdent(col.name);
      BACKSTOP_RETURN_IF_ERROR(live.Run(
          "SELECT setval(x.s, x.m) FROM (SELECT pg_get_serial_sequence($1, $2)::regclass AS s, "
          "(SELECT max(" +
              column + ")::bigint FROM ONLY " + live_table->second->Sql() +
              " t) AS m) x WHERE x.s IS NOT NULL AND x.m IS NOT NULL AND x.m > (SELECT "
              "coalesce(q.last_value, q.start_value - 1) FROM pg_sequences q WHERE "
              "format('%I.%I', q.schemaname, q.sequencename)::regclass = x.s)",
          {live_table->second->Sql(), col.name}));
    }
  }
  BACKSTOP_RETURN_IF_ERROR(live.Run("COMMIT"));
  return applied;
}

}  // namespace

Result<SalvageResult> PostgresDriver::Salvage(const ComponentSpec& c, const SalvageRequest& req,
                                              DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(Loaded l, Load(c));
  const std::string db = l.db();
  const std::string aside = PreRollbackName(db, req.run_id);
  BACKSTOP_ASSIGN_OR_RETURN(PgConn * admin, Admin(l));
  BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo A, GetDatabase(*admin, aside));
  if (!A.exists) {
    return Status::FailedPrecondition(
        "database " + aside + ", which run " + req.run_id +
        " replaced, no longer exists (pruned, " +
        "or swapped back in by an undo): the rows it discarded cannot be read back");
  }
  Env* env = ctx.env;
  const std::string ledger_path = JoinPath(req.run_dir, "ledger-" + c.name + ".jsonl");
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<json> ledger, ReadJsonLines(env->fs(), ledger_path));
  // The chosen keys: ledger keys, or whole ledger lines (then their table too).
  // Each must name a row the run discarded: a key that matches none is a
  // mistake to report, not a choice of nothing.
  std::vector<bool> key_matched(req.keys.size(), false);
  auto chosen = [&](const std::string& table, const json& key) {
    if (req.keys.empty()) return true;
    bool any = false;
    for (size_t i = 0; i < req.keys.size(); ++i) {
      const json& k = req.keys[i];
      bool match = k.is_object() && k.contains("key")
                       ? k["key"] == key && (!k.contains("table") || k["table"] == table)
                       : k == key;
      if (match) key_matched[i] = any = true;
    }
    return any;
  };
  std::set<std::string> tables_in_scope;
  // The replaced database refuses connections: it opens for this session only.
  BACKSTOP_ASSIGN_OR_RETURN(auto kept, ConnectToClosed(*admin, l, aside));
  BACKSTOP_RETURN_IF_ERROR(kept->Run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<TableInfo> tables, ListTables(*kept, l.settings));
  std::vector<SalvagedRow> rows;
  bool table_found = req.object.empty();
  for (const auto& t : tables) {
    if (!req.object.empty() && req.object != t.Display() && req.object != t.Qualified()) continue;
    table_found = true;
    tables_in_scope.insert(t.Display());
    tables_in_scope.insert(t.Qualified());
    if (t.pk.empty()) {
      ctx.Progress("table " + t.Display() + " has no primary key: its rows are listed by hash " +
                   "only and cannot be salvaged one by one");
      continue;
    }
    // The discarded rows of this table: inserted or changed since the restore point.
    std::vector<std::vector<std::string>> keys(t.pk.size());
    std::vector<json> key_objects;
    for (const json& line : ledger) {
      if (!line.is_object() || line.value("table", "") != t.Display()) continue;
      const std::string change = line.value("change", "");
      if (change != "inserted" && change != "changed") continue;
      const json& key = line.contains("key") ? line["key"] : json();
      if (!key.is_object() || !chosen(t.Display(), key)) continue;
      bool complete = true;
      for (const auto& k : t.pk) complete = complete && key.contains(k);
      if (!complete) continue;
      for (size_t i = 0; i < t.pk.size(); ++i) keys[i].push_back(KeyText(key[t.pk[i]]));
      key_objects.push_back(key);
    }
    if (key_objects.empty()) continue;
    std::string cols, args;
    Params params;
    for (size_t i = 0; i < t.pk.size(); ++i) {
      cols += (i ? ", " : "") + ("t." + QuoteIdent(t.pk[i]) + "::text");
      args += (i ? ", " : "") + ("$" + std::to_string(i + 1) + "::text[]");
      params.push_back(ArrayLiteral(keys[i]));
    }
    std::string key_json;
    for (const auto& k : t.pk) {
      key_json += (key_json.empty() ? "" : ", ") + kept->Literal(k) + ", t." + QuoteIdent(k);
    }
    std::string sql = "SELECT jsonb_build_object(" + key_json +
                      ")::text, to_jsonb(t)::text FROM ONLY " + t.Sql() + " t WHERE (" + cols +
                      ") IN (SELECT * FROM unnest(" + args + "))";
    if (!req.where.empty()) sql += " AND (" + req.where + ")";
    auto r = kept->Exec(sql + " ORDER BY 1", params);
    // Syntax errors, unknown columns, values of the wrong type: the
    // condition is bad input, not a failure of the database.
    const std::string sqlstate_class = kept->last_sqlstate().substr(0, 2);
    if (!r.ok() && !req.where.empty() && (sqlstate_class == "42" || sqlstate_class == "22")) {
      return Status::InvalidArgument("--where " + req.where +
                                     " is not a condition on the rows of " + t.Display() + ": " +
                                     r.status().message() + "; nothing was exported");
    }
    if (!r.ok()) {
      return r.status().WithContext("reading the discarded rows of " + t.Display() + " in " +
                                    aside +
                                    (req.where.empty() ? "" : " (--where " + req.where + ")"));
    }
    for (int i = 0; i < r->rows(); ++i) {
      json key = json::parse(r->Get(i, 0), nullptr, false);
      // The ledger's own key (integers as numbers), for keys files and conflicts.
      for (const json& k : key_objects) {
        bool same = true;
        for (const auto& col : t.pk) same = same && KeyText(k[col]) == KeyText(key[col]);
        if (same) {
          key = k;
          break;
        }
      }
      rows.push_back({&t, key, json::parse(r->Get(i, 1), nullptr, false)});
    }
  }
  (void)kept->Run("COMMIT");
  kept.reset();
  if (!table_found) {
    return Status::InvalidArgument("database " + aside + " has no table " + req.object +
                                   " among those Backstop tracks");
  }
  for (size_t i = 0; i < req.keys.size(); ++i) {
    const json& k = req.keys[i];
    bool in_scope = !k.is_object() || !k.contains("table") || !k["table"].is_string() ||
                    tables_in_scope.count(k["table"].get<std::string>());
    if (key_matched[i] || !in_scope) continue;
    return Status::NotFound(
        "--keys " + k.dump() + ": run " + req.run_id + " discarded no row " +
        (req.object.empty() ? std::string() : "of " + req.object + " ") +
        "with this key (only inserted or changed rows can be salvaged; `backstop ledger " +
        req.run_id + "` lists them, keys as {\"id\": 201}); nothing was exported");
  }
  SalvageResult result;
  if (!req.output_path.empty()) {
    BACKSTOP_RETURN_IF_ERROR(env->fs()->CreateDirs(Dirname(req.output_path)));
    BACKSTOP_ASSIGN_OR_RETURN(auto out, JsonLinesWriter::Create(env->fs(), req.output_path));
    for (const auto& r : rows) {
      BACKSTOP_RETURN_IF_ERROR(
          out->Append({{"table", r.table->Display()}, {"key", r.key}, {"row", r.row}}));
    }
    BACKSTOP_RETURN_IF_ERROR(out->Close());
  }
  result.exported = rows.size();
  ctx.Progress(std::to_string(rows.size()) + " discarded rows read from " + aside);
  if (!req.apply || rows.empty()) return result;
  BACKSTOP_ASSIGN_OR_RETURN(auto live, ConnectTo(l, db));
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<TableInfo> live_tables, ListTables(*live, l.settings));
  BACKSTOP_ASSIGN_OR_RETURN(result.applied,
                            ApplySalvage(*live, live_tables, rows, &result.conflicts));
  return result;
}

}  // namespace backstop::postgres

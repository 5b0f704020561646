#include "drivers/postgres/pg_undo.h"

#include <algorithm>
#include <set>
#include <utility>

#include "base/strings.h"

namespace backstop::postgres {
namespace {

// The settings under which values are printed by the peeking session and
// read back and compared by the applying one: both must agree, or a float,
// a date or a bytea would not match its own row.
constexpr const char* kOutputSettings[][2] = {
    {"DateStyle", "ISO, YMD"}, {"IntervalStyle", "postgres"}, {"extra_float_digits", "3"},
    {"bytea_output", "hex"},   {"TimeZone", "UTC"},
};

Status SetLocalOutputSettings(PgConn& conn) {
  for (const auto& [name, value] : kOutputSettings) {
    BACKSTOP_RETURN_IF_ERROR(conn.Run("SELECT set_config($1, $2, true)", {name, value}));
  }
  return Status::OK();
}

// For messages: quoted only where a plain name would mislead ("public.t",
// "public.\"Odd Name\"").
std::string DisplayName(const std::string& name) {
  bool plain = !name.empty() && !(name[0] >= '0' && name[0] <= '9');
  for (char c : name) {
    plain = plain && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  }
  return plain ? name : QuoteIdent(name);
}
std::string DisplayName(const std::string& schema, const std::string& table) {
  return DisplayName(schema) + "." + DisplayName(table);
}

// Where a change sits, for messages: "UPDATE on public.t (transaction 742, lsn 0/16B3748)".
std::string Where(const Transaction& t, const Change& c) {
  return std::string(ChangeOpName(c.op)) + " on " + DisplayName(c.schema, c.table) +
         " (transaction " + std::to_string(t.xid) + ", lsn " + c.lsn + ")";
}

// ---- The catalog of one table, as the undo needs it ----

struct UndoColumn {
  std::string name;
  std::string type;  // format_type with typmod: "character(5)", "numeric(10,2)"
  bool generated = false;
  bool key = false;  // part of the primary key: also compared with =, so an index finds the row
};

struct UndoTable {
  std::string qualified;  // quoted
  std::string display;    // for messages
  std::vector<UndoColumn> columns;
  std::map<std::string, size_t> index;  // column name -> position
};

const char* ReplicaIdentityName(const std::string& code) {
  if (code == "d") return "DEFAULT (the primary key)";
  if (code == "n") return "NOTHING";
  if (code == "i") return "USING INDEX";
  return "unknown";
}

Result<UndoTable> ReadTable(PgConn& conn, const std::string& schema, const std::string& table) {
  const std::string name = DisplayName(schema, table);
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult rel, conn.Exec("SELECT c.oid::text, c.relreplident::text FROM pg_class c "
                              "JOIN pg_namespace n ON n.oid = c.relnamespace "
                              "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
                              {schema, table}));
  if (rel.rows() == 0) {
    return Status::FailedPrecondition("flashback cannot undo changes to table " + name +
                                      ": it no longer exists (dropped or renamed since the "
                                      "restore point); restore the dump instead");
  }
  if (rel.Get(0, 1) != "f") {
    return Status::FailedPrecondition(
        "flashback cannot undo changes to table " + name + ": its replica identity is " +
        ReplicaIdentityName(rel.Get(0, 1)) +
        ", not FULL, so the change stream lacks its old rows; restore the dump instead, and run "
        "ALTER TABLE " +
        name + " REPLICA IDENTITY FULL before the next restore point");
  }
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult cols,
      conn.Exec("SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attgenerated <> '', "
                "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid "
                "AND i.indisprimary AND a.attnum = ANY (i.indkey)) "
                "FROM pg_attribute a WHERE a.attrelid = $1::oid AND a.attnum > 0 "
                "AND NOT a.attisdropped ORDER BY a.attnum",
                {rel.Get(0, 0)}));
  UndoTable info;
  info.qualified = QuoteQualified(schema, table);
  info.display = name;
  for (int i = 0; i < cols.rows(); ++i) {
    info.index[cols.Get(i, 0)] = info.columns.size();
    info.columns.push_back(
        {cols.Get(i, 0), cols.Get(i, 1), cols.Get(i, 2) == "t", cols.Get(i, 3) == "t"});
  }
  return info;
}

// ---- Rows of a change, one value per catalog column (nullopt: NULL) ----

using Row = std::vector<std::optional<std::string>>;

Status ColumnsDiffer(const UndoTable& t, const std::string& what) {
  return Status::FailedPrecondition("flashback cannot undo changes to table " + t.display + ": " +
                                    what +
                                    " (its definition changed since the restore point); restore "
                                    "the dump instead");
}

// The old row: the columns an old tuple leaves out are NULL (REPLICA
// IDENTITY FULL, checked against the catalog before this is called).
Result<Row> OldRow(const UndoTable& t, const Change& c) {
  Row row(t.columns.size());
  for (const StreamColumn& col : c.old_columns) {
    auto it = t.index.find(col.name);
    if (it == t.index.end()) return ColumnsDiffer(t, "the stream has a column " + col.name);
    row[it->second] = col.value;
  }
  return row;
}

// The new row; a TOAST value the change left alone is taken from the old row
// (which REPLICA IDENTITY FULL logs whole).
Result<Row> NewRow(const UndoTable& t, const Change& c) {
  if (c.new_columns.size() != t.columns.size()) {
    return ColumnsDiffer(t, "the stream has " + std::to_string(c.new_columns.size()) +
                                " columns, the table " + std::to_string(t.columns.size()));
  }
  Row row(t.columns.size());
  for (const StreamColumn& col : c.new_columns) {
    auto it = t.index.find(col.name);
    if (it == t.index.end()) return ColumnsDiffer(t, "the stream has a column " + col.name);
    row[it->second] = col.value;
    if (col.unchanged_toast) {
      auto old = std::find_if(c.old_columns.begin(), c.old_columns.end(),
                              [&](const StreamColumn& o) { return o.name == col.name; });
      if (old == c.old_columns.end() || !old->value) {
        return Status::FailedPrecondition("flashback cannot undo changes to table " + t.display +
                                          ": column " + col.name +
                                          " kept its TOAST value and the stream has no old value "
                                          "for it; restore the dump instead");
      }
      row[it->second] = old->value;
    }
  }
  return row;
}

// One statement being built: parameters and their casts.
class Statement {
 public:
  std::string Param(const std::optional<std::string>& value, const std::string& type) {
    params_.push_back(value);
    return "$" + std::to_string(params_.size()) + "::" + type;
  }
  const Params& params() const { return params_; }

  // A condition true for exactly the rows equal to `row` in every column:
  // NULL as IS NULL; a value compared as its column type's text (so that
  // json, point or xml, which have no equality, match too, and 1.0 does not
  // match 1.00), and key columns also with = so that an index finds the row.
  std::string Match(const UndoTable& t, const Row& row) {
    std::vector<std::string> terms;
    for (size_t i = 0; i < t.columns.size(); ++i) {
      const UndoColumn& c = t.columns[i];
      std::string q = QuoteIdent(c.name);
      if (!row[i]) {
        terms.push_back(q + " IS NULL");
        continue;
      }
      std::string p = Param(row[i], c.type);
      terms.push_back(q + "::text = (" + p + ")::text");
      if (c.key) terms.push_back(q + " = " + p);
    }
    return terms.empty() ? "true" : Join(terms, " AND ");
  }

  // "WHERE ctid = (SELECT ctid ... LIMIT 1)": one row of possibly several
  // equal ones (a table without a key may hold duplicates).
  std::string OneRow(const UndoTable& t, const Row& row) {
    return " WHERE ctid = (SELECT ctid FROM " + t.qualified + " WHERE " + Match(t, row) +
           " LIMIT 1)";
  }

 private:
  Params params_;
};

// Runs `sql` (which returns one row per row it touched) and requires exactly one.
Status RunOnOne(PgConn& conn, const Statement& st, const std::string& sql,
                const std::string& where) {
  auto r = conn.Exec(sql, st.params());
  if (!r.ok()) return r.status().WithContext("flashback: undoing " + where);
  if (r->rows() != 1) {
    return Status::FailedPrecondition(
        "flashback: undoing " + where +
        " found no row as the change left it: the table was changed in a way the change stream "
        "does not show (a write after the stream was read, or outside it); nothing was undone, "
        "restore the dump instead");
  }
  return Status::OK();
}

Status UndoOne(PgConn& conn, const UndoTable& t, const Transaction& txn, const Change& c) {
  const std::string where = Where(txn, c);
  Statement st;
  if (c.op == ChangeOp::kInsert) {
    BACKSTOP_ASSIGN_OR_RETURN(Row now, NewRow(t, c));
    return RunOnOne(conn, st, "DELETE FROM " + t.qualified + st.OneRow(t, now) + " RETURNING 1",
                    where);
  }
  BACKSTOP_ASSIGN_OR_RETURN(Row old, OldRow(t, c));
  if (c.op == ChangeOp::kDelete) {
    std::vector<std::string> names, values;
    for (size_t i = 0; i < t.columns.size(); ++i) {
      if (t.columns[i].generated) continue;
      names.push_back(QuoteIdent(t.columns[i].name));
      values.push_back(st.Param(old[i], t.columns[i].type));
    }
    return RunOnOne(conn, st,
                    "INSERT INTO " + t.qualified + " (" + Join(names, ", ") +
                        ") OVERRIDING SYSTEM VALUE VALUES (" + Join(values, ", ") + ") RETURNING 1",
                    where);
  }
  // UPDATE: the columns that changed go back to their old values.
  BACKSTOP_ASSIGN_OR_RETURN(Row now, NewRow(t, c));
  std::vector<std::string> sets;
  for (size_t i = 0; i < t.columns.size(); ++i) {
    if (t.columns[i].generated || old[i] == now[i]) continue;
    sets.push_back(QuoteIdent(t.columns[i].name) + " = " + st.Param(old[i], t.columns[i].type));
  }
  if (sets.empty()) {  // an UPDATE that changed nothing: the row must still be there
    return RunOnOne(conn, st, "SELECT 1 FROM " + t.qualified + st.OneRow(t, now), where);
  }
  return RunOnOne(
      conn, st,
      "UPDATE " + t.qualified + " SET " + Join(sets, ", ") + st.OneRow(t, now) + " RETURNING 1",
      where);
}

// ---- The data-loss summary ----

RowImage Image(const std::vector<StreamColumn>& cols, const std::vector<StreamColumn>* old) {
  RowImage img;
  for (const StreamColumn& c : cols) {
    if (c.value) {
      img[c.name] = *c.value;
    } else if (c.unchanged_toast && old != nullptr) {
      for (const StreamColumn& o : *old) {
        if (o.name == c.name && o.value) img[c.name] = *o.value;
      }
    }
  }
  return img;
}

// One row followed through the stream.
struct Tracked {
  std::optional<RowImage> first;    // as at the restore point; none when inserted since
  std::optional<RowImage> current;  // as now; none when deleted
};

}  // namespace

Result<ChangeStream> PeekChangeStream(PgConn& conn, const std::string& slot,
                                      const std::string& upto_lsn) {
  // Decoding reads only WAL that is flushed, and a commit made with
  // synchronous_commit off may not be yet. A transaction that has an id and
  // writes WAL (a restore-point record, which decoding skips) flushes
  // everything before it when it commits synchronously.
  BACKSTOP_RETURN_IF_ERROR(conn.Run("BEGIN"));
  Status flushed = conn.Run("SET LOCAL synchronous_commit = on");
  if (flushed.ok()) {
    flushed =
        conn.Run("SELECT pg_current_xact_id(), pg_create_restore_point('backstop flashback')");
  }
  BACKSTOP_RETURN_IF_ERROR(conn.Run(flushed.ok() ? "COMMIT" : "ROLLBACK"));
  if (!flushed.ok()) {
    return flushed.WithContext("flashback: flushing the WAL before reading replication slot " +
                               slot);
  }
  BACKSTOP_RETURN_IF_ERROR(conn.Run("BEGIN"));
  auto peek = [&]() -> Result<PgResult> {
    BACKSTOP_RETURN_IF_ERROR(SetLocalOutputSettings(conn));
    Params p = {slot, upto_lsn.empty() ? std::nullopt : std::optional<std::string>(upto_lsn)};
    return conn.Exec(
        "SELECT lsn::text, data FROM pg_logical_slot_peek_changes($1, $2::pg_lsn, NULL, "
        "'include-xids', '1', 'include-timestamp', '1', 'skip-empty-xacts', '1')",
        p);
  };
  Result<PgResult> r = peek();
  Status end = conn.Run(r.ok() ? "COMMIT" : "ROLLBACK");
  if (!r.ok()) {
    return r.status().WithContext("flashback: reading the changes of replication slot " + slot);
  }
  BACKSTOP_RETURN_IF_ERROR(end);
  std::vector<StreamRow> rows;
  rows.reserve(r->rows());
  for (int i = 0; i < r->rows(); ++i) rows.push_back({r->Get(i, 0), r->Get(i, 1)});
  auto stream = ParseChangeStream(rows);
  if (!stream.ok()) return stream.status().WithContext("replication slot " + slot);
  return stream;
}

Result<std::vector<Transaction>> SelectForUndo(const ChangeStream& stream,
                                               std::optional<int64_t> after_wall_micros) {
  std::vector<std::string> refusals;
  std::set<std::string> seen;
  auto refuse = [&](const std::string& reason) {
    if (seen.insert(reason).second) refusals.push_back(reason);
  };
  if (!stream.loose_messages.empty()) {
    refuse("logical messages (pg_logical_emit_message) that undo cannot interpret");
  }
  std::vector<Transaction> out;
  const std::string marker = std::string("prefix: ") + kUndoMessagePrefix + ",";
  for (const Transaction& stream_txn : stream.transactions) {
    if (after_wall_micros && stream_txn.commit_wall_micros <= *after_wall_micros) continue;
    // An undo's own marker message (a transaction Backstop committed) is
    // no change to undo: left out.
    Transaction t = stream_txn;
    std::erase_if(t.changes, [&](const Change& c) {
      return c.op == ChangeOp::kMessage && c.text.find(marker) != std::string::npos;
    });
    for (const Change& c : t.changes) {
      const std::string table = DisplayName(c.schema, c.table);
      switch (c.op) {
        case ChangeOp::kTruncate:
          refuse("table " + table + ": TRUNCATE (its rows are not in the stream)");
          break;
        case ChangeOp::kMessage:
          refuse("a logical message in transaction " + std::to_string(t.xid) +
                 " that undo cannot interpret");
          break;
        case ChangeOp::kInsert:
          if (!c.has_new) refuse("table " + table + ": an INSERT without its row");
          break;
        case ChangeOp::kUpdate:
        case ChangeOp::kDelete:
          if (!c.has_old) {
            refuse("table " + table + ": " + ChangeOpName(c.op) +
                   " without the old row (its replica identity is not FULL)");
          }
          if (c.op == ChangeOp::kUpdate && !c.has_new) {
            refuse("table " + table + ": an UPDATE without its new row");
          }
          break;
      }
    }
    out.push_back(std::move(t));
  }
  if (!refusals.empty()) {
    return Status::FailedPrecondition(
        "flashback cannot undo the changes since the restore point: " + Join(refusals, "; ") +
        "; restore the dump instead");
  }
  return out;
}

Result<UndoStats> ApplyUndoInTransaction(PgConn& conn, const std::vector<Transaction>& txns) {
  UndoStats stats;
  std::set<std::pair<std::string, std::string>> names;
  for (const Transaction& t : txns) {
    for (const Change& c : t.changes) names.insert({c.schema, c.table});
  }
  stats.transactions = txns.size();
  if (names.empty()) return stats;
  BACKSTOP_RETURN_IF_ERROR(conn.Run("SET LOCAL session_replication_role = replica"));
  BACKSTOP_RETURN_IF_ERROR(SetLocalOutputSettings(conn));
  // Sorted, so two undos never lock in opposite orders.
  std::vector<std::string> quoted;
  for (const auto& [schema, table] : names) quoted.push_back(QuoteQualified(schema, table));
  BACKSTOP_RETURN_IF_ERROR(conn.Run("LOCK TABLE " + Join(quoted, ", ") + " IN EXCLUSIVE MODE"));
  // Every table is checked before the first row is touched.
  std::map<std::pair<std::string, std::string>, UndoTable> tables;
  for (const auto& name : names) {
    BACKSTOP_ASSIGN_OR_RETURN(tables[name], ReadTable(conn, name.first, name.second));
  }
  for (auto t = txns.rbegin(); t != txns.rend(); ++t) {
    for (auto c = t->changes.rbegin(); c != t->changes.rend(); ++c) {
      BACKSTOP_RETURN_IF_ERROR(UndoOne(conn, tables.at({c->schema, c->table}), *t, *c));
      ++stats.statements;
    }
  }
  for (const auto& [schema, table] : names) stats.tables.push_back(DisplayName(schema, table));
  return stats;
}

Result<UndoStats> ApplyUndo(PgConn& conn, const std::vector<Transaction>& txns) {
  BACKSTOP_RETURN_IF_ERROR(conn.Run("BEGIN"));
  auto stats = ApplyUndoInTransaction(conn, txns);
  if (!stats.ok()) {
    // The error is what the caller needs; a failed ROLLBACK leaves the
    // transaction to end with the connection.
    (void)conn.Run("ROLLBACK");
    return stats.status();
  }
  BACKSTOP_RETURN_IF_ERROR(conn.Run("COMMIT"));
  return stats;
}

Result<std::vector<TableLoss>> SummarizeLoss(const std::vector<Transaction>& txns) {
  std::vector<std::pair<std::string, std::string>> order;
  std::map<std::pair<std::string, std::string>, std::vector<Tracked>> rows;
  auto find = [](std::vector<Tracked>& v, const RowImage& img) -> Tracked* {
    for (Tracked& r : v) {
      if (r.current && *r.current == img) return &r;
    }
    return nullptr;
  };
  for (const Transaction& t : txns) {
    for (const Change& c : t.changes) {
      std::pair<std::string, std::string> key{c.schema, c.table};
      if (!rows.count(key)) order.push_back(key);
      std::vector<Tracked>& v = rows[key];
      if (c.op == ChangeOp::kInsert) {
        v.push_back({std::nullopt, Image(c.new_columns, nullptr)});
      } else if (c.op == ChangeOp::kUpdate || c.op == ChangeOp::kDelete) {
        RowImage before = Image(c.old_columns, nullptr);
        Tracked* r = find(v, before);
        if (r == nullptr) {
          v.push_back({before, before});
          r = &v.back();
        }
        if (c.op == ChangeOp::kDelete) {
          r->current.reset();
        } else {
          r->current = Image(c.new_columns, &c.old_columns);
        }
      } else {
        return Status::FailedPrecondition("flashback: no data-loss summary for a stream with " +
                                          std::string(ChangeOpName(c.op)) + " (" + Where(t, c) +
                                          ")");
      }
    }
  }
  std::vector<TableLoss> out;
  for (const auto& key : order) {
    TableLoss loss{key.first, key.second, {}, {}, {}};
    for (const Tracked& r : rows[key]) {
      if (!r.first && r.current) {
        loss.inserted.push_back(*r.current);
      } else if (r.first && !r.current) {
        loss.deleted.push_back(*r.first);
      } else if (r.first && r.current && *r.first != *r.current) {
        loss.changed.emplace_back(*r.first, *r.current);
      }
    }
    // A row deleted and inserted again with the same values is no loss.
    for (auto it = loss.inserted.begin(); it != loss.inserted.end();) {
      auto same = std::find(loss.deleted.begin(), loss.deleted.end(), *it);
      if (same == loss.deleted.end()) {
        ++it;
        continue;
      }
      loss.deleted.erase(same);
      it = loss.inserted.erase(it);
    }
    if (!loss.inserted.empty() || !loss.deleted.empty() || !loss.changed.empty()) {
      out.push_back(std::move(loss));
    }
  }
  return out;
}

}  // namespace backstop::postgres

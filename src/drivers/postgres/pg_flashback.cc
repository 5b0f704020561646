#include "drivers/postgres/pg_flashback.h"

#include <libpq-fe.h>
#include <sys/statvfs.h>

#include <cctype>

#include "base/hash.h"

namespace backstop::postgres {

using json = nlohmann::json;

namespace {

std::string SlotPart(const std::string& s) {
  std::string out;
  for (char ch : s) {
    unsigned char u = static_cast<unsigned char>(ch);
    out += std::isalnum(u) ? static_cast<char>(std::tolower(u)) : '_';
  }
  return out;
}

json KeyValue(const std::string& v) {
  if (!v.empty() && v.size() < 19) {
    size_t i = v[0] == '-' ? 1 : 0;
    bool digits = i < v.size();
    for (; i < v.size(); ++i) digits = digits && std::isdigit(static_cast<unsigned char>(v[i]));
    if (digits) return std::stoll(v);
  }
  return v;
}

json RowJson(const RowImage& row) {
  json out = json::object();
  for (const auto& [k, v] : row) out[k] = v;
  return out;
}

}  // namespace

std::string SlotName(const std::string& restore_point_id, const std::string& db) {
  std::string name = kSlotPrefix + SlotPart(restore_point_id) + "_" + SlotPart(db);
  if (name.size() > 63) name.resize(63);
  return name;
}

Result<std::string> FlashbackUnavailableReason(PgConn& live) {
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult r,
      live.Exec("SELECT current_setting('wal_level'), "
                "current_setting('max_replication_slots')::int - "
                "(SELECT count(*) FROM pg_replication_slots), "
                "current_setting('max_wal_senders')::int - "
                "(SELECT count(*) FROM pg_stat_replication), "
                "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user), current_user"));
  if (r.Get(0, 0) != "logical") {
    return "the server's wal_level is " + r.Get(0, 0) +
           ", flashback needs wal_level = logical (a server restart)";
  }
  if (r.GetInt(0, 1) <= 0) {
    return std::string(
        "every replication slot of the server is taken (max_replication_slots); raise it or "
        "drop unused slots");
  }
  if (r.GetInt(0, 2) <= 0) {
    return std::string("no wal sender is free for the slot's connection (max_wal_senders)");
  }
  if (r.Get(0, 3) != "t") {
    return "role " + r.Get(0, 4) +
           " is not a superuser: flashback's undo sets session_replication_role, which needs one";
  }
  return std::string();
}

Result<CreatedSlot> CreateSlotWithSnapshot(const ConnParams& params, const std::string& db,
                                           int64_t connect_timeout_ms, const std::string& slot) {
  CreatedSlot out;
  BACKSTOP_ASSIGN_OR_RETURN(out.conn,
                            PgConn::Connect(params, db, connect_timeout_ms, /*replication=*/true));
  // A replication connection takes simple queries only (no parameters).
  const std::string sql =
      "CREATE_REPLICATION_SLOT " + QuoteIdent(slot) + " LOGICAL test_decoding EXPORT_SNAPSHOT";
  PGresult* r = PQexec(out.conn->raw(), sql.c_str());
  if (r == nullptr || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 ||
      PQnfields(r) < 3) {
    std::string msg = r ? PQresultErrorMessage(r) : PQerrorMessage(out.conn->raw());
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    if (r) PQclear(r);
    return Status::FailedPrecondition("creating replication slot " + slot + " in database " + db +
                                      ": " + msg);
  }
  out.slot = PQgetvalue(r, 0, 0);
  out.consistent_point = PQgetvalue(r, 0, 1);
  out.snapshot_name = PQgetvalue(r, 0, 2);
  PQclear(r);
  return out;
}

Status DropSlot(PgConn& conn, const std::string& slot) {
  // A slot whose connection just closed stays active until its wal sender
  // has exited: retried for up to 2 s.
  for (int attempt = 0;; ++attempt) {
    auto r = conn.Exec(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
        "WHERE slot_name = $1",
        {slot});
    if (r.ok()) return Status::OK();
    if (conn.last_sqlstate() != "55006" || attempt >= 100) {
      return r.status().WithContext("dropping replication slot " + slot);
    }
    (void)conn.Run("SELECT pg_sleep(0.02)");
  }
}

Result<std::vector<std::string>> DropOrphanSlots(PgConn& conn, const std::string& db,
                                                 const std::set<std::string>& keep) {
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult r, conn.Exec("SELECT slot_name FROM pg_replication_slots WHERE database = $1 AND "
                            "starts_with(slot_name, $2) AND NOT active ORDER BY 1",
                            {db, std::string(kSlotPrefix)}));
  std::vector<std::string> dropped;
  for (int i = 0; i < r.rows(); ++i) {
    std::string slot = r.Get(i, 0);
    if (keep.count(slot)) continue;
    BACKSTOP_RETURN_IF_ERROR(DropSlot(conn, slot));
    dropped.push_back(slot);
  }
  return dropped;
}

Result<std::string> SchemaFingerprint(PgConn& conn) {
  return conn.Value(
      "SELECT md5(coalesce(string_agg(n.nspname || '.' || c.relname || '.' || a.attnum || '.' || "
      "a.attname || ':' || format_type(a.atttypid, a.atttypmod), ',' "
      "ORDER BY n.nspname, c.relname, a.attnum), '')) "
      "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "JOIN pg_attribute a ON a.attrelid = c.oid "
      "WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped "
      "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
      "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'");
}

Result<std::optional<int64_t>> SlotRetainedWal(PgConn& conn, const std::string& slot) {
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec(
          "SELECT coalesce(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), restart_lsn), 0)::bigint "
          "FROM pg_replication_slots WHERE slot_name = $1",
          {slot}));
  if (r.rows() == 0) return std::optional<int64_t>();
  return std::optional<int64_t>(r.GetInt(0, 0));
}

uint64_t DefaultMaxWal(const std::string& path) {
  struct statvfs st;
  if (path.empty() || statvfs(path.c_str(), &st) != 0) return 1ull << 30;
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize / 10;
}

json SequencesToJson(const std::vector<SequencePosition>& seqs) {
  json out = json::array();
  for (const auto& s : seqs) {
    out.push_back({{"schema", s.schema},
                   {"name", s.name},
                   {"last_value", s.last_value},
                   {"is_called", s.is_called}});
  }
  return out;
}

std::vector<SequencePosition> SequencesFromJson(const json& j) {
  std::vector<SequencePosition> out;
  if (!j.is_array()) return out;
  for (const auto& s : j) {
    out.push_back({s.value("schema", ""), s.value("name", ""), s.value("last_value", int64_t{0}),
                   s.value("is_called", false)});
  }
  return out;
}

bool HasUndoMessage(const ChangeStream& stream, const std::string& run_id) {
  // test_decoding: "message: transactional: 1 prefix: <prefix>, sz: <n> content:<content>"
  const std::string want = std::string("prefix: ") + kUndoMessagePrefix + ",";
  for (const auto& t : stream.transactions) {
    for (const auto& c : t.changes) {
      if (c.op == ChangeOp::kMessage && c.text.find(want) != std::string::npos &&
          c.text.ends_with("content:" + run_id)) {
        return true;
      }
    }
  }
  return false;
}

std::vector<json> LossLedgerLines(const std::vector<TableLoss>& loss,
                                  const std::map<std::string, std::vector<std::string>>& pk) {
  std::vector<json> lines;
  for (const auto& t : loss) {
    const std::string qualified = t.schema + "." + t.table;
    const std::string display = t.schema == "public" ? t.table : qualified;
    auto it = pk.find(qualified);
    auto key = [&](const RowImage& row) {
      json k = json::object();
      if (it == pk.end() || it->second.empty()) {
        k["row_sha256"] = Sha256Hex(RowJson(row).dump());
        return k;
      }
      for (const auto& col : it->second) {
        auto v = row.find(col);
        k[col] = v == row.end() ? json(nullptr) : KeyValue(v->second);
      }
      return k;
    };
    for (const auto& r : t.inserted) {
      lines.push_back(
          {{"table", display}, {"change", "inserted"}, {"key", key(r)}, {"row", RowJson(r)}});
    }
    for (const auto& r : t.deleted) {
      lines.push_back(
          {{"table", display}, {"change", "deleted"}, {"key", key(r)}, {"row", RowJson(r)}});
    }
    for (const auto& [before, now] : t.changed) {
      lines.push_back({{"table", display},
                       {"change", "changed"},
                       {"key", key(now)},
                       {"row", RowJson(now)},
                       {"before", RowJson(before)}});
    }
  }
  return lines;
}

}  // namespace backstop::postgres

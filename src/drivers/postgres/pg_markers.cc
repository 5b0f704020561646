#include "drivers/postgres/pg_markers.h"

#include "drivers/postgres/pg_admin.h"
#include "drivers/postgres/pg_component.h"

namespace backstop::postgres {

std::string SwapMarkerPath(const DriverContext& ctx, const std::string& component,
                           const std::string& run_id) {
  if (ctx.state_dir.empty() || run_id.empty()) return "";
  return JoinPath(ctx.state_dir, "runs/" + run_id + "/postgres-" + component + ".swapped");
}

std::string IdentityPath(const DriverContext& ctx, const std::string& component,
                         const std::string& run_id) {
  if (ctx.state_dir.empty() || run_id.empty()) return "";
  return JoinPath(ctx.state_dir, "runs/" + run_id + "/postgres-" + component + ".verified");
}

std::string SystemIdentifier(PgConn& conn) {
  auto v = conn.Value("SELECT system_identifier::text FROM pg_control_system()");
  return v.ok() ? *v : "";
}

bool NeverSwapped(const DriverContext& ctx, const ComponentSpec& c, const json& entry) {
  if (entry.value("database_existed", true) == false) return true;
  std::string path = SwapMarkerPath(ctx, c.name, entry.value("run_id", ""));
  return !path.empty() && !ctx.env->fs()->Exists(path);
}

json ReadRecord(const DriverContext& ctx, const std::string& path) {
  if (path.empty()) return json();
  auto text = ctx.env->fs()->ReadFile(path);
  if (!text.ok()) return json();
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  return j.is_object() ? j : json();
}

Status WriteRecord(const DriverContext& ctx, const std::string& path, const json& record) {
  if (path.empty()) return Status::OK();
  Env* env = ctx.env;
  BACKSTOP_RETURN_IF_ERROR(env->fs()->CreateDirs(Dirname(path)));
  return env->fs()->WriteFileAtomic(path, record.dump() + "\n");
}

std::string SwappedBackPath(const DriverContext& ctx, const std::string& component,
                            const std::string& run_id) {
  if (ctx.state_dir.empty() || run_id.empty()) return "";
  return JoinPath(ctx.state_dir, "runs/" + run_id + "/postgres-" + component + ".swapped-back");
}

bool IsRetainedEntry(const json& entry) {
  return entry.is_object() && entry.contains("retained_database") &&
         entry["retained_database"].is_string();
}

std::string EntryRestorePointId(const json& entry) {
  return entry.is_object() ? entry.value("restore_point_id", "") : "";
}

std::string MarkerValue(const std::string& v) {
  std::string out;
  for (char ch : v) {
    if (ch == ' ') {
      out += "%20";
    } else if (ch == '%') {
      out += "%25";
    } else {
      out += ch;
    }
  }
  return out;
}

std::string LikePrefix(const std::string& v) {
  std::string out;
  for (char ch : v) {
    if (ch == '%' || ch == '_' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "%";
}

std::string ShadowMarker(const std::string& db, const std::string& rp, const std::string& run,
                         const std::string& from) {
  return "backstop:shadow db=" + MarkerValue(db) + " rp=" + MarkerValue(rp) +
         " run=" + Sanitized(run) + " from=" + MarkerValue(from) + " verified";
}

std::string StagedMarker(const std::string& db, const std::string& rp) {
  return "backstop:staged db=" + MarkerValue(db) + " rp=" + MarkerValue(rp);
}

bool IsStagedCopy(const std::optional<std::string>& comment, const std::string& db,
                  const std::string& rp) {
  auto m = ParseMarker(comment, "staged");
  return m.count("rp") && m["db"] == MarkerValue(db) && m["rp"] == MarkerValue(rp);
}

bool IsVerifiedShadow(const std::optional<std::string>& comment, const std::string& db,
                      const std::string& rp, const std::string& run) {
  auto m = ParseMarker(comment, "shadow");
  return m.count("verified") && m["db"] == MarkerValue(db) && m["rp"] == MarkerValue(rp) &&
         (run.empty() || m["run"] == Sanitized(run));
}

std::string MarkerDecode(std::string v) {
  for (size_t pos; (pos = v.find("%20")) != std::string::npos;) v.replace(pos, 3, " ");
  for (size_t pos; (pos = v.find("%25")) != std::string::npos;) v.replace(pos, 3, "%");
  return v;
}

std::string MarkerFrom(const std::optional<std::string>& comment) {
  return MarkerDecode(ParseMarker(comment, "shadow")["from"]);
}

bool StagedCopyUntouched(PgConn& admin, const std::string& name, const json& entry,
                         std::string* why_not) {
  if (!entry.contains("staged_verified") || !entry["staged_verified"].is_object()) {
    *why_not = "the restore point recorded no session count for it";
    return false;
  }
  const json& rec = entry["staged_verified"];
  auto now = GetSessionStats(admin, name);
  if (!now.ok()) {
    *why_not = "cannot read its statistics: " + now.status().message();
    return false;
  }
  if (now->oid != rec.value("oid", 0u)) {
    *why_not = "it is not the database Stage verified (oid " + std::to_string(now->oid) + ")";
    return false;
  }
  if (now->open != 0 || now->sessions != rec.value("sessions", int64_t{-1}) ||
      now->stats_reset != rec.value("stats_reset", "")) {
    *why_not = "sessions were opened on it since it was verified (" +
               std::to_string(now->sessions) + " ever, " + std::to_string(now->open) + " open; " +
               std::to_string(rec.value("sessions", int64_t{-1})) +
               " when verified), or its statistics were reset";
    return false;
  }
  return true;
}

Result<std::string> WriteStamp(PgConn& conn, const PgSettings& settings) {
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec("SELECT current_setting('track_counts')::bool, coalesce(string_agg(concat_ws(':', "
                "c.oid, c.relfilenode, md5((SELECT string_agg(a.attname || a.atttypid || "
                "a.attisdropped, ',' ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = "
                "c.oid AND a.attnum > 0)), pg_stat_get_tuples_inserted(c.oid), "
                "pg_stat_get_tuples_updated(c.oid), pg_stat_get_tuples_deleted(c.oid)), ',' "
                "ORDER BY c.oid), '') FROM pg_class c JOIN pg_namespace n ON n.oid = "
                "c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1::text[])",
                {ArrayLiteral(settings.schemas)}));
  if (r.rows() != 1 || r.Get(0, 0) != "t") return std::string();
  return "tables:" + r.Get(0, 1);
}

Status UnchangedSinceSafety(PgConn& live, const PgSettings& settings, const json& entry,
                            uint32_t live_oid, const std::string& db) {
  std::string why;
  const std::string recorded = entry.value("write_stamp", "");
  if (recorded.empty() || !entry.contains("live_oid")) {
    why = "the restore point recorded no write stamp of it";
  } else if (entry.value("live_oid", 0u) != live_oid) {
    why = "database " + db + " has been replaced since (oid " + std::to_string(live_oid) +
          ", was " + std::to_string(entry.value("live_oid", 0u)) + ")";
  } else {
    BACKSTOP_ASSIGN_OR_RETURN(std::string now, WriteStamp(live, settings));
    if (now.empty()) {
      why = "table statistics are off (track_counts), so nothing proves it unchanged";
    } else if (now != recorded) {
      why = "it has been written since";
    }
  }
  if (why.empty()) return Status::OK();
  return Status::FailedPrecondition(
      "restore point " + entry.value("restore_point_id", "?") + " cannot restore database " + db +
      ": run " + entry.value("run_id", "?") +
      " never set it aside (it stopped before replacing it), so the restore point holds no copy "
      "of it, and " +
      why + "; roll back to a full restore point to restore the database");
}

}  // namespace backstop::postgres

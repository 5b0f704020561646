#include "drivers/postgres/pg_admin.h"

#include <libpq-fe.h>

#include <chrono>
#include <thread>
#include <vector>

namespace backstop::postgres {

std::string CommentSql(PgConn& conn, const std::string& db, const std::optional<std::string>& c) {
  return "COMMENT ON DATABASE " + QuoteIdent(db) + " IS " + (c ? conn.Literal(*c) : "NULL");
}

Status DropDatabase(PgConn& admin, const std::string& name) {
  return admin.Run("DROP DATABASE IF EXISTS " + QuoteIdent(name) + " WITH (FORCE)");
}

Status SetAllowConnections(PgConn& admin, const std::string& name, bool allow) {
  return admin.Run("ALTER DATABASE " + QuoteIdent(name) + " ALLOW_CONNECTIONS " +
                   (allow ? "true" : "false"));
}

Status TerminateSessions(PgConn& admin, const std::string& name, int keep_pid) {
  const Params params = {name, std::to_string(keep_pid)};
  // A client that has just disconnected is still listed while its backend
  // exits: such sessions get a moment to go before the refusal.
  const auto patience = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (;;) {
    BACKSTOP_ASSIGN_OR_RETURN(
        PgResult blocked,
        admin.Exec(
            std::string("SELECT count(*), coalesce(string_agg(DISTINCT a.usename, ', '), '') ") +
                kOtherClientSessions + " AND NOT " + kMaySignal,
            params));
    if (blocked.GetInt(0, 0) == 0) break;
    if (std::chrono::steady_clock::now() >= patience) {
      return Status::FailedPrecondition(
          blocked.Get(0, 0) + " session(s) of role " + blocked.Get(0, 1) + " on database " + name +
          " cannot be ended by the role Backstop connects as: end them, or connect as a "
          "superuser or a member of pg_signal_backend");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  BACKSTOP_ASSIGN_OR_RETURN(PgResult r,
                            admin.Exec(std::string("SELECT a.pid, pg_terminate_backend(a.pid) ") +
                                           kOtherClientSessions + " AND " + kMaySignal,
                                       params));
  if (r.rows() == 0) return Status::OK();
  std::vector<std::string> pids;
  for (int i = 0; i < r.rows(); ++i) pids.push_back(r.Get(i, 0));
  const std::string pid_array = ArrayLiteral(pids);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    BACKSTOP_ASSIGN_OR_RETURN(
        std::string left,
        admin.Value("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])",
                    {pid_array}));
    if (left == "0") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return Status::OK();
}

Result<std::unique_ptr<PgConn>> ConnectToClosed(PgConn& admin, const Loaded& l,
                                                const std::string& name) {
  BACKSTOP_RETURN_IF_ERROR(SetAllowConnections(admin, name, true));
  auto conn = PgConn::Connect(l.params, name, l.settings.connect_timeout_ms);
  Status closed = SetAllowConnections(admin, name, false);
  if (!conn.ok()) return conn.status();
  BACKSTOP_RETURN_IF_ERROR(closed);
  BACKSTOP_RETURN_IF_ERROR(TerminateSessions(admin, name, PQbackendPID((*conn)->raw())));
  return conn;
}

Status RenameDatabase(PgConn& admin, const std::string& from, const std::string& to) {
  Status st;
  for (int attempt = 0; attempt < 4; ++attempt) {
    BACKSTOP_RETURN_IF_ERROR(TerminateSessions(admin, from));
    st = admin.Run("ALTER DATABASE " + QuoteIdent(from) + " RENAME TO " + QuoteIdent(to));
    if (st.ok() || admin.last_sqlstate() != "55006") break;
  }
  if (!st.ok()) return st.WithContext("renaming database " + from + " to " + to);
  return Status::OK();
}

Status CreateDatabaseLike(PgConn& admin, const std::string& name, const DatabaseInfo& props) {
  std::string sql = "CREATE DATABASE " + QuoteIdent(name) + " WITH TEMPLATE template0";
  if (!props.owner.empty()) sql += " OWNER " + QuoteIdent(props.owner);
  if (!props.encoding.empty()) sql += " ENCODING " + admin.Literal(props.encoding);
  if (props.locale_provider == "i" && admin.server_version() >= 150000) {
    sql += " LOCALE_PROVIDER icu ICU_LOCALE " + admin.Literal(props.icu_locale);
  }
  if (!props.collate.empty()) sql += " LC_COLLATE " + admin.Literal(props.collate);
  if (!props.ctype.empty()) sql += " LC_CTYPE " + admin.Literal(props.ctype);
  Status st = admin.Run(sql);
  if (!st.ok()) return st.WithContext("creating database " + name + " from template0");
  return Status::OK();
}

Result<SessionStats> GetSessionStats(PgConn& admin, const std::string& name) {
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult r, admin.Exec("SELECT d.oid::bigint, s.sessions, s.numbackends, "
                             "coalesce(s.stats_reset::text, '') FROM pg_database d "
                             "JOIN pg_stat_database s ON s.datid = d.oid WHERE d.datname = $1",
                             {name}));
  if (r.rows() != 1) return Status::NotFound("no statistics for database " + name);
  SessionStats out;
  out.oid = static_cast<uint32_t>(r.GetInt(0, 0));
  out.sessions = r.GetInt(0, 1);
  out.open = r.GetInt(0, 2);
  out.stats_reset = r.Get(0, 3);
  return out;
}

}  // namespace backstop::postgres

// Database administration for the postgres driver, on a connection to the
// admin database: create, drop, rename and comment databases, allow or
// refuse connections, end the sessions on a database, open a database the
// driver keeps closed, and read its session statistics.
//
// Thread-safety: free functions; each call uses the connection it is given.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "base/status.h"
#include "drivers/postgres/pg_catalog.h"
#include "drivers/postgres/pg_component.h"
#include "drivers/postgres/pg_conn.h"

namespace backstop::postgres {

std::string CommentSql(PgConn& conn, const std::string& db, const std::optional<std::string>& c);

Status DropDatabase(PgConn& admin, const std::string& name);

Status SetAllowConnections(PgConn& admin, const std::string& name, bool allow);

// The client sessions on database $1 other than ours and pid $2. Background
// workers are left out: autovacuum workers cannot be signalled by a role
// that is not superuser (pg_terminate_backend raises an error), and ALTER /
// DROP DATABASE end them by themselves. A role without pg_read_all_stats
// sees no backend_type for other roles' sessions; there, a session with a
// role is a client's, one without (autovacuum) is not.
constexpr const char* kOtherClientSessions =
    "FROM pg_stat_activity a WHERE a.datname = $1 AND a.pid <> pg_backend_pid() AND "
    "a.pid <> $2::int AND (a.backend_type = 'client backend' OR (a.backend_type IS NULL AND "
    "a.usesysid IS NOT NULL))";

// Of those, the ones the connected role may end (PostgreSQL's own rule:
// superuser, or a member of the session's role or of pg_signal_backend, and
// only a superuser ends a superuser's session).
constexpr const char* kMaySignal =
    "((SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR ("
    "a.usesysid IS NOT NULL AND NOT (SELECT rolsuper FROM pg_roles r WHERE r.oid = a.usesysid) "
    "AND (pg_has_role(a.usesysid, 'MEMBER') OR pg_has_role('pg_signal_backend', 'MEMBER'))))";

// Ends every client session on `name` but ours (and `keep_pid`'s), waiting
// up to 5 s for them to exit. pg_terminate_backend(pid, timeout) would wait
// in steps of 100 ms, and so would ALTER DATABASE RENAME if a session were
// still exiting: on the swap, that is 100 ms more of refused connections. So
// the sessions are signalled at once and watched every millisecond instead.
// FailedPrecondition, ending none, when a session is one the role may not
// end: ALTER DATABASE would only wait for it and fail.
Status TerminateSessions(PgConn& admin, const std::string& name, int keep_pid = 0);

// Connects to `name`, a database the driver keeps closed (ALLOW_CONNECTIONS
// false: a shadow, a staged or retained copy), and closes it again at once:
// it is open only for the few milliseconds of this connect, and any other
// session that slipped in meanwhile is ended. So nobody but the driver can
// change a verified copy between its verification and the swap.
Result<std::unique_ptr<PgConn>> ConnectToClosed(PgConn& admin, const Loaded& l,
                                                const std::string& name);

// ALTER DATABASE RENAME waits ~5 s and fails while sessions remain: end them
// first and retry a few times in case a client slipped in.
Status RenameDatabase(PgConn& admin, const std::string& from, const std::string& to);

Status CreateDatabaseLike(PgConn& admin, const std::string& name, const DatabaseInfo& props);

// What the cumulative statistics say of database `name` (PostgreSQL 14 and
// later): how many sessions were ever opened on it, how many are open now,
// when its statistics were last reset. A backend writes its statistics before
// it leaves pg_stat_activity, so once no session is open the count includes
// every session that ever was; a crash or a reset of the statistics zeroes
// it (never the other way round).
struct SessionStats {
  uint32_t oid = 0;
  int64_t sessions = 0;
  int64_t open = 0;
  std::string stats_reset;
};

Result<SessionStats> GetSessionStats(PgConn& admin, const std::string& name);

}  // namespace backstop::postgres

#include "drivers/postgres/postgres_driver.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "base/crash_point.h"
#include "base/units.h"
#include "drivers/postgres/pg_catalog.h"
#include "drivers/postgres/pg_conn.h"
#include "drivers/postgres/pg_dump_feed.h"
#include "drivers/postgres/pg_ledger.h"
#include "store/store.h"

namespace backstop::postgres {
namespace {

using json = nlohmann::json;

constexpr char kFormat[] = "pg_dump-directory";
// Candidate rows looked up in the restore point's copy per query.
constexpr size_t kLookupBatch = 2000;
// The xmin shortcut of the ledger is used while fewer xids than this have
// been consumed since the restore point (age() is a 32-bit quantity).
constexpr uint64_t kMaxXidDistance = 1ull << 30;
// Tables whose ledger takes longer are named in the progress output.
constexpr int64_t kSlowTableMs = 100;
// Below this many rows written since the restore point (per the table
// statistics), the ledger fetches a table's candidate rows in the same scan
// that counts it.
constexpr int64_t kOneScanMaxWrites = 20'000;
// An admin connection idle longer than this is not reused (a watch daemon
// keeps its drivers for days).
constexpr auto kAdminIdle = std::chrono::seconds(30);

struct Loaded {
  PgSettings settings;
  ConnParams params;
  const std::string& db() const { return params.dbname(); }
};

Result<Loaded> Load(const ComponentSpec& c) {
  auto s = ParsePgSettings(c.settings);
  if (!s.ok()) return s.status().WithContext("component " + c.name);
  auto p = ConnParams::Parse(s->connection);
  if (!p.ok()) return p.status().WithContext("component " + c.name);
  if (s->admin_dbname == p->dbname()) {
    return Status::InvalidArgument(
        "component " + c.name + ": admin_dbname must name another database than the live one (" +
        p->dbname() + "): a database cannot be renamed from a session inside it");
  }
  return Loaded{std::move(s).value(), std::move(p).value()};
}

Result<std::unique_ptr<PgConn>> ConnectTo(const Loaded& l, const std::string& dbname) {
  return PgConn::Connect(l.params, dbname, l.settings.connect_timeout_ms);
}

Result<std::unique_ptr<PgConn>> ConnectAdmin(const Loaded& l) {
  return ConnectTo(l, l.settings.admin_dbname);
}

Env* EnvOf(const DriverContext& ctx) { return ctx.env ? ctx.env : Env::Default(); }

int64_t NowMs(const DriverContext& ctx) { return EnvOf(ctx)->clock()->NowMicros() / 1000; }

std::string WorkDir(const DriverContext& ctx, const ComponentSpec& c) {
  if (!ctx.state_dir.empty()) return JoinPath(ctx.state_dir, "components/" + c.name);
  const char* t = std::getenv("TMPDIR");
  return JoinPath(t && *t ? t : "/tmp", "backstop-pg-" + c.name);
}

std::string Sanitized(const std::string& id) {
  std::string out;
  for (char ch : id) out += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return out;
}

std::string BinDir(const PgSettings& s, int server_version_num, Env* env) {
  if (!s.bin_dir.empty()) return s.bin_dir;
  std::string dir = "/usr/lib/postgresql/" + std::to_string(server_version_num / 10000) + "/bin";
  if (env->fs()->Exists(JoinPath(dir, "pg_dump"))) return dir;
  return "";  // PATH
}

std::string Tool(const std::string& bin_dir, const std::string& name) {
  return bin_dir.empty() ? name : JoinPath(bin_dir, name);
}

std::string LastLines(const std::string& text, int n) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  std::string out;
  size_t from = lines.size() > static_cast<size_t>(n) ? lines.size() - n : 0;
  for (size_t i = from; i < lines.size(); ++i) out += (out.empty() ? "" : " | ") + lines[i];
  return out;
}

Status RunTool(const DriverContext& ctx, const Loaded& l, std::vector<std::string> argv,
               const std::string& what, const std::map<std::string, std::string>& extra_env = {}) {
  ProcessOptions o;
  o.argv = std::move(argv);
  o.env = l.params.ChildEnv(l.settings.connect_timeout_ms);
  for (const auto& [k, v] : extra_env) o.env[k] = v;
  auto r = EnvOf(ctx)->processes()->Run(o);
  if (!r.ok())
    return Status::IOError(what + ": cannot start " + o.argv[0] + ": " +
                           l.params.Mask(r.status().message()));
  if (!r->success()) {
    std::string err = LastLines(r->err, 8);
    if (err.empty()) err = LastLines(r->out, 4);
    std::string how = r->timed_out     ? "timed out"
                      : r->term_signal ? "killed by signal " + std::to_string(r->term_signal)
                                       : "exit " + std::to_string(r->exit_code);
    return Status::FailedPrecondition(what + " failed (" + how + "): " + l.params.Mask(err));
  }
  return Status::OK();
}

// Runs fn(0..n-1) on up to `threads` threads; returns the first error.
Status ParallelFor(size_t n, int threads, const std::function<Status(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  Status first;
  auto worker = [&] {
    for (;;) {
      size_t i = next++;
      if (i >= n) return;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (!first.ok()) return;
      }
      Status st = fn(i);
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = st;
      }
    }
  };
  int t = std::max(1, std::min<int>(threads, static_cast<int>(n)));
  std::vector<std::thread> pool;
  for (int i = 1; i < t; ++i) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
  return first;
}

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
Status TerminateSessions(PgConn& admin, const std::string& name, int keep_pid = 0) {
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

// Connects to `name`, a database the driver keeps closed (ALLOW_CONNECTIONS
// false: a shadow, a staged or retained copy), and closes it again at once:
// it is open only for the few milliseconds of this connect, and any other
// session that slipped in meanwhile is ended. So nobody but the driver can
// change a verified copy between its verification and the swap.
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

// ALTER DATABASE RENAME waits ~5 s and fails while sessions remain: end them
// first and retry a few times in case a client slipped in.
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

// pg_restore's sessions commit without waiting for the WAL flush: the target
// is a shadow or staged database nobody uses until it is verified, and a
// crash before that rebuilds it, so a lost commit costs nothing. (A
// conninfo `options` setting takes precedence over PGOPTIONS.)
Status RestoreDump(const DriverContext& ctx, const Loaded& l, const std::string& bin_dir,
                   const std::string& dump_dir, const std::string& target) {
  return RunTool(ctx, l,
                 {Tool(bin_dir, "pg_restore"), "--format=directory",
                  "--jobs=" + std::to_string(l.settings.jobs), "--exit-on-error", "--no-password",
                  "--dbname=" + l.params.ForCommandLine(target), dump_dir},
                 "pg_restore into database " + target,
                 {{"PGOPTIONS", "-c synchronous_commit=off"}});
}

// ---- the data-loss ledger ----

// Streams JSON lines to a temporary file, renamed into place on Commit().
class LedgerWriter {
 public:
  LedgerWriter(Env* env, std::string path) : env_(env), path_(std::move(path)) {}
  ~LedgerWriter() {
    if (f_) {
      std::fclose(f_);
      ::unlink(tmp_.c_str());
    }
  }
  Status Open() {
    if (path_.empty()) return Status::OK();
    BACKSTOP_RETURN_IF_ERROR(env_->fs()->CreateDirs(Dirname(path_)));
    tmp_ = path_ + ".tmp-" + std::to_string(::getpid());
    // Private (the rows' keys, or their values for a salvage), and never
    // written through a symlink left in its place.
    int fd = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return Status::FromErrno("create " + tmp_, errno);
    f_ = ::fdopen(fd, "w");
    if (!f_) {
      int e = errno;
      ::close(fd);
      return Status::FromErrno("create " + tmp_, e);
    }
    // A leftover of a killed run may have had another mode.
    if (::fchmod(fd, 0600) != 0) return Status::FromErrno("chmod " + tmp_, errno);
    return Status::OK();
  }
  Status Line(const json& j) {
    if (!f_) return Status::OK();
    std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
    s += '\n';
    if (std::fwrite(s.data(), 1, s.size(), f_) != s.size()) {
      return Status::FromErrno("write " + tmp_, errno);
    }
    return Status::OK();
  }
  Status Commit() {
    if (!f_) return Status::OK();
    bool ok = std::fflush(f_) == 0 && ::fsync(fileno(f_)) == 0;
    int e = errno;
    std::fclose(f_);
    f_ = nullptr;
    if (!ok) return Status::FromErrno("write " + tmp_, e);
    BACKSTOP_RETURN_IF_ERROR(env_->fs()->Rename(tmp_, path_));
    return env_->fs()->SyncDir(Dirname(path_));
  }
  const std::string& path() const { return path_; }

 private:
  Env* env_;
  std::string path_;
  std::string tmp_;
  FILE* f_ = nullptr;
};

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

std::string CopyOf(const std::string& select) { return "COPY (" + select + ") TO STDOUT"; }

std::string FullSelect(const TablePlan& p, const std::string& table_sql,
                       const std::string& where = "") {
  return "SELECT " + KeySelect(p) + " FROM ONLY " + table_sql + " t" +
         (where.empty() ? "" : " WHERE " + where) + " ORDER BY " + KeyOrder(p);
}

struct LedgerContext {
  PgConn* live = nullptr;
  PgConn* rp = nullptr;
  LedgerWriter* writer =
      nullptr;  // Set when the xmin shortcut applies: age() of the restore point's snapshot
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

Status WriteChange(LedgerContext& lc, const TablePlan& p, RowChange change, const KeyedRow& row) {
  return lc.writer->Line(
      {{"table", p.display}, {"change", RowChangeName(change)}, {"key", KeyJson(p, row)}});
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
    BACKSTOP_RETURN_IF_ERROR(lc.writer->Line({{"table", p.display},
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
    BACKSTOP_RETURN_IF_ERROR(lc.writer->Line(
        {{"table", p.display},
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

// Restore leaves <run_dir>/postgres-<component>.swapped once it has set the
// live database aside, so that an undo can tell "never swapped" (nothing to
// undo) from "swapped, then pruned" (cannot undo).
std::string SwapMarkerPath(const DriverContext& ctx, const std::string& component,
                           const std::string& run_id) {
  if (ctx.state_dir.empty() || run_id.empty()) return "";
  return JoinPath(ctx.state_dir, "runs/" + run_id + "/postgres-" + component + ".swapped");
}

// Prepare leaves <run_dir>/postgres-<component>.verified once it has verified
// the shadow and closed it to everyone else: which database (oid, cluster) it
// verified, for which restore point. VerifyRestored proves with it that the
// live database after the swap is that very database.
std::string IdentityPath(const DriverContext& ctx, const std::string& component,
                         const std::string& run_id) {
  if (ctx.state_dir.empty() || run_id.empty()) return "";
  return JoinPath(ctx.state_dir, "runs/" + run_id + "/postgres-" + component + ".verified");
}

// The cluster's system identifier; "" when pg_control_system() is not allowed.
std::string SystemIdentifier(PgConn& conn) {
  auto v = conn.Value("SELECT system_identifier::text FROM pg_control_system()");
  return v.ok() ? *v : "";
}

bool NeverSwapped(const DriverContext& ctx, const ComponentSpec& c, const json& entry) {
  if (entry.value("database_existed", true) == false) return true;
  std::string path = SwapMarkerPath(ctx, c.name, entry.value("run_id", ""));
  return !path.empty() && !EnvOf(ctx)->fs()->Exists(path);
}

// A JSON file the driver wrote under the state dir (a marker or a record);
// null when absent or unreadable.
json ReadRecord(const DriverContext& ctx, const std::string& path) {
  if (path.empty()) return json();
  auto text = EnvOf(ctx)->fs()->ReadFile(path);
  if (!text.ok()) return json();
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  return j.is_object() ? j : json();
}

Status WriteRecord(const DriverContext& ctx, const std::string& path, const json& record) {
  if (path.empty()) return Status::OK();
  Env* env = EnvOf(ctx);
  BACKSTOP_RETURN_IF_ERROR(env->fs()->CreateDirs(Dirname(path)));
  return env->fs()->WriteFileAtomic(path, record.dump() + "\n");
}

// An undo that swapped run R's retained database back in leaves
// <state_dir>/runs/R/postgres-<component>.swapped-back naming the undo: R's
// safety entry holds nothing any more, and says by whom it was used.
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

// Marker values cannot hold spaces (tokens are space-separated).
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

// The comments that say what a database managed by this driver is. They name
// the live database too: one restore point covers every component, and two
// components may live in the same cluster.
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

// A shadow verified by Prepare; `run` empty: of any run.
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

// True when `name` is the staged copy Stage verified (entry.staged_verified)
// and no session has been opened on it since: same oid, no session open, the
// same number of sessions ever opened, statistics never reset. Its row counts
// and foreign keys are then those Stage verified. Otherwise false, with the
// reason in *why_not (PostgreSQL before 14 has no session count).
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

// What has been written to the tables of `schemas` in the connected
// database, as far as the cumulative statistics and the catalog tell: per
// table its oid, its file (TRUNCATE and rewrites change it), its columns and
// its counts of inserted, updated and deleted rows. Two equal stamps, the
// second read once every other session has ended (a backend flushes its
// statistics before it leaves pg_stat_activity), mean no row was written in
// between; statistics that lag can only make them differ. Empty when
// track_counts is off: then nothing can be told.
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

// A safety entry whose run never set the database aside (refused before the
// swap) holds no copy of it: it restores the database only while that is
// provably the one the entry saw, the same database (oid) with nothing
// written since (write stamp). `live` is a session on it; for a proof that
// nothing is still being written, every other session must have ended.
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

// The report of a ledger file this run already wrote (one line per row:
// table, change, key).
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

// ---- the driver ----

class PostgresDriver : public Driver {
 public:
  Result<json> Snapshot(const ComponentSpec& c, DriverContext& ctx) override;
  Result<json> Describe(const ComponentSpec& c, DriverContext& ctx) override;
  Status Prepare(const ComponentSpec& c, const json& entry, DriverContext& ctx) override;
  Result<DataLossReport> AssessLoss(const ComponentSpec& c, const json& entry,
                                    DriverContext& ctx) override;
  Status Restore(const ComponentSpec& c, const json& entry, DriverContext& ctx) override;
  Status VerifyRestored(const ComponentSpec& c, const json& entry, DriverContext& ctx) override;
  HealthResult Health(const ComponentSpec& c, DriverContext& ctx) override;
  Result<std::vector<IntegrityCheck>> CheckIntegrity(const ComponentSpec& c, const json& entry,
                                                     DriverContext& ctx) override;
  Result<std::vector<IntegrityCheck>> CheckInvariants(const ComponentSpec& c, const json& entry,
                                                      DriverContext& ctx) override;
  Status Prune(const ComponentSpec& c, const std::string& run_id, DriverContext& ctx) override;
  std::vector<std::string> BlobsNeeded(const ComponentSpec& c, const json& entry,
                                       DriverContext& ctx) override;
  Status DiscardSnapshot(const ComponentSpec& c, const json& entry, DriverContext& ctx) override;
  Status CheckRestorable(const ComponentSpec& c, const json& entry, DriverContext& ctx) override;
  Result<SalvageResult> Salvage(const ComponentSpec& c, const SalvageRequest& req,
                                DriverContext& ctx) override;

 private:
  // What a safety entry (a retained database) can restore now. True: nothing
  // to undo (its run never replaced the database, which is proven unchanged
  // since; or the database did not exist then and still does not). False:
  // the retained database is there, is the very one the run set aside (same
  // oid), and can be swapped back in. FailedPrecondition saying why the entry
  // cannot restore the database otherwise.
  // Drops (or, made from a staged copy, renames back) the unused shadow `shadow`.
  Status ReleaseShadow(const Loaded& l, PgConn& admin, const std::string& shadow,
                       DriverContext& ctx);
  // What killed runs left: every shadow of this database but `keep_shadow`
  // and those verified for `adoptable_rp` (a Prepare adopts them), and the
  // scratch directories of other runs' restores. REQUIRES: no other run is
  // unfinished (a run starts, and prune acts, only then).
  Status RemoveLeftovers(const ComponentSpec& c, const Loaded& l, PgConn& admin, DriverContext& ctx,
                         const std::string& keep_shadow, const std::string& adoptable_rp);
  Result<bool> RetainedNothingToUndo(const ComponentSpec& c, const Loaded& l, const json& entry,
                                     DriverContext& ctx);
  Result<json> SafetySnapshot(const Loaded& l, DriverContext& ctx);
  Status Stage(const Loaded& l, DriverContext& ctx, const std::string& bin_dir,
               const std::string& dump_dir, const DatabaseInfo& props, json& entry);
  Status PrepareRetained(const ComponentSpec& c, const Loaded& l, const json& entry,
                         DriverContext& ctx);
  Status BuildFromDump(const ComponentSpec& c, const Loaded& l, PgConn& admin, const json& entry,
                       DriverContext& ctx, const std::string& shadow);
  // `recount`: false for a staged copy proven untouched since Stage counted it.
  Status VerifyShadow(const Loaded& l, PgConn& admin, const json& entry, const std::string& shadow,
                      bool recount);
  // `counted`: whether Prepare counted the rows itself (else Stage did).
  Status RecordIdentity(const ComponentSpec& c, const Loaded& l, PgConn& admin, DriverContext& ctx,
                        const std::string& shadow, const std::string& rp, const std::string& from,
                        bool counted);
  // For a safety entry: which database (`name`, `oid`) this run makes the
  // live one, recorded once before it does, for VerifyRestored.
  // Restore of a safety entry whose run never replaced the database: with
  // every other session ended and connections refused, proves nothing was
  // written since the entry (else fails, the database untouched), and
  // records the live database as the restored one.
  Status RestoreUnchanged(const ComponentSpec& c, const Loaded& l, PgConn& admin, const json& entry,
                          DriverContext& ctx, const DatabaseInfo& live);
  Status RecordRetainedIdentity(const ComponentSpec& c, const Loaded& l, PgConn& admin,
                                DriverContext& ctx, const json& entry, const std::string& name,
                                uint32_t oid);
  // True when the live database is the shadow Prepare of this run verified;
  // otherwise false with the reason in *why_not.
  bool ProveIdentity(const ComponentSpec& c, const Loaded& l, PgConn& live, const json& entry,
                     DriverContext& ctx, std::string* why_not);
  // The connection to the admin database, kept between the calls of a run
  // (each new session costs the server a process: ~5 ms). Made again when it
  // was idle longer than kAdminIdleMs, no longer answers, or the settings
  // changed. The pointer is valid until the next call.
  Result<PgConn*> Admin(const Loaded& l);

  // The ledger; `live_in_window` is a connection to the live database that
  // Restore keeps while every other session is locked out (nullptr: connect).
  Result<DataLossReport> TakeLedger(const ComponentSpec& c, const json& entry, DriverContext& ctx,
                                    PgConn* live_in_window);
  // Inside the swap's window, with connections refused: ends every session
  // on the live database but `guard`'s, then takes the ledger again on
  // `guard` if any table was written since AssessLoss took it.
  Status CheckLateWrites(const ComponentSpec& c, const Loaded& l, PgConn& admin, PgConn& guard,
                         const json& entry, DriverContext& ctx);
  std::optional<DataLossReport> LossRevisedByRestore(const ComponentSpec& c) override {
    return revised_loss_;
  }

  std::unique_ptr<PgConn> admin_;
  std::string admin_key_;
  std::chrono::steady_clock::time_point admin_used_;
  // The last ledger AssessLoss took in a run: for which run, and the write
  // stamp of the live database read just before its snapshot.
  struct LedgerTaken {
    std::string run_id;
    std::string write_stamp;
  };
  std::optional<LedgerTaken> ledger_taken_;
  std::optional<DataLossReport> revised_loss_;  // by the last Restore
};

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

Result<json> PostgresDriver::SafetySnapshot(const Loaded& l, DriverContext& ctx) {
  json entry = {{"driver", "postgres"},
                {"format", "retained-database"},
                {"restore_point_id", ctx.restore_point_id},
                {"database", l.db()},
                {"retained_database", PreRollbackName(l.db(), ctx.run_id)},
                {"run_id", ctx.run_id},
                {"blobs", json::array()}};
  if (ctx.run_id.empty()) {
    return Status::InvalidArgument("a safety snapshot of database " + l.db() +
                                   " needs a run id (it names the retained database)");
  }
  {
    // A rollback may be what brings back a database that was dropped: then
    // there is nothing to set aside, and nothing to undo later.
    BACKSTOP_ASSIGN_OR_RETURN(PgConn * admin, Admin(l));
    BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo live_info, GetDatabase(*admin, l.db()));
    if (!live_info.exists) {
      entry["database_existed"] = false;
      return entry;
    }
  }
  BACKSTOP_ASSIGN_OR_RETURN(auto live, ConnectTo(l, l.db()));
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult r,
      live->Exec("SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
                 "ELSE pg_current_wal_lsn() END::text, current_setting('server_version'), "
                 "(SELECT oid::bigint FROM pg_database WHERE datname = current_database())"));
  // If the run stops before replacing the database, this entry holds no copy
  // of it: it can then restore it only while it is provably this database
  // with nothing written since (UnchangedSinceSafety).
  entry["live_oid"] = static_cast<uint32_t>(r.GetInt(0, 2));
  BACKSTOP_ASSIGN_OR_RETURN(std::string stamp, WriteStamp(*live, l.settings));
  entry["write_stamp"] = stamp;
  entry["position"] = {{"lsn", r.Get(0, 0)}};
  entry["server_version"] = r.Get(0, 1);
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<ForeignKey> fks, ListForeignKeys(*live, l.settings));
  json fk_json = json::array();
  for (const auto& fk : fks) fk_json.push_back(fk.ToJson());
  entry["foreign_keys"] = fk_json;
  return entry;
}

Result<json> PostgresDriver::Snapshot(const ComponentSpec& c, DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(Loaded l, Load(c));
  if (ctx.snapshot_kind == "safety") return SafetySnapshot(l, ctx);
  if (ctx.store == nullptr) return Status::FailedPrecondition("postgres snapshot: no store");
  Env* env = EnvOf(ctx);
  const std::string& db = l.db();
  int64_t t0 = NowMs(ctx);

  BACKSTOP_ASSIGN_OR_RETURN(auto live, ConnectTo(l, db));
  std::string system_id;
  if (auto v = live->Value("SELECT system_identifier::text FROM pg_control_system()"); v.ok()) {
    system_id = *v;
  }
  // One REPEATABLE READ snapshot, exported to pg_dump, so that the counts
  // below describe exactly the rows of the dump.
  BACKSTOP_RETURN_IF_ERROR(live->Run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  BACKSTOP_ASSIGN_OR_RETURN(std::string snapshot_id, live->Value("SELECT pg_export_snapshot()"));
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult info,
      live->Exec("SELECT pg_snapshot_xmin(pg_current_snapshot())::text, "
                 "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
                 "ELSE pg_current_wal_lsn() END::text, "
                 "pg_database_size(current_database()), current_setting('server_version'), "
                 "current_setting('server_version_num')::int"));
  const int64_t size = info.GetInt(0, 2);
  const int server_num = static_cast<int>(info.GetInt(0, 4));
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<TableInfo> tables, ListTables(*live, l.settings));
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<ForeignKey> fks, ListForeignKeys(*live, l.settings));
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<std::string> roles, ListNeededRoles(*live));
  BACKSTOP_ASSIGN_OR_RETURN(DatabaseInfo props, GetDatabase(*live, db));

  json row_counts = json::object(), max_keys = json::object(), tables_json = json::array();
  for (const auto& t : tables) {
    bool int_key = t.pk.size() == 1 && t.Column(t.pk[0]) && t.Column(t.pk[0])->is_integer;
    std::string sql = "SELECT count(*)" +
                      (int_key ? ", max(" + QuoteIdent(t.pk[0]) + ")::text" : std::string()) +
                      " FROM ONLY " + t.Sql();
    BACKSTOP_ASSIGN_OR_RETURN(PgResult r, live->Exec(sql));
    row_counts[t.Qualified()] = r.GetInt(0, 0);
    if (int_key) {
      max_keys[t.Qualified()] = r.IsNull(0, 1) ? json(nullptr) : json(r.GetInt(0, 1));
    }
    tables_json.push_back({{"schema", t.schema}, {"name", t.name}, {"oid", t.oid}, {"pk", t.pk}});
  }
  // Table statistics (rows written so far): a hint for the ledger's scans.
  json table_writes = json::object();
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult writes,
      live->Exec("SELECT schemaname || '.' || relname, n_tup_ins + n_tup_upd + n_tup_del "
                 "FROM pg_stat_user_tables WHERE schemaname = ANY($1::text[])",
                 {ArrayLiteral(l.settings.schemas)}));
  for (int i = 0; i < writes.rows(); ++i) table_writes[writes.Get(i, 0)] = writes.GetInt(i, 1);
  json sequences = json::object();
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult seq, live->Exec("SELECT schemaname || '.' || sequencename, last_value::text "
                               "FROM pg_sequences WHERE schemaname = ANY($1::text[]) ORDER BY 1",
                               {ArrayLiteral(l.settings.schemas)}));
  for (int i = 0; i < seq.rows(); ++i) {
    sequences[seq.Get(i, 0)] = seq.IsNull(i, 1) ? json(nullptr) : json(seq.GetInt(i, 1));
  }

  const std::string work = WorkDir(ctx, c);
  const std::string dump_dir = JoinPath(
      work, "dump-" + Sanitized(ctx.restore_point_id.empty() ? "adhoc" : ctx.restore_point_id));
  BACKSTOP_RETURN_IF_ERROR(env->fs()->RemoveAll(dump_dir));  // a crashed earlier attempt
  BACKSTOP_RETURN_IF_ERROR(env->fs()->CreateDirs(work, 0700));
  const std::string bin_dir = BinDir(l.settings, server_num, env);
  ctx.Progress("pg_dump of database " + db + " (" + FormatThousands(size / 1'000'000) + " MB)");
  // -Z0: the store compresses (zstd) and deduplicates; gzip here would only cost time.
  Status dumped = RunTool(
      ctx, l,
      {Tool(bin_dir, "pg_dump"), "--format=directory", "--jobs=" + std::to_string(l.settings.jobs),
       "--compress=0", "--snapshot=" + snapshot_id, "--no-password", "--file=" + dump_dir,
       "--dbname=" + l.params.ForCommandLine(db)},
      "pg_dump of database " + db);
  (void)live->Run("COMMIT");
  live.reset();
  if (!dumped.ok()) {
    (void)env->fs()->RemoveAll(dump_dir);
    return dumped;
  }
  int64_t t_dump = NowMs(ctx);

  auto names = env->fs()->ListDir(dump_dir);
  if (!names.ok()) return names.status();
  std::vector<json> files(names->size());
  Status put = ParallelFor(names->size(), l.settings.jobs, [&](size_t i) -> Status {
    const std::string path = JoinPath(dump_dir, (*names)[i]);
    auto st = env->fs()->Stat(path);
    if (!st.ok()) return st.status();
    auto digest = ctx.store->PutFile(path);
    if (!digest.ok()) return digest.status().WithContext("storing " + path);
    files[i] = {{"name", (*names)[i]}, {"digest", *digest}, {"size", st->size}};
    return Status::OK();
  });
  if (!put.ok()) {
    (void)env->fs()->RemoveAll(dump_dir);
    return put;
  }
  int64_t t_store = NowMs(ctx);
  std::set<std::string> blob_set;
  for (const auto& f : files) blob_set.insert(f["digest"].get<std::string>());

  json fk_json = json::array();
  for (const auto& fk : fks) fk_json.push_back(fk.ToJson());
  json entry = {
      {"driver", "postgres"},
      {"format", kFormat},
      {"restore_point_id", ctx.restore_point_id},
      {"database", db},
      {"files", files},
      {"blobs", std::vector<std::string>(blob_set.begin(), blob_set.end())},
      {"position",
       {{"lsn", info.Get(0, 1)},
        {"row_counts", row_counts},
        {"max_keys", max_keys},
        {"sequences", sequences}}},
      {"tables", tables_json},
      {"foreign_keys", fk_json},
      {"roles", roles},
      {"database_properties", props.ToJson()},
      {"size_bytes", size},
      {"server_version", info.Get(0, 3)},
      {"server_version_num", server_num},
      {"xid",
       {{"snapshot_xmin", info.Get(0, 0)},
        {"system_identifier", system_id},
        {"table_writes", table_writes}}},
  };
  json timings = {{"dump_ms", t_dump - t0}, {"store_ms", t_store - t_dump}};

  bool stage =
      l.settings.staged == "always" ||
      (l.settings.staged == "auto" && static_cast<uint64_t>(size) <= l.settings.staged_max_size);
  if (stage && !ctx.restore_point_id.empty() && !ctx.dry_run) {
    Status st = Stage(l, ctx, bin_dir, dump_dir, props, entry);
    if (!st.ok()) {
      // The dump is in the store: the restore point stays valid, only slower to roll back to.
      entry["staged_error"] = st.message();
      ctx.Progress("staging database " + db +
                   " failed (the restore point is still complete): " + st.message());
    }
    timings["stage_ms"] = NowMs(ctx) - t_store;
  }
  entry["timings"] = timings;
  (void)env->fs()->RemoveAll(dump_dir);
  return entry;
}

Status PostgresDriver::Stage(const Loaded& l, DriverContext& ctx, const std::string& bin_dir,
                             const std::string& dump_dir, const DatabaseInfo& props, json& entry) {
  const std::string name = StagedName(l.db(), ctx.restore_point_id);
  BACKSTOP_ASSIGN_OR_RETURN(PgConn * admin, Admin(l));
  BACKSTOP_RETURN_IF_ERROR(DropDatabase(*admin, name));  // a crashed earlier attempt
  ctx.Progress("staging restore point " + ctx.restore_point_id + " into database " + name);
  Status st = CreateDatabaseLike(*admin, name, props);
  if (st.ok()) st = RestoreDump(ctx, l, bin_dir, dump_dir, name);
  if (st.ok()) st = ApplyDatabaseProperties(*admin, name, props);
  if (st.ok()) {
    // Closed from here on: the verification below is the last session on it
    // until a rollback (ConnectToClosed ends any other).
    auto conn = ConnectToClosed(*admin, l, name);
    if (!conn.ok()) {
      st = conn.status();
    } else {
      auto checks =
          RunChecks(**conn, entry, l.settings,
                    {.row_counts = true, .foreign_keys = true, .orphans = false, .queries = false});
      if (!checks.ok()) {
        st = checks.status();
      } else if (std::string f = DescribeFailures(*checks); !f.empty()) {
        st = Status::FailedPrecondition("staged database " + name + " does not match: " + f);
      }
    }
  }
  // Our session has ended; wait until its backend has exited (and so
  // written its statistics) before reading the session count below.
  if (st.ok()) st = TerminateSessions(*admin, name);
  if (st.ok())
    st = admin->Run(CommentSql(*admin, name, StagedMarker(l.db(), ctx.restore_point_id)));
  if (!st.ok()) {
    (void)DropDatabase(*admin, name);
    return st;
  }
  entry["staged_database"] = name;
  // The copy as verified: Prepare skips recounting it when no session has
  // been opened on it since (StagedCopyUntouched).
  if (auto stats = GetSessionStats(*admin, name); stats.ok() && stats->open == 0) {
    entry["staged_verified"] = {
        {"oid", stats->oid}, {"sessions", stats->sessions}, {"stats_reset", stats->stats_reset}};
  }
  // Each staged copy is a whole database: keep the newest few only (their
  // restore points stay complete, they just roll back from the dump).
  auto older = admin->Exec(
      "SELECT d.datname FROM pg_database d WHERE d.datname <> $1 AND "
      "shobj_description(d.oid, 'pg_database') LIKE $2 ORDER BY d.oid DESC OFFSET $3",
      {name, LikePrefix("backstop:staged db=" + MarkerValue(l.db()) + " "),
       std::to_string(std::max(0, l.settings.staged_keep - 1))});
  if (older.ok()) {
    for (int i = 0; i < older->rows(); ++i) {
      if (DropDatabase(*admin, older->Get(i, 0)).ok()) {
        ctx.Progress("dropped older staged database " + older->Get(i, 0) + " (staged_keep " +
                     std::to_string(l.settings.staged_keep) + ")");
      }
    }
  }
  return Status::OK();
}

Result<json> PostgresDriver::Describe(const ComponentSpec& c, DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(Loaded l, Load(c));
  BACKSTOP_ASSIGN_OR_RETURN(auto live, ConnectTo(l, l.db()));
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult r, live->Exec("SELECT current_setting('server_version'), "
                             "pg_database_size(current_database()), "
                             "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
                             "ELSE pg_current_wal_lsn() END::text"));
  json out = {{"database", l.db()},
              {"server_version", r.Get(0, 0)},
              {"size_bytes", r.GetInt(0, 1)},
              {"position", {{"lsn", r.Get(0, 2)}}}};
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<TableInfo> tables, ListTables(*live, l.settings));
  json counts = json::object();
  for (const auto& t : tables) {
    BACKSTOP_ASSIGN_OR_RETURN(std::string n, live->Value("SELECT count(*) FROM ONLY " + t.Sql()));
    counts[t.Qualified()] = std::stoll(n);
  }
  out["position"]["row_counts"] = counts;
  // Databases this driver keeps aside, for status and prune.
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult kept, live->Exec("SELECT d.datname FROM pg_database d WHERE "
                                "shobj_description(d.oid, 'pg_database') LIKE $1 ORDER BY 1",
                                {LikePrefix("backstop:staged db=" + MarkerValue(l.db()) + " ")}));
  json staged = json::array();
  for (int i = 0; i < kept.rows(); ++i) staged.push_back(kept.Get(i, 0));
  out["staged_databases"] = staged;
  BACKSTOP_ASSIGN_OR_RETURN(PgResult retained,
                            live->Exec("SELECT datname FROM pg_database WHERE datname LIKE $1 "
                                       "ORDER BY 1",
                                       {LikePrefix(PreRollbackName(l.db(), ""))}));
  json rets = json::array();
  for (int i = 0; i < retained.rows(); ++i) rets.push_back(retained.Get(i, 0));
  out["retained_databases"] = rets;
  return out;
}

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
  Env* env = EnvOf(ctx);
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
                                                                  !EnvOf(ctx)->fs()->Exists(path) &&
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
  if (path.empty() || EnvOf(ctx)->fs()->Exists(path)) return Status::OK();
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
  auto text = EnvOf(ctx)->fs()->ReadFile(path);
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

Result<DataLossReport> PostgresDriver::AssessLoss(const ComponentSpec& c, const json& entry,
                                                  DriverContext& ctx) {
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
      return ReportFromLedger(EnvOf(ctx)->fs(), c.name, ledger_path);
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
  BACKSTOP_RETURN_IF_ERROR(live->Run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  BACKSTOP_RETURN_IF_ERROR(rp->Run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<TableInfo> live_tables, ListTables(*live, l.settings));
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<TableInfo> rp_tables, ListTables(*rp, l.settings));

  LedgerContext lc;
  lc.live = live;
  lc.rp = rp.get();
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
        oid == live_info.oid) {
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
            {ArrayLiteral(l.settings.schemas)});
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

  LedgerWriter writer(EnvOf(ctx), ledger_path);
  BACKSTOP_RETURN_IF_ERROR(writer.Open());
  lc.writer = &writer;

  std::map<std::string, std::pair<const TableInfo*, const TableInfo*>> all;
  for (const auto& t : live_tables) all[t.Qualified()].first = &t;
  for (const auto& t : rp_tables) all[t.Qualified()].second = &t;
  for (const auto& [name, sides] : all) {
    int64_t t_table = NowMs(ctx);
    auto item = CompareTable(lc, c.name, sides.first, sides.second);
    if (!item.ok()) return item.status().WithContext("data-loss ledger of " + db);
    if (item->total() > 0) report.items.push_back(*item);
    if (int64_t ms = NowMs(ctx) - t_table; ms >= kSlowTableMs) {
      ctx.Progress("ledger of table " + item->object + ": " + FormatDurationMs(ms));
    }
  }
  // Sequences the restore moves back: the values handed out since will be
  // handed out again (a sequence created since goes with its table).
  BACKSTOP_ASSIGN_OR_RETURN(auto live_seqs, SequencePositions(*live, l.settings));
  BACKSTOP_ASSIGN_OR_RETURN(auto rp_seqs, SequencePositions(*rp, l.settings));
  BACKSTOP_ASSIGN_OR_RETURN(auto seq_tables, SequenceTables(*live));
  std::map<std::string, std::string> table_display;
  for (const auto& t : live_tables) table_display[t.Qualified()] = t.Display();
  for (const auto& [name, now] : live_seqs) {
    auto then = rp_seqs.find(name);
    if (then == rp_seqs.end() || now <= then->second) continue;
    PositionRewind r;
    r.component = c.name;
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
    BACKSTOP_RETURN_IF_ERROR(writer.Line(line));
  }
  BACKSTOP_RETURN_IF_ERROR(writer.Commit());
  CrashPointForTest("postgres.ledger-written");
  if (!ledger_path.empty()) report.ledger_files.push_back(ledger_path);
  (void)live->Run("COMMIT");
  (void)rp->Run("COMMIT");
  ctx.Progress("data-loss ledger of " + db + " against " + rp_db + " (" +
               (lc.horizon_age ? "rows written since the restore point" : "every row compared") +
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
  Clock* clock = EnvOf(ctx)->clock();
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
  Env* env = EnvOf(ctx);
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
  if (run_id.empty()) return RemoveLeftovers(c, l, *admin, ctx, "", "");
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
    (void)EnvOf(ctx)->fs()->RemoveAll(JoinPath(WorkDir(ctx, c), "restore-" + Sanitized(run_id)));
  }
  return Status::OK();
}

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
  Env* env = EnvOf(ctx);
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
  LedgerWriter out(env, req.output_path);
  BACKSTOP_RETURN_IF_ERROR(out.Open());
  for (const auto& r : rows) {
    BACKSTOP_RETURN_IF_ERROR(
        out.Line({{"table", r.table->Display()}, {"key", r.key}, {"row", r.row}}));
  }
  BACKSTOP_RETURN_IF_ERROR(out.Commit());
  result.exported = rows.size();
  ctx.Progress(std::to_string(rows.size()) + " discarded rows read from " + aside);
  if (!req.apply || rows.empty()) return result;
  BACKSTOP_ASSIGN_OR_RETURN(auto live, ConnectTo(l, db));
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<TableInfo> live_tables, ListTables(*live, l.settings));
  BACKSTOP_ASSIGN_OR_RETURN(result.applied,
                            ApplySalvage(*live, live_tables, rows, &result.conflicts));
  return result;
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

Status PostgresDriver::DiscardSnapshot(const ComponentSpec& c, const json& entry,
                                       DriverContext& ctx) {
  if (!entry.is_object() || IsRetainedEntry(entry)) return Status::OK();
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

}  // namespace

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
  };
  info.factory = [] { return std::unique_ptr<Driver>(new PostgresDriver()); };
  return info;
}

}  // namespace backstop::postgres

#include "testing/pg_server.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>

#include "base/env.h"
#include "testing/ports.h"

namespace backstop::testing {
namespace {

Status Chown(const std::string& path, const std::string& user) {
  passwd* pw = ::getpwnam(user.c_str());
  if (pw == nullptr) return Status::NotFound("user " + user + " does not exist");
  if (::chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    return Status::FromErrno("chown " + path, errno);
  }
  return Status::OK();
}

Result<ProcessResult> RunAsPostgres(std::vector<std::string> argv, int64_t timeout_ms) {
  ProcessOptions o;
  o.argv = {"runuser", "-u", "postgres", "--"};
  o.argv.insert(o.argv.end(), argv.begin(), argv.end());
  o.cwd = "/";
  o.timeout_ms = timeout_ms;
  return Env::Default()->processes()->Run(o);
}

std::string TempBase() {
  const char* base = std::getenv("TMPDIR");
  return base && *base ? base : "/tmp";
}

// A test that crashes skips the destructor and leaves its server running:
// stop and remove the servers whose owning test process is gone.
void ReapOrphans(const std::string& bin_dir) {
  FileSystem* fs = Env::Default()->fs();
  auto names = fs->ListDir(TempBase());
  if (!names.ok()) return;
  for (const auto& name : *names) {
    if (name.rfind("backstop-pgserver-", 0) != 0) continue;
    std::string dir = JoinPath(TempBase(), name);
    auto owner = fs->ReadFile(JoinPath(dir, "owner.pid"));
    if (!owner.ok()) continue;
    pid_t pid = static_cast<pid_t>(std::atoi(owner->c_str()));
    if (pid <= 0 || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    (void)RunAsPostgres(
        {JoinPath(bin_dir, "pg_ctl"), "-D", JoinPath(dir, "data"), "-m", "immediate", "-w", "stop"},
        60'000);
    (void)fs->RemoveAll(dir);
  }
}

}  // namespace

Result<std::unique_ptr<PgServer>> PgServer::Start(const Options& options) {
  std::unique_ptr<PgServer> s(new PgServer());
  s->options_ = options;
  const char* bin = std::getenv("BACKSTOP_PG_BIN_DIR");
  s->bin_dir_ = bin && *bin ? bin : "/usr/lib/postgresql/15/bin";
  if (!Env::Default()->fs()->Exists(JoinPath(s->bin_dir_, "initdb"))) {
    return Status::NotFound("PostgreSQL server binaries not found in " + s->bin_dir_ +
                            " (apt-get install postgresql)");
  }
  ReapOrphans(s->bin_dir_);
  std::string templ = TempBase() + "/backstop-pgserver-XXXXXX";
  char* made = ::mkdtemp(templ.data());
  if (made == nullptr) return Status::FromErrno("mkdtemp", errno);
  s->dir_ = made;
  BACKSTOP_RETURN_IF_ERROR(Env::Default()->fs()->WriteFileAtomic(
      JoinPath(s->dir_, "owner.pid"), std::to_string(::getpid()) + "\n"));
  // The parent of the data directory must be traversable by postgres.
  ::chmod(s->dir_.c_str(), 0755);
  BACKSTOP_RETURN_IF_ERROR(Chown(s->dir_, "postgres"));
  auto r = RunAsPostgres(
      {JoinPath(s->bin_dir_, "initdb"), "-D", JoinPath(s->dir_, "data"), "-U", "postgres",
       "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"},
      120'000);
  if (!r.ok()) return r.status();
  if (!r->success()) return Status::Internal("initdb failed: " + r->Describe() + "\n" + r->err);
  BACKSTOP_RETURN_IF_ERROR(Env::Default()->fs()->CreateDirs(JoinPath(s->dir_, "sock"), 0755));
  BACKSTOP_RETURN_IF_ERROR(Chown(JoinPath(s->dir_, "sock"), "postgres"));
  Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    BACKSTOP_ASSIGN_OR_RETURN(s->port_, ReserveLoopbackPort());
    last = s->StartServer();
    if (last.ok()) return s;
  }
  return last;
}

Status PgServer::StartServer() {
  std::string opts =
      "-p " + std::to_string(port_) + " -k " + JoinPath(dir_, "sock") +
      " -c listen_addresses=127.0.0.1 -c max_connections=" +
      std::to_string(options_.max_connections) +
      (options_.fsync ? "" : " -c fsync=off -c synchronous_commit=off") +
      " -c full_page_writes=off" +
      (options_.logical_decoding ? " -c wal_level=logical -c max_replication_slots=10" : "");
  auto r = RunAsPostgres({JoinPath(bin_dir_, "pg_ctl"), "-D", JoinPath(dir_, "data"), "-l",
                          JoinPath(dir_, "server.log"), "-w", "-t", "60", "-o", opts, "start"},
                         90'000);
  if (!r.ok()) return r.status();
  if (!r->success()) {
    auto log = Env::Default()->fs()->ReadFile(JoinPath(dir_, "server.log"));
    return Status::Unavailable("pg_ctl start on port " + std::to_string(port_) +
                               " failed: " + r->Describe() + "\n" + (log.ok() ? *log : ""));
  }
  running_ = true;
  return Status::OK();
}

Status PgServer::Stop() {
  if (!running_) return Status::OK();
  auto r = RunAsPostgres(
      {JoinPath(bin_dir_, "pg_ctl"), "-D", JoinPath(dir_, "data"), "-m", "fast", "-w", "stop"},
      60'000);
  running_ = false;
  if (!r.ok()) return r.status();
  if (!r->success()) return Status::Internal("pg_ctl stop failed: " + r->Describe());
  return Status::OK();
}

Status PgServer::Restart() {
  if (running_) return Status::OK();
  return StartServer();
}

PgServer::~PgServer() {
  (void)Stop();
  if (!dir_.empty() && std::getenv("BACKSTOP_KEEP_TEST_DIRS") == nullptr) {
    (void)Env::Default()->fs()->RemoveAll(dir_);
  }
}

std::string PgServer::ConnInfo(const std::string& dbname, const std::string& user) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + dbname + " user=" + user;
}

Result<std::string> PgServer::Exec(const std::string& dbname, const std::string& sql,
                                   const std::string& user) const {
  PGconn* c = PQconnectdb(ConnInfo(dbname, user).c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(c);
    PQfinish(c);
    return Status::Unavailable("connect to " + dbname + ": " + msg);
  }
  PQsetNoticeProcessor(
      c, [](void*, const char*) {}, nullptr);
  PGresult* r = PQexec(c, sql.c_str());
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    std::string msg = PQresultErrorMessage(r);
    PQclear(r);
    PQfinish(c);
    return Status::FailedPrecondition("SQL failed in " + dbname + ": " + msg + "[" + sql + "]");
  }
  std::string out;
  for (int i = 0; i < PQntuples(r); ++i) {
    if (i) out += '\n';
    for (int j = 0; j < PQnfields(r); ++j) {
      if (j) out += '|';
      out += PQgetvalue(r, i, j);
    }
  }
  PQclear(r);
  PQfinish(c);
  return out;
}

Status PgServer::CreateUser(const std::string& name, bool createdb, bool superuser) const {
  std::string sql = "CREATE ROLE \"" + name + "\" LOGIN" + (createdb ? " CREATEDB" : "") +
                    (superuser ? " SUPERUSER" : "");
  auto r = Exec("postgres", sql);
  return r.ok() ? Status::OK() : r.status();
}

Status PgServer::CreateDb(const std::string& name, const std::string& owner) const {
  auto r = Exec("postgres", "CREATE DATABASE \"" + name + "\" OWNER \"" + owner + "\"");
  return r.ok() ? Status::OK() : r.status();
}

bool PgServer::DatabaseExists(const std::string& name) const {
  auto r = Exec("postgres", "SELECT count(*) FROM pg_database WHERE datname = '" + name + "'");
  return r.ok() && *r == "1";
}

Result<std::string> PgServer::RunClient(const std::vector<std::string>& argv,
                                        const std::string& user) const {
  ProcessOptions o;
  o.argv = argv;
  if (!o.argv.empty() && o.argv[0].find('/') == std::string::npos) {
    o.argv[0] = JoinPath(bin_dir_, o.argv[0]);
  }
  o.env = {{"PGHOST", "127.0.0.1"}, {"PGPORT", std::to_string(port_)}, {"PGUSER", user}};
  o.timeout_ms = 600'000;
  BACKSTOP_ASSIGN_OR_RETURN(ProcessResult r, Env::Default()->processes()->Run(o));
  if (!r.success()) {
    return Status::Internal(argv[0] + " failed: " + r.Describe() + "\n" + r.err);
  }
  return r.out;
}

}  // namespace backstop::testing

// PgServer: a real PostgreSQL server for tests, in a temporary directory on a
// free loopback port.
//
// The server refuses to run as root, so initdb and pg_ctl run as the
// `postgres` user (runuser) and the data and socket directories are owned by
// it. Authentication is `trust` on loopback; the superuser is `postgres`.
// The destructor stops the server (pg_ctl stop -m fast) and removes the
// directory; Start() also stops servers left behind by test processes that
// crashed (their pid is recorded in <dir>/owner.pid). Binaries come from /usr/lib/postgresql/15/bin
// (or $BACKSTOP_PG_BIN_DIR).
//
// Thread-safety: Start/Stop from one thread; Exec may be used from several
// threads (each call opens its own connection).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace backstop::testing {

class PgServer {
 public:
  struct Options {
    int max_connections = 40;
    bool fsync = false;  // tests do not need durability across power loss
    // wal_level=logical and room for replication slots, for flashback's
    // logical decoding; off by default, the other tests do not need the WAL.
    bool logical_decoding = false;
  };
  // initdb + pg_ctl start -w; retries on another port if the chosen one is taken.
  static Result<std::unique_ptr<PgServer>> Start(const Options& options);
  static Result<std::unique_ptr<PgServer>> Start() { return Start(Options()); }
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  const std::string& bin_dir() const { return bin_dir_; }
  // "host=127.0.0.1 port=N dbname=<db> user=<user>"
  std::string ConnInfo(const std::string& dbname, const std::string& user = "postgres") const;

  // Runs `sql` (one or more statements) as `user` in `dbname`; returns the
  // rows of the last statement, columns separated by '|', rows by '\n'.
  Result<std::string> Exec(const std::string& dbname, const std::string& sql,
                           const std::string& user = "postgres") const;
  // CREATE ROLE <name> LOGIN [CREATEDB] [SUPERUSER].
  Status CreateUser(const std::string& name, bool createdb = true, bool superuser = false) const;
  // CREATE DATABASE <name> OWNER <owner>.
  Status CreateDb(const std::string& name, const std::string& owner = "postgres") const;
  bool DatabaseExists(const std::string& name) const;
  // Runs a client program from bin_dir (pgbench, pg_dump, psql...) with
  // host/port/user set in its environment; returns its stdout.
  Result<std::string> RunClient(const std::vector<std::string>& argv,
                                const std::string& user = "postgres") const;

  // Stops the server now (idempotent). Also done by the destructor.
  Status Stop();
  // Starts it again after Stop() (same port and data).
  Status Restart();

 private:
  PgServer() = default;
  Status StartServer();
  std::string dir_;
  std::string bin_dir_;
  int port_ = 0;
  bool running_ = false;
  Options options_;
};

}  // namespace backstop::testing

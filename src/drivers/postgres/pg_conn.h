// Thin RAII layer over libpq for the postgres driver: connection parameters
// parsed from a conninfo string (with the password kept out of every message
// and command line), connections, query results and COPY TO STDOUT streams.
//
// Ownership: PgConn owns its PGconn, PgResult its PGresult.
// Thread-safety: none; one thread per object (libpq connections are not
// shareable). Separate objects may be used from separate threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

namespace backstop::postgres {

// Connection parameters parsed from a libpq conninfo ("host=... dbname=...")
// or URI. Values are kept as given; the password is never printed.
class ConnParams {
 public:
  // InvalidArgument when libpq cannot parse `conninfo` or it names no dbname.
  static Result<ConnParams> Parse(const std::string& conninfo);

  const std::string& dbname() const { return dbname_; }
  const std::string& password() const { return password_; }
  std::string Get(const std::string& key) const;

  // For messages: "dbname=shop host=127.0.0.1 port=5432 user=app" — never the password.
  std::string Display() const;
  // A conninfo for pg_dump/pg_restore --dbname, for database `dbname`,
  // without the password (that goes in PGPASSWORD, see ChildEnv).
  std::string ForCommandLine(const std::string& dbname) const;
  // Environment for child programs: PGPASSWORD (if any), PGCONNECT_TIMEOUT, PGAPPNAME.
  std::map<std::string, std::string> ChildEnv(int64_t connect_timeout_ms) const;
  // Keyword/value pairs for PQconnectdbParams, with dbname replaced.
  std::vector<std::pair<std::string, std::string>> KeywordsFor(const std::string& dbname,
                                                               int64_t connect_timeout_ms) const;
  // Replaces the password in `text` by "****" (defensive: libpq does not echo it).
  std::string Mask(std::string text) const;

 private:
  std::vector<std::pair<std::string, std::string>> options_;  // without password and dbname
  std::string dbname_;
  std::string password_;
};

// One query result. Moves only.
class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(PGresult* r);
  ~PgResult();
  PgResult(PgResult&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
  PgResult& operator=(PgResult&& o) noexcept;
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;

  int rows() const;
  int cols() const;
  bool IsNull(int row, int col) const;
  std::string Get(int row, int col) const;         // "" for NULL
  int64_t GetInt(int row, int col) const;          // 0 for NULL or garbage
  int ColumnIndex(const std::string& name) const;  // -1 when absent
  std::string Get(int row, const std::string& name) const { return Get(row, ColumnIndex(name)); }

 private:
  PGresult* r_ = nullptr;
};

using Params = std::vector<std::optional<std::string>>;

class PgConn {
 public:
  // Connects to `dbname` with `params`. Errors name the database and server
  // ("connecting to database shop at 127.0.0.1:5432: ...").
  static Result<std::unique_ptr<PgConn>> Connect(const ConnParams& params,
                                                 const std::string& dbname,
                                                 int64_t connect_timeout_ms,
                                                 bool replication = false);
  ~PgConn();
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  PGconn* raw() { return conn_; }
  const std::string& dbname() const { return dbname_; }
  int server_version() const;  // e.g. 150018

  // Runs `sql` with text parameters ($1...). Errors carry the server's message and SQLSTATE.
  Result<PgResult> Exec(const std::string& sql, const Params& params = {});
  // Exec and discard the rows.
  Status Run(const std::string& sql, const Params& params = {});
  // The first column of the first row; NotFound when there is no row.
  Result<std::string> Value(const std::string& sql, const Params& params = {});
  // SQLSTATE of the last failed Exec ("55006"), "" otherwise.
  const std::string& last_sqlstate() const { return last_sqlstate_; }

  // 'text' quoted as a literal for statements that take no parameters.
  std::string Literal(std::string_view text);

  // COPY ... TO STDOUT streaming. REQUIRES: no other query in flight.
  Status CopyOutBegin(const std::string& copy_sql);
  // Next line without its trailing newline; nullopt at the end (then the
  // command's final status has been checked).
  Result<std::optional<std::string_view>> CopyOutNext();
  // Abandons a COPY in progress (cancels it and drains the connection).
  void CopyOutAbort();

 private:
  PgConn(PGconn* conn, std::string dbname, std::string where)
      : conn_(conn), dbname_(std::move(dbname)), where_(std::move(where)) {}
  Status ErrorFrom(PGresult* r, const std::string& sql);

  PGconn* conn_;
  std::string dbname_;
  std::string where_;  // "database shop at 127.0.0.1:5432"
  std::string last_sqlstate_;
  char* copy_buf_ = nullptr;
  bool in_copy_ = false;
};

// "name" -> "\"name\"" with embedded quotes doubled.
std::string QuoteIdent(std::string_view name);
// "schema.table" properly quoted.
std::string QuoteQualified(std::string_view schema, std::string_view name);

// Decodes one field of COPY text format (backslash escapes); sets *is_null for "\N".
std::string CopyUnescape(std::string_view field, bool* is_null);
// Splits a COPY text line on tabs (fields still escaped).
std::vector<std::string_view> SplitCopyLine(std::string_view line);

}  // namespace backstop::postgres

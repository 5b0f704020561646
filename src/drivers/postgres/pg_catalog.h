// What the postgres driver knows about a database: its settings, the tables
// and foreign keys it tracks, the roles a dump needs, database properties,
// derived database names (shadow, staged, pre_rollback) and the integrity
// checks shared by Prepare, VerifyRestored and CheckIntegrity.
//
// Thread-safety: free functions; each call uses the connection it is given.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "drivers/driver.h"
#include "drivers/postgres/pg_conn.h"

namespace backstop::postgres {

struct IntegrityQuery {
  std::string name;
  std::string sql;
  std::string expect;  // an Expectation (spec_expect.h) the first column of the first row meets
};

struct PgSettings {
  std::string connection;
  std::string admin_dbname = "postgres";
  std::vector<std::string> schemas = {"public"};
  std::vector<std::string> tables;  // empty: every ordinary table of `schemas`
  std::vector<IntegrityQuery> integrity;
  std::string staged = "auto";  // auto | always | never
  uint64_t staged_max_size = 2ull << 30;
  int staged_keep = 2;  // staged databases kept per live database (newest first)
  int jobs = 2;
  std::string bin_dir;  // empty: /usr/lib/postgresql/<server major>/bin, else PATH
  int64_t connect_timeout_ms = 10'000;
  // Flashback (docs/flashback.md): a logical slot per restore point, rollback by undo.
  bool flashback = false;
  std::string flashback_replica_identity = "keep";  // keep | full
  uint64_t flashback_max_wal = 0;                   // 0: 10% of the free disk space
};

// Reads the component's settings (already validated by the spec parser, but
// tolerant of raw forms such as "2GB" and "10s" so tests can pass them).
Result<PgSettings> ParsePgSettings(const nlohmann::json& settings);

struct ColumnInfo {
  std::string name;
  std::string type;         // format_type(): "integer", "character varying(20)"
  bool is_integer = false;  // int2, int4, int8
};

struct TableInfo {
  uint32_t oid = 0;
  std::string schema;
  std::string name;
  std::vector<ColumnInfo> columns;  // in attnum order
  std::vector<std::string> pk;      // primary key columns in key order; empty: none
  std::string Qualified() const { return schema + "." + name; }  // entry keys
  std::string Display() const { return schema == "public" ? name : Qualified(); }
  std::string Sql() const { return QuoteQualified(schema, name); }
  const ColumnInfo* Column(const std::string& n) const;
};

// Ordinary tables of the configured schemas, filtered by settings.tables
// ("table" or "schema.table"), sorted by schema and name.
Result<std::vector<TableInfo>> ListTables(PgConn& conn, const PgSettings& settings);

struct ForeignKey {
  std::string name;
  std::string schema, table;
  std::vector<std::string> columns;
  std::string ref_schema, ref_table;
  std::vector<std::string> ref_columns;
  bool validated = true;
  nlohmann::json ToJson() const;
  static ForeignKey FromJson(const nlohmann::json& j);
  // "tasks(assigned_agent_id) -> agents(id)"
  std::string Describe() const;
  // Same constraint: name, table, columns and referenced table/columns.
  bool SameAs(const ForeignKey& o) const;
};

Result<std::vector<ForeignKey>> ListForeignKeys(PgConn& conn, const PgSettings& settings);

// Roles that own objects of the database or appear in their privileges:
// pg_restore needs every one of them to exist.
Result<std::vector<std::string>> ListNeededRoles(PgConn& conn);
// Those of `roles` that do not exist on the server of `conn`.
Result<std::vector<std::string>> MissingRoles(PgConn& conn, const std::vector<std::string>& roles);

struct DatabaseInfo {
  bool exists = false;
  uint32_t oid = 0;
  std::string owner;
  std::string encoding;
  std::string collate;
  std::string ctype;
  std::string locale_provider;  // "c" (libc) or "i" (icu); "" on servers before 15
  std::string icu_locale;
  std::optional<std::string> comment;
  bool allow_connections = true;
  // Properties pg_dump only writes with --create, which cannot restore under
  // another name: the connection limit, the database's ACL ("{=Tc/app,...}",
  // "" for the default) and its settings ([{"role": null|name, "config":
  // ["search_path=...", ...]}]).
  int connection_limit = -1;
  std::string acl;
  nlohmann::json settings = nlohmann::json::array();
  nlohmann::json ToJson() const;
  static DatabaseInfo FromJson(const nlohmann::json& j);
};

// Looks `name` up in pg_database (any connection of the cluster will do).
Result<DatabaseInfo> GetDatabase(PgConn& conn, const std::string& name);
// Gives database `name` the connection limit, settings and ACL of `props`.
Status ApplyDatabaseProperties(PgConn& admin, const std::string& name, const DatabaseInfo& props);

// `db` + `suffix`, shortened with a hash when longer than PostgreSQL's
// 63-byte identifier limit (which would otherwise truncate it silently).
std::string DerivedName(const std::string& db, const std::string& suffix);
std::string ShadowName(const std::string& db, const std::string& run_id);
std::string PreRollbackName(const std::string& db, const std::string& run_id);
std::string StagedName(const std::string& db, const std::string& restore_point_id);

// A PostgreSQL array literal of text values: {"a","b"}.
std::string ArrayLiteral(const std::vector<std::string>& values);

// The integrity checks. Each item names what it checked and what it found.
struct CheckOptions {
  bool row_counts = true;    // against entry.position.row_counts (when present)
  bool foreign_keys = true;  // entry.foreign_keys present (or, without an entry, validated)
  bool orphans = false;      // rows whose referenced row is missing, per foreign key
  bool queries = true;       // settings.integrity
};
Result<std::vector<IntegrityCheck>> RunChecks(PgConn& conn, const nlohmann::json& entry,
                                              const PgSettings& settings,
                                              const CheckOptions& options);
// "row count tasks: expected 12, found 11; foreign key x missing" for the failed ones.
std::string DescribeFailures(const std::vector<IntegrityCheck>& checks);

// Comments the driver puts on the databases it manages ("key=value" tokens
// after a "backstop:<kind>" prefix), parsed back.
std::map<std::string, std::string> ParseMarker(const std::optional<std::string>& comment,
                                               const std::string& kind);

}  // namespace backstop::postgres

#include "drivers/postgres/pg_catalog.h"

#include <algorithm>
#include <set>

#include "base/hash.h"
#include "base/strings.h"
#include "base/units.h"
#include "spec/spec_expect.h"

namespace backstop::postgres {
namespace {

const char* const kUserSchemaFilter =
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' "
    "AND n.nspname NOT LIKE 'pg\\_temp%'";

Result<nlohmann::json> ParseJsonColumn(const std::string& text, const std::string& what) {
  if (text.empty()) return nlohmann::json::array();
  try {
    return nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    return Status::Internal("cannot parse " + what + " from the catalog: " + e.what());
  }
}

std::vector<std::string> StringList(const nlohmann::json& j) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& v : j) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

std::string JsonToText(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

}  // namespace

Result<PgSettings> ParsePgSettings(const nlohmann::json& s) {
  PgSettings out;
  if (!s.is_object()) return Status::InvalidArgument("postgres settings must be a map");
  try {
    if (!s.contains("connection") || !s["connection"].is_string() ||
        s["connection"].get<std::string>().empty()) {
      return Status::InvalidArgument(
          "connection: required; a libpq conninfo such as \"host=127.0.0.1 port=5432 "
          "dbname=mistersmith user=mistersmith\"");
    }
    out.connection = s["connection"].get<std::string>();
    if (s.contains("admin_dbname") && s["admin_dbname"].is_string()) {
      out.admin_dbname = s["admin_dbname"].get<std::string>();
    }
    if (s.contains("schemas")) {
      if (s["schemas"].is_string()) {
        out.schemas = {s["schemas"].get<std::string>()};
      } else if (s["schemas"].is_array()) {
        out.schemas = StringList(s["schemas"]);
      }
    }
    if (out.schemas.empty()) out.schemas = {"public"};
    if (s.contains("tables")) {
      if (s["tables"].is_string()) {
        out.tables = {s["tables"].get<std::string>()};
      } else {
        out.tables = StringList(s["tables"]);
      }
    }
    if (s.contains("integrity") && s["integrity"].is_array()) {
      for (const auto& q : s["integrity"]) {
        if (!q.is_object() || !q.contains("name") || !q.contains("sql") || !q.contains("expect")) {
          return Status::InvalidArgument("integrity: each item needs name, sql and expect");
        }
        std::string why;
        if (!Expectation::Parse(JsonToText(q["expect"]), &why)) {
          return Status::InvalidArgument("integrity " + JsonToText(q["name"]) + ": expect: " + why +
                                         "; expected " + kExpectationHelp);
        }
        out.integrity.push_back(
            {JsonToText(q["name"]), JsonToText(q["sql"]), JsonToText(q["expect"])});
      }
    }
    if (s.contains("staged") && s["staged"].is_string()) {
      out.staged = s["staged"].get<std::string>();
      if (out.staged != "auto" && out.staged != "always" && out.staged != "never") {
        return Status::InvalidArgument("staged: '" + out.staged +
                                       "' is not one of auto, always, never");
      }
    }
    if (s.contains("staged_max_size")) {
      const auto& v = s["staged_max_size"];
      if (v.is_number()) {
        out.staged_max_size = v.get<uint64_t>();
      } else if (v.is_string()) {
        auto b = ParseBytes(v.get<std::string>());
        if (!b) return Status::InvalidArgument("staged_max_size: not a size: " + v.dump());
        out.staged_max_size = *b;
      }
    }
    if (s.contains("staged_keep") && s["staged_keep"].is_number()) {
      out.staged_keep = std::max(1, s["staged_keep"].get<int>());
    }
    if (s.contains("jobs") && s["jobs"].is_number()) {
      out.jobs = std::max(1, s["jobs"].get<int>());
    }
    if (s.contains("bin_dir") && s["bin_dir"].is_string()) {
      out.bin_dir = s["bin_dir"].get<std::string>();
    }
    if (s.contains("connect_timeout")) {
      const auto& v = s["connect_timeout"];
      if (v.is_number()) {
        out.connect_timeout_ms = v.get<int64_t>();
      } else if (v.is_string()) {
        auto d = ParseDurationMs(v.get<std::string>());
        if (!d) return Status::InvalidArgument("connect_timeout: not a duration: " + v.dump());
        out.connect_timeout_ms = *d;
      }
    }
    if (s.contains("flashback") && s["flashback"].is_boolean()) {
      out.flashback = s["flashback"].get<bool>();
    }
    if (s.contains("flashback_replica_identity") && s["flashback_replica_identity"].is_string()) {
      out.flashback_replica_identity = s["flashback_replica_identity"].get<std::string>();
      if (out.flashback_replica_identity != "keep" && out.flashback_replica_identity != "full") {
        return Status::InvalidArgument("flashback_replica_identity: '" +
                                       out.flashback_replica_identity +
                                       "' is not one of keep, full");
      }
    }
    if (s.contains("flashback_max_wal")) {
      const auto& v = s["flashback_max_wal"];
      if (v.is_number()) {
        out.flashback_max_wal = v.get<uint64_t>();
      } else if (v.is_string()) {
        auto b = ParseBytes(v.get<std::string>());
        if (!b) return Status::InvalidArgument("flashback_max_wal: not a size: " + v.dump());
        out.flashback_max_wal = *b;
      }
    }
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("postgres settings: ") + e.what());
  }
  return out;
}

const ColumnInfo* TableInfo::Column(const std::string& n) const {
  for (const auto& c : columns) {
    if (c.name == n) return &c;
  }
  return nullptr;
}

Result<std::vector<TableInfo>> ListTables(PgConn& conn, const PgSettings& settings) {
  static const std::string kSql =
      "SELECT c.oid, n.nspname, c.relname, "
      " (SELECT json_agg(json_build_object('name', a.attname, "
      "     'type', format_type(a.atttypid, a.atttypmod), "
      "     'int', a.atttypid IN (20, 21, 23)) ORDER BY a.attnum) "
      "  FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) "
      "  AS columns, "
      " (SELECT json_agg(a.attname ORDER BY k.ord) FROM pg_index i "
      "  CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
      "  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
      "  WHERE i.indrelid = c.oid AND i.indisprimary) AS pk "
      "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE c.relkind = 'r' AND n.nspname = ANY($1::text[]) "
      "ORDER BY n.nspname, c.relname";
  BACKSTOP_ASSIGN_OR_RETURN(PgResult r, conn.Exec(kSql, {ArrayLiteral(settings.schemas)}));
  std::vector<TableInfo> out;
  for (int i = 0; i < r.rows(); ++i) {
    TableInfo t;
    t.oid = static_cast<uint32_t>(r.GetInt(i, 0));
    t.schema = r.Get(i, 1);
    t.name = r.Get(i, 2);
    if (!settings.tables.empty()) {
      bool wanted = false;
      for (const auto& w : settings.tables) {
        if (w == t.name || w == t.Qualified()) wanted = true;
      }
      if (!wanted) continue;
    }
    BACKSTOP_ASSIGN_OR_RETURN(nlohmann::json cols, ParseJsonColumn(r.Get(i, 3), "columns"));
    for (const auto& c : cols) {
      t.columns.push_back({c.value("name", ""), c.value("type", ""), c.value("int", false)});
    }
    BACKSTOP_ASSIGN_OR_RETURN(nlohmann::json pk, ParseJsonColumn(r.Get(i, 4), "primary key"));
    t.pk = StringList(pk);
    out.push_back(std::move(t));
  }
  return out;
}

nlohmann::json ForeignKey::ToJson() const {
  return {{"name", name},
          {"schema", schema},
          {"table", table},
          {"columns", columns},
          {"ref_schema", ref_schema},
          {"ref_table", ref_table},
          {"ref_columns", ref_columns}};
}

ForeignKey ForeignKey::FromJson(const nlohmann::json& j) {
  ForeignKey fk;
  fk.name = j.value("name", "");
  fk.schema = j.value("schema", "public");
  fk.table = j.value("table", "");
  fk.columns = StringList(j.value("columns", nlohmann::json::array()));
  fk.ref_schema = j.value("ref_schema", "public");
  fk.ref_table = j.value("ref_table", "");
  fk.ref_columns = StringList(j.value("ref_columns", nlohmann::json::array()));
  return fk;
}

std::string ForeignKey::Describe() const {
  auto disp = [](const std::string& s, const std::string& t) {
    return s == "public" ? t : s + "." + t;
  };
  return disp(schema, table) + "(" + Join(columns, ", ") + ") -> " + disp(ref_schema, ref_table) +
         "(" + Join(ref_columns, ", ") + ")";
}

bool ForeignKey::SameAs(const ForeignKey& o) const {
  return name == o.name && schema == o.schema && table == o.table && columns == o.columns &&
         ref_schema == o.ref_schema && ref_table == o.ref_table && ref_columns == o.ref_columns;
}

Result<std::vector<ForeignKey>> ListForeignKeys(PgConn& conn, const PgSettings& settings) {
  static const std::string kSql =
      "SELECT con.conname, n.nspname, c.relname, "
      " (SELECT json_agg(a.attname ORDER BY k.ord) "
      "  FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord) "
      "  JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum), "
      " rn.nspname, rc.relname, "
      " (SELECT json_agg(a.attname ORDER BY k.ord) "
      "  FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord) "
      "  JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum), "
      " con.convalidated "
      "FROM pg_constraint con "
      "JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
      "JOIN pg_class rc ON rc.oid = con.confrelid "
      "JOIN pg_namespace rn ON rn.oid = rc.relnamespace "
      "WHERE con.contype = 'f' AND n.nspname = ANY($1::text[]) "
      "ORDER BY n.nspname, c.relname, con.conname";
  BACKSTOP_ASSIGN_OR_RETURN(PgResult r, conn.Exec(kSql, {ArrayLiteral(settings.schemas)}));
  std::vector<ForeignKey> out;
  for (int i = 0; i < r.rows(); ++i) {
    ForeignKey fk;
    fk.name = r.Get(i, 0);
    fk.schema = r.Get(i, 1);
    fk.table = r.Get(i, 2);
    BACKSTOP_ASSIGN_OR_RETURN(nlohmann::json cols, ParseJsonColumn(r.Get(i, 3), "FK columns"));
    fk.columns = StringList(cols);
    fk.ref_schema = r.Get(i, 4);
    fk.ref_table = r.Get(i, 5);
    BACKSTOP_ASSIGN_OR_RETURN(nlohmann::json refs, ParseJsonColumn(r.Get(i, 6), "FK columns"));
    fk.ref_columns = StringList(refs);
    fk.validated = r.Get(i, 7) == "t";
    out.push_back(std::move(fk));
  }
  return out;
}

Result<std::vector<std::string>> ListNeededRoles(PgConn& conn) {
  const std::string f = kUserSchemaFilter;
  const std::string sql =
      "WITH r(oid) AS ("
      " SELECT c.relowner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE " +
      f +
      " UNION SELECT (aclexplode(c.relacl)).grantee FROM pg_class c "
      "  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relacl IS NOT NULL AND " +
      f + " UNION SELECT n.nspowner FROM pg_namespace n WHERE " + f +
      " UNION SELECT (aclexplode(n.nspacl)).grantee FROM pg_namespace n "
      "  WHERE n.nspacl IS NOT NULL AND " +
      f +
      " UNION SELECT p.proowner FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
      "  WHERE " +
      f +
      " UNION SELECT t.typowner FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
      "  WHERE " +
      f +
      " UNION SELECT d.datdba FROM pg_database d WHERE d.datname = current_database()) "
      "SELECT DISTINCT a.rolname FROM pg_roles a JOIN r ON r.oid = a.oid ORDER BY 1";
  BACKSTOP_ASSIGN_OR_RETURN(PgResult r, conn.Exec(sql));
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.Get(i, 0));
  return out;
}

Result<std::vector<std::string>> MissingRoles(PgConn& conn, const std::vector<std::string>& roles) {
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec("SELECT u FROM unnest($1::text[]) AS u "
                "WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = u) ORDER BY 1",
                {ArrayLiteral(roles)}));
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.Get(i, 0));
  return out;
}

nlohmann::json DatabaseInfo::ToJson() const {
  nlohmann::json j = {{"oid", oid},
                      {"owner", owner},
                      {"encoding", encoding},
                      {"collate", collate},
                      {"ctype", ctype},
                      {"locale_provider", locale_provider},
                      {"icu_locale", icu_locale}};
  j["comment"] = comment ? nlohmann::json(*comment) : nlohmann::json(nullptr);
  j["connection_limit"] = connection_limit;
  j["acl"] = acl;
  j["settings"] = settings;
  return j;
}

DatabaseInfo DatabaseInfo::FromJson(const nlohmann::json& j) {
  DatabaseInfo d;
  if (!j.is_object()) return d;
  d.exists = true;
  d.oid = j.value("oid", 0u);
  d.owner = j.value("owner", "");
  d.encoding = j.value("encoding", "");
  d.collate = j.value("collate", "");
  d.ctype = j.value("ctype", "");
  d.locale_provider = j.value("locale_provider", "");
  d.icu_locale = j.value("icu_locale", "");
  if (j.contains("comment") && j["comment"].is_string())
    d.comment = j["comment"].get<std::string>();
  d.connection_limit = j.value("connection_limit", -1);
  d.acl = j.value("acl", "");
  if (j.contains("settings") && j["settings"].is_array()) d.settings = j["settings"];
  return d;
}

Result<DatabaseInfo> GetDatabase(PgConn& conn, const std::string& name) {
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult r,
      conn.Exec("SELECT d.oid, pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), "
                "d.datcollate, d.datctype, to_jsonb(d) ->> 'datlocprovider', "
                "to_jsonb(d) ->> 'daticulocale', shobj_description(d.oid, 'pg_database'), "
                "d.datallowconn, d.datconnlimit, coalesce(d.datacl::text, ''), "
                "(SELECT json_agg(json_build_object('role', CASE WHEN s.setrole = 0 THEN NULL "
                "  ELSE pg_get_userbyid(s.setrole) END, 'config', s.setconfig) "
                "  ORDER BY s.setrole) FROM pg_db_role_setting s WHERE s.setdatabase = d.oid) "
                "FROM pg_database d WHERE d.datname = $1",
                {name}));
  DatabaseInfo d;
  if (r.rows() == 0) return d;
  d.exists = true;
  d.oid = static_cast<uint32_t>(r.GetInt(0, 0));
  d.owner = r.Get(0, 1);
  d.encoding = r.Get(0, 2);
  d.collate = r.Get(0, 3);
  d.ctype = r.Get(0, 4);
  d.locale_provider = r.Get(0, 5);
  d.icu_locale = r.Get(0, 6);
  if (!r.IsNull(0, 7)) d.comment = r.Get(0, 7);
  d.allow_connections = r.Get(0, 8) == "t";
  d.connection_limit = static_cast<int>(r.GetInt(0, 9));
  d.acl = r.Get(0, 10);
  if (!r.IsNull(0, 11)) {
    BACKSTOP_ASSIGN_OR_RETURN(d.settings, ParseJsonColumn(r.Get(0, 11), "database settings"));
  }
  return d;
}

namespace {

// Variables whose value is a list of names (pg_dump's GUC_LIST_QUOTE set):
// "a, \"B c\"" must become SET x TO 'a', 'B c', not one string.
bool IsListVariable(const std::string& name) {
  static const char* const kLists[] = {"search_path", "temp_tablespaces",
                                       "session_preload_libraries", "shared_preload_libraries",
                                       "local_preload_libraries"};
  for (const char* l : kLists) {
    if (name == l) return true;
  }
  return false;
}

std::vector<std::string> SplitNameList(const std::string& v) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < v.size()) {
    while (i < v.size() && (v[i] == ' ' || v[i] == ',')) ++i;
    if (i >= v.size()) break;
    std::string item;
    if (v[i] == '"') {
      for (++i; i < v.size(); ++i) {
        if (v[i] == '"') {
          if (i + 1 < v.size() && v[i + 1] == '"') {
            item += '"';
            ++i;
          } else {
            ++i;
            break;
          }
        } else {
          item += v[i];
        }
      }
    } else {
      while (i < v.size() && v[i] != ',') item += v[i++];
      while (!item.empty() && item.back() == ' ') item.pop_back();
    }
    out.push_back(item);
  }
  return out;
}

std::string Unquote(const std::string& s, char escape) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return s;
  std::string out;
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    if (s[i] == escape && i + 2 < s.size()) ++i;
    out += s[i];
  }
  return out;
}

// One aclitem "grantee=privs/grantor" as GRANT statements on database `db`.
std::vector<std::string> GrantsFor(const std::string& db, std::string item) {
  std::vector<std::string> out;
  size_t slash = item.rfind('/');
  if (slash != std::string::npos) item = item.substr(0, slash);
  size_t eq = item.rfind('=');
  if (eq == std::string::npos) return out;
  std::string grantee = Unquote(item.substr(0, eq), '"'), privs = item.substr(eq + 1);
  std::string to = grantee.empty() ? "PUBLIC" : QuoteIdent(grantee);
  for (size_t i = 0; i < privs.size(); ++i) {
    const char* what = privs[i] == 'C'   ? "CREATE"
                       : privs[i] == 'T' ? "TEMPORARY"
                       : privs[i] == 'c' ? "CONNECT"
                                         : nullptr;
    if (what == nullptr) continue;
    bool grant_option = i + 1 < privs.size() && privs[i + 1] == '*';
    out.push_back(std::string("GRANT ") + what + " ON DATABASE " + QuoteIdent(db) + " TO " + to +
                  (grant_option ? " WITH GRANT OPTION" : ""));
  }
  return out;
}

}  // namespace

Status ApplyDatabaseProperties(PgConn& admin, const std::string& name, const DatabaseInfo& props) {
  const std::string db = QuoteIdent(name);
  if (props.connection_limit != -1) {
    BACKSTOP_RETURN_IF_ERROR(admin.Run("ALTER DATABASE " + db + " CONNECTION LIMIT " +
                                       std::to_string(props.connection_limit)));
  }
  for (const auto& s : props.settings) {
    std::string prefix = "ALTER ";
    if (s.contains("role") && s["role"].is_string()) {
      prefix += "ROLE " + QuoteIdent(s["role"].get<std::string>()) + " IN ";
    }
    prefix += "DATABASE " + db + " SET ";
    for (const auto& c : s.value("config", nlohmann::json::array())) {
      std::string kv = c.is_string() ? c.get<std::string>() : "";
      size_t eq = kv.find('=');
      if (eq == std::string::npos) continue;
      std::string var = kv.substr(0, eq), value = kv.substr(eq + 1), values;
      if (IsListVariable(var)) {
        for (const auto& item : SplitNameList(value)) {
          values += (values.empty() ? "" : ", ") + admin.Literal(item);
        }
        if (values.empty()) values = "''";
      } else {
        values = admin.Literal(value);
      }
      BACKSTOP_RETURN_IF_ERROR(admin.Run(prefix + QuoteIdent(var) + " TO " + values));
    }
  }
  if (props.acl.size() >= 2) {
    // An explicit ACL replaces the default (PUBLIC may CONNECT and use TEMP).
    BACKSTOP_RETURN_IF_ERROR(admin.Run("REVOKE ALL ON DATABASE " + db + " FROM PUBLIC"));
    std::string body = props.acl.substr(1, props.acl.size() - 2);  // strip { }
    std::vector<std::string> items;
    std::string cur;
    bool quoted = false;
    for (size_t i = 0; i < body.size(); ++i) {
      char ch = body[i];
      if (quoted && ch == '\\' && i + 1 < body.size()) {
        cur += ch;
        cur += body[++i];
        continue;
      }
      if (ch == '"') quoted = !quoted;
      if (ch == ',' && !quoted) {
        items.push_back(cur);
        cur.clear();
      } else {
        cur += ch;
      }
    }
    if (!cur.empty()) items.push_back(cur);
    for (const auto& it : items) {
      for (const auto& g : GrantsFor(name, Unquote(it, '\\'))) {
        BACKSTOP_RETURN_IF_ERROR(admin.Run(g));
      }
    }
  }
  return Status::OK();
}

std::string DerivedName(const std::string& db, const std::string& suffix_in) {
  constexpr size_t kMax = 63;
  std::string suffix = suffix_in;
  if (suffix.size() > 40) suffix = suffix.substr(0, 31) + "_" + Sha256Hex(suffix_in).substr(0, 8);
  if (db.size() + suffix.size() <= kMax) return db + suffix;
  size_t keep = kMax - suffix.size() - 9;
  // Cut on a character boundary (UTF-8 continuation bytes are 10xxxxxx).
  while (keep > 0 && (static_cast<unsigned char>(db[keep]) & 0xC0) == 0x80) --keep;
  return db.substr(0, keep) + "_" + Sha256Hex(db).substr(0, 8) + suffix;
}

namespace {
std::string Sanitize(const std::string& id) {
  std::string out;
  for (char c : id) {
    unsigned char u = static_cast<unsigned char>(c);
    out += std::isalnum(u) ? static_cast<char>(std::tolower(u)) : '_';
  }
  return out;
}
}  // namespace

std::string ShadowName(const std::string& db, const std::string& run_id) {
  return DerivedName(db, "_bs_shadow_" + Sanitize(run_id));
}

std::string PreRollbackName(const std::string& db, const std::string& run_id) {
  return DerivedName(db, "_pre_rollback_" + Sanitize(run_id));
}

std::string StagedName(const std::string& db, const std::string& restore_point_id) {
  std::string id = restore_point_id;
  if (id.rfind("rp-", 0) == 0) id = id.substr(3);
  return DerivedName(db, "_bs_staged_" + Sanitize(id));
}

std::string ArrayLiteral(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

namespace {

std::string OrphanSql(const ForeignKey& fk) {
  std::string not_null, match;
  for (size_t i = 0; i < fk.columns.size() && i < fk.ref_columns.size(); ++i) {
    if (i) {
      not_null += " AND ";
      match += " AND ";
    }
    not_null += "c." + QuoteIdent(fk.columns[i]) + " IS NOT NULL";
    match += "p." + QuoteIdent(fk.ref_columns[i]) + " = c." + QuoteIdent(fk.columns[i]);
  }
  return "SELECT count(*) FROM ONLY " + QuoteQualified(fk.schema, fk.table) + " c WHERE " +
         not_null + " AND NOT EXISTS (SELECT 1 FROM ONLY " +
         QuoteQualified(fk.ref_schema, fk.ref_table) + " p WHERE " + match + ")";
}

}  // namespace

Result<std::vector<IntegrityCheck>> RunChecks(PgConn& conn, const nlohmann::json& entry,
                                              const PgSettings& settings,
                                              const CheckOptions& options) {
  std::vector<IntegrityCheck> out;
  const bool have_entry = entry.is_object();
  if (options.row_counts && have_entry && entry.contains("position") &&
      entry["position"].contains("row_counts") && entry.contains("tables")) {
    const auto& counts = entry["position"]["row_counts"];
    for (const auto& t : entry["tables"]) {
      std::string schema = t.value("schema", "public"), name = t.value("name", "");
      std::string q = schema + "." + name;
      if (!counts.contains(q)) continue;
      int64_t want = counts[q].get<int64_t>();
      IntegrityCheck c;
      c.name = "row count " + (schema == "public" ? name : q);
      auto got = conn.Value("SELECT count(*) FROM ONLY " + QuoteQualified(schema, name));
      if (!got.ok()) {
        c.detail =
            "expected " + FormatThousands(want) + ", cannot count: " + got.status().message();
      } else {
        int64_t n = std::stoll(*got);
        c.passed = n == want;
        c.detail = "expected " + FormatThousands(want) + ", found " + FormatThousands(n);
      }
      out.push_back(std::move(c));
    }
  }

  std::vector<ForeignKey> present;
  if (options.foreign_keys || options.orphans) {
    BACKSTOP_ASSIGN_OR_RETURN(present, ListForeignKeys(conn, settings));
  }
  std::vector<ForeignKey> expected;
  if (have_entry && entry.contains("foreign_keys")) {
    for (const auto& j : entry["foreign_keys"]) expected.push_back(ForeignKey::FromJson(j));
  } else {
    expected = present;
  }
  if (options.foreign_keys) {
    for (const auto& fk : expected) {
      IntegrityCheck c;
      c.name = "foreign key " + fk.name;
      auto it = std::find_if(present.begin(), present.end(),
                             [&](const ForeignKey& p) { return p.SameAs(fk); });
      if (it == present.end()) {
        c.detail = "missing: " + fk.Describe();
      } else if (!it->validated) {
        c.detail = "present but NOT VALID: " + fk.Describe();
      } else {
        c.passed = true;
        c.detail = "present: " + fk.Describe();
      }
      out.push_back(std::move(c));
    }
  }
  if (options.orphans) {
    for (const auto& fk : expected) {
      IntegrityCheck c;
      c.name = "orphans " + fk.name;
      auto got = conn.Value(OrphanSql(fk));
      if (!got.ok()) {
        c.detail = "cannot check " + fk.Describe() + ": " + got.status().message();
      } else {
        int64_t n = std::stoll(*got);
        c.passed = n == 0;
        c.detail = FormatThousands(n) + " rows of " + fk.Describe() +
                   " reference a missing row (expected 0)";
      }
      out.push_back(std::move(c));
    }
  }
  if (options.queries) {
    for (const auto& q : settings.integrity) {
      IntegrityCheck c;
      c.name = q.name;
      Status st = conn.Run("BEGIN READ ONLY");
      Result<PgResult> r = st.ok() ? conn.Exec(q.sql) : Result<PgResult>(st);
      (void)conn.Run("ROLLBACK");
      if (!r.ok()) {
        c.detail = "query failed: " + r.status().message();
      } else if (r->rows() == 0 || r->cols() == 0) {
        c.detail = "expected " + q.expect + ", the query returned no row";
      } else {
        std::string got = r->IsNull(0, 0) ? "NULL" : r->Get(0, 0);
        std::string why;
        auto expect = Expectation::Parse(q.expect, &why);
        c.passed = expect && expect->Matches(got, &why);
        c.detail = "expected " + (expect ? expect->ToString() : q.expect) + ", found " + got +
                   (c.passed || why.empty() ? "" : " (" + why + ")");
      }
      out.push_back(std::move(c));
    }
  }
  return out;
}

std::string DescribeFailures(const std::vector<IntegrityCheck>& checks) {
  std::string out;
  for (const auto& c : checks) {
    if (c.passed) continue;
    out += (out.empty() ? "" : "; ") + c.name + ": " + c.detail;
  }
  return out;
}

std::map<std::string, std::string> ParseMarker(const std::optional<std::string>& comment,
                                               const std::string& kind) {
  std::map<std::string, std::string> out;
  if (!comment) return out;
  std::string prefix = "backstop:" + kind;
  if (comment->rfind(prefix, 0) != 0) return out;
  std::string rest = comment->substr(prefix.size());
  if (!rest.empty() && rest[0] != ' ') return out;
  out["kind"] = kind;
  size_t pos = 0;
  while (pos < rest.size()) {
    while (pos < rest.size() && rest[pos] == ' ') ++pos;
    size_t end = rest.find(' ', pos);
    if (end == std::string::npos) end = rest.size();
    std::string tok = rest.substr(pos, end - pos);
    size_t eq = tok.find('=');
    if (eq != std::string::npos) {
      out[tok.substr(0, eq)] = tok.substr(eq + 1);
    } else if (!tok.empty()) {
      out[tok] = "";
    }
    pos = end;
  }
  return out;
}

}  // namespace backstop::postgres

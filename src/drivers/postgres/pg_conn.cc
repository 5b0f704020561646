#include "drivers/postgres/pg_conn.h"
#include "base/strings.h"

#include <libpq-fe.h>

#include <cstdlib>
#include <cstring>

namespace backstop::postgres {
namespace {

// libpq messages span lines ("ERROR:  x\nDETAIL:  y"); keep them on one line.
std::string OneLine(std::string s) {
  s = Trim(s);
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n') {
      out += "; ";
      while (i + 1 < s.size() && s[i + 1] == ' ') ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string QuoteConnValue(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

void IgnoreNotice(void*, const char*) {}

}  // namespace

// ---- ConnParams ----

Result<ConnParams> ConnParams::Parse(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (opts == nullptr) {
    std::string msg = err ? OneLine(err) : "out of memory";
    if (err) PQfreemem(err);
    return Status::InvalidArgument("connection: libpq cannot parse it: " + msg);
  }
  ConnParams p;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    std::string k = o->keyword, v = o->val;
    if (k == "password") {
      p.password_ = v;
    } else if (k == "dbname") {
      p.dbname_ = v;
    } else {
      p.options_.emplace_back(k, v);
    }
  }
  PQconninfoFree(opts);
  if (p.dbname_.empty()) {
    return Status::InvalidArgument("connection: names no dbname; add dbname=<database> (" +
                                   p.Display() + ")");
  }
  return p;
}

std::string ConnParams::Get(const std::string& key) const {
  if (key == "dbname") return dbname_;
  for (const auto& [k, v] : options_) {
    if (k == key) return v;
  }
  return "";
}

std::string ConnParams::Display() const {
  std::string out = "dbname=" + dbname_;
  for (const char* k : {"host", "hostaddr", "port", "user"}) {
    std::string v = Get(k);
    if (!v.empty()) out += std::string(" ") + k + "=" + v;
  }
  return out;
}

std::string ConnParams::ForCommandLine(const std::string& dbname) const {
  std::string out = "dbname=" + QuoteConnValue(dbname);
  for (const auto& [k, v] : options_) {
    if (k == "connect_timeout" || k == "application_name") continue;
    out += " " + k + "=" + QuoteConnValue(v);
  }
  return out;
}

std::map<std::string, std::string> ConnParams::ChildEnv(int64_t connect_timeout_ms) const {
  std::map<std::string, std::string> env;
  if (!password_.empty()) env["PGPASSWORD"] = password_;
  env["PGCONNECT_TIMEOUT"] =
      std::to_string(std::max<int64_t>(2, (connect_timeout_ms + 999) / 1000));
  env["PGAPPNAME"] = "backstop";
  return env;
}

std::vector<std::pair<std::string, std::string>> ConnParams::KeywordsFor(
    const std::string& dbname, int64_t connect_timeout_ms) const {
  std::vector<std::pair<std::string, std::string>> kv;
  for (const auto& [k, v] : options_) {
    if (k == "connect_timeout" || k == "application_name") continue;
    kv.emplace_back(k, v);
  }
  kv.emplace_back("dbname", dbname);
  if (!password_.empty()) kv.emplace_back("password", password_);
  kv.emplace_back("connect_timeout",
                  std::to_string(std::max<int64_t>(2, (connect_timeout_ms + 999) / 1000)));
  kv.emplace_back("application_name", "backstop");
  return kv;
}

std::string ConnParams::Mask(std::string text) const {
  if (password_.size() < 3) return text;
  size_t pos = 0;
  while ((pos = text.find(password_, pos)) != std::string::npos) {
    text.replace(pos, password_.size(), "****");
    pos += 4;
  }
  return text;
}

// ---- PgResult ----

PgResult::PgResult(PGresult* r) : r_(r) {}
PgResult::~PgResult() {
  if (r_) PQclear(r_);
}
PgResult& PgResult::operator=(PgResult&& o) noexcept {
  if (this != &o) {
    if (r_) PQclear(r_);
    r_ = std::exchange(o.r_, nullptr);
  }
  return *this;
}
int PgResult::rows() const { return r_ ? PQntuples(r_) : 0; }
int PgResult::cols() const { return r_ ? PQnfields(r_) : 0; }
bool PgResult::IsNull(int row, int col) const {
  return !r_ || col < 0 || PQgetisnull(r_, row, col);
}
std::string PgResult::Get(int row, int col) const {
  if (IsNull(row, col)) return "";
  return std::string(PQgetvalue(r_, row, col), PQgetlength(r_, row, col));
}
int64_t PgResult::GetInt(int row, int col) const {
  if (IsNull(row, col)) return 0;
  return std::strtoll(PQgetvalue(r_, row, col), nullptr, 10);
}
int PgResult::ColumnIndex(const std::string& name) const {
  return r_ ? PQfnumber(r_, name.c_str()) : -1;
}

// ---- PgConn ----

Result<std::unique_ptr<PgConn>> PgConn::Connect(const ConnParams& params, const std::string& dbname,
                                                int64_t connect_timeout_ms, bool replication) {
  auto kv = params.KeywordsFor(dbname, connect_timeout_ms);
  // A walsender session of the database (logical replication commands, simple queries only).
  if (replication) kv.emplace_back("replication", "database");
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : kv) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* c = PQconnectdbParams(keys.data(), values.data(), 0);
  std::string host = params.Get("host");
  if (host.empty()) host = params.Get("hostaddr");
  if (host.empty()) host = "local socket";
  std::string port = params.Get("port");
  std::string where = "database " + dbname + " at " + host + (port.empty() ? "" : ":" + port);
  if (c == nullptr) return Status::Unavailable("connecting to " + where + ": out of memory");
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = params.Mask(OneLine(PQerrorMessage(c)));
    PQfinish(c);
    return Status::Unavailable("connecting to " + where + ": " + msg);
  }
  PQsetNoticeProcessor(c, IgnoreNotice, nullptr);
  return std::unique_ptr<PgConn>(new PgConn(c, dbname, where));
}

PgConn::~PgConn() {
  if (in_copy_) CopyOutAbort();
  if (copy_buf_) PQfreemem(copy_buf_);
  PQfinish(conn_);
}

int PgConn::server_version() const { return PQserverVersion(conn_); }

Status PgConn::ErrorFrom(PGresult* r, const std::string& sql) {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  last_sqlstate_ = state ? state : "";
  std::string msg = r ? PQresultErrorMessage(r) : "";
  if (msg.empty()) msg = PQerrorMessage(conn_);
  std::string head = sql.substr(0, 80);
  for (char& ch : head) {
    if (ch == '\n') ch = ' ';
  }
  if (sql.size() > 80) head += "...";
  std::string text = "on " + where_ + ": " + OneLine(msg) +
                     (last_sqlstate_.empty() ? "" : " (SQLSTATE " + last_sqlstate_ + ")") +
                     " [query: " + head + "]";
  if (PQstatus(conn_) == CONNECTION_BAD) return Status::Unavailable(text);
  return Status::FailedPrecondition(text);
}

Result<PgResult> PgConn::Exec(const std::string& sql, const Params& params) {
  if (in_copy_) return Status::Internal("query while a COPY is in progress on " + where_);
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  PGresult* r = PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                             values.empty() ? nullptr : values.data(), nullptr, nullptr, 0);
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    Status s = ErrorFrom(r, sql);
    if (r) PQclear(r);
    return s;
  }
  last_sqlstate_.clear();
  return PgResult(r);
}

Status PgConn::Run(const std::string& sql, const Params& params) {
  auto r = Exec(sql, params);
  return r.ok() ? Status::OK() : r.status();
}

Result<std::string> PgConn::Value(const std::string& sql, const Params& params) {
  BACKSTOP_ASSIGN_OR_RETURN(PgResult r, Exec(sql, params));
  if (r.rows() == 0 || r.cols() == 0) return Status::NotFound("no row from: " + sql);
  return r.Get(0, 0);
}

std::string PgConn::Literal(std::string_view text) {
  char* q = PQescapeLiteral(conn_, text.data(), text.size());
  if (q == nullptr) return "NULL";
  std::string out(q);
  PQfreemem(q);
  return out;
}

Status PgConn::CopyOutBegin(const std::string& copy_sql) {
  if (in_copy_) return Status::Internal("COPY already in progress on " + where_);
  PGresult* r = PQexec(conn_, copy_sql.c_str());
  if (r == nullptr || PQresultStatus(r) != PGRES_COPY_OUT) {
    Status s = ErrorFrom(r, copy_sql);
    if (r) PQclear(r);
    return s;
  }
  PQclear(r);
  in_copy_ = true;
  return Status::OK();
}

Result<std::optional<std::string_view>> PgConn::CopyOutNext() {
  if (copy_buf_) {
    PQfreemem(copy_buf_);
    copy_buf_ = nullptr;
  }
  if (!in_copy_) return std::optional<std::string_view>();
  int n = PQgetCopyData(conn_, &copy_buf_, 0);
  if (n > 0) {
    size_t len = static_cast<size_t>(n);
    if (len > 0 && copy_buf_[len - 1] == '\n') --len;
    return std::optional<std::string_view>(std::string_view(copy_buf_, len));
  }
  in_copy_ = false;
  if (n == -2) {
    return Status::Unavailable("COPY from " + where_ +
                               " failed: " + OneLine(PQerrorMessage(conn_)));
  }
  // n == -1: finished; collect the command's status.
  Status result;
  while (PGresult* r = PQgetResult(conn_)) {
    if (PQresultStatus(r) != PGRES_COMMAND_OK && result.ok()) result = ErrorFrom(r, "COPY");
    PQclear(r);
  }
  if (!result.ok()) return result;
  return std::optional<std::string_view>();
}

void PgConn::CopyOutAbort() {
  if (!in_copy_) return;
  if (PGcancel* cancel = PQgetCancel(conn_)) {
    char err[256];
    PQcancel(cancel, err, sizeof err);
    PQfreeCancel(cancel);
  }
  char* buf = nullptr;
  while (PQgetCopyData(conn_, &buf, 0) > 0) {
    PQfreemem(buf);
    buf = nullptr;
  }
  while (PGresult* r = PQgetResult(conn_)) PQclear(r);
  in_copy_ = false;
}

// ---- helpers ----

std::string QuoteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string QuoteQualified(std::string_view schema, std::string_view name) {
  return QuoteIdent(schema) + "." + QuoteIdent(name);
}

std::string CopyUnescape(std::string_view f, bool* is_null) {
  *is_null = (f == "\\N");
  if (*is_null) return "";
  std::string out;
  out.reserve(f.size());
  for (size_t i = 0; i < f.size(); ++i) {
    char c = f[i];
    if (c != '\\' || i + 1 >= f.size()) {
      out += c;
      continue;
    }
    char n = f[++i];
    switch (n) {
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'v':
        out += '\v';
        break;
      case 'x': {
        int v = 0, digits = 0;
        while (digits < 2 && i + 1 < f.size() &&
               std::isxdigit(static_cast<unsigned char>(f[i + 1]))) {
          char h = f[++i];
          v = v * 16 + (std::isdigit(static_cast<unsigned char>(h)) ? h - '0'
                                                                    : (std::tolower(h) - 'a' + 10));
          ++digits;
        }
        out += static_cast<char>(v);
        break;
      }
      default:
        if (n >= '0' && n <= '7') {
          int v = n - '0', digits = 1;
          while (digits < 3 && i + 1 < f.size() && f[i + 1] >= '0' && f[i + 1] <= '7') {
            v = v * 8 + (f[++i] - '0');
            ++digits;
          }
          out += static_cast<char>(v);
        } else {
          out += n;  // "\\" and any other escaped character stand for themselves
        }
    }
  }
  return out;
}

std::vector<std::string_view> SplitCopyLine(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i <= line.size(); ++i) {
    if (i == line.size() || line[i] == '\t') {
      out.push_back(line.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

}  // namespace backstop::postgres

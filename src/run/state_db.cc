#include "run/state_db.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace backstop {
namespace {

// A prepared statement that finalizes itself.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  bool prepared() const { return rc_ == SQLITE_OK; }
  Stmt& Bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Stmt& Bind(int i, int v) { return Bind(i, static_cast<int64_t>(v)); }
  // SQLITE_ROW or SQLITE_DONE; anything else is an error.
  int Step() { return sqlite3_step(stmt_); }
  std::string Text(int col) const {
    const unsigned char* t = sqlite3_column_text(stmt_, col);
    return t ? reinterpret_cast<const char*>(t) : "";
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  Status Error(const std::string& what) const {
    return Status::IOError("state database: " + what + ": " + sqlite3_errmsg(db_));
  }
  // Runs a statement that returns no rows.
  Status Run(const std::string& what) {
    if (!prepared()) return Error(what);
    int rc = Step();
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return Error(what);
    return Status::OK();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

nlohmann::json ParseJsonOr(const std::string& text, nlohmann::json fallback) {
  if (text.empty()) return fallback;
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? fallback : j;
}

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  status TEXT NOT NULL,
  command TEXT NOT NULL DEFAULT '',
  triggered_by TEXT NOT NULL DEFAULT 'manual',
  trigger_detail TEXT NOT NULL DEFAULT 'null',
  plan TEXT NOT NULL DEFAULT '{}',
  restore_point TEXT NOT NULL DEFAULT '',
  safety_restore_point TEXT NOT NULL DEFAULT '',
  started_us INTEGER NOT NULL,
  ended_us INTEGER NOT NULL DEFAULT 0,
  pid INTEGER NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  summary TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS steps (
  run_id TEXT NOT NULL REFERENCES runs(id),
  idx INTEGER NOT NULL,
  action TEXT NOT NULL,
  component TEXT NOT NULL DEFAULT '',
  description TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT 'pending',
  attempts INTEGER NOT NULL DEFAULT 0,
  started_us INTEGER NOT NULL DEFAULT 0,
  ended_us INTEGER NOT NULL DEFAULT 0,
  detail TEXT NOT NULL DEFAULT '',
  result TEXT NOT NULL DEFAULT 'null',
  PRIMARY KEY (run_id, idx)
);
CREATE TABLE IF NOT EXISTS history (
  component TEXT NOT NULL,
  revision INTEGER NOT NULL,
  release TEXT NOT NULL,
  status TEXT NOT NULL,
  at_us INTEGER NOT NULL,
  run_id TEXT NOT NULL DEFAULT '',
  description TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (component, revision)
);
CREATE TABLE IF NOT EXISTS kv (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at_us INTEGER NOT NULL,
  kind TEXT NOT NULL,
  run_id TEXT NOT NULL DEFAULT '',
  component TEXT NOT NULL DEFAULT '',
  trigger_name TEXT NOT NULL DEFAULT '',
  message TEXT NOT NULL DEFAULT '',
  detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, id);
-- The recovery checklist's acknowledgements (`backstop checklist ack`): who
-- confirmed which item a person checks (seed 7.2) after which run, and when.
CREATE TABLE IF NOT EXISTS checklist_acks (
  run_id TEXT NOT NULL,
  item TEXT NOT NULL,
  acked_by TEXT NOT NULL,
  note TEXT NOT NULL DEFAULT '',
  at_us INTEGER NOT NULL,
  PRIMARY KEY (run_id, item)
);
-- The notification queue (notify/): one row per journal event and notify
-- target that wants it, until it is delivered or given up. An attempt and
-- its outcome (delivered or the next attempt's time) are one UPDATE, so a
-- delivered notification is never sent again after a restart.
CREATE TABLE IF NOT EXISTS deliveries (
  event_id INTEGER NOT NULL,
  target TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_us INTEGER NOT NULL,
  delivered_us INTEGER NOT NULL DEFAULT 0,
  failed_us INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (event_id, target)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (delivered_us, failed_us, next_attempt_us);
-- Drills (drill/, `backstop drill`): one row per rehearsal of a rollback,
-- written when it starts and when it ends, for `drill history` and `--due`.
CREATE TABLE IF NOT EXISTS drills (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL DEFAULT '',
  scenario TEXT NOT NULL,
  component TEXT NOT NULL DEFAULT '',
  environment TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  run_id TEXT NOT NULL DEFAULT '',
  restore_point TEXT NOT NULL DEFAULT '',
  started_us INTEGER NOT NULL,
  ended_us INTEGER NOT NULL DEFAULT 0,
  detection_ms INTEGER NOT NULL DEFAULT -1,
  recovery_ms INTEGER NOT NULL DEFAULT -1,
  target_ms INTEGER NOT NULL DEFAULT 0
);
PRAGMA user_version = 1;
)sql";

constexpr const char* kRunColumns =
    "id, kind, status, command, triggered_by, trigger_detail, plan, restore_point, "
    "safety_restore_point, started_us, ended_us, pid, error, summary";

Result<RunRecord> ReadRun(const Stmt& s) {
  RunRecord r;
  r.id = s.Text(0);
  const std::string where = "run " + r.id + " in the state database (table runs): ";
  BACKSTOP_ASSIGN_OR_RETURN(r.kind, ParseStored(kRunKindNames, s.Text(1), where + "kind"));
  BACKSTOP_ASSIGN_OR_RETURN(r.status, ParseStored(kRunStatusNames, s.Text(2), where + "status"));
  r.command = s.Text(3);
  r.triggered_by = s.Text(4);
  r.trigger_detail = ParseJsonOr(s.Text(5), nullptr);
  r.plan = ParseJsonOr(s.Text(6), nlohmann::json::object());
  r.restore_point = s.Text(7);
  r.safety_restore_point = s.Text(8);
  r.started_us = s.Int(9);
  r.ended_us = s.Int(10);
  r.pid = static_cast<int>(s.Int(11));
  r.error = s.Text(12);
  r.summary = ParseJsonOr(s.Text(13), nlohmann::json::object());
  return r;
}

}  // namespace

Result<std::unique_ptr<StateDb>> StateDb::Open(const std::string& path) {
  // SQLite creates a database with 0644 (less the umask) and gives its -wal
  // and -shm files the database file's mode: creating the file first, 0600
  // and not through a link, makes all three private.
  // An existing database is not opened and closed here: closing any
  // descriptor of the file drops every POSIX lock this process holds on it,
  // the locks of its other open connections (the watch daemon has several)
  // included, and a write by another process could then corrupt it.
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    if ((st.st_mode & 07777) != 0600 && ::chmod(path.c_str(), 0600) != 0) {
      return Status::FromErrno("chmod state database " + path, errno);
    }
    return OpenConnection(path);
  }
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    if (errno == ELOOP) {
      return Status::FailedPrecondition("state database " + path +
                                        " is a symbolic link; Backstop does not open its state "
                                        "through a link (replace it with the file itself)");
    }
    return Status::FromErrno("cannot open state database " + path, errno);
  }
  const int chmod_errno = ::fchmod(fd, 0600) == 0 ? 0 : errno;  // whatever the umask
  ::close(fd);
  if (chmod_errno != 0) return Status::FromErrno("chmod state database " + path, chmod_errno);
  return OpenConnection(path);
}

Result<std::unique_ptr<StateDb>> StateDb::OpenConnection(const std::string& path) {
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Status::IOError("cannot open state database " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db, 5000);
  std::unique_ptr<StateDb> state(new StateDb(db));
  BACKSTOP_RETURN_IF_ERROR(state->Exec("PRAGMA journal_mode=WAL"));
  BACKSTOP_RETURN_IF_ERROR(state->Exec("PRAGMA synchronous=FULL"));
  BACKSTOP_RETURN_IF_ERROR(state->Exec("PRAGMA foreign_keys=ON"));
  BACKSTOP_RETURN_IF_ERROR(state->Exec(kSchema));
  return state;
}

StateDb::~StateDb() { sqlite3_close(db_); }

Status StateDb::Exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return Status::IOError("state database: " + msg);
  }
  return Status::OK();
}

Status StateDb::CreateRun(const RunRecord& run, const std::vector<StepRecord>& steps) {
  BACKSTOP_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  auto fail = [&](Status st) {
    (void)Exec("ROLLBACK");
    return st;
  };
  {
    Stmt s(db_,
           "INSERT INTO runs (id, kind, status, command, triggered_by, trigger_detail, plan, "
           "restore_point, safety_restore_point, started_us, ended_us, pid, error, summary) "
           "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    s.Bind(1, run.id).Bind(2, std::string(Name(run.kind))).Bind(3, std::string(Name(run.status)));
    s.Bind(4, run.command);
    s.Bind(5, run.triggered_by).Bind(6, run.trigger_detail.dump()).Bind(7, run.plan.dump());
    s.Bind(8, run.restore_point).Bind(9, run.safety_restore_point).Bind(10, run.started_us);
    s.Bind(11, run.ended_us).Bind(12, run.pid).Bind(13, run.error).Bind(14, run.summary.dump());
    Status st = s.Run("insert run " + run.id);
    if (!st.ok()) return fail(st);
  }
  for (const auto& step : steps) {
    Stmt s(db_,
           "INSERT INTO steps (run_id, idx, action, component, description, status) "
           "VALUES (?,?,?,?,?,?)");
    s.Bind(1, run.id).Bind(2, step.index).Bind(3, std::string(Name(step.action)));
    s.Bind(4, step.component).Bind(5, step.description).Bind(6, std::string(Name(step.status)));
    Status st = s.Run("insert step");
    if (!st.ok()) return fail(st);
  }
  return Exec("COMMIT");
}

Result<RunRecord> StateDb::GetRun(const std::string& id) {
  std::string sql = std::string("SELECT ") + kRunColumns + " FROM runs WHERE id = ?";
  Stmt s(db_, sql.c_str());
  if (!s.prepared()) return s.Error("read run");
  s.Bind(1, id);
  int rc = s.Step();
  if (rc == SQLITE_DONE) return Status::NotFound("no run with id " + id);
  if (rc != SQLITE_ROW) return s.Error("read run " + id);
  return ReadRun(s);
}

Result<std::vector<RunRecord>> StateDb::ListRuns(int limit, int offset) {
  BACKSTOP_ASSIGN_OR_RETURN(auto rows, ListStoredRuns(limit, offset));
  std::vector<RunRecord> out;
  out.reserve(rows.size());
  for (auto& row : rows) {
    if (!row.damage.ok()) return row.damage;
    out.push_back(std::move(row.run));
  }
  return out;
}

Result<std::vector<StateDb::StoredRun>> StateDb::ListStoredRuns(int limit, int offset) {
  std::string sql = std::string("SELECT ") + kRunColumns +
                    " FROM runs ORDER BY started_us DESC, id DESC LIMIT ? OFFSET ?";
  Stmt s(db_, sql.c_str());
  if (!s.prepared()) return s.Error("list runs");
  s.Bind(1, static_cast<int64_t>(limit > 0 ? limit : -1));
  s.Bind(2, static_cast<int64_t>(offset > 0 ? offset : 0));
  std::vector<StoredRun> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    StoredRun row;
    auto run = ReadRun(s);
    if (run.ok()) {
      row.run = std::move(run).value();
    } else {
      row.damage = run.status();
      row.run.id = s.Text(0);
      row.run.command = s.Text(3);
      row.run.started_us = s.Int(9);
    }
    out.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) return s.Error("list runs");
  return out;
}

Result<std::vector<RunRecord>> StateDb::UnfinishedRuns() {
  std::string sql =
      std::string("SELECT ") + kRunColumns + " FROM runs WHERE status = ? ORDER BY started_us";
  Stmt s(db_, sql.c_str());
  if (!s.prepared()) return s.Error("list unfinished runs");
  s.Bind(1, std::string(Name(RunStatus::kRunning)));
  std::vector<RunRecord> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    BACKSTOP_ASSIGN_OR_RETURN(RunRecord run, ReadRun(s));
    out.push_back(std::move(run));
  }
  if (rc != SQLITE_DONE) return s.Error("list unfinished runs");
  return out;
}

Result<std::vector<StepRecord>> StateDb::GetSteps(const std::string& run_id) {
  Stmt s(db_,
         "SELECT idx, action, component, description, status, attempts, started_us, ended_us, "
         "detail, result FROM steps WHERE run_id = ? ORDER BY idx");
  if (!s.prepared()) return s.Error("read steps");
  s.Bind(1, run_id);
  std::vector<StepRecord> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    StepRecord r;
    r.run_id = run_id;
    r.index = static_cast<int>(s.Int(0));
    const std::string where = "step " + std::to_string(r.index + 1) + " of run " + run_id +
                              " in the state database (table steps): ";
    BACKSTOP_ASSIGN_OR_RETURN(r.action, ParseStored(kStepActionNames, s.Text(1), where + "action"));
    r.component = s.Text(2);
    r.description = s.Text(3);
    BACKSTOP_ASSIGN_OR_RETURN(r.status, ParseStored(kStepStatusNames, s.Text(4), where + "status"));
    r.attempts = static_cast<int>(s.Int(5));
    r.started_us = s.Int(6);
    r.ended_us = s.Int(7);
    r.detail = s.Text(8);
    r.result = ParseJsonOr(s.Text(9), nullptr);
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return s.Error("read steps");
  return out;
}

Status StateDb::MarkStepStarted(const std::string& run_id, int index, int64_t now_us) {
  Stmt s(db_,
         "UPDATE steps SET status = ?, attempts = attempts + 1, started_us = ?, "
         "detail = '' WHERE run_id = ? AND idx = ?");
  s.Bind(1, std::string(Name(StepStatus::kStarted))).Bind(2, now_us).Bind(3, run_id).Bind(4, index);
  return s.Run("mark step started");
}

Status StateDb::MarkStepDone(const std::string& run_id, int index, int64_t now_us,
                             const std::string& detail, const nlohmann::json& result) {
  Stmt s(db_,
         "UPDATE steps SET status = ?, ended_us = ?, detail = ?, result = ? "
         "WHERE run_id = ? AND idx = ?");
  s.Bind(1, std::string(Name(StepStatus::kDone))).Bind(2, now_us).Bind(3, detail);
  s.Bind(4, result.dump()).Bind(5, run_id).Bind(6, index);
  return s.Run("mark step done");
}

Status StateDb::MarkStepFailed(const std::string& run_id, int index, int64_t now_us,
                               const std::string& detail) {
  Stmt s(db_,
         "UPDATE steps SET status = ?, ended_us = ?, detail = ? "
         "WHERE run_id = ? AND idx = ?");
  s.Bind(1, std::string(Name(StepStatus::kFailed))).Bind(2, now_us).Bind(3, detail);
  s.Bind(4, run_id).Bind(5, index);
  return s.Run("mark step failed");
}

Status StateDb::SetSafetyRestorePoint(const std::string& run_id, const std::string& rp_id) {
  Stmt s(db_, "UPDATE runs SET safety_restore_point = ? WHERE id = ?");
  s.Bind(1, rp_id).Bind(2, run_id);
  return s.Run("record safety restore point");
}

Status StateDb::SetRunStatus(const std::string& run_id, RunStatus status) {
  Stmt s(db_, "UPDATE runs SET status = ? WHERE id = ?");
  s.Bind(1, std::string(Name(status))).Bind(2, run_id);
  return s.Run("set run status");
}

Status StateDb::FinishRun(const std::string& run_id, RunStatus status, int64_t now_us,
                          const std::string& error, const nlohmann::json& summary) {
  Stmt s(db_, "UPDATE runs SET status = ?, ended_us = ?, error = ?, summary = ? WHERE id = ?");
  s.Bind(1, std::string(Name(status))).Bind(2, now_us).Bind(3, error).Bind(4, summary.dump());
  s.Bind(5, run_id);
  return s.Run("finish run");
}

Result<std::string> StateDb::ResolveRunId(const std::string& selector) {
  if (selector == "latest" || selector == "last") {
    auto runs = ListRuns(1);
    if (!runs.ok()) return runs.status();
    if (runs->empty()) return Status::NotFound("no run has been recorded yet");
    return runs->front().id;
  }
  Stmt s(db_, "SELECT id FROM runs WHERE id = ? OR substr(id, 1, length(?)) = ? ORDER BY id");
  s.Bind(1, selector).Bind(2, selector).Bind(3, selector);
  std::vector<std::string> ids;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    ids.push_back(s.Text(0));
    if (ids.back() == selector) return selector;
  }
  if (rc != SQLITE_DONE) return s.Error("resolve run");
  if (ids.empty()) {
    return Status::NotFound("no run matches '" + selector + "'; `backstop runs` lists them");
  }
  if (ids.size() > 1) {
    std::string all;
    for (const auto& id : ids) all += " " + id;
    return Status::InvalidArgument("'" + selector + "' matches several runs:" + all);
  }
  return ids.front();
}

Status StateDb::AddHistory(const HistoryRecord& record) {
  BACKSTOP_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  // The revision being replaced is no longer the deployed one.
  {
    Stmt s(db_,
           "UPDATE history SET status = 'superseded' WHERE component = ? AND status = 'deployed'");
    s.Bind(1, record.component);
    Status st = s.Run("update history");
    if (!st.ok()) {
      (void)Exec("ROLLBACK");
      return st;
    }
  }
  Stmt s(db_,
         "INSERT INTO history (component, revision, release, status, at_us, run_id, description) "
         "VALUES (?, (SELECT COALESCE(MAX(revision), 0) + 1 FROM history WHERE component = ?), "
         "?, ?, ?, ?, ?)");
  s.Bind(1, record.component).Bind(2, record.component).Bind(3, record.release);
  s.Bind(4, record.status).Bind(5, record.at_us).Bind(6, record.run_id).Bind(7, record.description);
  Status st = s.Run("add history");
  if (!st.ok()) {
    (void)Exec("ROLLBACK");
    return st;
  }
  return Exec("COMMIT");
}

Result<std::vector<HistoryRecord>> StateDb::History(const std::string& component) {
  Stmt s(db_,
         "SELECT component, revision, release, status, at_us, run_id, description FROM history "
         "WHERE component = ? ORDER BY revision");
  if (!s.prepared()) return s.Error("read history");
  s.Bind(1, component);
  std::vector<HistoryRecord> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    HistoryRecord h;
    h.component = s.Text(0);
    h.revision = static_cast<int>(s.Int(1));
    h.release = s.Text(2);
    h.status = s.Text(3);
    h.at_us = s.Int(4);
    h.run_id = s.Text(5);
    h.description = s.Text(6);
    out.push_back(std::move(h));
  }
  if (rc != SQLITE_DONE) return s.Error("read history");
  return out;
}

Status StateDb::SetHistoryStatus(const std::string& component, const std::string& run_id,
                                 const std::string& status) {
  Stmt s(db_, "UPDATE history SET status = ? WHERE component = ? AND run_id = ?");
  s.Bind(1, status).Bind(2, component).Bind(3, run_id);
  return s.Run("update history");
}

Result<int64_t> StateDb::AppendEvent(const Event& event) {
  Stmt s(db_,
         "INSERT INTO events (at_us, kind, run_id, component, trigger_name, message, detail) "
         "VALUES (?,?,?,?,?,?,?)");
  s.Bind(1, event.at_us).Bind(2, std::string(EventKindName(event.kind))).Bind(3, event.run_id);
  s.Bind(4, event.component).Bind(5, event.trigger).Bind(6, event.message);
  s.Bind(7, event.detail.is_null() ? std::string("{}") : event.detail.dump());
  BACKSTOP_RETURN_IF_ERROR(s.Run("append event"));
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

Result<std::vector<Event>> StateDb::ListEvents(const EventQuery& query) {
  Stmt s(db_,
         "SELECT id, at_us, kind, run_id, component, trigger_name, message, detail FROM events "
         "WHERE id > ? AND (? = '' OR run_id = ?) ORDER BY id LIMIT ?");
  if (!s.prepared()) return s.Error("read events");
  s.Bind(1, query.after_id).Bind(2, query.run_id).Bind(3, query.run_id);
  s.Bind(4, static_cast<int64_t>(query.limit > 0 ? query.limit : -1));
  std::vector<Event> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    auto kind = ParseEventKind(s.Text(2));
    if (!kind) continue;  // written by a newer Backstop: not ours to interpret
    Event e;
    e.id = s.Int(0);
    e.at_us = s.Int(1);
    e.kind = *kind;
    e.run_id = s.Text(3);
    e.component = s.Text(4);
    e.trigger = s.Text(5);
    e.message = s.Text(6);
    e.detail = ParseJsonOr(s.Text(7), nlohmann::json::object());
    out.push_back(std::move(e));
  }
  if (rc != SQLITE_DONE) return s.Error("read events");
  return out;
}

Status StateDb::AckChecklistItem(const ChecklistAck& ack) {
  Stmt s(db_,
         "INSERT INTO checklist_acks (run_id, item, acked_by, note, at_us) VALUES (?,?,?,?,?) "
         "ON CONFLICT(run_id, item) DO UPDATE SET acked_by = excluded.acked_by, "
         "note = excluded.note, at_us = excluded.at_us");
  s.Bind(1, ack.run_id).Bind(2, ack.item).Bind(3, ack.by).Bind(4, ack.note).Bind(5, ack.at_us);
  return s.Run("record checklist acknowledgement");
}

Result<std::vector<ChecklistAck>> StateDb::ChecklistAcks(const std::string& run_id) {
  Stmt s(db_,
         "SELECT run_id, item, acked_by, note, at_us FROM checklist_acks WHERE run_id = ? "
         "ORDER BY at_us, item");
  if (!s.prepared()) return s.Error("read checklist acknowledgements");
  s.Bind(1, run_id);
  std::vector<ChecklistAck> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    ChecklistAck a;
    a.run_id = s.Text(0);
    a.item = s.Text(1);
    a.by = s.Text(2);
    a.note = s.Text(3);
    a.at_us = s.Int(4);
    out.push_back(std::move(a));
  }
  if (rc != SQLITE_DONE) return s.Error("read checklist acknowledgements");
  return out;
}

Status StateDb::RecordDrill(const DrillRecord& d) {
  Stmt s(db_,
         "INSERT OR REPLACE INTO drills (id, name, scenario, component, environment, status, "
         "reason, run_id, restore_point, started_us, ended_us, detection_ms, recovery_ms, "
         "target_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  s.Bind(1, d.id).Bind(2, d.name).Bind(3, d.scenario).Bind(4, d.component).Bind(5, d.environment);
  s.Bind(6, std::string(Name(d.status))).Bind(7, d.reason);
  s.Bind(8, d.run_id).Bind(9, d.restore_point);
  s.Bind(10, d.started_us).Bind(11, d.ended_us).Bind(12, d.detection_ms).Bind(13, d.recovery_ms);
  s.Bind(14, d.target_ms);
  return s.Run("record drill");
}

Result<std::vector<DrillRecord>> StateDb::ListDrills(int limit) {
  Stmt s(db_,
         "SELECT id, name, scenario, component, environment, status, reason, run_id, "
         "restore_point, started_us, ended_us, detection_ms, recovery_ms, target_ms FROM drills "
         "ORDER BY started_us DESC, id DESC LIMIT ?");
  if (!s.prepared()) return s.Error("read drills");
  s.Bind(1, limit > 0 ? static_cast<int64_t>(limit) : int64_t{-1});
  std::vector<DrillRecord> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    DrillRecord d;
    d.id = s.Text(0);
    d.name = s.Text(1);
    d.scenario = s.Text(2);
    d.component = s.Text(3);
    d.environment = s.Text(4);
    BACKSTOP_ASSIGN_OR_RETURN(
        d.status, ParseStored(kDrillStatusNames, s.Text(5),
                              "drill " + d.id + " in the state database (table drills): status"));
    d.reason = s.Text(6);
    d.run_id = s.Text(7);
    d.restore_point = s.Text(8);
    d.started_us = s.Int(9);
    d.ended_us = s.Int(10);
    d.detection_ms = s.Int(11);
    d.recovery_ms = s.Int(12);
    d.target_ms = s.Int(13);
    out.push_back(std::move(d));
  }
  if (rc != SQLITE_DONE) return s.Error("read drills");
  return out;
}

Status StateDb::EnqueueDeliveries(const std::vector<DeliveryRecord>& deliveries) {
  if (deliveries.empty()) return Status::OK();
  BACKSTOP_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  for (const auto& d : deliveries) {
    Stmt s(db_,
           "INSERT OR IGNORE INTO deliveries (event_id, target, next_attempt_us) VALUES (?,?,?)");
    s.Bind(1, d.event_id).Bind(2, d.target).Bind(3, d.next_attempt_us);
    Status st = s.Run("queue notification");
    if (!st.ok()) {
      (void)Exec("ROLLBACK");
      return st;
    }
  }
  return Exec("COMMIT");
}

namespace {

constexpr const char* kDeliveryColumns =
    "event_id, target, attempts, next_attempt_us, delivered_us, failed_us, last_error";

DeliveryRecord ReadDelivery(const Stmt& s) {
  DeliveryRecord d;
  d.event_id = s.Int(0);
  d.target = s.Text(1);
  d.attempts = static_cast<int>(s.Int(2));
  d.next_attempt_us = s.Int(3);
  d.delivered_us = s.Int(4);
  d.failed_us = s.Int(5);
  d.last_error = s.Text(6);
  return d;
}

}  // namespace

Result<std::vector<DeliveryRecord>> StateDb::Deliveries(const DeliveryQuery& query) {
  const std::string sql = std::string("SELECT ") + kDeliveryColumns +
                          " FROM deliveries WHERE (? = 0 OR (delivered_us = 0 AND failed_us = 0 "
                          "AND next_attempt_us <= ?)) AND (? = '' OR target = ?) "
                          "ORDER BY event_id, target LIMIT ?";
  Stmt s(db_, sql.c_str());
  if (!s.prepared()) return s.Error("read notifications");
  s.Bind(1, query.due_at_us).Bind(2, query.due_at_us);
  s.Bind(3, query.target).Bind(4, query.target);
  s.Bind(5, static_cast<int64_t>(query.limit > 0 ? query.limit : -1));
  std::vector<DeliveryRecord> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(ReadDelivery(s));
  if (rc != SQLITE_DONE) return s.Error("read notifications");
  return out;
}

Result<bool> StateDb::ClaimDelivery(int64_t event_id, const std::string& target, int64_t now_us,
                                    int64_t lease_until_us) {
  Stmt s(db_,
         "UPDATE deliveries SET next_attempt_us = ? WHERE event_id = ? AND target = ? AND "
         "delivered_us = 0 AND failed_us = 0 AND next_attempt_us <= ?");
  s.Bind(1, lease_until_us).Bind(2, event_id).Bind(3, target).Bind(4, now_us);
  BACKSTOP_RETURN_IF_ERROR(s.Run("claim notification"));
  return sqlite3_changes(db_) == 1;
}

Status StateDb::RecordDeliveryAttempt(const DeliveryRecord& d) {
  // One statement: the attempt, and delivered or when to try again, land
  // together; a row already delivered is left as it is.
  Stmt s(db_,
         "UPDATE deliveries SET attempts = ?, next_attempt_us = ?, delivered_us = ?, "
         "failed_us = ?, last_error = ? WHERE event_id = ? AND target = ? AND delivered_us = 0");
  s.Bind(1, d.attempts).Bind(2, d.next_attempt_us).Bind(3, d.delivered_us).Bind(4, d.failed_us);
  s.Bind(5, d.last_error).Bind(6, d.event_id).Bind(7, d.target);
  return s.Run("record notification attempt");
}

Status StateDb::Put(const std::string& key, const std::string& value) {
  Stmt s(db_,
         "INSERT INTO kv (key, value) VALUES (?, ?) "
         "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  s.Bind(1, key).Bind(2, value);
  return s.Run("write " + key);
}

Result<std::optional<std::string>> StateDb::Get(const std::string& key) {
  Stmt s(db_, "SELECT value FROM kv WHERE key = ?");
  if (!s.prepared()) return s.Error("read " + key);
  s.Bind(1, key);
  int rc = s.Step();
  if (rc == SQLITE_ROW) return std::optional<std::string>(s.Text(0));
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  return s.Error("read " + key);
}

}  // namespace backstop

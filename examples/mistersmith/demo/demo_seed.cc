// demo-seed: sets up and disturbs the data of the mistersmith demo.
//
//   demo-seed init      --database CONNINFO --nats URL
//       creates the procedures' schema (agents; tasks -> agents; discoveries;
//       hive_sessions) with seed data, and the JetStream streams
//       MisterSmith-Tasks and MisterSmith-Results with seed messages.
//   demo-seed migrate-v2 --database CONNINFO --nats URL [--rows N] [--messages N]
//       what the broken v2 orchestrator does on start: writes task rows, changes
//       and deletes a few, and publishes messages — the data a rollback to the
//       restore point discards, and that Backstop's ledger must list.
//   demo-seed counts    --database CONNINFO --nats URL
//       prints row and message counts.
//
// A stand-alone program: it links only libpq and nats.c, not Backstop.
#include <libpq-fe.h>
#include <nats/nats.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "demo-seed: %s\n", msg.c_str());
  std::exit(1);
}

struct Args {
  std::string command;
  std::string database;
  std::string nats = "nats://127.0.0.1:4222";
  int rows = 25;
  int messages = 40;
};

Args Parse(int argc, char** argv) {
  if (argc < 2) Die("usage: demo-seed init|migrate-v2|counts --database CONNINFO --nats URL");
  Args a;
  a.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Die(k + " needs a value");
      return argv[++i];
    };
    if (k == "--database") a.database = value();
    else if (k == "--nats") a.nats = value();
    else if (k == "--rows") a.rows = std::atoi(value().c_str());
    else if (k == "--messages") a.messages = std::atoi(value().c_str());
    else Die("unknown option " + k);
  }
  if (a.database.empty()) Die("--database is required");
  return a;
}

class Db {
 public:
  explicit Db(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK) Die(std::string("database: ") + PQerrorMessage(conn_));
  }
  ~Db() { PQfinish(conn_); }
  void Exec(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      std::string err = PQresultErrorMessage(r);
      PQclear(r);
      Die("database: " + err + "in: " + sql.substr(0, 120));
    }
    PQclear(r);
  }
  std::string Scalar(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) {
      std::string err = PQresultErrorMessage(r);
      PQclear(r);
      Die("database: " + err);
    }
    std::string v = PQgetvalue(r, 0, 0);
    PQclear(r);
    return v;
  }

 private:
  PGconn* conn_;
};

class Js {
 public:
  explicit Js(const std::string& url) {
    natsStatus s = natsConnection_ConnectTo(&nc_, url.c_str());
    if (s != NATS_OK) Die("nats: cannot connect to " + url + ": " + natsStatus_GetText(s));
    s = natsConnection_JetStream(&js_, nc_, nullptr);
    if (s != NATS_OK) Die(std::string("nats: JetStream: ") + natsStatus_GetText(s));
  }
  ~Js() {
    jsCtx_Destroy(js_);
    natsConnection_Destroy(nc_);
  }
  void EnsureStream(const std::string& name, const std::string& subjects) {
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    if (js_GetStreamInfo(&si, js_, name.c_str(), nullptr, &jerr) == NATS_OK) {
      jsStreamInfo_Destroy(si);
      return;
    }
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = name.c_str();
    const char* subj[] = {subjects.c_str()};
    cfg.Subjects = subj;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    natsStatus s = js_AddStream(&si, js_, &cfg, nullptr, &jerr);
    if (s != NATS_OK) Die("nats: cannot create stream " + name + ": " + natsStatus_GetText(s));
    jsStreamInfo_Destroy(si);
  }
  void Publish(const std::string& subject, const std::string& data) {
    jsPubAck* ack = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_Publish(&ack, js_, subject.c_str(), data.data(),
                              static_cast<int>(data.size()), nullptr, &jerr);
    if (s != NATS_OK) Die("nats: publish to " + subject + ": " + natsStatus_GetText(s));
    jsPubAck_Destroy(ack);
  }
  uint64_t Messages(const std::string& stream) {
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    if (js_GetStreamInfo(&si, js_, stream.c_str(), nullptr, &jerr) != NATS_OK) return 0;
    uint64_t n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return n;
  }

 private:
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS agents (
  id          serial PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  kind        text NOT NULL,
  status      text NOT NULL DEFAULT 'idle',
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS tasks (
  id                 serial PRIMARY KEY,
  assigned_agent_id  integer REFERENCES agents(id),
  description        text NOT NULL,
  status             text NOT NULL DEFAULT 'queued',
  created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS discoveries (
  id          serial PRIMARY KEY,
  agent_id    integer NOT NULL REFERENCES agents(id),
  task_id     integer REFERENCES tasks(id),
  content     text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS hive_sessions (
  id           serial PRIMARY KEY,
  started_at   timestamptz NOT NULL DEFAULT now(),
  ended_at     timestamptz,
  agent_count  integer NOT NULL DEFAULT 0
);
)sql";

void Init(const Args& a) {
  Db db(a.database);
  db.Exec(kSchema);
  if (db.Scalar("SELECT count(*) FROM agents") == "0") {
    db.Exec(
        "INSERT INTO agents (name, kind, status) "
        "SELECT 'agent-' || g, (ARRAY['researcher','coder','reviewer'])[1 + g % 3], 'idle' "
        "FROM generate_series(1, 12) g");
    db.Exec(
        "INSERT INTO tasks (assigned_agent_id, description, status) "
        "SELECT CASE WHEN g % 5 = 0 THEN NULL ELSE 1 + g % 12 END, 'task ' || g, "
        "(ARRAY['queued','running','done'])[1 + g % 3] FROM generate_series(1, 200) g");
    db.Exec(
        "INSERT INTO discoveries (agent_id, task_id, content) "
        "SELECT 1 + g % 12, 1 + g % 200, 'finding ' || g FROM generate_series(1, 50) g");
    db.Exec(
        "INSERT INTO hive_sessions (started_at, ended_at, agent_count) "
        "SELECT now() - g * interval '1 hour', now() - g * interval '1 hour' + interval '20 min', "
        "3 + g FROM generate_series(1, 5) g");
  }
  Js js(a.nats);
  js.EnsureStream("MisterSmith-Tasks", "mistersmith.tasks.>");
  js.EnsureStream("MisterSmith-Results", "mistersmith.results.>");
  if (js.Messages("MisterSmith-Tasks") == 0) {
    for (int i = 1; i <= 100; ++i) {
      js.Publish("mistersmith.tasks.queued", "{\"task\": " + std::to_string(i) + "}");
    }
    for (int i = 1; i <= 60; ++i) {
      js.Publish("mistersmith.results.done", "{\"task\": " + std::to_string(i) + ", \"ok\": true}");
    }
  }
  std::printf("seeded: 12 agents, 200 tasks, 50 discoveries, 5 hive sessions; "
              "100 + 60 messages in MisterSmith-Tasks and MisterSmith-Results\n");
}

void MigrateV2(const Args& a) {
  Db db(a.database);
  // A migration gone wrong: new rows, some rewritten, some deleted.
  db.Exec("INSERT INTO tasks (assigned_agent_id, description, status) "
          "SELECT 1 + g % 12, 'v2 task ' || g, 'queued' FROM generate_series(1, " +
          std::to_string(a.rows) + ") g");
  db.Exec("UPDATE tasks SET status = 'v2-migrated' WHERE id IN (SELECT id FROM tasks ORDER BY id LIMIT 3)");
  db.Exec("DELETE FROM discoveries WHERE id IN (SELECT id FROM discoveries ORDER BY id DESC LIMIT 2)");
  db.Exec("INSERT INTO agents (name, kind) VALUES ('agent-v2-probe', 'coder')");
  Js js(a.nats);
  for (int i = 1; i <= a.messages; ++i) {
    std::string subject = i % 2 ? "mistersmith.tasks.v2" : "mistersmith.results.v2";
    js.Publish(subject, "{\"v2\": " + std::to_string(i) + "}");
  }
  std::printf("v2 migration: +%d tasks, 3 tasks changed, 2 discoveries deleted, +1 agent; "
              "%d messages published\n",
              a.rows, a.messages);
}

void Counts(const Args& a) {
  Db db(a.database);
  std::printf("agents=%s tasks=%s discoveries=%s hive_sessions=%s",
              db.Scalar("SELECT count(*) FROM agents").c_str(),
              db.Scalar("SELECT count(*) FROM tasks").c_str(),
              db.Scalar("SELECT count(*) FROM discoveries").c_str(),
              db.Scalar("SELECT count(*) FROM hive_sessions").c_str());
  Js js(a.nats);
  std::printf(" MisterSmith-Tasks=%llu MisterSmith-Results=%llu\n",
              static_cast<unsigned long long>(js.Messages("MisterSmith-Tasks")),
              static_cast<unsigned long long>(js.Messages("MisterSmith-Results")));
}

}  // namespace

int main(int argc, char** argv) {
  Args a = Parse(argc, argv);
  if (a.command == "init") Init(a);
  else if (a.command == "migrate-v2") MigrateV2(a);
  else if (a.command == "counts") Counts(a);
  else Die("unknown command " + a.command);
  nats_Close();
  return 0;
}

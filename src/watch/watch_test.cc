// The watch daemon's parts that need no rollback: the logger (formats,
// redaction), the pause flag in the state database, `--once` against real
// loopback servers, and the running daemon's API (pause through the API with
// the token, refusal without it) — the automatic rollback itself is covered
// by tests/watch_autorollback.sh with real services.
#include "watch/watch.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <stdio.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "base/output.h"
#include "run/run.h"
#include "run/state_db.h"
#include "store/restore_point.h"
#include "store/store.h"
#include "testing/pg_server.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

std::string ReadAll(FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  return out;
}

TEST(WatchLoggerTest, JsonLinesHaveTsLevelMsgFields) {
  FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  WatchLogger log(/*json=*/true, f);
  log.Warn("trigger firing", {{"trigger", "health_check_failures"}, {"n", 3}});
  log.Info("plain");
  std::string text = ReadAll(f);
  std::fclose(f);
  std::istringstream lines(text);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(j.contains("ts") && j.contains("level") && j.contains("msg") &&
                j.contains("fields"))
        << line;
    EXPECT_TRUE(j["fields"].is_object());
    ++count;
  }
  ASSERT_EQ(count, 2);
  auto first = nlohmann::json::parse(text.substr(0, text.find('\n')));
  EXPECT_EQ(first["level"], "warn");
  EXPECT_EQ(first["msg"], "trigger firing");
  EXPECT_EQ(first["fields"]["n"], 3);
}

TEST(WatchLoggerTest, TextFormatAndSecretsRedacted) {
  FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  WatchLogger log(/*json=*/false, f);
  log.AddSecret("hunter2-secret-token");
  log.Info("starting", {{"component", "webui"}, {"reason", "two words"}});
  log.Error("leaked hunter2-secret-token in a message",
            {{"header", "Bearer hunter2-secret-token"}});
  std::string text = ReadAll(f);
  std::fclose(f);
  EXPECT_NE(text.find(" INFO  starting component=webui reason=\"two words\""), std::string::npos)
      << text;
  EXPECT_EQ(text.find("hunter2-secret-token"), std::string::npos) << text;
  EXPECT_NE(text.find("[redacted]"), std::string::npos);
}

TEST(WatchLoggerTest, CredentialsInDriverOutputAreRedacted) {
  FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  WatchLogger log(/*json=*/false, f);
  log.Info("run: connecting to host=127.0.0.1 user=app password=s3cr3t dbname=x");
  log.Info("run: nats://alice:pa55word@127.0.0.1:4222 and http://127.0.0.1:8222/healthz");
  std::string text = ReadAll(f);
  std::fclose(f);
  EXPECT_EQ(text.find("s3cr3t"), std::string::npos) << text;
  EXPECT_EQ(text.find("pa55word"), std::string::npos) << text;
  EXPECT_NE(text.find("dbname=x"), std::string::npos) << text;
  EXPECT_NE(text.find("nats://alice:[redacted]@127.0.0.1:4222"), std::string::npos) << text;
  EXPECT_NE(text.find("http://127.0.0.1:8222/healthz"), std::string::npos) << text;
}

TEST(PauseStateTest, RoundTripsThroughTheStateDatabase) {
  testing::TempDir dir;
  auto db = StateDb::Open(dir.Join("state.db"));
  ASSERT_TRUE(db.ok());
  auto none = ReadPauseState(**db);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->paused);
  PauseState s;
  s.paused = true;
  s.reason = "incident 7";
  s.by = "cli";
  s.at_wall_us = 1'790'000'000'000'000;
  ASSERT_TRUE(WritePauseState(**db, s).ok());
  // Another connection (another process in real life) sees it.
  auto other = StateDb::Open(dir.Join("state.db"));
  ASSERT_TRUE(other.ok());
  auto read = ReadPauseState(**other);
  ASSERT_TRUE(read.ok());
  EXPECT_TRUE(read->paused);
  EXPECT_EQ(read->reason, "incident 7");
  EXPECT_EQ(read->by, "cli");
  EXPECT_EQ(read->at_wall_us, s.at_wall_us);
}

// Two HTTP services on loopback: one healthy, one answering 503.
class Services {
 public:
  Services() {
    good_.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ok\n", "text/plain");
    });
    good_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      // Every scrape sees 100 more requests, 25 of them errors: a 25% error rate.
      const int n = ++scrapes_;
      res.set_content("app_requests_total " + std::to_string(100 * n) + "\napp_errors_total " +
                          std::to_string(25 * n) + "\n",
                      "text/plain");
    });
    bad_.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.status = 503;
      res.set_content("down\n", "text/plain");
    });
    good_port_ = good_.bind_to_any_port("127.0.0.1");
    bad_port_ = bad_.bind_to_any_port("127.0.0.1");
    good_thread_ = std::thread([this] { good_.listen_after_bind(); });
    bad_thread_ = std::thread([this] { bad_.listen_after_bind(); });
    while (!good_.is_running() || !bad_.is_running()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  ~Services() {
    good_.stop();
    bad_.stop();
    good_thread_.join();
    bad_thread_.join();
  }
  int good_port() const { return good_port_; }
  int bad_port() const { return bad_port_; }

 private:
  httplib::Server good_, bad_;
  std::atomic<int> scrapes_{0};
  std::thread good_thread_, bad_thread_;
  int good_port_ = 0, bad_port_ = 0;
};

Result<Spec> MakeSpec(const testing::TempDir& dir, const Services& s, const std::string& extra) {
  const std::string path = dir.Join("backstop.yaml");
  std::string text =
      "environment: test\n"
      "components:\n"
      "  good:\n"
      "    kind: config\n"
      "    driver: files\n"
      "    files: [a.json]\n"
      "    health: { http: \"http://127.0.0.1:" +
      std::to_string(s.good_port()) +
      "/health\", interval: 100ms, timeout: 100ms }\n"
      "  bad:\n"
      "    kind: config\n"
      "    driver: files\n"
      "    files: [b.json]\n"
      "    health: { http: \"http://127.0.0.1:" +
      std::to_string(s.bad_port()) + "/health\", interval: 100ms, timeout: 100ms }\n" + extra;
  testing::WriteFileOrDie(dir.Join("a.json"), "{}");
  testing::WriteFileOrDie(dir.Join("b.json"), "{}");
  testing::WriteFileOrDie(path, text);
  return LoadSpec(path, DriverRegistry::Global());
}

TEST(WatcherTest, OnceProbesEverythingAndReports) {
  Services services;
  testing::TempDir dir;
  auto spec = MakeSpec(dir, services, "");
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  FILE* logf = std::tmpfile();
  WatchLogger log(false, logf);
  WatchOptions options;
  options.once = true;
  Watcher w(Env::Default(), *spec, DriverRegistry::Global(), options, &log);
  bool healthy = true;
  auto doc = w.Once(&healthy);
  std::fclose(logf);
  ASSERT_TRUE(doc.ok()) << doc.status().message();
  EXPECT_FALSE(healthy);
  std::map<std::string, nlohmann::json> by_name;
  for (const auto& c : (*doc)["components"]) by_name[c["name"]] = c;
  EXPECT_EQ(by_name["good"]["health"], "pass");
  EXPECT_EQ(by_name["bad"]["health"], "fail");
  EXPECT_EQ(by_name["bad"]["detail"], "HTTP 503");
  EXPECT_EQ(by_name["bad"]["reachable"], true);
  bool saw_pending = false;
  for (const auto& t : (*doc)["triggers"]) {
    if (t["trigger"] == "health_check_failures" && t["component"] == "bad") {
      EXPECT_EQ(t["state"], "pending");
      EXPECT_EQ(t["consecutive_bad"], 1);
      saw_pending = true;
    }
  }
  EXPECT_TRUE(saw_pending);
}

// The status of `once` for trigger `trigger` on component "bad".
nlohmann::json TriggerOnBad(const Spec& spec, bool dry_run, const std::string& trigger) {
  FILE* logf = std::tmpfile();
  WatchLogger log(false, logf);
  WatchOptions options;
  options.once = true;
  options.dry_run = dry_run;
  Watcher w(Env::Default(), spec, DriverRegistry::Global(), options, &log);
  auto doc = w.Once(nullptr);
  std::fclose(logf);
  EXPECT_TRUE(doc.ok()) << doc.status().message();
  if (!doc.ok()) return nullptr;
  for (const auto& t : (*doc)["triggers"]) {
    if (t["trigger"] == trigger && t["component"] == "bad") return t;
  }
  ADD_FAILURE() << "no " << trigger << " on bad in " << doc->dump();
  return nullptr;
}

TEST(WatcherTest, EachTriggerSaysWhatTheMatrixWouldChooseAndDoIfItFiredNow) {
  Services services;
  testing::TempDir dir;
  auto spec = MakeSpec(dir, services,
                       "decision_matrix:\n"
                       "  - scenario: Single service failure\n"
                       "    triggers: [health_check_failures]\n"
                       "    scope: component\n"
                       "    procedure: roll back the failed component\n"
                       "    recovery_time: 2-5m\n");
  ASSERT_TRUE(spec.ok()) << spec.status().message();

  nlohmann::json health = TriggerOnBad(*spec, /*dry_run=*/false, "health_check_failures");
  ASSERT_TRUE(health.is_object());
  EXPECT_EQ(health["if_fired"]["scenario"], "Single service failure");
  EXPECT_EQ(health["if_fired"]["scope"], "component");
  EXPECT_EQ(health["if_fired"]["procedure"], "roll back the failed component");
  EXPECT_EQ(health["if_fired"]["recovery_min_ms"], 120'000);
  EXPECT_EQ(health["if_fired"]["recovery_max_ms"], 300'000);
  EXPECT_EQ(health["if_fired"]["now"],
            "would roll back, once the latest restore point passes its checks");
  EXPECT_EQ(health["if_fired"]["would_act"], true);

  // Not in the matrix: the scope its action gives, as Decide would take it.
  nlohmann::json latency = TriggerOnBad(*spec, /*dry_run=*/false, "response_time");
  ASSERT_TRUE(latency.is_object());
  EXPECT_EQ(latency["if_fired"]["scenario"],
            "trigger response_time (not in the decision matrix; scope from its action "
            "evaluate_and_rollback)");
  EXPECT_EQ(latency["if_fired"]["scope"], "affected");

  nlohmann::json dry = TriggerOnBad(*spec, /*dry_run=*/true, "health_check_failures");
  ASSERT_TRUE(dry.is_object());
  EXPECT_EQ(dry["if_fired"]["now"], "dry run: would log the decision, not act");
  EXPECT_EQ(dry["if_fired"]["would_act"], false);
  EXPECT_FALSE(dry["if_fired"].contains("held_by"));  // not a gate: the daemon's mode
}

// Runs the daemon on a thread; the API on a free port, the token given.
class DaemonThread {
 public:
  DaemonThread(const Spec& spec, const testing::TempDir& dir, bool dry_run = false,
               Env* env = Env::Default())
      : logf_(std::tmpfile()) {
    testing::WriteFileOrDie(dir.Join("token"), "daemon-test-token-123\n");
    log_ = std::make_unique<WatchLogger>(true, logf_);
    WatchOptions options;
    options.dry_run = dry_run;
    options.listen = "127.0.0.1:0";
    options.token_file = dir.Join("token");
    watcher_ = std::make_unique<Watcher>(env, spec, DriverRegistry::Global(), options, log_.get());
    thread_ = std::thread([this] { status_ = watcher_->Run(); });
    for (int i = 0; i < 2000 && watcher_->api_port() == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    client_ = std::make_unique<httplib::Client>("127.0.0.1", watcher_->api_port());
    client_->set_read_timeout(10);
  }
  ~DaemonThread() {
    if (thread_.joinable()) Stop();
    std::fclose(logf_);
  }
  // Stops the daemon; returns its log.
  std::string Stop() {
    watcher_->Stop();
    thread_.join();
    return ReadAll(logf_);
  }
  int port() const { return watcher_->api_port(); }
  Watcher& watcher() { return *watcher_; }
  httplib::Client& client() { return *client_; }
  const Status& status() const { return status_; }
  // Polls /api/v1/status until `pred` holds (or about 10 s).
  nlohmann::json WaitForStatus(const std::function<bool(const nlohmann::json&)>& pred) {
    nlohmann::json status;
    for (int i = 0; i < 1000; ++i) {
      auto res = client_->Get("/api/v1/status");
      if (res && res->status == 200) {
        status = nlohmann::json::parse(res->body);
        if (pred(status)) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return status;
  }

 private:
  FILE* logf_;
  std::unique_ptr<WatchLogger> log_;
  std::unique_ptr<Watcher> watcher_;
  std::thread thread_;
  Status status_;
  std::unique_ptr<httplib::Client> client_;
};

TEST(WatcherTest, ErrorRateFromTheMetricsPageWhenATriggerNamesIt) {
  Services services;
  testing::TempDir dir;
  auto spec = MakeSpec(dir, services,
                       "triggers:\n"
                       "  - { name: errors, component: good, signal: error_rate, metric: "
                       "errors_total/requests_total, above: 5%, action: alert }\n");
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  DaemonThread daemon(*spec, dir);
  ASSERT_GT(daemon.port(), 0);
  auto trigger_state = [](const nlohmann::json& status) {
    for (const auto& t : status["triggers"]) {
      if (t["trigger"] == "errors") return t.value("state", std::string());
    }
    return std::string("absent");
  };
  // 25% of the requests counted by the service's own counters fail: above 5%, it fires.
  nlohmann::json status =
      daemon.WaitForStatus([&](const nlohmann::json& s) { return trigger_state(s) == "firing"; });
  EXPECT_EQ(trigger_state(status), "firing") << status.dump(2);
  for (const auto& c : status["components"]) {
    if (c["name"] == "good") {
      EXPECT_EQ(c["metrics_url"],
                "http://127.0.0.1:" + std::to_string(services.good_port()) + "/metrics");
      EXPECT_EQ(c["health"], "pass") << "the probes themselves pass; the error rate is the app's";
    }
  }
  // action alert: decided, never acted.
  status = daemon.WaitForStatus([](const nlohmann::json& s) {
    for (const auto& d : s["decisions"]) {
      if (d["trigger"] == "errors") return true;
    }
    return false;
  });
  bool decided = false;
  for (const auto& d : status["decisions"]) {
    if (d["trigger"] != "errors") continue;
    decided = true;
    EXPECT_NE(d["outcome"], "acted") << d.dump();
  }
  EXPECT_TRUE(decided);
  daemon.Stop();
  EXPECT_TRUE(daemon.status().ok()) << daemon.status().message();
}

TEST(WatcherTest, RunningDaemonServesTheApiAndHonoursTheToken) {
  Services services;
  testing::TempDir dir;
  auto spec = MakeSpec(dir, services, "");
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  DaemonThread daemon(*spec, dir);
  ASSERT_GT(daemon.port(), 0);
  httplib::Client& client = daemon.client();

  auto refused = client.Post("/api/v1/pause", "{}", "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401);
  httplib::Headers auth = {{"Authorization", "Bearer daemon-test-token-123"}};
  auto paused = client.Post("/api/v1/pause", auth, R"({"reason": "test"})", "application/json");
  ASSERT_TRUE(paused);
  EXPECT_EQ(paused->status, 200) << paused->body;
  // The flag is in the state database, where `backstop watch pause` also writes it.
  auto db = StateDb::Open(JoinPath(spec->state_dir, "state.db"));
  ASSERT_TRUE(db.ok());
  auto state = ReadPauseState(**db);
  ASSERT_TRUE(state.ok());
  EXPECT_TRUE(state->paused);
  EXPECT_EQ(state->reason, "test");

  // Status shows both components once probed, and the paused flag.
  nlohmann::json status = daemon.WaitForStatus([](const nlohmann::json& s) {
    for (const auto& c : s["components"]) {
      if (c["health"] == "pending") return false;
    }
    return true;
  });
  EXPECT_EQ(status["paused"], true);
  for (const auto& c : status["components"]) {
    EXPECT_EQ(c["health"], c["name"] == "good" ? "pass" : "fail") << c.dump();
  }
  // Every trigger says the pause would hold it.
  ASSERT_FALSE(status["triggers"].empty());
  for (const auto& t : status["triggers"]) {
    EXPECT_EQ(t["if_fired"]["held_by"], "paused") << t.dump();
    EXPECT_EQ(t["if_fired"]["would_act"], false) << t.dump();
  }
  auto unknown =
      client.Post("/api/v1/rollback", auth, R"({"component": "nope"})", "application/json");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("backstop_probe_success{component=\"good\"} 1"), std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("backstop_probe_success{component=\"bad\"} 0"), std::string::npos);
  EXPECT_NE(metrics->body.find("backstop_watch_paused 1"), std::string::npos);
  // The bad component's health trigger fires after three probes; with no
  // restore point the decision is to hold, and it says why.
  status = daemon.WaitForStatus([](const nlohmann::json& s) { return !s["decisions"].empty(); });
  ASSERT_FALSE(status["decisions"].empty());
  EXPECT_EQ(status["decisions"][0]["component"], "bad");
  EXPECT_EQ(status["decisions"][0]["outcome"], "held");
  EXPECT_NE(status["decisions"][0]["why"].get<std::string>().find("no restore point"),
            std::string::npos)
      << status["decisions"][0].dump();

  const std::string logs = daemon.Stop();
  EXPECT_TRUE(daemon.status().ok()) << daemon.status().message();
  EXPECT_EQ(logs.find("daemon-test-token-123"), std::string::npos);
  EXPECT_NE(logs.find("no restore point"), std::string::npos) << logs;
}

// A restore point of every component of `spec`, to roll back to.
void TakeRestorePointOrDie(const Spec& spec) {
  ASSERT_TRUE(Env::Default()->fs()->CreateDirs(spec.state_dir).ok());
  auto store = Store::Open(Env::Default(), spec.store_path);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto state = StateDb::Open(JoinPath(spec.state_dir, "state.db"));
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  std::FILE* quiet = std::tmpfile();
  Output out(false, quiet, quiet);
  RunEngine engine(Env::Default(), spec, **store, **state, DriverRegistry::Global(), out);
  auto rp = TakeRestorePoint(engine, spec, **store, {}, "good", RestorePointKind::kManual, "", "");
  std::fclose(quiet);
  ASSERT_TRUE(rp.ok()) << rp.status().ToString();
}

// A rollback asked for through the API and answered 503 (the control thread
// did not take it in time) is withdrawn: it never runs, not even later. The
// next request is the only run.
TEST(WatcherTest, ARollbackRequestAnswered503NeverRuns) {
  Services services;
  testing::TempDir dir;
  auto spec = MakeSpec(dir, services, "");
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  TakeRestorePointOrDie(*spec);
  // Dry run: the failing component's trigger never rolls back by itself.
  DaemonThread daemon(*spec, dir, /*dry_run=*/true);
  ASSERT_GT(daemon.port(), 0);
  httplib::Headers auth = {{"Authorization", "Bearer daemon-test-token-123"}};
  daemon.watcher().SetApiAnswerTimeoutForTesting(0);
  auto busy =
      daemon.client().Post("/api/v1/rollback", auth, R"({"component": "bad"})", "application/json");
  ASSERT_TRUE(busy);
  EXPECT_EQ(busy->status, 503) << busy->body;
  daemon.watcher().SetApiAnswerTimeoutForTesting(10'000);
  auto taken = daemon.client().Post("/api/v1/rollback", auth, R"({"component": "good"})",
                                    "application/json");
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->status, 202) << taken->body;
  daemon.WaitForStatus([](const nlohmann::json& s) { return s["current_run"].is_null(); });
  daemon.Stop();
  auto db = StateDb::Open(JoinPath(spec->state_dir, "state.db"));
  ASSERT_TRUE(db.ok());
  auto runs = (*db)->ListRuns(10);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_NE((*runs)[0].command.find("\"good\""), std::string::npos) << (*runs)[0].command;
}

// A file system whose reads of restore-point manifests wait until Release():
// a store that hangs.
class ManifestReadsWait : public FileSystemWrapper {
 public:
  explicit ManifestReadsWait(FileSystem* target) : FileSystemWrapper(target) {}
  Result<std::string> ReadFileNoFollow(const std::string& path) override {
    if (path.find("/restore-points/") != std::string::npos) {
      std::unique_lock<std::mutex> lock(mu_);
      ++waiting_;
      cv_.notify_all();
      cv_.wait(lock, [this] { return released_; });
    }
    return FileSystemWrapper::ReadFileNoFollow(path);
  }
  // Waits (at most about 10 s) until a manifest read is held.
  bool WaitForAWaitingRead() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [this] { return waiting_ > 0; });
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_ = 0;
  bool released_ = false;
};

uint64_t ProbesOf(const nlohmann::json& status, const std::string& component) {
  for (const auto& c : status["components"]) {
    if (c["name"] == component) return c.value("probes_total", uint64_t{0});
  }
  return 0;
}

// Deciding on a firing trigger reads (and checksums) the restore points'
// manifests. While the store hangs, the daemon keeps recording probes and
// the API keeps answering; the decision is taken once the store answers.
TEST(WatcherTest, AHangingStoreNeitherStopsProbesNorTheApi) {
  Services services;
  testing::TempDir dir;
  auto spec = MakeSpec(dir, services, "");
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  TakeRestorePointOrDie(*spec);
  ManifestReadsWait fs(Env::Default()->fs());
  Env env(Env::Default()->clock(), &fs, Env::Default()->processes());
  {
    DaemonThread daemon(*spec, dir, /*dry_run=*/true, &env);
    struct ReleaseFirst {  // on a failed assertion, before the daemon stops
      ManifestReadsWait& fs;
      ~ReleaseFirst() { fs.Release(); }
    } release_first{fs};
    ASSERT_GT(daemon.port(), 0);
    // The failing component's trigger fires; its decision waits on the store.
    ASSERT_TRUE(fs.WaitForAWaitingRead());
    const uint64_t before =
        ProbesOf(daemon.WaitForStatus([](const nlohmann::json&) { return true; }), "good");
    nlohmann::json status = daemon.WaitForStatus(
        [&](const nlohmann::json& s) { return ProbesOf(s, "good") >= before + 3; });
    EXPECT_GE(ProbesOf(status, "good"), before + 3) << "probes stopped while the store hung";
    EXPECT_TRUE(status["decisions"].empty()) << status["decisions"].dump();
    httplib::Headers auth = {{"Authorization", "Bearer daemon-test-token-123"}};
    auto paused = daemon.client().Post("/api/v1/pause", auth, R"({"reason": "store hangs"})",
                                       "application/json");
    ASSERT_TRUE(paused);
    EXPECT_EQ(paused->status, 200) << paused->body;
    fs.Release();
    status = daemon.WaitForStatus([](const nlohmann::json& s) { return !s["decisions"].empty(); });
    ASSERT_FALSE(status["decisions"].empty());
    EXPECT_EQ(status["decisions"][0]["component"], "bad");
    daemon.Stop();
    EXPECT_TRUE(daemon.status().ok()) << daemon.status().message();
  }
}
}  // namespace
// The integrity signal: the database's invariants (here the spec's integrity
// query) are checked on a schedule by a real `postgres` driver against a real
// server; a broken invariant fires data_integrity, and the decision matrix's
// "Database corruption" row picks the scope.
TEST(WatcherTest, BrokenDatabaseInvariantFiresDataIntegrity) {
  auto server = testing::PgServer::Start();
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  ASSERT_TRUE((*server)->CreateDb("shop").ok());
  ASSERT_TRUE((*server)
                  ->Exec("shop",
                         "CREATE TABLE agents (id int PRIMARY KEY);"
                         "CREATE TABLE tasks (id int PRIMARY KEY, agent_id int);"
                         "INSERT INTO agents VALUES (1); INSERT INTO tasks VALUES (1, 1);")
                  .ok());
  testing::TempDir dir;
  const std::string path = dir.Join("backstop.yaml");
  testing::WriteFileOrDie(
      path,
      "environment: test\n"
      "components:\n"
      "  db:\n"
      "    kind: database\n"
      "    driver: postgres\n"
      "    connection: \"" +
          (*server)->ConnInfo("shop") +
          "\"\n"
          "    integrity:\n"
          "      - name: orphaned tasks\n"
          "        sql: SELECT count(*) FROM tasks t LEFT JOIN agents a ON a.id = "
          "t.agent_id WHERE a.id IS NULL\n"
          "        expect: 0\n"
          "    health: { tcp: \"127.0.0.1:" +
          std::to_string((*server)->port()) + "\", interval: 200ms }\n");
  auto spec = LoadSpec(path, DriverRegistry::Global());
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  {
    // A restore point to roll back to (its entry also lists the foreign keys).
    ASSERT_TRUE(Env::Default()->fs()->CreateDirs(spec->state_dir).ok());
    auto store = Store::Open(Env::Default(), spec->store_path);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto state = StateDb::Open(JoinPath(spec->state_dir, "state.db"));
    ASSERT_TRUE(state.ok()) << state.status().ToString();
    std::FILE* quiet = std::tmpfile();
    Output out(false, quiet, quiet);
    RunEngine engine(Env::Default(), *spec, **store, **state, DriverRegistry::Global(), out);
    auto rp =
        TakeRestorePoint(engine, *spec, **store, {}, "good", RestorePointKind::kManual, "", "");
    std::fclose(quiet);
    ASSERT_TRUE(rp.ok()) << rp.status().ToString();
  }

  FILE* logf = std::tmpfile();
  WatchLogger log(true, logf);
  WatchOptions options;
  options.listen = "off";
  options.dry_run = true;
  options.integrity_interval_ms = 200;
  Watcher w(Env::Default(), *spec, DriverRegistry::Global(), options, &log);
  Status run_status;
  std::thread daemon([&] { run_status = w.Run(); });
  auto wait_for = [&](const std::function<bool(const nlohmann::json&)>& pred) {
    nlohmann::json status;
    for (int i = 0; i < 1000; ++i) {
      status = w.GetStatus();
      if (pred(status)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return status;
  };
  auto integrity_of = [](const nlohmann::json& status) {
    for (const auto& c : status["components"]) {
      if (c["name"] == "db") return c.value("integrity", std::string());
    }
    return std::string();
  };
  auto trigger_state = [](const nlohmann::json& status) {
    for (const auto& t : status["triggers"]) {
      if (t["trigger"] == "data_integrity" && t["component"] == "db") {
        return t.value("state", std::string());
      }
    }
    return std::string("absent");
  };

  nlohmann::json status = wait_for([&](const nlohmann::json& s) {
    return integrity_of(s).find("checks passed") != std::string::npos;
  });
  EXPECT_NE(integrity_of(status).find("checks passed"), std::string::npos) << status.dump(2);
  EXPECT_EQ(trigger_state(status), "ok");

  // A task whose agent does not exist: the invariant breaks.
  auto inserted = (*server)->Exec("shop", "INSERT INTO tasks VALUES (2, 99)");
  EXPECT_TRUE(inserted.ok()) << inserted.status().ToString();
  status = wait_for([&](const nlohmann::json& s) { return trigger_state(s) == "firing"; });
  EXPECT_EQ(trigger_state(status), "firing") << status.dump(2);
  EXPECT_NE(integrity_of(status).find("orphaned tasks"), std::string::npos) << status.dump(2);
  status = wait_for([](const nlohmann::json& s) {
    for (const auto& d : s["decisions"]) {
      if (d["trigger"] == "data_integrity") return true;
    }
    return false;
  });
  bool decided = false;
  for (const auto& d : status["decisions"]) {
    if (d["trigger"] != "data_integrity") continue;
    decided = true;
    EXPECT_EQ(d.value("decision", nlohmann::json::object()).value("scenario", ""),
              "Database corruption")
        << d.dump(2);
    EXPECT_NE(d["outcome"], "acted") << "dry run";
  }
  EXPECT_TRUE(decided) << status.dump(2);
  w.Stop();
  daemon.join();
  std::fclose(logf);
  EXPECT_TRUE(run_status.ok()) << run_status.message();
}

TEST(WatchCommandTest, ListeningBeyondLoopbackNeedsAllowRemote) {
  testing::TempDir dir;
  const std::string path = dir.Join("backstop.yaml");
  testing::WriteFileOrDie(path,
                          "environment: test\ncomponents:\n  etc:\n    kind: config\n"
                          "    driver: files\n    files: [" +
                              dir.Join("app.conf") + "]\n");
  auto spec = LoadSpec(path, DriverRegistry::Global());
  ASSERT_TRUE(spec.ok()) << spec.status().message();
  std::FILE* err = std::tmpfile();
  Output out(false, err, err);
  WatchOptions options;
  options.once = true;  // would probe once and exit, were it allowed to start
  for (const char* listen : {"0.0.0.0:0", "[::]:0", "10.1.2.3:8742"}) {
    options.listen = listen;
    EXPECT_EQ(RunWatchCommand(Env::Default(), *spec, DriverRegistry::Global(), options, out), 2)
        << listen;
  }
  std::fflush(err);
  std::rewind(err);
  std::string said(4096, '\0');
  said.resize(std::fread(said.data(), 1, said.size(), err));
  std::fclose(err);
  EXPECT_NE(said.find("--listen 0.0.0.0:0 is not a loopback address"), std::string::npos) << said;
  EXPECT_NE(said.find("pass --allow-remote"), std::string::npos) << said;
}

}  // namespace backstop

// The run engine against fake drivers that share one small world: what is
// checked before anything is stopped, what a refusal reports, what a failed
// run leaves behind and what it records.
#include "run/run.h"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <set>

#include <sys/wait.h>
#include <unistd.h>

#include "run/plan.h"
#include "run/state_db.h"
#include "store/restore_point.h"
#include "store/store.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

// The state of every fake component, and what the fakes are told to do.
struct World {
  struct Service {
    std::string release;
    bool running = false;
  };
  std::map<std::string, Service> services;
  std::set<std::string> unhealthy_releases;  // services on these never pass health
  std::set<std::string> missing_releases;    // CheckRestorable refuses these
  std::map<std::string, DataLossItem> loss;  // per data component
  std::vector<std::string> calls;            // "stop api", "assess db", ...
  std::set<std::string> fail_once;           // calls that fail the next time they are made

  // With `file` set, the services and calls live in that file, so that what a
  // run in a child process did survives the child's SIGKILL (as real
  // components outlive a killed backstop). Every fake call loads before and
  // saves after.
  std::string file;
  void Load() {
    if (file.empty()) return;
    auto text = Env::Default()->fs()->ReadFile(file);
    ASSERT_TRUE(text.ok()) << text.status().ToString();
    nlohmann::json j = nlohmann::json::parse(*text);
    services.clear();
    for (const auto& [name, s] : j["services"].items()) {
      services[name] = {s["release"].get<std::string>(), s["running"].get<bool>()};
    }
    calls = j["calls"].get<std::vector<std::string>>();
  }
  void Save() const {
    if (file.empty()) return;
    nlohmann::json j = {{"services", nlohmann::json::object()}, {"calls", calls}};
    for (const auto& [name, s] : services) {
      j["services"][name] = {{"release", s.release}, {"running", s.running}};
    }
    Status st = Env::Default()->fs()->WriteFileAtomic(file, j.dump(), 0600);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  // Records `call`; an error when it was told to fail once.
  Status Call(const std::string& call) {
    calls.push_back(call);
    if (fail_once.erase(call) > 0) return Status::IOError(call + ": disk full");
    return Status::OK();
  }
};

// Loads the world on entry to a fake's call and saves it on return.
class WorldScope {
 public:
  explicit WorldScope(World* world) : world_(world) { world_->Load(); }
  ~WorldScope() { world_->Save(); }

 private:
  World* world_;
};

class FakeServiceDriver : public Driver {
 public:
  explicit FakeServiceDriver(World* world) : world_(world) {}
  Result<nlohmann::json> Snapshot(const ComponentSpec& c, DriverContext&) override {
    WorldScope scope(world_);
    return nlohmann::json{{"release", world_->services[c.name].release}};
  }
  Result<nlohmann::json> Describe(const ComponentSpec& c, DriverContext&) override {
    WorldScope scope(world_);
    const auto& s = world_->services[c.name];
    return nlohmann::json{
        {"release", s.release}, {"running", s.running}, {"releases", {"v1", "v2"}}};
  }
  bool IsService() const override { return true; }
  Status Stop(const ComponentSpec& c, DriverContext&) override {
    WorldScope scope(world_);
    BACKSTOP_RETURN_IF_ERROR(world_->Call("stop " + c.name));
    world_->services[c.name].running = false;
    return Status::OK();
  }
  Status Start(const ComponentSpec& c, DriverContext&) override {
    WorldScope scope(world_);
    BACKSTOP_RETURN_IF_ERROR(world_->Call("start " + c.name));
    world_->services[c.name].running = true;
    return Status::OK();
  }
  Status CheckRestorable(const ComponentSpec& c, const nlohmann::json& entry,
                         DriverContext&) override {
    WorldScope scope(world_);
    BACKSTOP_RETURN_IF_ERROR(world_->Call("check " + c.name));
    std::string release = entry.value("release", std::string());
    if (world_->missing_releases.count(release)) {
      return Status::FailedPrecondition("release " + release + " of " + c.name + " not found");
    }
    return Status::OK();
  }
  Status Restore(const ComponentSpec& c, const nlohmann::json& entry, DriverContext&) override {
    WorldScope scope(world_);
    BACKSTOP_RETURN_IF_ERROR(world_->Call("switch " + c.name));
    world_->services[c.name].release = entry.value("release", std::string());
    return Status::OK();
  }
  HealthResult Health(const ComponentSpec& c, DriverContext&) override {
    WorldScope scope(world_);
    const auto& s = world_->services[c.name];
    bool ok = s.running && !world_->unhealthy_releases.count(s.release);
    return HealthResult::Make(ok ? HealthResult::State::kPass : HealthResult::State::kFail, 1,
                              ok ? "HTTP 200" : (s.running ? "HTTP 500" : "connection refused"));
  }

 private:
  World* world_;
};

class FakeDataDriver : public Driver {
 public:
  explicit FakeDataDriver(World* world) : world_(world) {}
  Result<nlohmann::json> Snapshot(const ComponentSpec&, DriverContext&) override {
    return nlohmann::json::object();
  }
  Result<nlohmann::json> Describe(const ComponentSpec&, DriverContext&) override {
    return nlohmann::json::object();
  }
  Result<DataLossReport> AssessLoss(const ComponentSpec& c, const nlohmann::json&,
                                    DriverContext&) override {
    WorldScope scope(world_);
    world_->calls.push_back("assess " + c.name);
    DataLossReport r;
    if (world_->loss.count(c.name)) r.items.push_back(world_->loss[c.name]);
    return r;
  }
  Status Restore(const ComponentSpec& c, const nlohmann::json&, DriverContext&) override {
    WorldScope scope(world_);
    return world_->Call("restore " + c.name);
  }

 private:
  World* world_;
};

class RunEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* kind : {"service", "data"}) {
      DriverInfo info;
      info.name = std::string("fake") + kind;
      info.kinds = {"service", "database", "stream", "config"};
      World* world = &world_;
      if (std::string(kind) == "service") {
        info.factory = [world] { return std::make_unique<FakeServiceDriver>(world); };
      } else {
        info.factory = [world] { return std::make_unique<FakeDataDriver>(world); };
      }
      registry_.Register(info);
    }
    spec_.environment = "test";
    spec_.state_dir = dir_.Join("state");
    spec_.store_path = dir_.Join("state/store");
    auto store = Store::Open(Env::Default(), spec_.store_path);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    auto state = StateDb::Open(dir_.Join("state.db"));
    ASSERT_TRUE(state.ok());
    state_ = std::move(*state);
    engine_ = std::make_unique<RunEngine>(Env::Default(), spec_, *store_, *state_, registry_, out_);
  }

  void Add(std::string name, ComponentKind kind, std::vector<std::string> deps) {
    ComponentSpec c;
    c.name = name;
    c.kind = kind;
    c.driver = kind == ComponentKind::kService ? "fakeservice" : "fakedata";
    c.depends_on = std::move(deps);
    c.health.start_period_ms = 0;  // one probe decides
    spec_.component_order.push_back(name);
    spec_.components[name] = c;
  }

  // A restore point of the given entries, then the plan of `rollback --all --to` it.
  Plan PlanAllTo(const nlohmann::json& components) {
    return PlanAllToIn(*store_, *state_, *engine_, components);
  }
  Plan PlanAllToIn(Store& store, StateDb& state, RunEngine& engine,
                   const nlohmann::json& components) {
    RestorePoint rp;
    rp.created_wall_us = 1'000'000;
    rp.id = "rp-test-1";
    rp.label = "target";
    rp.environment = "test";
    rp.components = components;
    EXPECT_TRUE(WriteRestorePoint(store, rp).ok());
    RollbackRequest req;
    req.all = true;
    req.to = "target";
    DriverContext ctx = engine.Context();
    auto plan = PlanRollback(spec_, req, store, state, registry_, ctx);
    EXPECT_TRUE(plan.ok()) << plan.status().ToString();
    return *plan;
  }

  bool Called(const std::string& call) const {
    return std::find(world_.calls.begin(), world_.calls.end(), call) != world_.calls.end();
  }

  testing::TempDir dir_;
  World world_;
  DriverRegistry registry_;
  Spec spec_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<StateDb> state_;
  Output out_{false, stdout, stdout};
  std::unique_ptr<RunEngine> engine_;
};

// The refusal names every data component's loss: the streams are counted
// (and their ledgers written) even when the database alone is over the limit.
TEST_F(RunEngineTest, DataLossRefusalCountsEveryDataComponentBeforeDeciding) {
  Add("db", ComponentKind::kDatabase, {});
  Add("bus", ComponentKind::kStream, {});
  world_.loss["db"] = DataLossItem{"db", "orders", "rows", 6, 0, 0};
  world_.loss["bus"] = DataLossItem{"bus", "EVENTS", "messages", 3, 0, 0};
  Plan plan = PlanAllTo({{"db", nlohmann::json::object()}, {"bus", nlohmann::json::object()}});
  RunOptions options;
  options.command = "rollback --all";
  auto outcome = engine_->Start(plan, options);
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_FALSE(outcome->succeeded());
  EXPECT_EQ(outcome->failure, Status::Code::kDataLoss);
  EXPECT_FALSE(outcome->changed_anything);
  EXPECT_TRUE(Called("assess db"));
  EXPECT_TRUE(Called("assess bus"));
  EXPECT_NE(outcome->error.find("6 rows and 3 messages"), std::string::npos) << outcome->error;
  EXPECT_FALSE(Called("restore db"));
}

// A release that cannot be restored refuses the run while the service runs.
TEST_F(RunEngineTest, AMissingReleaseIsRefusedBeforeAnyServiceIsStopped) {
  Add("api", ComponentKind::kService, {});
  world_.services["api"] = {"v2", true};
  world_.missing_releases = {"v1"};
  Plan plan = PlanAllTo({{"api", {{"release", "v1"}}}});
  RunOptions options;
  auto outcome = engine_->Start(plan, options);
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_FALSE(outcome->succeeded());
  EXPECT_FALSE(outcome->changed_anything);
  EXPECT_NE(outcome->error.find("release v1 of api not found"), std::string::npos)
      << outcome->error;
  EXPECT_TRUE(Called("check api"));
  EXPECT_FALSE(Called("stop api"));
  EXPECT_TRUE(world_.services["api"].running);
}

// A start whose health gate fails: the services stopped and not yet switched
// go back up on the release they ran, the summary says where each component
// is, and the history keeps the release that ran (marked failed).
TEST_F(RunEngineTest, AFailedStartLeavesNoOutageBehindAndIsRecorded) {
  Add("catalog", ComponentKind::kService, {});
  Add("api", ComponentKind::kService, {"catalog"});
  world_.services["catalog"] = {"v2", true};
  world_.services["api"] = {"v2", true};
  world_.unhealthy_releases = {"v1"};
  Plan plan = PlanAllTo({{"catalog", {{"release", "v1"}}}, {"api", {{"release", "v1"}}}});
  RunOptions options;
  auto outcome = engine_->Start(plan, options);
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_FALSE(outcome->succeeded());
  EXPECT_TRUE(outcome->changed_anything);
  EXPECT_NE(outcome->error.find("start catalog"), std::string::npos) << outcome->error;

  // api was stopped but never switched: it runs v2 again, healthy.
  EXPECT_EQ(world_.services["api"].release, "v2");
  EXPECT_TRUE(world_.services["api"].running);
  const nlohmann::json& account = outcome->summary["components"];
  ASSERT_TRUE(account.is_object()) << outcome->summary.dump();
  EXPECT_EQ(account["api"]["release"], "v2");
  EXPECT_EQ(account["api"]["running"], true);
  EXPECT_EQ(account["api"]["healthy"], true);
  EXPECT_EQ(account["catalog"]["release"], "v1");
  EXPECT_EQ(account["catalog"]["healthy"], false);

  auto history = state_->History("catalog");
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ(history->front().release, "v1");
  EXPECT_EQ(history->front().status, "failed");
  EXPECT_EQ(history->front().run_id, outcome->run_id);
}

// Resuming a run that already succeeded is a refusal (exit 3), not a failure.
TEST_F(RunEngineTest, ResumingAFinishedRunIsRefused) {
  Add("api", ComponentKind::kService, {});
  world_.services["api"] = {"v2", true};
  Plan plan = PlanAllTo({{"api", {{"release", "v1"}}}});
  auto outcome = engine_->Start(plan, RunOptions{});
  ASSERT_TRUE(outcome.ok());
  ASSERT_TRUE(outcome->succeeded()) << outcome->error;
  auto again = engine_->Resume(outcome->run_id, RunOptions{});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Status::Code::kAborted);
  EXPECT_NE(again.status().message().find("already succeeded"), std::string::npos);
}

// The engine hands the run id to RunOptions::on_run_id once the run is
// journaled, before its first step, so that the watch daemon need not read it
// from the human-readable output.
TEST_F(RunEngineTest, OnRunIdIsCalledWithTheJournaledIdBeforeTheFirstStep) {
  Add("api", ComponentKind::kService, {});
  world_.services["api"] = {"v2", true};
  Plan plan = PlanAllTo({{"api", {{"release", "v1"}}}});
  std::vector<std::string> seen;
  std::string release_when_called;
  RunOptions options;
  options.on_run_id = [&](const std::string& id) {
    seen.push_back(id);
    release_when_called = world_.services["api"].release;
  };
  auto outcome = engine_->Start(plan, options);
  ASSERT_TRUE(outcome.ok()) << outcome.status().message();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], outcome->run_id);
  EXPECT_EQ(release_when_called, "v2");
}

// The partial writes of a killed run (its pid is gone) are removed by the
// next run; those of a live process are left alone.
TEST_F(RunEngineTest, TheNextRunRemovesTempFilesOfKilledRuns) {
  Add("api", ComponentKind::kService, {});
  world_.services["api"] = {"v2", true};
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_GT(dead, 0);
  ASSERT_EQ(::waitpid(dead, nullptr, 0), dead);
  const std::string d = std::to_string(dead), live = std::to_string(::getpid());
  const std::string ledger_tmp = spec_.state_dir + "/runs/run-x/ledger-db.jsonl.tmp-" + d + "-3";
  const std::string blob_tmp = store_->TmpDir() + "/0123abcd." + d + "-1.tmp";
  const std::string live_tmp = spec_.state_dir + "/runs/run-x/ledger-db.jsonl.tmp-" + live + "-1";
  const std::string not_tmp = spec_.state_dir + "/runs/run-x/ledger-db.jsonl";
  for (const auto& p : {ledger_tmp, blob_tmp, live_tmp, not_tmp}) {
    testing::WriteFileOrDie(p, "partial");
  }
  Plan plan = PlanAllTo({{"api", {{"release", "v1"}}}});
  auto outcome = engine_->Start(plan, RunOptions{});
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  FileSystem* fs = Env::Default()->fs();
  EXPECT_FALSE(fs->Exists(ledger_tmp));
  EXPECT_FALSE(fs->Exists(blob_tmp));
  EXPECT_TRUE(fs->Exists(live_tmp));
  EXPECT_TRUE(fs->Exists(not_tmp));
}

// ---- resume: a run killed at every step, and a step that fails

// One environment on disk (state dir, store, journal) with an engine over it,
// opened anew by each process that acts on it.
struct Site {
  Spec spec;
  std::unique_ptr<Store> store;
  std::unique_ptr<StateDb> state;
  std::unique_ptr<RunEngine> engine;
};

// How a run ended: the components, the calls made on them, the journal (run
// ids replaced by RUN, so that two runs compare) and the release history.
struct Ending {
  std::map<std::string, std::string> services;  // "v1 running"
  std::vector<std::string> calls;
  std::vector<std::string> journal;  // "3 stop api done: <detail> <result>"
  std::vector<int> attempts;
  std::vector<std::string> history;  // "api 1 v1 rolled back"
  std::string status;
};

class RunResumeTest : public RunEngineTest {
 protected:
  // A database and two services (api depends on catalog) on v2, rolled back to v1.
  void SetUp() override {
    RunEngineTest::SetUp();
    Add("db", ComponentKind::kDatabase, {});
    Add("catalog", ComponentKind::kService, {});
    Add("api", ComponentKind::kService, {"catalog"});
  }

  const nlohmann::json kTarget = {{"db", nlohmann::json::object()},
                                  {"catalog", {{"release", "v1"}}},
                                  {"api", {{"release", "v1"}}}};

  // A fresh site and a fresh world (in a file) for one scenario.
  void Prepare(const std::string& name) {
    world_.file = dir_.Join(name + "-world.json");
    world_.services = {{"catalog", {"v2", true}}, {"api", {"v2", true}}};
    world_.calls.clear();
    world_.Save();
  }

  std::unique_ptr<Site> OpenSite(const std::string& name) {
    auto site = std::make_unique<Site>();
    site->spec = spec_;
    site->spec.state_dir = dir_.Join(name + "/state");
    site->spec.store_path = dir_.Join(name + "/state/store");
    auto store = Store::Open(Env::Default(), site->spec.store_path);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return nullptr;
    site->store = std::move(*store);
    auto state = StateDb::Open(dir_.Join(name + "/state.db"));
    EXPECT_TRUE(state.ok()) << state.status().ToString();
    if (!state.ok()) return nullptr;
    site->state = std::move(*state);
    site->engine = std::make_unique<RunEngine>(Env::Default(), site->spec, *site->store,
                                               *site->state, registry_, out_);
    return site;
  }

  // Plans and runs the rollback in a child process that the engine's crash
  // hook kills at `crash_at` (BACKSTOP_CRASH_AT_STEP_FOR_TEST); returns the
  // calls made before the kill. The child opens its own site: nothing of this
  // process's journal connection crosses the fork.
  std::vector<std::string> RunUntilKilled(const std::string& name, const std::string& crash_at) {
    pid_t child = ::fork();
    if (child == 0) {
      ::setenv("BACKSTOP_CRASH_AT_STEP_FOR_TEST", crash_at.c_str(), 1);
      auto site = OpenSite(name);
      if (site != nullptr) {
        Plan plan = PlanAllToIn(*site->store, *site->state, *site->engine, kTarget);
        (void)site->engine->Start(plan, RunOptions{});
      }
      ::_exit(3);  // not killed: the hook never fired
    }
    EXPECT_GT(child, 0);
    int status = 0;
    EXPECT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "at " << crash_at << ": the run was not killed (wait status " << status << ")";
    world_.Load();
    return world_.calls;
  }

  // Resumes the site's one unfinished run in this process.
  Ending ResumeUnfinished(const std::string& name) {
    auto site = OpenSite(name);
    if (site == nullptr) return {};
    auto unfinished = site->state->UnfinishedRuns();
    EXPECT_TRUE(unfinished.ok());
    if (!unfinished.ok() || unfinished->size() != 1) {
      ADD_FAILURE() << name << ": not one unfinished run";
      return {};
    }
    auto outcome = site->engine->Resume(unfinished->front().id, RunOptions{});
    EXPECT_TRUE(outcome.ok()) << outcome.status().ToString();
    return EndingOf(*site, unfinished->front().id);
  }

  // Resumes run `run_id` of the site in this process.
  Ending ResumeUnfinishedOrFailed(const std::string& name, const std::string& run_id) {
    auto site = OpenSite(name);
    if (site == nullptr) return {};
    auto outcome = site->engine->Resume(run_id, RunOptions{});
    EXPECT_TRUE(outcome.ok()) << outcome.status().ToString();
    return EndingOf(*site, run_id);
  }

  // Runs the rollback to the end in this process.
  Ending RunUninterrupted(const std::string& name) {
    Prepare(name);
    auto site = OpenSite(name);
    if (site == nullptr) return {};
    Plan plan = PlanAllToIn(*site->store, *site->state, *site->engine, kTarget);
    auto outcome = site->engine->Start(plan, RunOptions{});
    EXPECT_TRUE(outcome.ok()) << outcome.status().ToString();
    if (!outcome.ok()) return {};
    return EndingOf(*site, outcome->run_id);
  }

  Ending EndingOf(Site& site, const std::string& run_id) {
    Ending e;
    world_.Load();
    for (const auto& [name, s] : world_.services) {
      e.services[name] = s.release + (s.running ? " running" : " stopped");
    }
    e.calls = world_.calls;
    auto replace_run = [&](std::string text) {
      const std::string id = run_id.substr(4);  // also in "rp-<id>-safety"
      for (size_t at; (at = text.find(id)) != std::string::npos;)
        text.replace(at, id.size(), "RUN");
      return text;
    };
    auto steps = site.state->GetSteps(run_id);
    EXPECT_TRUE(steps.ok());
    for (const auto& s : steps.ok() ? *steps : std::vector<StepRecord>{}) {
      e.journal.push_back(replace_run(
          std::to_string(s.index + 1) + " " + std::string(Name(s.action)) + " " + s.component +
          " " + std::string(Name(s.status)) + ": " + s.detail + " " + s.result.dump()));
      e.attempts.push_back(s.attempts);
    }
    for (const char* name : {"catalog", "api"}) {
      auto history = site.state->History(name);
      EXPECT_TRUE(history.ok());
      for (const auto& h : history.ok() ? *history : std::vector<HistoryRecord>{}) {
        e.history.push_back(std::string(name) + " " + std::to_string(h.revision) + " " + h.release +
                            " " + h.status + " " + replace_run(h.description));
      }
    }
    auto run = site.state->GetRun(run_id);
    EXPECT_TRUE(run.ok());
    e.status = run.ok() ? std::string(Name(run->status)) : "";
    return e;
  }
};

// What an uninterrupted rollback of the three does, step by step: the
// reference the resumed runs are held to.
TEST_F(RunResumeTest, AnUninterruptedRollbackSwitchesBothServicesAndJournalsEveryStep) {
  Ending e = RunUninterrupted("whole");
  EXPECT_EQ(e.status, "succeeded");
  EXPECT_EQ(e.services,
            (std::map<std::string, std::string>{{"api", "v1 running"}, {"catalog", "v1 running"}}));
  const std::string kNoLoss = R"({"loss":{"items":[],"ledger_files":[],"rewinds":[]}})";
  EXPECT_EQ(e.journal,
            (std::vector<std::string>{
                "1 verify-restore-point  done: 0 blobs verified {\"blobs\":0}",
                "2 safety-snapshot  done: rp-RUN-safety {\"restore_point\":\"rp-RUN-safety\"}",
                "3 prepare db done: staged {}",
                "4 prepare catalog done: ready {}",
                "5 prepare api done: ready {}",
                "6 assess-loss db done: Data loss: none " + kNoLoss,
                "7 stop api done: stopped {}",
                "8 stop catalog done: stopped {}",
                "9 restore db done: restored " + kNoLoss,
                "10 restore catalog done: release v1 {}",
                "11 start catalog done: healthy (HTTP 200) after 1 probe {\"health_attempts\":1}",
                "12 restore api done: release v1 {}",
                "13 start api done: healthy (HTTP 200) after 1 probe {\"health_attempts\":1}",
                "14 verify db done: unknown (no health probe configured) "
                "{\"health\":\"unknown (no health probe configured)\",\"latency_ms\":0}",
                "15 verify catalog done: healthy (HTTP 200) "
                "{\"health\":\"healthy (HTTP 200)\",\"latency_ms\":1}",
                "16 verify api done: healthy (HTTP 200) "
                "{\"health\":\"healthy (HTTP 200)\",\"latency_ms\":1}",
            }));
  // The data is assessed before anything stops and again at its restore.
  EXPECT_EQ(e.calls,
            (std::vector<std::string>{"check catalog", "check api", "assess db", "stop api",
                                      "stop catalog", "assess db", "restore db", "switch catalog",
                                      "start catalog", "switch api", "start api"}));
  EXPECT_EQ(e.history,
            (std::vector<std::string>{
                "catalog 1 v1 deployed Rollback to restore point rp-test-1 (target) (run-RUN)",
                "api 1 v1 deployed Rollback to restore point rp-test-1 (target) (run-RUN)"}));
  EXPECT_EQ(e.attempts, std::vector<int>(e.journal.size(), 1));
}

// Killed right after step k is journaled done, for every k: the resume skips
// the steps done, and the run ends exactly as one never interrupted.
TEST_F(RunResumeTest, AResumeAfterAKillAfterAnyStepEndsAsAnUninterruptedRun) {
  const Ending whole = RunUninterrupted("whole");
  ASSERT_FALSE(whole.journal.empty());
  for (size_t k = 1; k <= whole.journal.size(); ++k) {
    SCOPED_TRACE("killed after step " + std::to_string(k));
    const std::string name = "after-" + std::to_string(k);
    Prepare(name);
    std::vector<std::string> before = RunUntilKilled(name, std::to_string(k));
    ASSERT_LE(before.size(), whole.calls.size());
    EXPECT_EQ(before,
              std::vector<std::string>(whole.calls.begin(), whole.calls.begin() + before.size()));
    Ending resumed = ResumeUnfinished(name);
    EXPECT_EQ(resumed.status, "succeeded");
    EXPECT_EQ(resumed.services, whole.services);
    EXPECT_EQ(resumed.calls, whole.calls);
    EXPECT_EQ(resumed.journal, whole.journal);
    EXPECT_EQ(resumed.attempts, whole.attempts);
    EXPECT_EQ(resumed.history, whole.history);
  }
}

// Killed after step k acted but before the journal says so, for every k: the
// resume redoes step k exactly once (its calls are made twice, its attempts
// are 2) and the run ends as one never interrupted.
TEST_F(RunResumeTest, AStepKilledMidWayIsRedoneExactlyOnceByTheResume) {
  const Ending whole = RunUninterrupted("whole");
  ASSERT_FALSE(whole.journal.empty());
  std::vector<std::string> through_previous;  // the calls of steps 1..k-1
  for (size_t k = 1; k <= whole.journal.size(); ++k) {
    SCOPED_TRACE("killed in step " + std::to_string(k));
    const std::string name = "in-" + std::to_string(k);
    Prepare(name);
    std::vector<std::string> through_k = RunUntilKilled(name, std::to_string(k) + ":before-done");
    ASSERT_LE(through_k.size(), whole.calls.size());
    ASSERT_GE(through_k.size(), through_previous.size());
    EXPECT_EQ(through_k, std::vector<std::string>(whole.calls.begin(),
                                                  whole.calls.begin() + through_k.size()));
    std::vector<std::string> expected_calls = through_k;
    expected_calls.insert(expected_calls.end(), through_k.begin() + through_previous.size(),
                          through_k.end());
    expected_calls.insert(expected_calls.end(), whole.calls.begin() + through_k.size(),
                          whole.calls.end());
    std::vector<int> expected_attempts = whole.attempts;
    expected_attempts[k - 1] = 2;
    std::vector<std::string> expected_journal = whole.journal;
    if (expected_journal[k - 1].find(" safety-snapshot ") != std::string::npos) {
      // The redone snapshot finds the restore point it wrote before the kill.
      const std::string id = "rp-RUN-safety";
      size_t at = expected_journal[k - 1].find(id);
      ASSERT_NE(at, std::string::npos);
      expected_journal[k - 1].insert(at + id.size(), " (already taken)");
    }
    Ending resumed = ResumeUnfinished(name);
    EXPECT_EQ(resumed.status, "succeeded");
    EXPECT_EQ(resumed.services, whole.services);
    EXPECT_EQ(resumed.calls, expected_calls);
    EXPECT_EQ(resumed.journal, expected_journal);
    EXPECT_EQ(resumed.attempts, expected_attempts);
    EXPECT_EQ(resumed.history, whole.history);
    through_previous = through_k;
  }
}

// A step that fails ends the run failed at that step: the steps after it are
// not run, the journal says which step failed and why, the services it
// stopped go back up, and a resume retries from there to the end.
TEST_F(RunResumeTest, AFailedStepFailsTheRunSkipsTheRestAndIsRetriedByTheResume) {
  const Ending whole = RunUninterrupted("whole");
  Prepare("failed");
  world_.fail_once = {"switch api"};
  std::string run_id;
  {
    auto site = OpenSite("failed");
    ASSERT_NE(site, nullptr);
    Plan plan = PlanAllToIn(*site->store, *site->state, *site->engine, kTarget);
    auto outcome = site->engine->Start(plan, RunOptions{});
    ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
    run_id = outcome->run_id;
    EXPECT_EQ(outcome->status, RunStatus::kFailed);
    EXPECT_EQ(outcome->failure, Status::Code::kIOError);
    EXPECT_TRUE(outcome->changed_anything);
    EXPECT_EQ(outcome->error,
              "step 12 (switch api to release v1 (recorded in its history)) failed: restore api: "
              "switch api: disk full\nThe run stopped part-way. Fix the cause, then `backstop "
              "rollback --resume " +
                  run_id + "` retries from step 12 (or `backstop rollback --abandon " + run_id +
                  "` to take over by hand).");
    EXPECT_EQ(outcome->summary["failed_step"], 12);
    Ending failed = EndingOf(*site, run_id);
    EXPECT_EQ(failed.status, "failed");
    // Steps 1-11 as in the uninterrupted run, 12 failed with the reason, 13-16 never started.
    std::vector<std::string> journal(whole.journal.begin(), whole.journal.begin() + 11);
    journal.push_back("12 restore api failed: restore api: switch api: disk full null");
    for (const char* rest :
         {"13 start api", "14 verify db", "15 verify catalog", "16 verify api"}) {
      journal.push_back(std::string(rest) + " pending:  null");
    }
    EXPECT_EQ(failed.journal, journal);
    EXPECT_EQ(failed.attempts, (std::vector<int>{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}));
    EXPECT_EQ(failed.calls, std::vector<std::string>(whole.calls.begin(), whole.calls.end() - 1));
    // A service whose switch failed may be half-switched: it is not started
    // on either release, and the summary says where it is.
    EXPECT_EQ(failed.services, (std::map<std::string, std::string>{{"api", "v2 stopped"},
                                                                   {"catalog", "v1 running"}}));
    EXPECT_EQ(outcome->summary["components"]["api"]["running"], false);
  }
  Ending resumed = ResumeUnfinishedOrFailed("failed", run_id);
  std::vector<std::string> calls = whole.calls;
  calls.insert(calls.end() - 2, "switch api");  // the failed attempt, then the retry
  EXPECT_EQ(resumed.calls, calls);
  EXPECT_EQ(resumed.attempts, (std::vector<int>{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1}));
  EXPECT_EQ(resumed.status, "succeeded");
  EXPECT_EQ(resumed.services, whole.services);
  EXPECT_EQ(resumed.journal, whole.journal);
  EXPECT_EQ(resumed.history, whole.history);
}

}  // namespace
}  // namespace backstop

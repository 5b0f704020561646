// The run engine against fake drivers that share one small world: what is
// checked before anything is stopped, what a refusal reports, what a failed
// run leaves behind and what it records.
#include "run/run.h"

#include <gtest/gtest.h>

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
};

class FakeServiceDriver : public Driver {
 public:
  explicit FakeServiceDriver(World* world) : world_(world) {}
  Result<nlohmann::json> Snapshot(const ComponentSpec& c, DriverContext&) override {
    return nlohmann::json{{"release", world_->services[c.name].release}};
  }
  Result<nlohmann::json> Describe(const ComponentSpec& c, DriverContext&) override {
    const auto& s = world_->services[c.name];
    return nlohmann::json{
        {"release", s.release}, {"running", s.running}, {"releases", {"v1", "v2"}}};
  }
  bool IsService() const override { return true; }
  Status Stop(const ComponentSpec& c, DriverContext&) override {
    world_->calls.push_back("stop " + c.name);
    world_->services[c.name].running = false;
    return Status::OK();
  }
  Status Start(const ComponentSpec& c, DriverContext&) override {
    world_->calls.push_back("start " + c.name);
    world_->services[c.name].running = true;
    return Status::OK();
  }
  Status CheckRestorable(const ComponentSpec& c, const nlohmann::json& entry,
                         DriverContext&) override {
    world_->calls.push_back("check " + c.name);
    std::string release = entry.value("release", std::string());
    if (world_->missing_releases.count(release)) {
      return Status::FailedPrecondition("release " + release + " of " + c.name + " not found");
    }
    return Status::OK();
  }
  Status Restore(const ComponentSpec& c, const nlohmann::json& entry, DriverContext&) override {
    world_->calls.push_back("switch " + c.name);
    world_->services[c.name].release = entry.value("release", std::string());
    return Status::OK();
  }
  HealthResult Health(const ComponentSpec& c, DriverContext&) override {
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
    world_->calls.push_back("assess " + c.name);
    DataLossReport r;
    if (world_->loss.count(c.name)) r.items.push_back(world_->loss[c.name]);
    return r;
  }
  Status Restore(const ComponentSpec& c, const nlohmann::json&, DriverContext&) override {
    world_->calls.push_back("restore " + c.name);
    return Status::OK();
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

  void Add(std::string name, std::string kind, std::vector<std::string> deps) {
    ComponentSpec c;
    c.name = name;
    c.kind = kind;
    c.driver = kind == "service" ? "fakeservice" : "fakedata";
    c.depends_on = std::move(deps);
    c.health.start_period_ms = 0;  // one probe decides
    spec_.component_order.push_back(name);
    spec_.components[name] = c;
  }

  // A restore point of the given entries, then the plan of `rollback --all --to` it.
  Plan PlanAllTo(const nlohmann::json& components) {
    RestorePoint rp;
    rp.created_wall_us = 1'000'000;
    rp.id = "rp-test-1";
    rp.label = "target";
    rp.environment = "test";
    rp.components = components;
    EXPECT_TRUE(WriteRestorePoint(*store_, rp).ok());
    RollbackRequest req;
    req.all = true;
    req.to = "target";
    DriverContext ctx = engine_->Context();
    auto plan = PlanRollback(spec_, req, *store_, *state_, registry_, ctx);
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
  Add("db", "database", {});
  Add("bus", "stream", {});
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
  Add("api", "service", {});
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
  Add("catalog", "service", {});
  Add("api", "service", {"catalog"});
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
  Add("api", "service", {});
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
  Add("api", "service", {});
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
  Add("api", "service", {});
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

}  // namespace
}  // namespace backstop

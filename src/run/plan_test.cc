#include "run/plan.h"

#include <gtest/gtest.h>

#include "run/state_db.h"
#include "store/restore_point.h"
#include "store/store.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

// A driver that only answers Describe: the planner asks services for their releases.
class DescribeOnlyDriver : public Driver {
 public:
  Result<nlohmann::json> Snapshot(const ComponentSpec&, DriverContext&) override {
    return nlohmann::json::object();
  }
  Result<nlohmann::json> Describe(const ComponentSpec& c, DriverContext&) override {
    if (c.kind != ComponentKind::kService) return nlohmann::json::object();
    return nlohmann::json{{"release", "v3"}, {"releases", {"v1", "v2", "v3"}}};
  }
  Status Restore(const ComponentSpec&, const nlohmann::json&, DriverContext&) override {
    return Status::OK();
  }
};

DriverRegistry FakeRegistry() {
  DriverRegistry registry;
  for (const char* name : {"process", "files", "postgres", "nats"}) {
    DriverInfo info;
    info.name = name;
    info.kinds = {"service", "config", "database", "stream"};
    info.factory = [] { return std::make_unique<DescribeOnlyDriver>(); };
    registry.Register(info);
  }
  return registry;
}

// Five components, written in the file in an order that is NOT a valid start
// order, so the planner's ordering (and its tie-breaking) is what is tested.
Spec FiveComponentSpec() {
  Spec spec;
  spec.environment = "test";
  auto add = [&](std::string name, ComponentKind kind, std::string driver,
                 std::vector<std::string> deps) {
    ComponentSpec c;
    c.name = name;
    c.kind = kind;
    c.driver = driver;
    c.depends_on = deps;
    spec.component_order.push_back(name);
    spec.components[name] = c;
  };
  add("webui", ComponentKind::kService, "process", {"orchestrator"});
  add("orchestrator", ComponentKind::kService, "process", {"postgres", "nats", "config"});
  add("config", ComponentKind::kConfig, "files", {});
  add("nats", ComponentKind::kStream, "nats", {});
  add("postgres", ComponentKind::kDatabase, "postgres", {});
  return spec;
}

std::vector<std::string> Actions(const Plan& plan) {
  std::vector<std::string> out;
  for (const auto& s : plan.steps) {
    const std::string action(Name(s.action));
    out.push_back(s.component.empty() ? action : action + " " + s.component);
  }
  return out;
}

class PlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::Open(Env::Default(), dir_.Join("store"));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    auto state = StateDb::Open(dir_.Join("state.db"));
    ASSERT_TRUE(state.ok());
    state_ = std::move(*state);
    ctx_.store = store_.get();
    ctx_.spec = &spec_;
    RestorePoint rp;
    rp.created_wall_us = 1'000'000;
    rp.id = "rp-test-1";
    rp.label = "good";
    rp.environment = "test";
    rp.components = {{"webui", {{"release", "v1"}}},
                     {"orchestrator", {{"release", "v1"}}},
                     {"config", {{"config_hash", "sha256:x"}}},
                     {"nats", {{"streams", nlohmann::json::object()}}},
                     {"postgres", {{"position", nlohmann::json::object()}}}};
    ASSERT_TRUE(WriteRestorePoint(*store_, rp).ok());
  }

  testing::TempDir dir_;
  Spec spec_ = FiveComponentSpec();
  DriverRegistry registry_ = FakeRegistry();
  std::unique_ptr<Store> store_;
  std::unique_ptr<StateDb> state_;
  DriverContext ctx_{*Env::Default()};
};

TEST_F(PlanTest, DependencyOrderPutsDependenciesFirstAndBreaksTiesByFileOrder) {
  EXPECT_EQ(DependencyOrder(spec_),
            (std::vector<std::string>{"config", "nats", "postgres", "orchestrator", "webui"}));
  EXPECT_EQ(Dependents(spec_, "postgres"), (std::vector<std::string>{"orchestrator", "webui"}));
  EXPECT_EQ(Dependents(spec_, "webui"), std::vector<std::string>{});
}

TEST_F(PlanTest, RollbackAllFollowsTheSeedsOrder) {
  RollbackRequest req;
  req.all = true;
  auto plan = PlanRollback(spec_, req, *store_, *state_, registry_, ctx_);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->restore_point_id, "rp-test-1");
  EXPECT_EQ(Actions(*plan), (std::vector<std::string>{
                                "verify-restore-point", "safety-snapshot",   "prepare config",
                                "prepare nats",         "prepare postgres",  "prepare orchestrator",
                                "prepare webui",        "assess-loss nats",  "assess-loss postgres",
                                "stop webui",           "stop orchestrator", "restore config",
                                "restore nats",         "restore postgres",  "restore orchestrator",
                                "start orchestrator",   "restore webui",     "start webui",
                                "verify config",        "verify nats",       "verify postgres",
                                "verify orchestrator",  "verify webui",
                            }));
  // The plan survives the journal round trip unchanged.
  auto again = Plan::FromJson(plan->ToJson());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(Actions(*again), Actions(*plan));
  EXPECT_EQ(again->entries, plan->entries);

  // A journaled plan with a step Backstop does not know is damage, named.
  nlohmann::json stored = plan->ToJson();
  stored["steps"][2]["action"] = "reboot";
  auto damaged = Plan::FromJson(stored);
  EXPECT_EQ(damaged.status().code(), Status::Code::kCorruption);
  EXPECT_NE(damaged.status().message().find("step 3 action 'reboot'"), std::string::npos)
      << damaged.status().message();
  stored = plan->ToJson();
  stored["scope"] = "everything";
  EXPECT_EQ(Plan::FromJson(stored).status().code(), Status::Code::kCorruption);
}

TEST_F(PlanTest, DatabaseRollbackCyclesItsDependentServicesOnly) {
  RollbackRequest req;
  req.component = "postgres";
  auto plan = PlanRollback(spec_, req, *store_, *state_, registry_, ctx_);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->affected, (std::vector<std::string>{"postgres", "orchestrator", "webui"}));
  EXPECT_EQ(Actions(*plan), (std::vector<std::string>{
                                "verify-restore-point",
                                "safety-snapshot",
                                "prepare postgres",
                                "assess-loss postgres",
                                "stop webui",
                                "stop orchestrator",
                                "restore postgres",
                                "start orchestrator",
                                "start webui",
                                "verify postgres",
                                "verify orchestrator",
                                "verify webui",
                            }));
}

TEST_F(PlanTest, ToTimeIsRecordedInTheDatabasesEntryOnlyWhenItCanBeReached) {
  RollbackRequest req;
  req.component = "postgres";
  req.to_time = "1970-01-01T00:00:02Z";
  // The restore point holds no change stream for postgres.
  auto plan = PlanRollback(spec_, req, *store_, *state_, registry_, ctx_);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(plan.status().message().find("needs a restore point taken with flashback"),
            std::string::npos)
      << plan.status().ToString();

  RestorePoint rp;
  rp.created_wall_us = 1'000'000;
  rp.id = "rp-test-2";
  rp.environment = "test";
  rp.components = {{"postgres", {{"flashback", {{"slot", "backstop_rp_test_2_db"}}}}}};
  ASSERT_TRUE(WriteRestorePoint(*store_, rp).ok());
  req.to = "rp-test-2";
  plan = PlanRollback(spec_, req, *store_, *state_, registry_, ctx_);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->entries["postgres"]["to_time_us"], 2'000'000);
  EXPECT_NE(plan->target.find("postgres as of 1970-01-01T00:00:02.000Z"), std::string::npos)
      << plan->target;

  req.to_time = "1970-01-01T00:00:00.5Z";  // before the restore point
  EXPECT_EQ(PlanRollback(spec_, req, *store_, *state_, registry_, ctx_).status().code(),
            Status::Code::kInvalidArgument);
  req.to_time = "2999-01-01T00:00:00Z";  // in the future
  EXPECT_EQ(PlanRollback(spec_, req, *store_, *state_, registry_, ctx_).status().code(),
            Status::Code::kInvalidArgument);
  req.to_time = "yesterday";
  plan = PlanRollback(spec_, req, *store_, *state_, registry_, ctx_);
  EXPECT_NE(plan.status().message().find("not a time with its offset"), std::string::npos)
      << plan.status().ToString();
  req.to_time = "1970-01-01T00:00:02Z";
  req.component = "webui";
  EXPECT_EQ(PlanRollback(spec_, req, *store_, *state_, registry_, ctx_).status().code(),
            Status::Code::kInvalidArgument);
  req.component.clear();
  req.all = true;
  EXPECT_EQ(PlanRollback(spec_, req, *store_, *state_, registry_, ctx_).status().code(),
            Status::Code::kInvalidArgument);
}

TEST_F(PlanTest, ServiceRollbackToAReleaseTouchesOnlyThatService) {
  RollbackRequest req;
  req.component = "orchestrator";
  req.to = "v2";
  auto plan = PlanRollback(spec_, req, *store_, *state_, registry_, ctx_);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->target, "release v2");
  EXPECT_EQ(Actions(*plan),
            (std::vector<std::string>{"safety-snapshot", "prepare orchestrator",
                                      "stop orchestrator", "restore orchestrator",
                                      "start orchestrator", "verify orchestrator"}));
}

TEST_F(PlanTest, ServiceRollbackWithoutTargetUsesThePreviousReleaseFromHistory) {
  RollbackRequest req;
  req.component = "orchestrator";
  auto none = PlanRollback(spec_, req, *store_, *state_, registry_, ctx_);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("--to"), std::string::npos);

  for (const char* release : {"v1", "v2", "v3"}) {
    HistoryRecord h;
    h.component = "orchestrator";
    h.release = release;
    h.status = "deployed";
    ASSERT_TRUE(state_->AddHistory(h).ok());
  }
  auto plan = PlanRollback(spec_, req, *store_, *state_, registry_, ctx_);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->entries["orchestrator"]["release"], "v2");
}

TEST_F(PlanTest, ServiceRollbackToARestorePointUsesItsRelease) {
  RollbackRequest req;
  req.component = "webui";
  req.to = "good";
  auto plan = PlanRollback(spec_, req, *store_, *state_, registry_, ctx_);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->restore_point_id, "rp-test-1");
  EXPECT_EQ(plan->entries["webui"]["release"], "v1");
  EXPECT_EQ(Actions(*plan).front(), "verify-restore-point");
}

TEST_F(PlanTest, UnknownTargetsAreClearErrors) {
  RollbackRequest req;
  req.component = "nope";
  auto plan = PlanRollback(spec_, req, *store_, *state_, registry_, ctx_);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("webui"), std::string::npos);  // lists what exists

  req.component = "webui";
  req.to = "v9";
  plan = PlanRollback(spec_, req, *store_, *state_, registry_, ctx_);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("v1 v2 v3"), std::string::npos) << plan.status().message();
}

TEST_F(PlanTest, DeployPlan) {
  auto plan = PlanDeploy(spec_, "webui", "v2", registry_, ctx_);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(Actions(*plan),
            (std::vector<std::string>{"prepare webui", "stop webui", "restore webui", "start webui",
                                      "verify webui"}));
  EXPECT_FALSE(PlanDeploy(spec_, "webui", "v9", registry_, ctx_).ok());
  EXPECT_FALSE(PlanDeploy(spec_, "postgres", "v1", registry_, ctx_).ok());
}

// Every precondition is checked before the first stop: each component the
// plan restores, services and config included, has a prepare step (which
// calls CheckRestorable and Prepare) ahead of every stop.
TEST_F(PlanTest, EveryRestoredComponentIsPreparedBeforeTheFirstStop) {
  RollbackRequest req;
  req.all = true;
  auto plan = PlanRollback(spec_, req, *store_, *state_, registry_, ctx_);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  std::vector<std::string> actions = Actions(*plan);
  auto first_stop = std::find(actions.begin(), actions.end(), "stop webui");
  ASSERT_NE(first_stop, actions.end());
  for (const auto& name : plan->affected) {
    auto prepare = std::find(actions.begin(), actions.end(), "prepare " + name);
    EXPECT_LT(prepare, first_stop) << name << " is not prepared before the first stop";
  }
}

// A restore point that holds only config restores it and restarts the
// services that read it, as `--component config` does.
TEST_F(PlanTest, RollbackAllToAConfigOnlyRestorePointRestartsItsDependents) {
  RestorePoint rp;
  rp.created_wall_us = 2'000'000;
  rp.id = "rp-test-2";
  rp.label = "config-only";
  rp.environment = "test";
  rp.components = {{"config", {{"config_hash", "sha256:y"}}}};
  ASSERT_TRUE(WriteRestorePoint(*store_, rp).ok());
  RollbackRequest req;
  req.all = true;
  req.to = "config-only";
  auto plan = PlanRollback(spec_, req, *store_, *state_, registry_, ctx_);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->affected, (std::vector<std::string>{"config", "orchestrator", "webui"}));
  EXPECT_EQ(Actions(*plan),
            (std::vector<std::string>{"verify-restore-point", "safety-snapshot", "prepare config",
                                      "stop webui", "stop orchestrator", "restore config",
                                      "start orchestrator", "start webui", "verify config",
                                      "verify orchestrator", "verify webui"}));
}

// A target whose baseline was recorded unhealthy is named and refused
// unless forced; the plan says so in its notes.
TEST_F(PlanTest, ATargetRecordedUnhealthyIsRefusedNamingIt) {
  RestorePoint rp;
  rp.created_wall_us = 3'000'000;
  rp.id = "rp-test-3";
  rp.label = "broken";
  rp.environment = "test";
  rp.components = {
      {"webui", {{"release", "v2"}, {"baseline", {{"health", "fail"}, {"detail", "HTTP 500"}}}}},
      {"orchestrator", {{"release", "v1"}, {"baseline", {{"health", "pass"}}}}}};
  ASSERT_TRUE(WriteRestorePoint(*store_, rp).ok());
  RollbackRequest req;
  req.all = true;
  req.to = "broken";
  auto plan = PlanRollback(spec_, req, *store_, *state_, registry_, ctx_);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(UnhealthyTargets(*plan), std::vector<std::string>{"webui (HTTP 500)"});
  Status refused = RefuseUnhealthyTargets(*plan);
  EXPECT_EQ(refused.code(), Status::Code::kAborted);
  EXPECT_NE(refused.message().find("webui (HTTP 500)"), std::string::npos) << refused.message();
  EXPECT_NE(refused.message().find("--force"), std::string::npos);

  req.to = "good";
  auto good = PlanRollback(spec_, req, *store_, *state_, registry_, ctx_);
  ASSERT_TRUE(good.ok());
  EXPECT_TRUE(RefuseUnhealthyTargets(*good).ok());
}

}  // namespace
}  // namespace backstop

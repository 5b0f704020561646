// Tests of the decision layer (decision.h): matrix rows, the fallback to the
// action's scope, baseline checks, the already-on-release rule and the
// complete-failure hold.
#include "watch/decision.h"

#include <gtest/gtest.h>

namespace backstop {
namespace {

using nlohmann::json;

// db <- api <- web <- front(traffic); bus <- api; conf (config) <- api.
Spec TestSpec() {
  Spec spec;
  spec.environment = "test";
  auto add = [&](const std::string& name, ComponentKind kind, std::vector<std::string> deps) {
    ComponentSpec c;
    c.name = name;
    c.kind = kind;
    c.driver = "fake";
    c.depends_on = std::move(deps);
    spec.components[name] = c;
    spec.component_order.push_back(name);
  };
  add("conf", ComponentKind::kConfig, {});
  add("db", ComponentKind::kDatabase, {});
  add("bus", ComponentKind::kStream, {});
  add("api", ComponentKind::kService, {"db", "bus", "conf"});
  add("web", ComponentKind::kService, {"api"});
  add("front", ComponentKind::kTraffic, {"web"});
  add("worker", ComponentKind::kService, {"bus"});
  spec.triggers = DefaultTriggers();
  spec.decision_matrix = DefaultDecisionMatrix();
  return spec;
}

json Baseline(const std::string& health, int64_t latency_ms, json signals = json::object()) {
  return {
      {"health", health}, {"latency_ms", latency_ms}, {"detail", "HTTP 200"}, {"signals", signals}};
}

RestorePoint TestRestorePoint() {
  RestorePoint rp;
  rp.id = "rp-20260101T000000Z-abcdef";
  rp.components["conf"] = {{"config_hash", "sha256:c1"}, {"baseline", Baseline("pass", 1)}};
  rp.components["db"] = {{"dump", "x"}, {"baseline", Baseline("pass", 3)}};
  rp.components["bus"] = {{"streams", json::array()}, {"baseline", Baseline("pass", 2)}};
  rp.components["api"] = {{"release", "v1"},
                          {"baseline", Baseline("pass", 120, {{"cpu_percent", 35.0}})}};
  rp.components["web"] = {{"release", "w1"}, {"baseline", Baseline("pass", 80)}};
  rp.components["front"] = {{"config_hash", "sha256:f1"}, {"baseline", Baseline("pass", 5)}};
  rp.components["worker"] = {{"release", "k1"}, {"baseline", Baseline("pass", 10)}};
  return rp;
}

TriggerEvent Firing(const std::string& trigger, const std::string& component) {
  TriggerEvent ev;
  ev.trigger = trigger;
  ev.component = component;
  ev.from = TriggerState::kPending;
  ev.to = TriggerState::kFiring;
  for (const auto& t : DefaultTriggers()) {
    if (t.name == trigger) {
      ev.action = t.action;
      ev.signal = t.signal;
    }
  }
  ev.reason = "test reason";
  return ev;
}

TriggerStatus FiringStatus(const std::string& trigger, const std::string& component) {
  TriggerStatus st;
  st.trigger = trigger;
  st.component = component;
  st.state = TriggerState::kFiring;
  return st;
}

TEST(Decide, HealthFailureRollsBackTheComponentOnly) {
  RollbackDecision d =
      Decide(Firing("health_check_failures", "api"), TestSpec(), TestRestorePoint());
  EXPECT_TRUE(d.act) << d.reason;
  EXPECT_EQ(d.scenario, "Single service failure");
  EXPECT_EQ(d.scope, MatrixScope::kComponent);
  EXPECT_EQ(d.components, std::vector<std::string>{"api"});
  EXPECT_EQ(d.recovery_min_ms, 2 * 60'000);
  EXPECT_EQ(d.recovery_max_ms, 5 * 60'000);
  EXPECT_EQ(d.restore_point_id, "rp-20260101T000000Z-abcdef");
  EXPECT_NE(d.reason.find("test reason"), std::string::npos);
  json j = d.ToJson();
  EXPECT_EQ(j["act"], true);
  EXPECT_EQ(j["components"], json::array({"api"}));
  EXPECT_EQ(j["scenario"], "Single service failure");
}

TEST(Decide, IntegrityFailureRollsBackTheDatabaseAndItsDependentServices) {
  RollbackDecision d = Decide(Firing("data_integrity", "db"), TestSpec(), TestRestorePoint());
  EXPECT_TRUE(d.act) << d.reason;
  EXPECT_EQ(d.scenario, "Database corruption");
  EXPECT_EQ(d.scope, MatrixScope::kComponentAndDependents);
  // Services only (front is traffic), in dependency order.
  EXPECT_EQ(d.components, (std::vector<std::string>{"db", "api", "web"}));
  EXPECT_EQ(d.recovery_max_ms, 15 * 60'000);
}

TEST(Decide, TriggerNotInTheMatrixTakesTheScopeOfItsAction) {
  Spec spec = TestSpec();
  TriggerSpec t;
  t.name = "queue_stuck";
  t.signal = Signal::kLatency;
  t.above = 1000;
  t.action = TriggerAction::kImmediateRollback;
  spec.triggers.push_back(t);
  t.name = "slow_bus";
  t.action = TriggerAction::kComponentRollback;
  spec.triggers.push_back(t);
  t.name = "just_tell_me";
  t.action = TriggerAction::kAlert;
  spec.triggers.push_back(t);
  t.name = "evaluate_me";
  t.action = TriggerAction::kEvaluateAndRollback;
  spec.triggers.push_back(t);

  TriggerEvent ev = Firing("queue_stuck", "bus");
  ev.action = TriggerAction::kImmediateRollback;
  RollbackDecision d = Decide(ev, spec, TestRestorePoint());
  EXPECT_TRUE(d.act) << d.reason;
  EXPECT_EQ(d.scope, MatrixScope::kComponentAndDependents);
  EXPECT_EQ(d.components, (std::vector<std::string>{"bus", "api", "web", "worker"}));
  EXPECT_NE(d.scenario.find("not in the decision matrix"), std::string::npos);

  d = Decide(Firing("slow_bus", "bus"), spec, TestRestorePoint());
  EXPECT_TRUE(d.act);
  EXPECT_EQ(d.scope, MatrixScope::kComponent);
  EXPECT_EQ(d.components, std::vector<std::string>{"bus"});

  d = Decide(Firing("just_tell_me", "api"), spec, TestRestorePoint());
  EXPECT_FALSE(d.act);
  EXPECT_EQ(d.scope, std::nullopt);
  EXPECT_NE(d.reason.find("its action is alert"), std::string::npos) << d.reason;

  DecisionContext ctx;
  ctx.trigger_states = {FiringStatus("evaluate_me", "web"), FiringStatus("evaluate_me", "api"),
                        FiringStatus("health_check_failures", "worker")};
  d = Decide(Firing("evaluate_me", "web"), spec, TestRestorePoint(), ctx);
  EXPECT_TRUE(d.act) << d.reason;
  EXPECT_EQ(d.scope, MatrixScope::kAffected);
  // Only components where the same trigger fires: not worker.
  EXPECT_EQ(d.components, (std::vector<std::string>{"api", "web"}));
}

TEST(Decide, PerformanceDegradationRollsBackTheAffectedComponents) {
  DecisionContext ctx;
  ctx.trigger_states = {FiringStatus("cpu_usage", "worker"), FiringStatus("response_time", "api"),
                        FiringStatus("health_check_failures", "web")};
  TriggerStatus pending = FiringStatus("memory_usage", "web");
  pending.state = TriggerState::kPending;
  ctx.trigger_states.push_back(pending);
  RollbackDecision d = Decide(Firing("response_time", "api"), TestSpec(), TestRestorePoint(), ctx);
  EXPECT_TRUE(d.act) << d.reason;
  EXPECT_EQ(d.scenario, "Performance degradation");
  EXPECT_EQ(d.scope, MatrixScope::kAffected);
  // worker fires cpu_usage (same row); web's firing trigger is another row's,
  // its memory_usage only pending.
  EXPECT_EQ(d.components, (std::vector<std::string>{"api", "worker"}));
  EXPECT_NE(d.reason.find("baseline check: its baseline health was pass and its baseline "
                          "latency 120 ms was within the threshold"),
            std::string::npos)
      << d.reason;
}

TEST(Decide, EvaluateHoldsWhenTheBaselineWasUnhealthy) {
  RestorePoint rp = TestRestorePoint();
  rp.components["api"]["baseline"]["health"] = "fail";
  rp.components["api"]["baseline"]["detail"] = "HTTP 500";
  RollbackDecision d = Decide(Firing("response_time", "api"), TestSpec(), rp);
  EXPECT_FALSE(d.act);
  EXPECT_EQ(d.scenario, "Performance degradation");
  EXPECT_NE(d.reason.find("its baseline health was 'fail' (HTTP 500)"), std::string::npos)
      << d.reason;

  // Healthy, but the recorded latency was itself over the 5 s threshold.
  rp = TestRestorePoint();
  rp.components["api"]["baseline"]["latency_ms"] = 7200;
  d = Decide(Firing("response_time", "api"), TestSpec(), rp);
  EXPECT_FALSE(d.act);
  EXPECT_NE(d.reason.find("its baseline latency was already 7.20 s, above the threshold 5s"),
            std::string::npos)
      << d.reason;

  // CPU from the baseline's signals.
  rp = TestRestorePoint();
  rp.components["api"]["baseline"]["signals"]["cpu_percent"] = 97.0;
  d = Decide(Firing("cpu_usage", "api"), TestSpec(), rp);
  EXPECT_FALSE(d.act);
  EXPECT_NE(d.reason.find("its baseline cpu was already 97%, above the threshold 90%"),
            std::string::npos)
      << d.reason;
  rp.components["api"]["baseline"]["signals"]["cpu_percent"] = 35.0;
  EXPECT_TRUE(Decide(Firing("cpu_usage", "api"), TestSpec(), rp).act);

  // No baseline at all (an older restore point): no evidence, hold.
  rp = TestRestorePoint();
  rp.components["api"].erase("baseline");
  d = Decide(Firing("memory_usage", "api"), TestSpec(), rp);
  EXPECT_FALSE(d.act);
  EXPECT_NE(d.reason.find("recorded no baseline"), std::string::npos) << d.reason;
}

TEST(Decide, EvaluateLeavesOutAffectedComponentsWithABadBaseline) {
  RestorePoint rp = TestRestorePoint();
  rp.components["worker"]["baseline"]["health"] = "unknown";
  DecisionContext ctx;
  ctx.trigger_states = {FiringStatus("cpu_usage", "worker"), FiringStatus("response_time", "api")};
  RollbackDecision d = Decide(Firing("response_time", "api"), TestSpec(), rp, ctx);
  EXPECT_TRUE(d.act);
  EXPECT_EQ(d.components, std::vector<std::string>{"api"});
  EXPECT_NE(d.reason.find("worker left out: its baseline health was 'unknown'"), std::string::npos)
      << d.reason;
}

TEST(Decide, ImmediateAndComponentRollbackDoNotLookAtTheBaseline) {
  RestorePoint rp = TestRestorePoint();
  rp.components["api"]["baseline"]["health"] = "fail";
  EXPECT_TRUE(Decide(Firing("health_check_failures", "api"), TestSpec(), rp).act);
  EXPECT_TRUE(Decide(Firing("service_unreachable", "api"), TestSpec(), rp).act);
}

TEST(Decide, NeverRollsBackAComponentAlreadyOnTheRestorePointsRelease) {
  DecisionContext ctx;
  ctx.current_releases = {{"api", "v1"}, {"web", "w2"}};
  RollbackDecision d =
      Decide(Firing("health_check_failures", "api"), TestSpec(), TestRestorePoint(), ctx);
  EXPECT_FALSE(d.act);
  EXPECT_NE(d.reason.find("it already runs release v1, which is what the restore point holds"),
            std::string::npos)
      << d.reason;
  ctx.current_releases["api"] = "v2";
  d = Decide(Firing("health_check_failures", "api"), TestSpec(), TestRestorePoint(), ctx);
  EXPECT_TRUE(d.act) << d.reason;

  // Dependents already on their release are left out, the others kept.
  ctx.current_releases = {{"api", "v1"}, {"web", "w2"}};
  d = Decide(Firing("data_integrity", "db"), TestSpec(), TestRestorePoint(), ctx);
  EXPECT_TRUE(d.act);
  EXPECT_EQ(d.components, (std::vector<std::string>{"db", "web"}));
  EXPECT_NE(d.reason.find("api left out: it already runs release v1"), std::string::npos)
      << d.reason;
}

TEST(AlreadyOnRestorePoint, ComparesReleaseAndConfig) {
  std::string why;
  EXPECT_TRUE(AlreadyOnRestorePoint({{"release", "v1"}}, "v1", "", &why));
  EXPECT_FALSE(AlreadyOnRestorePoint({{"release", "v1"}}, "v2", "", &why));
  EXPECT_EQ(why, "it runs release v2; the restore point has v1");
  // The same release but other configuration: something to restore.
  EXPECT_FALSE(
      AlreadyOnRestorePoint({{"release", "v1"}, {"config_hash", "sha256:a"}}, "v1", "sha256:b"));
  EXPECT_TRUE(
      AlreadyOnRestorePoint({{"release", "v1"}, {"config_hash", "sha256:a"}}, "v1", "sha256:a"));
  // Data components have no release: their data is always restored.
  EXPECT_FALSE(AlreadyOnRestorePoint({{"dump", "x"}}, "", "", &why));
  EXPECT_FALSE(AlreadyOnRestorePoint(json(nullptr), "v1"));
}

TEST(Decide, HoldsWhenTheRestorePointLacksTheComponent) {
  RestorePoint rp = TestRestorePoint();
  rp.components.erase("api");
  RollbackDecision d = Decide(Firing("health_check_failures", "api"), TestSpec(), rp);
  EXPECT_FALSE(d.act);
  EXPECT_NE(d.reason.find("has no entry for api"), std::string::npos) << d.reason;
}

TEST(Decide, CompleteFailureHoldsAndAlerts) {
  std::map<std::string, bool> reachable;
  for (const auto& name : TestSpec().component_order) reachable[name] = false;
  EXPECT_TRUE(CompleteFailure(reachable));
  DecisionContext ctx;
  ctx.reachable = reachable;
  RollbackDecision d =
      Decide(Firing("service_unreachable", "api"), TestSpec(), TestRestorePoint(), ctx);
  EXPECT_FALSE(d.act);
  EXPECT_EQ(d.scope, MatrixScope::kFallback);
  EXPECT_EQ(d.scenario, "Complete failure");
  EXPECT_EQ(d.recovery_max_ms, 5 * 60'000);
  EXPECT_EQ(d.trigger, "service_unreachable");
  EXPECT_NE(d.reason.find("no standby environment"), std::string::npos) << d.reason;
  EXPECT_EQ(d.components.size(), reachable.size());

  // One reachable component: not a complete failure; the trigger decides.
  ctx.reachable["db"] = true;
  EXPECT_FALSE(CompleteFailure(ctx.reachable));
  d = Decide(Firing("service_unreachable", "api"), TestSpec(), TestRestorePoint(), ctx);
  EXPECT_TRUE(d.act);
  EXPECT_EQ(d.scenario, "Single service failure");
  // A single component is never a "complete" failure, nor is nothing known.
  EXPECT_FALSE(CompleteFailure({{"api", false}}));
  EXPECT_FALSE(CompleteFailure({}));
}

TEST(Decide, AMatrixRowWithScopeFallbackHoldsWithoutAStandbyInTheSpec) {
  Spec spec = TestSpec();
  for (auto& r : spec.decision_matrix) {
    if (r.scope == MatrixScope::kFallback) r.triggers.push_back("service_unreachable");
  }
  // The first row listing the trigger wins: move the fallback row first.
  std::stable_partition(spec.decision_matrix.begin(), spec.decision_matrix.end(),
                        [](const DecisionRule& r) { return r.scope == MatrixScope::kFallback; });
  RollbackDecision d = Decide(Firing("service_unreachable", "api"), spec, TestRestorePoint());
  EXPECT_FALSE(d.act);
  EXPECT_EQ(d.scope, MatrixScope::kFallback);
  EXPECT_NE(d.reason.find("the spec names no standby"), std::string::npos) << d.reason;
}

FallbackSpec TestFallback() {
  FallbackSpec fb;
  fb.traffic = "web";
  fb.upstream = "app";
  fb.servers = {"10.0.0.9:8080"};
  fb.health.type = ProbeSpec::Type::kHttp;
  fb.health.target = "http://10.0.0.9:8080/health";
  return fb;
}

TEST(Decide, AMatrixRowWithScopeFallbackFallsBackToTheSpecsStandby) {
  Spec spec = TestSpec();
  spec.fallback = TestFallback();
  for (auto& r : spec.decision_matrix) {
    if (r.scope == MatrixScope::kFallback) r.triggers.push_back("service_unreachable");
  }
  std::stable_partition(spec.decision_matrix.begin(), spec.decision_matrix.end(),
                        [](const DecisionRule& r) { return r.scope == MatrixScope::kFallback; });
  RollbackDecision d = Decide(Firing("service_unreachable", "api"), spec, TestRestorePoint());
  EXPECT_TRUE(d.act) << d.reason;
  EXPECT_EQ(d.scope, MatrixScope::kFallback);
  EXPECT_EQ(d.components, std::vector<std::string>{"web"});  // what the gates count
  EXPECT_NE(d.reason.find("falling back: upstream app of web to the standby 10.0.0.9:8080"),
            std::string::npos)
      << d.reason;
}

TEST(Decide, AnAlertTriggerOnAFallbackRowStillOnlyAlerts) {
  Spec spec = TestSpec();
  spec.fallback = TestFallback();
  for (auto& r : spec.decision_matrix) {
    if (r.scope == MatrixScope::kFallback) r.triggers.push_back("service_unreachable");
  }
  std::stable_partition(spec.decision_matrix.begin(), spec.decision_matrix.end(),
                        [](const DecisionRule& r) { return r.scope == MatrixScope::kFallback; });
  for (auto& t : spec.triggers) {
    if (t.name == "service_unreachable") t.action = TriggerAction::kAlert;
  }
  RollbackDecision d = Decide(Firing("service_unreachable", "api"), spec, TestRestorePoint());
  EXPECT_FALSE(d.act) << d.reason;
}

TEST(Decide, ScopeAllRollsBackEverything) {
  Spec spec = TestSpec();
  for (auto& r : spec.decision_matrix) {
    if (r.scope == MatrixScope::kAll) r.triggers.push_back("nats_disconnection");
  }
  std::stable_partition(spec.decision_matrix.begin(), spec.decision_matrix.end(),
                        [](const DecisionRule& r) { return r.scope == MatrixScope::kAll; });
  RollbackDecision d = Decide(Firing("nats_disconnection", "bus"), spec, TestRestorePoint());
  EXPECT_TRUE(d.act) << d.reason;
  EXPECT_EQ(d.scenario, "Partial migration failure");
  EXPECT_EQ(d.components,
            (std::vector<std::string>{"conf", "db", "bus", "api", "web", "front", "worker"}));
}

TEST(Decide, NotFiringIsNotADecision) {
  TriggerEvent ev = Firing("health_check_failures", "api");
  ev.to = TriggerState::kPending;
  RollbackDecision d = Decide(ev, TestSpec(), TestRestorePoint());
  EXPECT_FALSE(d.act);
  EXPECT_NE(d.reason.find("not firing"), std::string::npos);
}

TEST(Decide, UnknownComponentHolds) {
  RollbackDecision d =
      Decide(Firing("health_check_failures", "gone"), TestSpec(), TestRestorePoint());
  EXPECT_FALSE(d.act);
  EXPECT_NE(d.reason.find("no component named 'gone'"), std::string::npos);
}

TEST(BaselineHealthy, JudgesOnHealthWhenTheValueWasNotRecorded) {
  TriggerSpec t;
  t.signal = Signal::kErrorRate;
  t.above = 5;
  std::string why;
  EXPECT_TRUE(BaselineHealthy({{"baseline", Baseline("pass", 10)}}, t, &why));
  EXPECT_EQ(why,
            "its baseline health was pass; no baseline error_rate was recorded, so it is "
            "judged on health alone");
  t.signal = Signal::kConnectTime;
  t.above = 30000;
  EXPECT_FALSE(BaselineHealthy({{"baseline", Baseline("pass", 10, {{"connect_time_ms", 31000.0}})}},
                               t, &why));
  EXPECT_TRUE(
      BaselineHealthy({{"baseline", Baseline("pass", 10, {{"connect_time_ms", 12.0}})}}, t, &why));
}

}  // namespace
}  // namespace backstop

namespace backstop {
namespace {

// An unreachable database is not fixed by restoring its data: Backstop rolls
// back the services that use it if they changed, and otherwise holds.
TEST(Decide, UnreachableDataComponentRollsBackChangedDependentServicesOnly) {
  DecisionContext ctx;
  ctx.current_releases = {{"api", "v2"}, {"web", "w1"}, {"worker", "k1"}};
  RollbackDecision d =
      Decide(Firing("database_timeout", "db"), TestSpec(), TestRestorePoint(), ctx);
  EXPECT_TRUE(d.act) << d.reason;
  EXPECT_EQ(d.components, std::vector<std::string>{"api"});
  EXPECT_NE(d.reason.find("a data restore cannot fix"), std::string::npos) << d.reason;

  ctx.current_releases["api"] = "v1";
  d = Decide(Firing("database_timeout", "db"), TestSpec(), TestRestorePoint(), ctx);
  EXPECT_FALSE(d.act);
  EXPECT_NE(d.reason.find("check the server"), std::string::npos) << d.reason;

  ctx.current_releases["worker"] = "k2";
  d = Decide(Firing("nats_disconnection", "bus"), TestSpec(), TestRestorePoint(), ctx);
  EXPECT_TRUE(d.act) << d.reason;
  EXPECT_EQ(d.components, std::vector<std::string>{"worker"});

  // Data integrity still restores the data itself.
  d = Decide(Firing("data_integrity", "db"), TestSpec(), TestRestorePoint(), ctx);
  EXPECT_TRUE(d.act);
  EXPECT_EQ(d.components.front(), "db");
}

}  // namespace
}  // namespace backstop

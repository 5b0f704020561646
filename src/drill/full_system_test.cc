// Tests of the full_system drill's checks and decision (full_system.h): it
// needs every process service to be a fault-release target and a matrix row
// with scope all, and its decision is that row over every component.
#include "drill/full_system.h"

#include <gtest/gtest.h>

#include "drill/drill_faults.h"
#include "testing/test_spec.h"

namespace backstop {
namespace {

Spec TwoServices() {
  Spec spec;
  auto service = [&](const std::string& name, const std::string& depends_on) {
    testing::AddComponent(
        &spec, name, ComponentKind::kService, "process",
        {{"releases", "/srv/" + name + "/releases"}, {"command", {"bin/" + name}}}, {depends_on});
  };
  testing::AddComponent(&spec, "postgres", ComponentKind::kDatabase, "postgres");
  service("api", "postgres");
  service("web", "api");
  spec.triggers = DefaultTriggers();
  DecisionRule single;
  single.scenario = "Single service failure";
  single.triggers = {"health_check_failures"};
  single.scope = MatrixScope::kComponent;
  spec.decision_matrix.push_back(single);
  return spec;
}

DecisionRule ScopeAll() {
  DecisionRule all;
  all.scenario = "Partial migration failure";
  all.scope = MatrixScope::kAll;
  all.procedure = "roll back every component";
  all.recovery_min_ms = 15 * 60000;
  all.recovery_max_ms = 20 * 60000;
  return all;
}

TEST(FullSystemDrillTest, NeedsAMatrixRowWithScopeAll) {
  Spec spec = TwoServices();
  Status st = CheckFault(spec, "full_system", "all");
  EXPECT_EQ(st.code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("scope all"), std::string::npos) << st.message();
  spec.decision_matrix.push_back(ScopeAll());
  EXPECT_TRUE(CheckFault(spec, "full_system", "all").ok());
  EXPECT_TRUE(CheckFault(spec, "full_system", "").ok());
}

TEST(FullSystemDrillTest, TakesEveryServiceNotOne) {
  Spec spec = TwoServices();
  spec.decision_matrix.push_back(ScopeAll());
  EXPECT_EQ(DefaultFaultComponent(spec, "full_system"), "all");
  EXPECT_EQ(FullSystemServices(spec), (std::vector<std::string>{"api", "web"}));
  EXPECT_EQ(CheckFault(spec, "full_system", "api").code(), Status::Code::kInvalidArgument);
}

TEST(FullSystemDrillTest, EveryServiceMustBeAFaultReleaseTarget) {
  Spec spec = TwoServices();
  spec.decision_matrix.push_back(ScopeAll());
  spec.components["web"].settings["command"] = {"/usr/bin/web"};
  Status st = CheckFault(spec, "full_system", "");
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find("web"), std::string::npos) << st.message();
}

TEST(FullSystemDrillTest, TheDecisionIsTheScopeAllRowOverEveryComponent) {
  Spec spec = TwoServices();
  spec.decision_matrix.push_back(ScopeAll());
  RestorePoint rp;
  rp.id = "rp-1";
  rp.components = {{"postgres", nlohmann::json::object()},
                   {"api", {{"release", "v1"}}},
                   {"web", {{"release", "v1"}}}};
  TriggerEvent e;
  e.trigger = "health_check_failures";
  e.component = "api";
  e.to = TriggerState::kFiring;
  e.reason = "3 consecutive failures";
  RollbackDecision d = FullSystemDecision(e, spec, rp);
  EXPECT_TRUE(d.act);
  EXPECT_EQ(d.scope, MatrixScope::kAll);
  EXPECT_EQ(d.scenario, "Partial migration failure");
  EXPECT_EQ(d.recovery_max_ms, 20 * 60000);
  EXPECT_EQ(d.components, (std::vector<std::string>{"postgres", "api", "web"}));
  EXPECT_EQ(d.trigger, "health_check_failures");
  EXPECT_EQ(d.restore_point_id, "rp-1");
}

}  // namespace
}  // namespace backstop

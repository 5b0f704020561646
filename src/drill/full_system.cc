#include "drill/full_system.h"

#include "base/strings.h"
#include "run/plan.h"

namespace backstop {
namespace {

const DecisionRule* ScopeAllRow(const Spec& spec) {
  for (const auto& r : spec.decision_matrix) {
    if (r.scope == MatrixScope::kAll) return &r;
  }
  return nullptr;
}

}  // namespace

std::vector<std::string> FullSystemServices(const Spec& spec) {
  std::vector<std::string> out;
  for (const auto& name : spec.component_order) {
    const ComponentSpec* c = spec.Find(name);
    if (c != nullptr && c->kind == ComponentKind::kService && c->driver == "process") {
      out.push_back(name);
    }
  }
  return out;
}

Status CheckFullSystemFault(const Spec& spec, const std::string& component) {
  if (!component.empty() && component != kAllServices) {
    return Status::InvalidArgument("full_system drills every service at once; --component " +
                                   component + " does not apply (leave it out, or give 'all')");
  }
  const std::vector<std::string> services = FullSystemServices(spec);
  if (services.empty()) {
    return Status::InvalidArgument(
        "full_system gives every process service a failing release; "
        "the spec has none");
  }
  for (const auto& name : services) {
    BACKSTOP_RETURN_IF_ERROR(CheckFaultReleaseTarget(spec, "full_system", name));
  }
  if (ScopeAllRow(spec) == nullptr) {
    return Status::FailedPrecondition(
        "full_system rehearses the decision matrix's row with scope all (roll back every "
        "component); the spec's decision_matrix has none");
  }
  return Status::OK();
}

Status InjectFullSystemFault(Env* env, const Spec& spec, RunEngine& engine,
                             const std::string& drill_id, const std::string& triggered_by,
                             InjectedFault* fault) {
  for (const auto& name : FullSystemServices(spec)) {
    BACKSTOP_RETURN_IF_ERROR(
        DeployFaultRelease(env, spec, engine, "full_system", name, drill_id, triggered_by, fault));
  }
  return Status::OK();
}

RollbackDecision FullSystemDecision(const TriggerEvent& event, const Spec& spec,
                                    const RestorePoint& target) {
  const DecisionRule& row = *ScopeAllRow(spec);
  RollbackDecision d;
  d.act = true;
  d.scope = MatrixScope::kAll;
  d.scenario = row.scenario;
  d.procedure = row.procedure;
  d.recovery_min_ms = row.recovery_min_ms;
  d.recovery_max_ms = row.recovery_max_ms;
  d.trigger = event.trigger;
  d.component = event.component;
  d.restore_point_id = target.id;
  for (const auto& name : DependencyOrder(spec)) {
    if (target.components.contains(name)) d.components.push_back(name);
  }
  d.reason = "trigger " + event.trigger + " on " + event.component + ": " + event.reason +
             "; full_system drill: every service was given a failing release at once, the "
             "operator's call is decision matrix row '" +
             row.scenario + "' (scope all): rolling back " + Join(d.components) +
             " to restore point " + target.id;
  return d;
}

}  // namespace backstop

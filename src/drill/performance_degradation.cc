#include "drill/performance_degradation.h"

#include "run/plan.h"

namespace backstop {

Status CheckPerformanceDegradationFault(const Spec& spec, const std::string& component) {
  const ComponentSpec* c = spec.Find(component);
  if (c == nullptr) {
    return Status::InvalidArgument(component.empty()
                                       ? "the spec has no service for a performance drill"
                                       : "no component named '" + component + "'");
  }
  if (c->kind != ComponentKind::kService || c->driver != "process") {
    return Status::InvalidArgument(
        "performance_degradation drills a service of the process driver; " + component + " is a " +
        c->driver + " " + std::string(Name(c->kind)));
  }
  if (!WatchedBy(spec, component, Signal::kLatency)) {
    return Status::FailedPrecondition("no trigger watches the latency of " + component +
                                      " (a trigger with signal: latency): nothing could "
                                      "detect a release that answers slowly");
  }
  return Status::OK();
}

Status InjectSlowRelease(const Spec& spec, RunEngine& engine, const std::string& component,
                         const std::string& release, const std::string& triggered_by,
                         InjectedFault* fault) {
  if (release.empty()) {
    return Status::InvalidArgument(
        "performance_degradation deploys a release that answers slowly, which Backstop cannot "
        "make for you: name one with --release");
  }
  DriverContext ctx = engine.Context();
  BACKSTOP_ASSIGN_OR_RETURN(Plan plan, PlanDeploy(spec, component, release,
                                                  DriverRegistry::Global(), ctx, &engine.state()));
  RunOptions options;
  options.command = "backstop drill performance_degradation (fault: deploy " + release + ")";
  options.triggered_by = triggered_by;
  BACKSTOP_ASSIGN_OR_RETURN(RunOutcome deployed, engine.Start(plan, options));
  fault->deploy_run_ids.push_back(deployed.run_id);
  fault->description = "deployed release " + release + " of " + component +
                       ", which answers slowly (run " + deployed.run_id + ", " +
                       std::string(Name(deployed.status)) + ")";
  return Status::OK();
}

}  // namespace backstop

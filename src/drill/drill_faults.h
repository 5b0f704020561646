// The faults a drill injects (seed 8.2), each one that the spec's triggers
// must detect and that a rollback to the drill's starting restore point
// undoes:
//   service_failure      a release that never answers its health check is
//                        deployed to a `process` service (a real deploy run,
//                        so the service differs from its restore point and
//                        the rollback has something to do: a killed process
//                        on its restore point's release is "already there",
//                        and the decision layer would rightly hold); for
//                        a blue/green service, a release that serves through
//                        the health gate and the switch, then stops answering
//   database_corruption  a foreign key of a `postgres` database recorded in
//                        the restore point is dropped: the integrity checks
//                        (CheckInvariants) report it missing
//   full_system          every `process` service gets such a release at once
//                        (full_system.h); the component is "all"
//   nats_outage          the nats-server of a `nats` stream is frozen, as
//                        behind a partition, and resumed by EndOutage once
//                        the decision is taken (nats_outage.h)
//   performance_degradation  the operator's release that answers slowly is
//                        deployed (performance_degradation.h)
//
// Thread-safety: one thread (the drill's).
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "run/run.h"
#include "spec/spec.h"
#include "spec/spec_enums.h"
#include "store/restore_point.h"

namespace backstop {

// The scenarios `backstop drill` knows, in the order docs/drills.md lists them.
const std::vector<std::string>& DrillScenarios();

// The drill scenario for a name the spec's `drills[].scenario` accepts: a
// built-in fault (service_failure, bad_deploy, database_corruption,
// stream_loss, full_system) or a decision-matrix row ("Single service
// failure", "Database corruption", "Performance degradation", "Complete
// failure", ...), matched without regard to case, spaces or underscores.
// Unknown names are returned unchanged (CheckFault refuses them).
std::string CanonicalScenario(const std::string& name);

// OK when `scenario` can be injected into `component`, before anything is
// touched: InvalidArgument for an unknown one or a component of the wrong kind or driver,
// FailedPrecondition when the spec gives nothing that could detect it (no integrity trigger for
// database_corruption).
Status CheckFault(const Spec& spec, const std::string& scenario, const std::string& component);

// The kind of component a scenario injects into (services for full_system).
ComponentKind FaultComponentKind(const std::string& scenario);

// Whether a trigger of the spec watches `signal` on `component`.
bool WatchedBy(const Spec& spec, const std::string& component, Signal signal);

// The component a scenario takes when none is given: the first service
// (service_failure), database (database_corruption) or nats stream
// (nats_outage) in spec order, "all" for full_system.
std::string DefaultFaultComponent(const Spec& spec, const std::string& scenario);

struct InjectedFault {
  std::string description;                  // one line for the report
  std::vector<std::string> deploy_run_ids;  // the deploys that injected it
  std::vector<std::string> release_dirs;    // fault releases, removed by RemoveFault
  int frozen_pid = 0;                       // nats_outage: the server, until EndOutage
};

// OK when `component` is a `process` service whose health a trigger watches
// and whose command is relative to its release folder: what a fault release
// needs. `scenario` names the drill in the errors.
Status CheckFaultReleaseTarget(const Spec& spec, const std::string& scenario,
                               const std::string& component);

// Writes a release `drill-<drill_id>` of `component` that runs and never
// answers its health check, and deploys it (a real deploy run, which fails its
// health gate and leaves the service on it). A blue/green service's deploy
// keeps the live slot when the gate fails, so for one the release serves as
// the live release until the deploy has switched to it, then stops answering;
// FailedPrecondition when the service has no live release yet. Appends to
// `fault`.
// REQUIRES: CheckFaultReleaseTarget(spec, scenario, component) is OK.
Status DeployFaultRelease(Env* env, const Spec& spec, RunEngine& engine,
                          const std::string& scenario, const std::string& component,
                          const std::string& drill_id, const std::string& triggered_by,
                          InjectedFault* fault);

// Injects the fault into `fault`. `rp` is the drill's starting restore point
// (the foreign keys it recorded); `drill_id` names the fault release;
// `fault_release` is the slow release of performance_degradation. On an
// error, `fault` still holds what was injected so far (RemoveFault removes it).
// REQUIRES: CheckFault(spec, scenario, component) is OK.
Status InjectFault(Env* env, const Spec& spec, RunEngine& engine, const RestorePoint& rp,
                   const std::string& scenario, const std::string& component,
                   const std::string& drill_id, const std::string& fault_release,
                   const std::string& triggered_by, InjectedFault* fault);

// True for a scenario whose fault is an outage of a server Backstop does not
// run (nats_outage): the decision matrix holding and alerting is the right
// answer to it, and the drill ends the outage itself (EndOutage) before it
// verifies the environment back on its restore point.
bool DrillEndsOutage(const std::string& scenario);

// Ends an outage the fault still holds (a frozen server resumed); OK and
// nothing done when it holds none. Idempotent.
Status EndOutage(Env* env, InjectedFault* fault);

// Removes what InjectFault left outside the environment's state (the fault
// releases' folders, once the services no longer run them).
Status RemoveFault(Env* env, const InjectedFault& fault);

}  // namespace backstop

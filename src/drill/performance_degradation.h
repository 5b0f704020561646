// The performance_degradation drill (seed 8, "a release that answers
// slowly"): Backstop cannot make an arbitrary service slow, so the operator
// names a release of a `process` service that answers slowly (`--release R`:
// a build with an injected delay, or the demo's `response_delay_ms`), and the
// drill deploys it (a real deploy run; it passes its health gate when it
// answers within the probe's timeout). A `latency` trigger of the spec must
// detect it (the example's response_time: above 5s for a while); the decision
// matrix's row for that trigger ("Performance degradation", evaluate and roll
// back against the restore point's baseline) chooses, and the drill rolls the
// service back to its restore point. The release is the operator's: it is
// left in place.
//
// Thread-safety: one thread (the drill's).
#pragma once

#include <string>

#include "base/env.h"
#include "base/status.h"
#include "drill/drill_faults.h"
#include "run/run.h"
#include "spec/spec.h"

namespace backstop {

// OK when `component` is a `process` service whose latency a trigger watches.
// (The release is checked when it is deployed: PlanDeploy lists the service's
// releases.)
Status CheckPerformanceDegradationFault(const Spec& spec, const std::string& component);

// Deploys `release` of `component`; appends to `fault`.
// REQUIRES: CheckPerformanceDegradationFault(spec, component) is OK.
Status InjectSlowRelease(const Spec& spec, RunEngine& engine, const std::string& component,
                         const std::string& release, const std::string& triggered_by,
                         InjectedFault* fault);

}  // namespace backstop

// The full_system drill (seed 8.2, scenario 3: "complete system failure",
// simulate-system-failure.sh then rollback-all.sh --confirm): every `process`
// service gets a release that never answers its health check at once, so
// every service differs from the drill's restore point; the spec's health
// triggers detect it; the decision is the decision matrix's row with scope
// `all` (the operator's `backstop rollback --all`, which no trigger selects on
// its own: a trigger fires on one component, and the matrix rows it selects
// roll back that component); the drill rolls every component back to its
// restore point in one run.
//
// Not with a running `backstop watch`: the daemon would roll each service back
// on its own row (Single service failure), which is not the rehearsal; the
// drill refuses before anything is touched.
//
// Thread-safety: one thread (the drill's).
#pragma once

#include <string>

#include "base/env.h"
#include "base/status.h"
#include "drill/drill_faults.h"
#include "run/run.h"
#include "spec/spec.h"
#include "store/restore_point.h"
#include "watch/decision.h"
#include "watch/rules.h"

namespace backstop {

// The component a full_system drill records: every service.
inline constexpr const char* kAllServices = "all";

// The services a full_system drill gives a fault release, in spec order: every
// `process` service.
std::vector<std::string> FullSystemServices(const Spec& spec);

// OK when a full_system drill can run: `component` empty or "all", at least
// one process service, each one a fault release can target
// (CheckFaultReleaseTarget), and a decision matrix row with scope all.
Status CheckFullSystemFault(const Spec& spec, const std::string& component);

// Deploys a fault release to every FullSystemServices service, one deploy run
// each, back to back. Appends to `fault`; on an error, what was deployed so
// far is in `fault` (the drill's own rollback undoes it).
Status InjectFullSystemFault(Env* env, const Spec& spec, RunEngine& engine,
                             const std::string& drill_id, const std::string& triggered_by,
                             InjectedFault* fault);

// The decision for the first trigger a full_system drill saw fire: the
// decision matrix's row with scope all, every component, back to `target`.
// REQUIRES: CheckFullSystemFault(spec, ...) is OK.
RollbackDecision FullSystemDecision(const TriggerEvent& event, const Spec& spec,
                                    const RestorePoint& target);

}  // namespace backstop

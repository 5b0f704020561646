// One drill, end to end (seed 8): refuse unless the environment is quiet,
// take a restore point (label drill-<id>), inject the fault (drill_faults.h),
// let the spec's triggers detect it and the decision matrix choose, roll back,
// and always end by verifying the environment back on the starting restore
// point — rolling back to it by itself when the detected rollback did not
// get there — or say loudly that it is not.
//
// Detection: when a `backstop watch` daemon runs on the same state dir (its
// watch.json names a live pid), the daemon detects, decides and rolls back,
// and the drill follows it through the event journal (trigger.firing, the
// decision, the run's run.started and run.finished): a drill then rehearses
// the very daemon that would act in an incident. Otherwise the drill runs the
// same watch machinery in-process (watch/deploy_guard.h: the RuleEngine and
// signal derivation of `backstop watch`, the drivers' health and integrity
// checks, the decision layer's Decide) and rolls back to its restore point
// itself. Either way the drill gives up after its timeout, rolls back to its
// restore point by itself and fails as "not detected" (or held, or failed).
// Per scenario: full_system decides with the matrix's scope-all row
// (full_system.h) and is refused while a daemon runs; nats_outage accepts the
// matrix's hold and ends the outage itself before verifying (EndOutage);
// performance_degradation counts only a latency trigger's detection.
//
// Refusals, checked before anything is touched: an unknown scenario, a
// release given to a scenario other than performance_degradation (or none
// to it), a run in progress (the environment
// lock held, or an unfinished run), an incident open (a trigger firing in the
// watch daemon's persisted rule state, or the newest run that is not a
// drill's own deploy failed or was abandoned: its environment was left in an
// unknown state), and a protected environment without `confirm`.
//
// Thread-safety: one thread. Borrows everything it is given.
#pragma once

#include <cstdint>
#include <string>

#include "base/env.h"
#include "base/output.h"
#include "drill/drill_report.h"
#include "run/run.h"
#include "run/state_db.h"
#include "spec/spec.h"
#include "store/store.h"

namespace backstop {

struct DrillRequest {
  std::string scenario;
  std::string component;  // empty: the spec drill's rotation, else the scenario's default
  std::string name;       // the spec's drills[].name, when run from the schedule
  // performance_degradation: the release that answers slowly (required);
  // empty for the other scenarios.
  std::string release;
  bool confirm = false;
  // How long the triggers are given to detect the fault and the rollback to
  // finish; 0: 10 minutes.
  int64_t timeout_ms = 0;
};

// Everything a refusal checks, before anything is touched. OK when the drill may go.
Status CheckDrillAllowed(Env* env, const Spec& spec, StateDb& state, bool confirm);

// Runs the drill. An error Status is a refusal (nothing was touched) or a
// failure before the fault was injected; once it is, the outcome says
// passed or failed and why, and is recorded, reported and journaled.
Result<DrillOutcome> RunDrill(Env* env, const Spec& spec, Store& store, StateDb& state,
                              RunEngine& engine, const DrillRequest& request, Output& out);

}  // namespace backstop

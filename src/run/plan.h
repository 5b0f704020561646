// Plans: the ordered steps of a rollback or a deploy, derived from the spec's
// depends_on graph, without acting on anything.
//
// A rollback follows the seed's order, with Backstop's safety steps around it:
//   verify-restore-point   every blob re-hashed: a damaged restore point is refused
//                          before any component is touched
//   safety-snapshot        the current state, so the rollback itself can be undone
//   prepare                every restored component: what it needs outside the store
//                          is checked (CheckRestorable) and staged (Prepare: release
//                          trees, shadow databases) while everything still runs
//   assess-loss            what the rollback discards, every data component counted
//                          and its ledger written; then refused over the spec's limit
//   stop                   services, in reverse dependency order
//   restore                config and data components, in dependency order
//   restore, start         per service in dependency order: switch its release
//                          (recorded in its history), start it gated on its health
//   verify                 every affected component: state equals the target, healthy
// A blue/green service (spec `traffic:`) changes release without stopping:
//   start-slot             the release started in the idle slot, gated on its health
//   switch                 the traffic component routes to that slot; `current`
//                          follows; the slot state and the history record it
//   stop-slot              a slot no longer wanted (the one rolled away from)
// (plan_blue_green.h says which of them a deploy or a rollback takes).
// A plan is self-contained (it carries each component's target manifest
// entry), so a resumed run does exactly what the first attempt planned even if
// "latest" has moved since.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "drivers/driver.h"
#include "run/run_enums.h"
#include "spec/spec.h"

namespace backstop {

class StateDb;
class Store;

struct PlanStep {
  StepAction action = StepAction::kVerify;
  std::string component;  // empty for whole-run steps
  std::string description;
  nlohmann::json args = nlohmann::json::object();
};

struct Plan {
  RunKind kind = RunKind::kRollback;  // rollback | deploy
  PlanScope scope = PlanScope::kAll;
  std::string component;  // when scope is kComponent
  std::string target;     // "restore point rp-… (pre-migration)", "release v1"
  std::string restore_point_id;
  std::vector<std::string> affected;  // in dependency order
  std::vector<std::string> notes;     // warnings shown with the plan
  // Per affected component: the manifest entry it is restored to.
  nlohmann::json entries = nlohmann::json::object();
  std::vector<PlanStep> steps;

  nlohmann::json ToJson() const;
  // Corruption when a stored plan cannot be read, an unknown kind, scope or
  // step action included (named in the message).
  static Result<Plan> FromJson(const nlohmann::json& j);
  // Numbered, human-readable steps.
  std::string Describe() const;
};

struct RollbackRequest {
  bool all = false;
  std::string component;  // when !all
  // previous | latest | a restore point selector | a release name (services).
  // Empty: --all -> the newest run's pre-deploy restore point when that run
  // is a deploy that took one, else the latest restore point; a service -> its
  // previous release; another component -> as --all (when that restore point
  // holds it), else the latest.
  std::string to;
  // --to-time: roll the one database component back to this moment (RFC 3339,
  // e.g. 2026-11-30T14:03:12Z) between the restore point (`to`) and now, by
  // undoing only what committed after it. Only entries that can (a postgres
  // restore point with flashback: its entry holds "flashback") accept it; the
  // planner records it in the entry as "to_time_us" (driver.h).
  std::string to_time;
};

// Every component, dependencies before dependents; ties keep the file order.
// REQUIRES: the spec is valid (no cycles), as LoadSpec guarantees.
std::vector<std::string> DependencyOrder(const Spec& spec);
// Components that depend on `name`, directly or not, in dependency order.
std::vector<std::string> Dependents(const Spec& spec, const std::string& name);

// Builds a rollback plan. `ctx` is used to ask drivers about current releases.
Result<Plan> PlanRollback(const Spec& spec, const RollbackRequest& request, Store& store,
                          StateDb& state, const DriverRegistry& registry, DriverContext& ctx);
// The components `plan` restores to an entry whose recorded health baseline
// was unhealthy when its restore point was taken, as "name (detail)".
std::vector<std::string> UnhealthyTargets(const Plan& plan);
// Aborted, naming them, when UnhealthyTargets(plan) is not empty: a rollback
// to a state that was already broken would trade one outage for another.
// The operator overrides it with `--force`.
Status RefuseUnhealthyTargets(const Plan& plan);

// Builds the plan of `backstop deploy SERVICE VERSION`. A blue/green service
// (spec `traffic:`) needs `state`, where its slots are recorded.
Result<Plan> PlanDeploy(const Spec& spec, const std::string& component, const std::string& release,
                        const DriverRegistry& registry, DriverContext& ctx,
                        StateDb* state = nullptr);

}  // namespace backstop

// Plans: the ordered steps of a rollback or a deploy, derived from the spec's
// depends_on graph, without acting on anything.
//
// A rollback follows the seed's order, with Backstop's safety steps around it:
//   verify-restore-point   every blob re-hashed: a damaged restore point is refused
//                          before any component is touched
//   safety-snapshot        the current state, so the rollback itself can be undone
//   prepare                data components stage their restore (shadow database)
//   assess-loss            what the rollback discards; refused over the spec's limit
//   stop                   services, in reverse dependency order
//   restore                every component, in dependency order
//   start                  services, in dependency order, each gated on its health
//   verify                 every affected component: state equals the target, healthy
//   record-history         the release history of services that changed
// A plan is self-contained (it carries each component's target manifest
// entry), so a resumed run does exactly what the first attempt planned even if
// "latest" has moved since.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "driver.h"
#include "spec.h"
#include "status.h"

namespace backstop {

class StateDb;
class Store;

struct PlanStep {
  std::string action;
  std::string component;  // empty for whole-run steps
  std::string description;
  nlohmann::json args = nlohmann::json::object();
};

struct Plan {
  std::string kind;       // rollback | deploy
  std::string scope;      // all | component
  std::string component;  // when scope == component
  std::string target;     // "restore point rp-… (pre-migration)", "release v1"
  std::string restore_point_id;
  std::vector<std::string> affected;  // in dependency order
  std::vector<std::string> notes;     // warnings shown with the plan
  // Per affected component: the manifest entry it is restored to.
  nlohmann::json entries = nlohmann::json::object();
  std::vector<PlanStep> steps;

  nlohmann::json ToJson() const;
  static Result<Plan> FromJson(const nlohmann::json& j);
  // Numbered, human-readable steps.
  std::string Describe() const;
};

struct RollbackRequest {
  bool all = false;
  std::string component;  // when !all
  // previous | latest | a restore point selector | a release name (services).
  // Empty: --all -> latest restore point; a service -> its previous release;
  // another component -> latest restore point.
  std::string to;
};

// Every component, dependencies before dependents; ties keep the file order.
// REQUIRES: the spec is valid (no cycles), as LoadSpec guarantees.
std::vector<std::string> DependencyOrder(const Spec& spec);
// Components that depend on `name`, directly or not, in dependency order.
std::vector<std::string> Dependents(const Spec& spec, const std::string& name);

// Builds a rollback plan. `ctx` is used to ask drivers about current releases.
Result<Plan> PlanRollback(const Spec& spec, const RollbackRequest& request, Store& store,
                          StateDb& state, const DriverRegistry& registry, DriverContext& ctx);
// Builds the plan of `backstop deploy SERVICE VERSION`.
Result<Plan> PlanDeploy(const Spec& spec, const std::string& component, const std::string& release,
                        const DriverRegistry& registry, DriverContext& ctx);

}  // namespace backstop

#include "run/plan.h"

#include <algorithm>
#include <functional>
#include <map>
#include <queue>
#include <set>

#include "base/units.h"
#include "run/plan_blue_green.h"
#include "run/state_db.h"
#include "store/restore_point.h"
#include "store/store.h"

namespace backstop {
namespace {

bool IsService(const ComponentSpec& c) { return c.kind == ComponentKind::kService; }
bool HoldsData(const ComponentSpec& c) { return backstop::HoldsData(c.kind); }

PlanStep Step(StepAction action, std::string component, std::string description,
              nlohmann::json args = nlohmann::json::object()) {
  return PlanStep{action, std::move(component), std::move(description), std::move(args)};
}

std::string DescribeRestorePoint(const RestorePoint& rp) {
  std::string s = "restore point " + rp.id;
  if (!rp.label.empty()) s += " (" + rp.label + ")";
  return s;
}

// Releases a service can be switched to, as its driver reports them.
Result<nlohmann::json> DescribeComponent(const ComponentSpec& c, const DriverRegistry& registry,
                                         DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(auto driver, registry.Create(c.driver));
  return driver->Describe(c, ctx);
}

bool ListsRelease(const nlohmann::json& described, const std::string& release) {
  if (!described.contains("releases") || !described["releases"].is_array()) return false;
  for (const auto& r : described["releases"]) {
    if (r.is_string() && r.get<std::string>() == release) return true;
  }
  return false;
}

// The release a service ran before its current one, from the recorded history.
Result<std::string> PreviousRelease(const ComponentSpec& c, const std::string& current,
                                    StateDb& state) {
  BACKSTOP_ASSIGN_OR_RETURN(auto history, state.History(c.name));
  for (auto it = history.rbegin(); it != history.rend(); ++it) {
    if (it->release != current && it->status != "failed") return it->release;
  }
  return Status::NotFound("no release of " + c.name + " before " +
                          (current.empty() ? std::string("the current one") : current) +
                          " is recorded in its history; name one with --to VERSION or a "
                          "restore point with --to latest");
}

// Before anything is stopped: every component that will be restored is
// checked (what its entry needs outside the store is there) and prepared
// (release trees rebuilt, shadow databases staged), so that a missing
// precondition refuses the run while every service still runs.
void AddPrepareSteps(const Spec& spec, Plan& plan, const std::vector<std::string>& restored) {
  for (const auto& name : restored) {
    const ComponentSpec* c = spec.Find(name);
    std::string what = HoldsData(*c) ? "stage the restore" : "check what the restore needs";
    plan.steps.push_back(Step(StepAction::kPrepare, name, "prepare " + name + " (" + what + ")"));
  }
}

// A blue/green service's part in a plan: its own steps in place of the usual
// restore and start; `cycled` when it is still stopped (and its release
// switched) around the restore like any service.
struct BlueGreenPart {
  bool cycled = false;
  std::vector<PlanStep> steps;
};

// Stop (reverse dependency order), restore what is not a service, then per
// service in dependency order: switch its release and start it. A service is
// switched only once everything it depends on is up again, so that when a
// start fails the services not yet switched still hold the release they ran
// before and can be started on it (RunEngine::Recover). A blue/green service
// in `blue_green` takes its own steps there instead.
void AddCommonTail(const Spec& spec, Plan& plan, const std::vector<std::string>& services_to_cycle,
                   const std::vector<std::string>& restored,
                   const std::map<std::string, BlueGreenPart>& blue_green = {}) {
  std::vector<std::string> stop_order(services_to_cycle.rbegin(), services_to_cycle.rend());
  for (const auto& name : stop_order) {
    auto bg = blue_green.find(name);
    if (bg != blue_green.end() && !bg->second.cycled) continue;
    plan.steps.push_back(
        Step(StepAction::kStop, name, "stop " + name + " (reverse dependency order)"));
  }
  std::set<std::string> restored_set(restored.begin(), restored.end());
  for (const auto& name : restored) {
    const ComponentSpec* c = spec.Find(name);
    if (IsService(*c)) continue;
    plan.steps.push_back(
        Step(StepAction::kRestore, name, "restore " + name + " (" + c->driver + ")"));
  }
  for (const auto& name : services_to_cycle) {
    auto bg = blue_green.find(name);
    const bool cycled = bg == blue_green.end() || bg->second.cycled;
    if (cycled && restored_set.count(name)) {
      plan.steps.push_back(Step(StepAction::kRestore, name,
                                "switch " + name + " to release " +
                                    plan.entries[name].value("release", std::string("?")) +
                                    " (recorded in its history)"));
    }
    if (bg != blue_green.end()) {
      plan.steps.insert(plan.steps.end(), bg->second.steps.begin(), bg->second.steps.end());
      continue;
    }
    plan.steps.push_back(Step(StepAction::kStart, name,
                              "start " + name + " and wait until its health check passes"));
  }
  for (const auto& name : plan.affected) {
    plan.steps.push_back(Step(StepAction::kVerify, name, "verify " + name));
  }
}

// The blue/green services among `services` of an --all rollback restoring
// `restored`: one none of whose dependencies is restored changes release as
// a blue/green rollback does; one whose dependencies are restored is stopped
// and started around them as today, in its live slot.
Result<std::map<std::string, BlueGreenPart>> BlueGreenParts(
    const Spec& spec, Plan& plan, const std::vector<std::string>& services,
    const std::vector<std::string>& restored, StateDb& state, const DriverRegistry& registry,
    DriverContext& ctx) {
  std::set<std::string> behind_restored;  // services depending on a restored non-service
  for (const auto& name : restored) {
    if (IsService(*spec.Find(name))) continue;
    for (const auto& d : Dependents(spec, name)) behind_restored.insert(d);
  }
  std::map<std::string, BlueGreenPart> parts;
  for (const auto& name : services) {
    const ComponentSpec* c = spec.Find(name);
    if (!c->traffic) continue;
    BlueGreenPart part;
    std::string release;
    if (plan.entries.contains(name)) {
      release = plan.entries[name].value("release", std::string());
    } else {
      BACKSTOP_ASSIGN_OR_RETURN(SlotRecord record, ReadSlotRecord(state, name));
      release = record.live_release;
    }
    if (release.empty()) {
      return Status::FailedPrecondition("blue/green service " + name +
                                        " has no live release recorded; deploy it first");
    }
    if (behind_restored.count(name)) {
      part.cycled = true;
      BACKSTOP_ASSIGN_OR_RETURN(part.steps, BlueGreenRestartSteps(*c, release, state));
      plan.notes.push_back(name +
                           " is blue/green, but what it depends on is restored: it is stopped "
                           "and started around that restore (in its live slot), not switched");
    } else {
      BACKSTOP_ASSIGN_OR_RETURN(part.steps, BlueGreenSteps(*c, release, RunKind::kRollback, state,
                                                           registry, ctx, &plan.notes));
    }
    parts[name] = std::move(part);
  }
  return parts;
}

// The services that must be stopped around restoring `restored`: the restored
// services themselves and every service depending on a restored config or
// data component, in dependency order.
std::vector<std::string> ServicesToCycle(const Spec& spec,
                                         const std::vector<std::string>& restored) {
  std::set<std::string> cycle;
  for (const auto& name : restored) {
    if (IsService(*spec.Find(name))) {
      cycle.insert(name);
      continue;  // a release switch does not restart its dependents
    }
    for (const auto& d : Dependents(spec, name)) {
      if (IsService(*spec.Find(d))) cycle.insert(d);
    }
  }
  std::vector<std::string> out;
  for (const auto& n : DependencyOrder(spec)) {
    if (cycle.count(n)) out.push_back(n);
  }
  return out;
}

}  // namespace

std::vector<std::string> DependencyOrder(const Spec& spec) {
  // Always places the first component (in file order) whose dependencies are
  // all placed: deterministic and stable for a valid (acyclic) spec. Kahn's
  // algorithm with the ready components in a min-heap of file positions, so
  // that a spec of many components is ordered in O(n log n), not O(n^2).
  const std::vector<std::string>& names = spec.component_order;
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < names.size(); ++i) index.emplace(names[i], i);
  std::vector<size_t> waiting_on(names.size(), 0);
  std::vector<std::vector<size_t>> dependents(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    const ComponentSpec* c = spec.Find(names[i]);
    if (c == nullptr) continue;
    std::set<size_t> deps;
    size_t unknown = 0;  // never placed (cannot happen for a validated spec)
    for (const auto& d : c->depends_on) {
      auto it = index.find(d);
      if (it == index.end()) {
        ++unknown;
      } else {
        deps.insert(it->second);
      }
    }
    waiting_on[i] = deps.size() + unknown;
    for (size_t d : deps) dependents[d].push_back(i);
  }
  std::priority_queue<size_t, std::vector<size_t>, std::greater<size_t>> ready;
  for (size_t i = 0; i < names.size(); ++i) {
    if (waiting_on[i] == 0) ready.push(i);
  }
  std::vector<std::string> order;
  order.reserve(names.size());
  while (!ready.empty()) {  // what is left over is a cycle: cannot happen for a validated spec
    size_t i = ready.top();
    ready.pop();
    order.push_back(names[i]);
    for (size_t next : dependents[i]) {
      if (--waiting_on[next] == 0) ready.push(next);
    }
  }
  return order;
}

std::vector<std::string> Dependents(const Spec& spec, const std::string& name) {
  std::set<std::string> found{name};
  bool grew = true;
  while (grew) {
    grew = false;
    for (const auto& [n, c] : spec.components) {
      if (found.count(n)) continue;
      for (const auto& d : c.depends_on) {
        if (found.count(d)) {
          found.insert(n);
          grew = true;
          break;
        }
      }
    }
  }
  std::vector<std::string> out;
  for (const auto& n : DependencyOrder(spec)) {
    if (n != name && found.count(n)) out.push_back(n);
  }
  return out;
}

namespace {

// The restore point a rollback targets when none is named: the newest run's
// own, when that run is a deploy that took one (a rollback right after a
// deploy undoes that deploy, even if a scheduled restore point of the bad
// release was taken since); otherwise the latest.
Result<std::string> DefaultTarget(StateDb& state, Store& store, std::vector<std::string>* notes) {
  BACKSTOP_ASSIGN_OR_RETURN(auto runs, state.ListRuns(1));
  if (runs.empty() || runs[0].kind != RunKind::kDeploy || runs[0].restore_point.empty()) {
    return std::string("latest");
  }
  if (!ReadRestorePoint(store, runs[0].restore_point).ok()) return std::string("latest");
  notes->push_back("the target is the pre-deploy restore point of the newest run, " + runs[0].id +
                   " (" + runs[0].command + ")");
  return runs[0].restore_point;
}

// The moment of `rollback --to-time`, checked: a time with its offset, after
// the restore point was taken and not in the future, for a component whose
// entry can roll back to a moment (it holds "flashback": a postgres restore
// point that kept a logical slot).
Result<int64_t> ToTime(const std::string& text, const RestorePoint& rp, const nlohmann::json& entry,
                       const ComponentSpec& c, const DriverContext& ctx) {
  std::optional<int64_t> us = ParseTimestamp(text);
  if (!us) {
    return Status::InvalidArgument("--to-time '" + text +
                                   "' is not a time with its offset: write it as "
                                   "2026-11-30T14:03:12Z or 2026-11-30T16:03:12+02:00");
  }
  if (!entry.is_object() || !entry.contains("flashback")) {
    return Status::FailedPrecondition(
        "--to-time needs a restore point taken with flashback: " + rp.id +
        " holds no change "
        "stream for " +
        c.name +
        " (set flashback: true on it, docs/flashback.md); roll back to "
        "the restore point itself without --to-time");
  }
  if (*us < rp.created_wall_us) {
    return Status::InvalidArgument("--to-time " + FormatRfc3339(*us, true) + " is before " + rp.id +
                                   " was taken (" + FormatRfc3339(rp.created_wall_us, true) +
                                   "): choose an older restore point with --to");
  }
  if (*us > ctx.env->clock()->WallMicros()) {
    return Status::InvalidArgument("--to-time " + FormatRfc3339(*us, true) + " is in the future");
  }
  return *us;
}

Result<Plan> PlanRollbackSteps(const Spec& spec, const RollbackRequest& request, Store& store,
                               StateDb& state, const DriverRegistry& registry, DriverContext& ctx) {
  Plan plan;
  plan.kind = RunKind::kRollback;
  const std::vector<std::string> order = DependencyOrder(spec);

  if (!request.to_time.empty() && (request.all || request.component.empty())) {
    return Status::InvalidArgument(
        "--to-time rolls back one database: name it with --component (and its restore point "
        "with --to)");
  }
  if (!request.to_time.empty()) {
    const ComponentSpec* named = spec.Find(request.component);
    if (named != nullptr && IsService(*named)) {
      return Status::InvalidArgument("--to-time rolls back a database; " + named->name +
                                     " is a service: roll it back to a release or restore point");
    }
  }
  if (request.all) {
    plan.scope = PlanScope::kAll;
    std::string selector = request.to;
    if (selector.empty()) {
      BACKSTOP_ASSIGN_OR_RETURN(selector, DefaultTarget(state, store, &plan.notes));
    }
    BACKSTOP_ASSIGN_OR_RETURN(RestorePoint rp, ResolveRestorePoint(store, selector));
    plan.restore_point_id = rp.id;
    plan.target = DescribeRestorePoint(rp);
    for (const auto& name : order) {
      if (!rp.components.contains(name)) {
        plan.notes.push_back(name + " is not in " + rp.id + " (added since?): left as it is");
        continue;
      }
      const nlohmann::json& entry = rp.components[name];
      if (IsService(*spec.Find(name)) && entry.value("release", nlohmann::json()).is_null()) {
        plan.notes.push_back(name + " had no release deployed in " + rp.id + ": left as it is");
        continue;
      }
      plan.affected.push_back(name);
      plan.entries[name] = entry;
    }
    if (plan.affected.empty()) {
      return Status::FailedPrecondition(rp.id + " holds none of the spec's components");
    }
    const std::vector<std::string> restored = plan.affected;
    const std::vector<std::string> services = ServicesToCycle(spec, restored);
    std::vector<std::string> restarted;
    for (const auto& s : services) {
      if (!plan.entries.contains(s)) restarted.push_back(s);
    }
    if (!restarted.empty()) {
      std::string list;
      for (const auto& s : restarted) list += (list.empty() ? "" : ", ") + s;
      plan.notes.push_back(
          "dependent services restarted around the restore (releases unchanged): " + list);
      plan.affected.clear();
      for (const auto& name : order) {
        if (plan.entries.contains(name) ||
            std::find(restarted.begin(), restarted.end(), name) != restarted.end()) {
          plan.affected.push_back(name);
        }
      }
    }
    plan.steps.push_back(Step(StepAction::kVerifyRestorePoint, "",
                              "verify every blob of " + rp.id + " (refuse a damaged one)"));
    plan.steps.push_back(
        Step(StepAction::kSafetySnapshot, "", "take a safety restore point of the current state"));
    AddPrepareSteps(spec, plan, restored);
    for (const auto& name : restored) {
      if (HoldsData(*spec.Find(name))) {
        plan.steps.push_back(
            Step(StepAction::kAssessLoss, name, "count what rolling back " + name + " discards"));
      }
    }
    BACKSTOP_ASSIGN_OR_RETURN(auto blue_green,
                              BlueGreenParts(spec, plan, services, restored, state, registry, ctx));
    AddCommonTail(spec, plan, services, restored, blue_green);
    return plan;
  }

  // One component.
  const ComponentSpec* c = spec.Find(request.component);
  if (c == nullptr) {
    std::string known;
    for (const auto& n : spec.component_order) known += (known.empty() ? "" : ", ") + n;
    return Status::InvalidArgument("no component named '" + request.component +
                                   "' in the spec; components: " + known);
  }
  plan.scope = PlanScope::kComponent;
  plan.component = c->name;

  if (IsService(*c)) {
    BACKSTOP_ASSIGN_OR_RETURN(nlohmann::json described, DescribeComponent(*c, registry, ctx));
    std::string current =
        described.value("release", nlohmann::json()).is_string() ? described["release"] : "";
    std::string to = request.to.empty() ? "previous" : request.to;
    std::string release;
    nlohmann::json entry;
    if (to == "previous") {
      BACKSTOP_ASSIGN_OR_RETURN(release, PreviousRelease(*c, current, state));
      entry = {{"release", release}};
      plan.target = "release " + release + " (the one before " +
                    (current.empty() ? std::string("the current") : current) + ")";
    } else if (ListsRelease(described, to)) {
      release = to;
      entry = {{"release", release}};
      plan.target = "release " + release;
    } else {
      auto rp = ResolveRestorePoint(store, to);
      if (!rp.ok()) {
        std::string releases;
        if (described.contains("releases")) {
          for (const auto& r : described["releases"]) releases += " " + r.get<std::string>();
        }
        return Status::InvalidArgument("'" + to + "' is neither a release of " + c->name +
                                       " (releases:" + releases + ") nor a restore point (" +
                                       rp.status().message() + ")");
      }
      if (!rp->components.contains(c->name)) {
        return Status::NotFound(rp->id + " does not contain " + c->name);
      }
      entry = rp->components[c->name];
      if (entry.value("release", nlohmann::json()).is_null()) {
        return Status::FailedPrecondition(c->name + " had no release deployed in " + rp->id);
      }
      plan.restore_point_id = rp->id;
      plan.target = DescribeRestorePoint(*rp);
    }
    plan.affected = {c->name};
    plan.entries[c->name] = entry;
    if (!plan.restore_point_id.empty()) {
      plan.steps.push_back(Step(StepAction::kVerifyRestorePoint, "",
                                "verify the blobs of " + c->name + " in " + plan.restore_point_id));
    }
    plan.steps.push_back(
        Step(StepAction::kSafetySnapshot, "", "take a safety restore point of " + c->name));
    AddPrepareSteps(spec, plan, {c->name});
    if (c->traffic) {
      BACKSTOP_ASSIGN_OR_RETURN(
          auto steps, BlueGreenSteps(*c, entry["release"].get<std::string>(), RunKind::kRollback,
                                     state, registry, ctx, &plan.notes));
      plan.steps.insert(plan.steps.end(), steps.begin(), steps.end());
      plan.steps.push_back(Step(StepAction::kVerify, c->name, "verify " + c->name));
      return plan;
    }
    AddCommonTail(spec, plan, {c->name}, {c->name});
    return plan;
  }

  // A data or config component: restored from a restore point; the services
  // that depend on it are stopped around the restore and started again.
  std::string selector = request.to;
  if (selector.empty()) {
    std::vector<std::string> notes;
    BACKSTOP_ASSIGN_OR_RETURN(selector, DefaultTarget(state, store, &notes));
    auto rp = ResolveRestorePoint(store, selector);
    if (rp.ok() && rp->components.contains(c->name)) {
      plan.notes.insert(plan.notes.end(), notes.begin(), notes.end());
    } else {
      selector = "latest";
    }
  }
  BACKSTOP_ASSIGN_OR_RETURN(RestorePoint rp, ResolveRestorePoint(store, selector));
  if (!rp.components.contains(c->name)) {
    return Status::NotFound(rp.id + " does not contain " + c->name);
  }
  plan.restore_point_id = rp.id;
  plan.target = DescribeRestorePoint(rp);
  plan.entries[c->name] = rp.components[c->name];
  if (!request.to_time.empty()) {
    BACKSTOP_ASSIGN_OR_RETURN(int64_t to_time_us,
                              ToTime(request.to_time, rp, plan.entries[c->name], *c, ctx));
    plan.entries[c->name]["to_time_us"] = to_time_us;
    plan.target += ", " + c->name + " as of " + FormatRfc3339(to_time_us, true);
  }
  std::vector<std::string> services;
  for (const auto& d : Dependents(spec, c->name)) {
    if (IsService(*spec.Find(d))) services.push_back(d);
  }
  plan.affected.push_back(c->name);
  for (const auto& s : services) plan.affected.push_back(s);
  if (!services.empty()) {
    std::string list;
    for (const auto& s : services) list += (list.empty() ? "" : ", ") + s;
    plan.notes.push_back("dependent services restarted around the restore (releases unchanged): " +
                         list);
  }
  plan.steps.push_back(
      Step(StepAction::kVerifyRestorePoint, "", "verify the blobs of " + c->name + " in " + rp.id));
  nlohmann::json safety_args;
  safety_args["components"] = {c->name};
  plan.steps.push_back(Step(StepAction::kSafetySnapshot, "",
                            "take a safety restore point of " + c->name, safety_args));
  AddPrepareSteps(spec, plan, {c->name});
  if (HoldsData(*c)) {
    plan.steps.push_back(
        Step(StepAction::kAssessLoss, c->name, "count what rolling back " + c->name + " discards"));
  }
  BACKSTOP_ASSIGN_OR_RETURN(auto blue_green,
                            BlueGreenParts(spec, plan, services, {c->name}, state, registry, ctx));
  AddCommonTail(spec, plan, services, {c->name}, blue_green);
  return plan;
}

}  // namespace

Result<Plan> PlanRollback(const Spec& spec, const RollbackRequest& request, Store& store,
                          StateDb& state, const DriverRegistry& registry, DriverContext& ctx) {
  BACKSTOP_ASSIGN_OR_RETURN(Plan plan,
                            PlanRollbackSteps(spec, request, store, state, registry, ctx));
  for (const auto& bad : UnhealthyTargets(plan)) {
    plan.notes.push_back("the target's recorded baseline is unhealthy for " + bad +
                         ": the rollback is refused without --force");
  }
  return plan;
}

std::vector<std::string> UnhealthyTargets(const Plan& plan) {
  std::vector<std::string> out;
  for (const auto& name : plan.affected) {
    if (!plan.entries.contains(name)) continue;
    const nlohmann::json& e = plan.entries[name];
    if (!e.contains("baseline") || !e["baseline"].is_object()) continue;
    const nlohmann::json& b = e["baseline"];
    if (b.value("health", std::string()) != "fail") continue;
    std::string detail = b.value("detail", std::string());
    out.push_back(name + (detail.empty() ? "" : " (" + detail + ")"));
  }
  return out;
}

Status RefuseUnhealthyTargets(const Plan& plan) {
  std::vector<std::string> bad = UnhealthyTargets(plan);
  if (bad.empty()) return Status::OK();
  std::string list;
  for (const auto& b : bad) list += (list.empty() ? "" : ", ") + b;
  return Status::Aborted("refusing: " + plan.target + " was recorded unhealthy for " + list +
                         " when it was taken; rolling back to it would likely leave an outage. "
                         "Nothing was stopped or changed. Choose another target, or rerun with "
                         "--force to roll back to it anyway");
}

Result<Plan> PlanDeploy(const Spec& spec, const std::string& component, const std::string& release,
                        const DriverRegistry& registry, DriverContext& ctx, StateDb* state) {
  const ComponentSpec* c = spec.Find(component);
  if (c == nullptr) return Status::InvalidArgument("no component named '" + component + "'");
  if (!IsService(*c)) {
    return Status::InvalidArgument(component + " is a " + std::string(Name(c->kind)) +
                                   " component; only services are deployed by release");
  }
  BACKSTOP_ASSIGN_OR_RETURN(nlohmann::json described, DescribeComponent(*c, registry, ctx));
  if (!ListsRelease(described, release)) {
    std::string releases;
    if (described.contains("releases")) {
      for (const auto& r : described["releases"]) releases += " " + r.get<std::string>();
    }
    return Status::NotFound(component + " has no release '" + release +
                            "'; releases:" + (releases.empty() ? " none" : releases));
  }
  Plan plan;
  plan.kind = RunKind::kDeploy;
  plan.scope = PlanScope::kComponent;
  plan.component = component;
  plan.target = "release " + release;
  plan.affected = {component};
  plan.entries[component] = {{"release", release}};
  AddPrepareSteps(spec, plan, {component});
  if (c->traffic) {
    if (state == nullptr) {
      return Status::FailedPrecondition(component +
                                        " is blue/green: its deploy needs the state database");
    }
    BACKSTOP_ASSIGN_OR_RETURN(auto steps, BlueGreenSteps(*c, release, RunKind::kDeploy, *state,
                                                         registry, ctx, &plan.notes));
    plan.steps.insert(plan.steps.end(), steps.begin(), steps.end());
    plan.steps.push_back(Step(StepAction::kVerify, component, "verify " + component));
    return plan;
  }
  AddCommonTail(spec, plan, {component}, {component});
  return plan;
}

nlohmann::json Plan::ToJson() const {
  nlohmann::json j;
  j["kind"] = kind;
  j["scope"] = scope;
  j["component"] = component;
  j["target"] = target;
  j["restore_point"] = restore_point_id;
  j["affected"] = affected;
  j["notes"] = notes;
  j["entries"] = entries;
  j["steps"] = nlohmann::json::array();
  for (const auto& s : steps) {
    j["steps"].push_back({{"action", s.action},
                          {"component", s.component},
                          {"description", s.description},
                          {"args", s.args}});
  }
  return j;
}

Result<Plan> Plan::FromJson(const nlohmann::json& j) {
  try {
    Plan p;
    BACKSTOP_ASSIGN_OR_RETURN(
        p.kind, ParseStored(kRunKindNames, j.at("kind").get<std::string>(), "stored plan: kind"));
    BACKSTOP_ASSIGN_OR_RETURN(
        p.scope,
        ParseStored(kPlanScopeNames, j.at("scope").get<std::string>(), "stored plan: scope"));
    p.component = j.value("component", "");
    p.target = j.value("target", "");
    p.restore_point_id = j.value("restore_point", "");
    p.affected = j.at("affected").get<std::vector<std::string>>();
    p.notes = j.value("notes", std::vector<std::string>{});
    p.entries = j.value("entries", nlohmann::json::object());
    for (const auto& s : j.at("steps")) {
      BACKSTOP_ASSIGN_OR_RETURN(
          StepAction action,
          ParseStored(kStepActionNames, s.at("action").get<std::string>(),
                      "stored plan: step " + std::to_string(p.steps.size() + 1) + " action"));
      p.steps.push_back(Step(action, s.value("component", ""), s.value("description", ""),
                             s.value("args", nlohmann::json::object())));
    }
    return p;
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("stored plan cannot be read: ") + e.what());
  }
}

std::string Plan::Describe() const {
  std::string out =
      kind == RunKind::kDeploy
          ? "Deploy " + component + " to " + target + "\n"
          : "Roll back " +
                (scope == PlanScope::kAll ? std::string("the whole environment") : component) +
                " to " + target + "\n";
  std::string affected_list;
  for (const auto& a : affected) affected_list += (affected_list.empty() ? "" : ", ") + a;
  out += "Affected: " + affected_list + "\n";
  for (const auto& n : notes) out += "Note: " + n + "\n";
  for (size_t i = 0; i < steps.size(); ++i) {
    out += "  " + std::to_string(i + 1) + ". " + steps[i].description + "\n";
  }
  return out;
}

}  // namespace backstop

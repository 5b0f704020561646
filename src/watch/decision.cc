// The decision layer (decision.h): from a firing trigger to a rollback decision.
#include "watch/decision.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "base/strings.h"
#include "base/units.h"
#include "run/plan.h"

namespace backstop {

namespace {

bool IsPercentSignal(Signal s) {
  return s == Signal::kErrorRate || s == Signal::kCpu || s == Signal::kMemory;
}
bool IsCountSignal(Signal s) {
  return s == Signal::kHealth || s == Signal::kUnreachable || s == Signal::kIntegrity;
}

std::string FormatSignalValue(Signal signal, double v) {
  char buf[64];
  if (IsPercentSignal(signal)) {
    std::snprintf(buf, sizeof buf, "%.4g%%", v);
    return buf;
  }
  return FormatDurationMs(static_cast<int64_t>(std::llround(v)));
}

std::string FormatThreshold(Signal signal, double v) {
  if (IsPercentSignal(signal)) return FormatSignalValue(signal, v);
  return FormatDurationSpec(static_cast<int64_t>(std::llround(v)));
}

// The value the baseline recorded for a signal, under the names drivers and
// probes use (HealthResult::signals: "cpu_percent", "connect_time_ms", ...).
std::optional<double> BaselineValue(const nlohmann::json& baseline, Signal signal_enum) {
  const std::string signal(Name(signal_enum));
  if (signal_enum == Signal::kLatency && baseline.contains("latency_ms") &&
      baseline["latency_ms"].is_number()) {
    return baseline["latency_ms"].get<double>();
  }
  if (!baseline.contains("signals") || !baseline["signals"].is_object()) return std::nullopt;
  const nlohmann::json& s = baseline["signals"];
  for (const std::string& key :
       {signal, signal + "_ms", signal + "_percent",
        std::string(signal_enum == Signal::kDisconnected ? "disconnected_ms" : "")}) {
    if (!key.empty() && s.contains(key) && s[key].is_number()) return s[key].get<double>();
  }
  return std::nullopt;
}

const TriggerSpec* FindTrigger(const Spec& spec, const std::string& name) {
  for (const auto& t : spec.triggers) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const DecisionRule* RowFor(const Spec& spec, const std::string& trigger) {
  for (const auto& r : spec.decision_matrix) {
    if (std::find(r.triggers.begin(), r.triggers.end(), trigger) != r.triggers.end()) return &r;
  }
  return nullptr;
}

std::optional<MatrixScope> ScopeForAction(TriggerAction action) {
  switch (action) {
    case TriggerAction::kComponentRollback:
      return MatrixScope::kComponent;
    case TriggerAction::kImmediateRollback:
      return MatrixScope::kComponentAndDependents;
    case TriggerAction::kEvaluateAndRollback:
      return MatrixScope::kAffected;
    case TriggerAction::kAlert:
      break;
  }
  return std::nullopt;
}

std::string ProcedureForScope(std::optional<MatrixScope> scope) {
  if (!scope) return "";
  switch (*scope) {
    case MatrixScope::kComponent:
      return "roll back the component to the restore point, verify its health";
    case MatrixScope::kComponentAndDependents:
      return "roll back the component and the services that depend on it, verify their health";
    case MatrixScope::kAffected:
      return "roll back the affected components one at a time, watching the triggers after each";
    case MatrixScope::kAll:
      return "roll back every component in dependency order, verify everything";
    case MatrixScope::kFallback:
      break;
  }
  return "";
}

// Sorts `names` (deduplicated) into the spec's dependency order.
std::vector<std::string> InDependencyOrder(const Spec& spec, const std::set<std::string>& names) {
  std::vector<std::string> out;
  for (const auto& n : DependencyOrder(spec)) {
    if (names.count(n)) out.push_back(n);
  }
  return out;
}

RollbackDecision Hold(RollbackDecision d, const std::string& reason) {
  d.act = false;
  d.reason = reason;
  return d;
}

// The `fallback` scope with a standby in the spec: act, on the traffic
// component (what the gates count), after the standby's health check.
RollbackDecision FallBackTo(RollbackDecision d, const Spec& spec, const std::string& why) {
  const FallbackSpec& fb = *spec.fallback;
  d.act = true;
  d.components = {fb.traffic};
  d.reason = why + "; falling back: upstream " + fb.upstream + " of " + fb.traffic +
             " to the standby " + Join(fb.servers) + " once it passes its health check";
  return d;
}

}  // namespace

nlohmann::json RollbackDecision::ToJson() const {
  return {{"act", act},
          {"scope", scope ? Name(*scope) : ""},
          {"components", components},
          {"scenario", scenario},
          {"procedure", procedure},
          {"recovery_min_ms", recovery_min_ms},
          {"recovery_max_ms", recovery_max_ms},
          {"reason", reason},
          {"trigger", trigger},
          {"component", component},
          {"restore_point", restore_point_id}};
}

void AddPresentReleases(const Spec& spec,
                        const std::function<Result<nlohmann::json>(const ComponentSpec&)>& describe,
                        DecisionContext* ctx) {
  for (const auto& name : spec.component_order) {
    const ComponentSpec* c = spec.Find(name);
    if (c == nullptr || c->kind != ComponentKind::kService) continue;
    auto described = describe(*c);
    if (!described.ok()) continue;
    if (described->contains("release") && (*described)["release"].is_string()) {
      ctx->current_releases[name] = (*described)["release"].get<std::string>();
    }
    if (described->contains("config_hash") && (*described)["config_hash"].is_string()) {
      ctx->current_config_hashes[name] = (*described)["config_hash"].get<std::string>();
    }
  }
}

bool CompleteFailure(const std::map<std::string, bool>& reachable) {
  if (reachable.size() < 2) return false;
  return std::none_of(reachable.begin(), reachable.end(), [](const auto& kv) { return kv.second; });
}

RollbackDecision DecideCompleteFailure(const Spec& spec, const RestorePoint& target,
                                       const std::map<std::string, bool>& reachable) {
  RollbackDecision d;
  d.scope = MatrixScope::kFallback;
  d.restore_point_id = target.id;
  d.scenario = "Complete failure";
  for (const auto& r : spec.decision_matrix) {
    if (r.scope == MatrixScope::kFallback) {
      d.scenario = r.scenario;
      d.procedure = r.procedure;
      d.recovery_min_ms = r.recovery_min_ms;
      d.recovery_max_ms = r.recovery_max_ms;
      break;
    }
  }
  std::set<std::string> names;
  for (const auto& [n, ok] : reachable) names.insert(n);
  d.components = InDependencyOrder(spec, names);
  if (spec.fallback) {
    return FallBackTo(d, spec,
                      "every component is unreachable at once (" + Join(d.components) +
                          "): decision matrix row '" + d.scenario + "' (scope fallback)");
  }
  return Hold(d, "every component is unreachable at once (" + Join(d.components) +
                     "): decision matrix row '" + d.scenario +
                     "' (scope fallback); the spec names no standby environment (no fallback "
                     "block) to fall back to, "
                     "so it holds and alerts. If a change caused this, roll back by hand: "
                     "backstop rollback --all");
}

bool AlreadyOnRestorePoint(const nlohmann::json& entry, const std::string& current_release,
                           const std::string& current_config_hash, std::string* why) {
  auto say = [why](const std::string& s) {
    if (why != nullptr) *why = s;
  };
  if (!entry.is_object() || !entry.contains("release") || !entry["release"].is_string()) {
    say("the restore point records no release for it: its state is restored, not a release");
    return false;
  }
  const std::string release = entry["release"].get<std::string>();
  if (release != current_release) {
    say("it runs release " + (current_release.empty() ? "(none)" : current_release) +
        "; the restore point has " + release);
    return false;
  }
  if (entry.contains("config_hash") && entry["config_hash"].is_string() &&
      entry["config_hash"].get<std::string>() != current_config_hash) {
    say("it runs release " + release +
        " already, but its configuration differs from the "
        "restore point's");
    return false;
  }
  say("it already runs release " + release +
      ", which is what the restore point holds; a rollback would change nothing");
  return true;
}

bool BaselineHealthy(const nlohmann::json& entry, const TriggerSpec& trigger, std::string* why) {
  std::string dummy;
  std::string& out = why != nullptr ? *why : dummy;
  if (!entry.is_object() || !entry.contains("baseline") || !entry["baseline"].is_object()) {
    out = "the restore point recorded no baseline for it, so there is no evidence it was healthy";
    return false;
  }
  const nlohmann::json& b = entry["baseline"];
  std::string health =
      b.contains("health") && b["health"].is_string() ? b["health"].get<std::string>() : "unknown";
  std::string detail =
      b.contains("detail") && b["detail"].is_string() ? b["detail"].get<std::string>() : "";
  if (health != "pass") {
    out = "its baseline health was '" + health + "'" + (detail.empty() ? "" : " (" + detail + ")") +
          " when the restore point was taken: rolling back to it may not help";
    return false;
  }
  if (IsCountSignal(trigger.signal)) {
    out = "its baseline health was pass";
    return true;
  }
  std::optional<double> v = BaselineValue(b, trigger.signal);
  if (!v) {
    out = "its baseline health was pass; no baseline " + std::string(Name(trigger.signal)) +
          " was recorded, so it is judged on health alone";
    return true;
  }
  std::string value = FormatSignalValue(trigger.signal, *v);
  if (trigger.above && *v > *trigger.above) {
    out = "its baseline " + std::string(Name(trigger.signal)) + " was already " + value +
          ", above the threshold " + FormatThreshold(trigger.signal, *trigger.above) +
          ": rolling back to it would not fix this";
    return false;
  }
  if (trigger.below && *v < *trigger.below) {
    out = "its baseline " + std::string(Name(trigger.signal)) + " was already " + value +
          ", below the threshold " + FormatThreshold(trigger.signal, *trigger.below) +
          ": rolling back to it would not fix this";
    return false;
  }
  out = "its baseline health was pass and its baseline " + std::string(Name(trigger.signal)) + " " +
        value + " was within the threshold";
  return true;
}

void SelectMatrixRow(const Spec& spec, const std::string& trigger, TriggerAction action,
                     RollbackDecision* d) {
  const DecisionRule* row = RowFor(spec, trigger);
  if (row != nullptr) {
    d->scope = row->scope;
    d->scenario = row->scenario;
    d->procedure = row->procedure;
    d->recovery_min_ms = row->recovery_min_ms;
    d->recovery_max_ms = row->recovery_max_ms;
    return;
  }
  d->scope = ScopeForAction(action);
  d->scenario = "trigger " + trigger + " (not in the decision matrix; scope from its action " +
                std::string(Name(action)) + ")";
  d->procedure = ProcedureForScope(d->scope);
}

RollbackDecision Decide(const TriggerEvent& event, const Spec& spec, const RestorePoint& target,
                        const DecisionContext& context) {
  RollbackDecision d;
  d.trigger = event.trigger;
  d.component = event.component;
  d.restore_point_id = target.id;
  const std::string who = "trigger " + event.trigger + " on " + event.component;

  if (event.to != TriggerState::kFiring) {
    return Hold(d, who + " is " + TriggerStateName(event.to) + ", not firing: nothing to decide");
  }
  if (CompleteFailure(context.reachable)) {
    RollbackDecision f = DecideCompleteFailure(spec, target, context.reachable);
    f.trigger = event.trigger;
    f.component = event.component;
    return f;
  }

  // The trigger as the spec defines it now (thresholds for the baseline
  // check); the event's own action and signal if it is no longer there.
  TriggerSpec trigger;
  if (const TriggerSpec* t = FindTrigger(spec, event.trigger)) {
    trigger = *t;
  } else {
    trigger.name = event.trigger;
    trigger.signal = event.signal;
    trigger.action = event.action;
  }
  const TriggerAction action = trigger.action;
  const std::string action_name(Name(action));

  SelectMatrixRow(spec, event.trigger, action, &d);
  const DecisionRule* row = RowFor(spec, event.trigger);

  if (action == TriggerAction::kAlert) {
    return Hold(d, who + ": " + event.reason + "; its action is alert: alerting, no rollback");
  }
  if (d.scope == MatrixScope::kFallback && spec.fallback) {
    return FallBackTo(d, spec,
                      who + ": " + event.reason + "; decision matrix row '" + d.scenario +
                          "' has scope fallback");
  }
  if (d.scope == MatrixScope::kFallback) {
    return Hold(d, who + ": " + event.reason + "; decision matrix row '" + d.scenario +
                       "' has scope fallback, but the spec names no standby environment (no "
                       "fallback block): holding and alerting");
  }
  const ComponentSpec* comp = spec.Find(event.component);
  if (comp == nullptr) {
    return Hold(d, who + ": no component named '" + event.component +
                       "' in the spec (was it removed?): holding and alerting");
  }

  // A database or stream that cannot be reached is not fixed by restoring its
  // data (the restore needs the server). What a rollback can fix is a change
  // to the services that use it (a bad release exhausting connections, say):
  // roll those back, and only if they changed; otherwise hold and alert. A
  // decision-matrix row with scope "all" is the operator saying otherwise.
  const bool holds_data = HoldsData(comp->kind);
  const Signal signal = trigger.signal;
  const bool connectivity = signal == Signal::kHealth || signal == Signal::kUnreachable ||
                            signal == Signal::kConnectTime || signal == Signal::kDisconnected;
  if (holds_data && connectivity && d.scope != MatrixScope::kAll) {
    std::set<std::string> services;
    for (const auto& dep : Dependents(spec, event.component)) {
      const ComponentSpec* c = spec.Find(dep);
      if (c == nullptr || c->kind != ComponentKind::kService || !target.components.contains(dep)) {
        continue;
      }
      std::string why;
      auto rel = context.current_releases.find(dep);
      auto hash = context.current_config_hashes.find(dep);
      if (rel != context.current_releases.end() &&
          AlreadyOnRestorePoint(target.components[dep], rel->second,
                                hash == context.current_config_hashes.end() ? "" : hash->second,
                                &why)) {
        continue;
      }
      services.insert(dep);
    }
    if (services.empty()) {
      return Hold(d, who + ": " + event.reason + "; " + event.component + " is a " +
                         std::string(Name(comp->kind)) +
                         " and restoring its data does not fix a server that cannot be "
                         "reached, and no service that depends on it changed since restore "
                         "point " +
                         target.id + ": holding and alerting; check the server");
    }
    d.components = InDependencyOrder(spec, services);
    d.act = true;
    d.reason = who + ": " + event.reason + "; " + action_name + ": " + event.component +
               " is unreachable, which a data restore cannot fix; rolling back the services "
               "that depend on it and changed since restore point " +
               target.id + ": " + Join(d.components);
    return d;
  }

  // The components the scope names.
  std::set<std::string> names{event.component};
  if (d.scope == MatrixScope::kComponentAndDependents) {
    for (const auto& dep : Dependents(spec, event.component)) {
      const ComponentSpec* c = spec.Find(dep);
      if (c != nullptr && c->kind == ComponentKind::kService) names.insert(dep);
    }
  } else if (d.scope == MatrixScope::kAffected) {
    for (const auto& st : context.trigger_states) {
      if (st.state != TriggerState::kFiring || spec.Find(st.component) == nullptr) continue;
      bool related = row != nullptr ? std::find(row->triggers.begin(), row->triggers.end(),
                                                st.trigger) != row->triggers.end()
                                    : st.trigger == event.trigger;
      if (related) names.insert(st.component);
    }
  } else if (d.scope == MatrixScope::kAll) {
    for (const auto& n : spec.component_order) names.insert(n);
  }
  std::vector<std::string> ordered = InDependencyOrder(spec, names);

  std::vector<std::string> notes;
  std::vector<std::string> chosen;
  for (const auto& name : ordered) {
    const bool primary = name == event.component;
    if (!target.components.contains(name)) {
      if (primary) {
        return Hold(d, who + ": " + event.reason + "; restore point " + target.id +
                           " has no entry for " + name +
                           ": nothing to roll back to (take a restore point that includes it)");
      }
      notes.push_back(name + " left out: not in restore point " + target.id);
      continue;
    }
    const nlohmann::json& entry = target.components[name];

    // evaluate_and_rollback: only back to a state that was healthy on the signal.
    if (action == TriggerAction::kEvaluateAndRollback) {
      std::vector<TriggerSpec> checks;
      if (primary) checks.push_back(trigger);
      for (const auto& st : context.trigger_states) {
        if (st.component != name || st.state != TriggerState::kFiring ||
            (primary && st.trigger == trigger.name))
          continue;
        if (const TriggerSpec* t = FindTrigger(spec, st.trigger)) checks.push_back(*t);
      }
      if (checks.empty()) checks.push_back(trigger);
      bool healthy = true;
      std::string why;
      for (const auto& t : checks) {
        if (!BaselineHealthy(entry, t, &why)) {
          healthy = false;
          break;
        }
      }
      if (!healthy) {
        if (primary) {
          return Hold(d, who + ": " + event.reason + "; evaluate_and_rollback holds: " + name +
                             " in restore point " + target.id + ": " + why +
                             ". Alerting instead; investigate or roll back by hand");
        }
        notes.push_back(name + " left out: " + why);
        continue;
      }
      if (primary) notes.push_back("baseline check: " + why);
    }

    // The safety rule: never roll back what is already on the restore point.
    auto rel = context.current_releases.find(name);
    if (rel != context.current_releases.end()) {
      auto hash = context.current_config_hashes.find(name);
      std::string why;
      if (AlreadyOnRestorePoint(entry, rel->second,
                                hash == context.current_config_hashes.end() ? "" : hash->second,
                                &why)) {
        if (primary) {
          return Hold(d, who + ": " + event.reason + "; not rolling back " + name + ": " + why +
                             ". Alerting instead: the fault is not in what a rollback changes");
        }
        notes.push_back(name + " left out: " + why);
        continue;
      }
    }
    chosen.push_back(name);
  }

  d.components = chosen;
  d.act = true;
  d.reason = who + ": " + event.reason + "; " + action_name + ", decision matrix row '" +
             d.scenario + "' (scope " + std::string(d.scope ? Name(*d.scope) : "") +
             "): rolling back " + Join(chosen) + " to restore point " + target.id;
  for (const auto& n : notes) d.reason += "; " + n;
  return d;
}

}  // namespace backstop

// The decision layer: what to do when a trigger fires.
//
// Given the firing TriggerEvent (rules.h), the spec and the restore point a
// rollback would go to, Decide picks the decision-matrix row, the scope and
// the components, and whether to act at all:
//   row       the DecisionRule whose `triggers` list the trigger; if none, the
//             scope follows the trigger's action: component_rollback ->
//             component, immediate_rollback -> component_and_dependents,
//             evaluate_and_rollback -> affected, alert -> no action
//   act       component_rollback / immediate_rollback: yes.
//             evaluate_and_rollback: only if the restore point's baseline was
//             healthy on the firing signal (baseline health "pass" and, for
//             latency / error_rate / cpu / memory / connect_time /
//             disconnected, the recorded value was not itself bad by the
//             trigger's threshold); otherwise hold and alert, saying why.
//             alert: never. Scope fallback (every component unreachable at
//             once, see CompleteFailure): hold and alert — Backstop has no
//             standby environment to fall back to.
//   safety    never act on a component already on the restore point's
//             release with nothing else to restore (AlreadyOnRestorePoint).
// Decide does not check locks, cooldowns or rate caps: the daemon does.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "spec/spec.h"
#include "store/restore_point.h"
#include "watch/rules.h"

namespace backstop {

struct RollbackDecision {
  bool act = false;
  std::optional<MatrixScope> scope;     // nullopt: an alert, no scope
  std::vector<std::string> components;  // what to roll back, in dependency order
  std::string scenario;                 // the matrix row, or a description when none matched
  std::string procedure;
  int64_t recovery_min_ms = 0;
  int64_t recovery_max_ms = 0;
  std::string reason;     // why act or hold, for logs, alerts and the run record
  std::string trigger;    // the trigger that fired (empty for CompleteFailure)
  std::string component;  // the component it fired on
  std::string restore_point_id;

  nlohmann::json ToJson() const;
};

// What Decide needs to know about the present, beyond the event.
struct DecisionContext {
  // Current release per service (from the driver's Describe()). Components
  // missing here are not checked by the already-on-release rule.
  std::map<std::string, std::string> current_releases;
  // Current config_hash per component where the caller knows it.
  std::map<std::string, std::string> current_config_hashes;
  // The engine's States(): which components have triggers firing (scope
  // "affected"). The event's own component is always affected.
  std::vector<TriggerStatus> trigger_states;
  // Current reachability per component (true = reachable). When it shows a
  // complete failure (CompleteFailure), the decision is the fallback hold.
  std::map<std::string, bool> reachable;
};

// Fills `ctx`'s current_releases and current_config_hashes for every service
// of the spec from `describe` (the driver's Describe(); a service it fails for
// is left out, so the safety rule does not judge it).
void AddPresentReleases(const Spec& spec,
                        const std::function<Result<nlohmann::json>(const ComponentSpec&)>& describe,
                        DecisionContext* ctx);

// The row part of a decision, which needs no restore point: `d`'s scope,
// scenario, procedure and recovery time from the matrix row that lists
// `trigger`, or, with none, from `action` (as the table above says). Decide
// starts from it; the daemon's status shows it for every trigger, as what
// the matrix would choose if it fired now.
void SelectMatrixRow(const Spec& spec, const std::string& trigger, TriggerAction action,
                     RollbackDecision* d);

// The decision for `event` (REQUIRES event.to == kFiring; otherwise the
// decision is not to act, with that reason).
RollbackDecision Decide(const TriggerEvent& event, const Spec& spec, const RestorePoint& target,
                        const DecisionContext& context = {});

// True when every component is unreachable at once (the seed's "Complete AWS
// failure"): at least two components known and none reachable. One
// unreachable component alone is a single failure, not a complete one.
bool CompleteFailure(const std::map<std::string, bool>& reachable);
// The decision for a complete failure: the matrix row with scope fallback
// (scenario, procedure, recovery time), act = false, reason says why.
RollbackDecision DecideCompleteFailure(const Spec& spec, const RestorePoint& target,
                                       const std::map<std::string, bool>& reachable);

// The safety rule: true when rolling back to `entry` (a restore point's
// manifest entry for one component) would change nothing: the entry names a
// release equal to `current_release` and has nothing else to restore (no
// config_hash, or one equal to `current_config_hash`). Always false for
// entries without a release (databases, streams: their data is restored).
// `why` (optional) gets a sentence for logs.
bool AlreadyOnRestorePoint(const nlohmann::json& entry, const std::string& current_release,
                           const std::string& current_config_hash = "", std::string* why = nullptr);

// Whether `entry`'s baseline was healthy on `trigger`'s signal; `why` gets the
// explanation either way ("baseline health pass, latency 120 ms under 5 s").
bool BaselineHealthy(const nlohmann::json& entry, const TriggerSpec& trigger, std::string* why);

}  // namespace backstop

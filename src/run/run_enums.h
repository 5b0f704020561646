// The run layer's closed vocabularies as enums: what a run is (its kind), what
// a plan covers (its scope), what a step does (its action), and where a run
// and a step stand (their status).
//
// The journal (state_db.h) and stored plans keep the names below; they are
// parsed once where they are read (an unknown name is a Corruption error
// naming it and where it was found) and written by name. Past the reader,
// code compares enums. Each enum has one EnumNames table (base/enum_names.h)
// that Name and its Parse function both read; to_json writes the name, so
// JSON output keeps today's words.
//
// Thread-safety: constants and pure functions.
#pragma once

#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/enum_names.h"

namespace backstop {

// runs.kind and a plan's "kind".
enum class RunKind { kRollback, kDeploy, kDrill };
inline constexpr EnumNames<RunKind, 3> kRunKindNames{{{
    {RunKind::kRollback, "rollback"},
    {RunKind::kDeploy, "deploy"},
    {RunKind::kDrill, "drill"},
}}};
constexpr std::string_view Name(RunKind k) { return kRunKindNames.Name(k); }
constexpr std::optional<RunKind> ParseRunKind(std::string_view s) { return kRunKindNames.Parse(s); }

// A plan's "scope": the whole environment or one component (and what it
// takes with it).
enum class PlanScope { kAll, kComponent };
inline constexpr EnumNames<PlanScope, 2> kPlanScopeNames{{{
    {PlanScope::kAll, "all"},
    {PlanScope::kComponent, "component"},
}}};
constexpr std::string_view Name(PlanScope s) { return kPlanScopeNames.Name(s); }
constexpr std::optional<PlanScope> ParsePlanScope(std::string_view s) {
  return kPlanScopeNames.Parse(s);
}

// steps.action and a plan step's "action", in the order a rollback runs them
// (plan.h describes each).
enum class StepAction {
  kVerifyRestorePoint,
  kSafetySnapshot,
  kPrepare,
  kAssessLoss,
  kStop,
  kRestore,
  kStart,
  kVerify,
  kRecordHistory,  // only in plans journaled before releases were recorded at
                   // their switch
  // Blue/green services (plan.h): a release started in a slot and gated on
  // its health, traffic switched to a slot, a slot stopped.
  kStartSlot,
  kSwitch,
  kStopSlot,
};
inline constexpr EnumNames<StepAction, 12> kStepActionNames{{{
    {StepAction::kVerifyRestorePoint, "verify-restore-point"},
    {StepAction::kSafetySnapshot, "safety-snapshot"},
    {StepAction::kPrepare, "prepare"},
    {StepAction::kAssessLoss, "assess-loss"},
    {StepAction::kStop, "stop"},
    {StepAction::kRestore, "restore"},
    {StepAction::kStart, "start"},
    {StepAction::kVerify, "verify"},
    {StepAction::kRecordHistory, "record-history"},
    {StepAction::kStartSlot, "start-slot"},
    {StepAction::kSwitch, "switch"},
    {StepAction::kStopSlot, "stop-slot"},
}}};
constexpr std::string_view Name(StepAction a) { return kStepActionNames.Name(a); }
constexpr std::optional<StepAction> ParseStepAction(std::string_view s) {
  return kStepActionNames.Parse(s);
}
// The actions that change a component's live state (the others only read or
// stage): a run that failed after one of them left something changed.
constexpr bool ChangesLiveState(StepAction a) {
  return a == StepAction::kStop || a == StepAction::kRestore || a == StepAction::kStart ||
         a == StepAction::kStartSlot || a == StepAction::kSwitch || a == StepAction::kStopSlot;
}

// runs.status
enum class RunStatus { kRunning, kSucceeded, kFailed, kAbandoned };
inline constexpr EnumNames<RunStatus, 4> kRunStatusNames{{{
    {RunStatus::kRunning, "running"},
    {RunStatus::kSucceeded, "succeeded"},
    {RunStatus::kFailed, "failed"},
    {RunStatus::kAbandoned, "abandoned"},
}}};
constexpr std::string_view Name(RunStatus s) { return kRunStatusNames.Name(s); }
constexpr std::optional<RunStatus> ParseRunStatus(std::string_view s) {
  return kRunStatusNames.Parse(s);
}

// steps.status
enum class StepStatus { kPending, kStarted, kDone, kFailed };
inline constexpr EnumNames<StepStatus, 4> kStepStatusNames{{{
    {StepStatus::kPending, "pending"},
    {StepStatus::kStarted, "started"},
    {StepStatus::kDone, "done"},
    {StepStatus::kFailed, "failed"},
}}};
constexpr std::string_view Name(StepStatus s) { return kStepStatusNames.Name(s); }
constexpr std::optional<StepStatus> ParseStepStatus(std::string_view s) {
  return kStepStatusNames.Parse(s);
}

// JSON carries the names (found by argument-dependent lookup).
inline void to_json(nlohmann::json& j, RunKind v) { j = Name(v); }
inline void to_json(nlohmann::json& j, PlanScope v) { j = Name(v); }
inline void to_json(nlohmann::json& j, StepAction v) { j = Name(v); }
inline void to_json(nlohmann::json& j, RunStatus v) { j = Name(v); }
inline void to_json(nlohmann::json& j, StepStatus v) { j = Name(v); }

}  // namespace backstop

// The spec's closed vocabularies as enums: a component's kind, a trigger's
// signal and action, a decision-matrix row's scope.
//
// The spec parser turns the names written in backstop.yaml into these values
// once; past it, code compares enums. Each enum has one table (base/enum_names.h)
// that both Name and its Parse function read, in the order the parser lists
// the names in its messages. to_json writes the name, so JSON output keeps the
// spelling of the spec file.
//
// Thread-safety: constants and pure functions.
#pragma once

#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/enum_names.h"

namespace backstop {

// components.<name>.kind
enum class ComponentKind { kService, kConfig, kDatabase, kStream, kTraffic };
inline constexpr EnumNames<ComponentKind, 5> kComponentKindNames{{{
    {ComponentKind::kService, "service"},
    {ComponentKind::kConfig, "config"},
    {ComponentKind::kDatabase, "database"},
    {ComponentKind::kStream, "stream"},
    {ComponentKind::kTraffic, "traffic"},
}}};
constexpr std::string_view Name(ComponentKind k) { return kComponentKindNames.Name(k); }
constexpr std::optional<ComponentKind> ParseComponentKind(std::string_view s) {
  return kComponentKindNames.Parse(s);
}
// Databases and streams: the kinds whose rollback can discard data.
constexpr bool HoldsData(ComponentKind k) {
  return k == ComponentKind::kDatabase || k == ComponentKind::kStream;
}

// components.<service>.traffic.strategy: how a service behind a traffic
// component changes release. Blue/green is the one strategy so far.
enum class TrafficStrategy { kBlueGreen };
inline constexpr EnumNames<TrafficStrategy, 1> kTrafficStrategyNames{{{
    {TrafficStrategy::kBlueGreen, "blue_green"},
}}};
constexpr std::string_view Name(TrafficStrategy s) { return kTrafficStrategyNames.Name(s); }

// triggers[].signal
enum class Signal {
  kHealth,
  kLatency,
  kErrorRate,
  kCpu,
  kMemory,
  kConnectTime,
  kDisconnected,
  kUnreachable,
  kIntegrity,
};
inline constexpr EnumNames<Signal, 9> kSignalNames{{{
    {Signal::kHealth, "health"},
    {Signal::kLatency, "latency"},
    {Signal::kErrorRate, "error_rate"},
    {Signal::kCpu, "cpu"},
    {Signal::kMemory, "memory"},
    {Signal::kConnectTime, "connect_time"},
    {Signal::kDisconnected, "disconnected"},
    {Signal::kUnreachable, "unreachable"},
    {Signal::kIntegrity, "integrity"},
}}};
constexpr std::string_view Name(Signal s) { return kSignalNames.Name(s); }
constexpr std::optional<Signal> ParseSignal(std::string_view s) { return kSignalNames.Parse(s); }

// triggers[].action
enum class TriggerAction { kComponentRollback, kEvaluateAndRollback, kImmediateRollback, kAlert };
inline constexpr EnumNames<TriggerAction, 4> kTriggerActionNames{{{
    {TriggerAction::kComponentRollback, "component_rollback"},
    {TriggerAction::kEvaluateAndRollback, "evaluate_and_rollback"},
    {TriggerAction::kImmediateRollback, "immediate_rollback"},
    {TriggerAction::kAlert, "alert"},
}}};
constexpr std::string_view Name(TriggerAction a) { return kTriggerActionNames.Name(a); }
constexpr std::optional<TriggerAction> ParseTriggerAction(std::string_view s) {
  return kTriggerActionNames.Parse(s);
}

// decision_matrix[].scope
enum class MatrixScope { kComponent, kComponentAndDependents, kAffected, kAll, kFallback };
inline constexpr EnumNames<MatrixScope, 5> kMatrixScopeNames{{{
    {MatrixScope::kComponent, "component"},
    {MatrixScope::kComponentAndDependents, "component_and_dependents"},
    {MatrixScope::kAffected, "affected"},
    {MatrixScope::kAll, "all"},
    {MatrixScope::kFallback, "fallback"},
}}};
constexpr std::string_view Name(MatrixScope s) { return kMatrixScopeNames.Name(s); }
constexpr std::optional<MatrixScope> ParseMatrixScope(std::string_view s) {
  return kMatrixScopeNames.Parse(s);
}

// JSON carries the names (found by argument-dependent lookup, these take
// precedence over nlohmann's integer conversion of enums).
inline void to_json(nlohmann::json& j, ComponentKind v) { j = Name(v); }
inline void to_json(nlohmann::json& j, Signal v) { j = Name(v); }
inline void to_json(nlohmann::json& j, TriggerAction v) { j = Name(v); }
inline void to_json(nlohmann::json& j, MatrixScope v) { j = Name(v); }

}  // namespace backstop

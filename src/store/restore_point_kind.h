// RestorePointKind: why a restore point was taken, as its manifest's "kind".
//
// The manifest keeps the name (restore_point.h reads it once and refuses a
// name it does not know); past the reader, code compares the enum. One
// EnumNames table (base/enum_names.h) gives both the names written and the
// names read.
//
// Thread-safety: constants and pure functions.
#pragma once

#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/enum_names.h"

namespace backstop {

enum class RestorePointKind {
  kManual,        // `backstop snapshot`
  kSafety,        // taken by a rollback just before it acts
  kPreDeploy,     // taken by `backstop deploy` before it switches a release
  kDrill,         // taken by a drill
  kScheduled,     // taken by the watch daemon's restore_points.every
  kPostRollback,  // taken once a rollback is verified
};
inline constexpr EnumNames<RestorePointKind, 6> kRestorePointKindNames{{{
    {RestorePointKind::kManual, "manual"},
    {RestorePointKind::kSafety, "safety"},
    {RestorePointKind::kPreDeploy, "pre-deploy"},
    {RestorePointKind::kDrill, "drill"},
    {RestorePointKind::kScheduled, "scheduled"},
    {RestorePointKind::kPostRollback, "post-rollback"},
}}};
constexpr std::string_view Name(RestorePointKind k) { return kRestorePointKindNames.Name(k); }
constexpr std::optional<RestorePointKind> ParseRestorePointKind(std::string_view s) {
  return kRestorePointKindNames.Parse(s);
}
inline void to_json(nlohmann::json& j, RestorePointKind v) { j = Name(v); }

}  // namespace backstop

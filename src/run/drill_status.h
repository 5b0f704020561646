// DrillStatus: where a drill (drill/) stands, as the drills table's "status".
//
// The drills table (state_db.h, DrillRecord) keeps the name; StateDb reads it
// once and refuses a name it does not know (Corruption naming the drill);
// past the reader, code compares the enum. It lives here, beside the table
// that stores it, because a lower layer cannot include drill/. One EnumNames
// table (base/enum_names.h) gives both the names written and the names read;
// to_json writes the name, so drill.json and `drill history --json` keep their
// words.
//
// Thread-safety: constants and pure functions.
#pragma once

#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/enum_names.h"

namespace backstop {

enum class DrillStatus {
  kRunning,  // recorded when the drill starts; stays so if it was killed
  kPassed,
  kFailed,
};
inline constexpr EnumNames<DrillStatus, 3> kDrillStatusNames{{{
    {DrillStatus::kRunning, "running"},
    {DrillStatus::kPassed, "passed"},
    {DrillStatus::kFailed, "failed"},
}}};
constexpr std::string_view Name(DrillStatus s) { return kDrillStatusNames.Name(s); }
constexpr std::optional<DrillStatus> ParseDrillStatus(std::string_view s) {
  return kDrillStatusNames.Parse(s);
}
inline void to_json(nlohmann::json& j, DrillStatus v) { j = Name(v); }

}  // namespace backstop

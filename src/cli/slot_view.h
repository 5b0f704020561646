// What `status` and `history` show of a blue/green service (a spec
// `traffic:` block): each slot's release, port and whether it runs (the
// driver's Slots), which one traffic goes to and until when the previous one
// is kept (run/slot_state.h).
//
// Thread-safety: uses the Environment it is given, from one thread.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli_common.h"

namespace backstop {

// {"live": "blue"|null, "previous": ..., "keep_previous_until": RFC 3339 or
//  null, "slots": [{"slot", "release", "port", "running", "live", "detail"}]}.
// REQUIRES: c.traffic. A driver or state error becomes {"error": message}.
nlohmann::json SlotsView(Environment& e, const ComponentSpec& c);

// The view as indented text lines, one per slot.
std::vector<std::string> SlotLines(const nlohmann::json& view);

}  // namespace backstop

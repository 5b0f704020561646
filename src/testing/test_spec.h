// Building a Spec by hand in unit tests, one component at a time, without
// going through the parser (tests of what comes after it: drills, plans).
//
// Thread-safety: none needed; a test's own Spec.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "spec/spec.h"

namespace backstop::testing {

// Adds component `name` to `spec` (last in component_order) and returns it
// for further settings. REQUIRES: `spec` has no component `name` yet.
ComponentSpec& AddComponent(Spec* spec, const std::string& name, ComponentKind kind,
                            const std::string& driver = "",
                            nlohmann::json settings = nlohmann::json::object(),
                            std::vector<std::string> depends_on = {});

}  // namespace backstop::testing

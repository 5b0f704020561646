// Reading a driver's settings (the JSON the spec parser produced from the
// component's keys, already checked against the driver's SettingSchema).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace backstop {

// The duration setting `key` in milliseconds: `fallback_ms` when absent or
// null; a number is milliseconds (the parser converts "10s" to 10000); a
// string is parsed as a duration ("10s", "1m30s"). Anything else is
// InvalidArgument naming the key and the value.
Result<int64_t> DurationSettingMs(const nlohmann::json& settings, const std::string& key,
                                  int64_t fallback_ms);

}  // namespace backstop

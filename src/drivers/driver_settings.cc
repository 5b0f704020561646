#include "drivers/driver_settings.h"

#include "base/units.h"

namespace backstop {

Result<int64_t> DurationSettingMs(const nlohmann::json& settings, const std::string& key,
                                  int64_t fallback_ms) {
  auto it = settings.find(key);
  if (it == settings.end() || it->is_null()) return fallback_ms;
  if (it->is_number()) return it->get<int64_t>();
  if (it->is_string()) {
    if (auto ms = ParseDurationMs(it->get<std::string>())) return *ms;
  }
  return Status::InvalidArgument("setting '" + key + "' must be a duration such as 10s, not " +
                                 it->dump());
}

}  // namespace backstop

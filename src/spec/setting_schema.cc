#include "spec/setting_schema.h"

#include <utility>

namespace backstop {

SettingSchema MakeSetting(std::string key, SettingSchema::Type type, bool required,
                          std::string help, nlohmann::json default_value,
                          std::vector<std::string> allowed, std::vector<SettingSchema> fields) {
  SettingSchema s;
  s.key = std::move(key);
  s.type = type;
  s.required = required;
  s.help = std::move(help);
  s.default_value = std::move(default_value);
  s.allowed = std::move(allowed);
  s.fields = std::move(fields);
  return s;
}

}  // namespace backstop

// SettingSchema: the schema of one driver setting, with which the spec
// parser checks and converts a component's settings map before any driver
// code sees it (spec_settings.cc). Drivers declare their settings with these
// (DriverInfo::settings, drivers/driver.h); the parser learns them through a
// DriverCatalog (driver_catalog.h).
//
// Thread-safety: plain values.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace backstop {

struct SettingSchema {
  enum class Type {
    kString,
    kPath,  // a string; made absolute against the spec's directory
    kInt,
    kBool,
    kDuration,    // "30s" -> milliseconds
    kPercent,     // "5%" -> 5.0
    kBytes,       // "512MB" -> bytes
    kStringList,  // [a, b] (a single string is accepted as a one-element list)
    kPathList,
    kStringMap,   // {k: v} with string values
    kObjectList,  // list of maps validated against `fields`
    kComparison,  // a number or a comparison with one ("0", "<= 0", "> 5"): spec_expect.h
  };
  std::string key;
  Type type = Type::kString;
  bool required = false;
  std::string help;                   // what is expected, shown in errors
  std::vector<std::string> allowed;   // for kString: the accepted values (empty: any)
  std::vector<SettingSchema> fields;  // for kObjectList
  nlohmann::json default_value;       // filled in when absent (null: none)
};

// One setting in one expression, for DriverInfo::settings lists.
SettingSchema MakeSetting(std::string key, SettingSchema::Type type, bool required,
                          std::string help, nlohmann::json default_value = nullptr,
                          std::vector<std::string> allowed = {},
                          std::vector<SettingSchema> fields = {});

}  // namespace backstop

// libFuzzer entry point for the spec parser: any byte string must give a
// list of errors (or none), never a crash, a hang or a sanitizer report.
// Built only with -DBACKSTOP_FUZZ=ON and clang (see CMakeLists.txt); seed it
// with tests/data/spec and examples/*/backstop.yaml.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "spec/driver_catalog.h"
#include "spec/spec.h"

// The fuzz target links the parser's sources, not backstop_core (see
// CMakeLists.txt): the drivers are a plain catalogue of their schemas.
namespace {

using backstop::DriverSchema;
using backstop::DriverSchemaList;
using backstop::SettingSchema;
using Type = SettingSchema::Type;

SettingSchema Setting(std::string key, Type type, bool required = false,
                      nlohmann::json default_value = nullptr) {
  SettingSchema s;
  s.key = std::move(key);
  s.type = type;
  s.required = required;
  s.default_value = std::move(default_value);
  return s;
}

// Schemas like the real drivers', one of every setting type.
const DriverSchemaList& FuzzDrivers() {
  static const DriverSchemaList* drivers = [] {
    auto* r = new DriverSchemaList();
    DriverSchema process{"process", {"service", "traffic"}, {}};
    process.settings = {Setting("releases", Type::kPath, true),
                        Setting("current", Type::kPath),
                        Setting("command", Type::kStringList, true),
                        Setting("env", Type::kStringMap),
                        Setting("stop_timeout", Type::kDuration, false, "10s"),
                        Setting("max_memory", Type::kBytes),
                        Setting("cpu_limit", Type::kPercent),
                        Setting("restart", Type::kBool, false, false),
                        Setting("priority", Type::kInt)};
    r->Add(process);
    DriverSchema files{"files", {"config"}, {}};
    files.settings = {Setting("files", Type::kPathList, true),
                      Setting("reload", Type::kStringList)};
    r->Add(files);
    DriverSchema postgres{"postgres", {"database"}, {}};
    SettingSchema integrity = Setting("integrity", Type::kObjectList);
    integrity.fields = {Setting("name", Type::kString, true), Setting("sql", Type::kString, true),
                        Setting("expect", Type::kInt, false, 0)};
    SettingSchema staged = Setting("staged", Type::kString, false, "auto");
    staged.allowed = {"auto", "always", "never"};
    postgres.settings = {Setting("connection", Type::kString, true), integrity, staged};
    r->Add(postgres);
    DriverSchema nats{"nats", {"stream"}, {}};
    nats.settings = {Setting("url", Type::kString, true), Setting("monitor", Type::kString),
                     Setting("streams", Type::kStringList, true)};
    r->Add(nats);
    return r;
  }();
  return *drivers;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool env_ready = [] {
    // A couple of variables the inputs can reference, one of them empty.
    setenv("FUZZ_SET", "value", 1);
    setenv("FUZZ_EMPTY", "", 1);
    return true;
  }();
  (void)env_ready;
  std::string text(reinterpret_cast<const char*>(data), size);
  auto errors = backstop::CheckSpecText(text, "fuzz/backstop.yaml", FuzzDrivers());
  for (const auto& e : errors) {
    // Exercise the formatting too.
    if (e.ToString().empty()) __builtin_trap();
  }
  return 0;
}

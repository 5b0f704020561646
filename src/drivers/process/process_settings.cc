// The settings of a `process` component. See process_settings.h.
#include "drivers/process/process_settings.h"

#include "base/env.h"
#include "base/strings.h"
#include "base/units.h"
#include "drivers/driver_settings.h"

namespace backstop::process {

using nlohmann::json;

namespace {

// A duration setting: milliseconds (as the spec parser stores it) or text ("10s").
}  // namespace

Result<Settings> LoadSettings(const ComponentSpec& c, const std::string& state_dir) {
  Settings s;
  s.name = c.name;
  s.label = c.name;
  const json& j = c.settings;
  try {
    if (!j.contains("releases") || !j["releases"].is_string() ||
        j["releases"].get<std::string>().empty()) {
      return Status::InvalidArgument("component " + c.name +
                                     ": setting 'releases' (the directory with one "
                                     "subdirectory per release) is required");
    }
    s.releases = AbsolutePath(j["releases"].get<std::string>(), CurrentDir());
    if (j.contains("current") && j["current"].is_string() &&
        !j["current"].get<std::string>().empty()) {
      s.current = AbsolutePath(j["current"].get<std::string>(), CurrentDir());
    } else {
      s.current = JoinPath(Dirname(s.releases), "current");
    }
    if (j.contains("command")) {
      if (j["command"].is_string()) {
        s.command.push_back(j["command"].get<std::string>());
      } else {
        s.command = j["command"].get<std::vector<std::string>>();
      }
    }
    if (j.contains("env") && j["env"].is_object()) {
      for (const auto& [k, v] : j["env"].items()) {
        s.env[k] = v.is_string() ? v.get<std::string>() : v.dump();
      }
    }
    BACKSTOP_ASSIGN_OR_RETURN(s.stop_timeout_ms, DurationSettingMs(j, "stop_timeout", 10'000));
    if (j.contains("check_listener") && j["check_listener"].is_boolean()) {
      s.check_listener = j["check_listener"].get<bool>();
    }
    if (!state_dir.empty()) {
      if (j.contains("log") && j["log"].is_string() && !j["log"].get<std::string>().empty()) {
        s.log = AbsolutePath(j["log"].get<std::string>(), CurrentDir());
      } else {
        s.log = JoinPath(JoinPath(state_dir, "logs"), c.name + ".log");
      }
      s.record_path = JoinPath(JoinPath(JoinPath(state_dir, "components"), c.name), "process.json");
      s.marker = {"BACKSTOP_COMPONENT=" + c.name,
                  "BACKSTOP_STATE_DIR=" + AbsolutePath(state_dir, CurrentDir())};
    }
  } catch (const std::exception& e) {
    return Status::InvalidArgument("component " + c.name + ": bad process settings: " + e.what());
  }
  return s;
}

Settings SlotSettings(const Settings& base, const ComponentSpec& c, Slot slot) {
  Settings s = base;
  const std::string slot_name(Name(slot));
  const std::string port = std::to_string(SlotPort(c, slot));
  s.label = c.name + " (" + slot_name + " slot)";
  s.record_path = JoinPath(Dirname(base.record_path), "slot-" + slot_name + ".json");
  s.marker.push_back("BACKSTOP_SLOT=" + slot_name);
  for (auto& arg : s.command) arg = ReplaceAll(arg, "{port}", port);
  for (auto& [key, value] : s.env) value = ReplaceAll(value, "{port}", port);
  s.env["BACKSTOP_PORT"] = port;
  return s;
}

Status RequireCommand(const Settings& s) {
  if (s.command.empty() || s.command[0].empty()) {
    return Status::InvalidArgument("component " + s.name +
                                   ": setting 'command' (the argv to start the service) is "
                                   "required");
  }
  return Status::OK();
}

}  // namespace backstop::process

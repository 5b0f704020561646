// The settings of a `process` component (process_driver.h lists them), as
// read from its spec, with the paths Backstop derives from its state
// directory: the service's log, its process record and the environment
// marker every process of the service carries.
//
// Thread-safety: the functions are safe to call from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/status.h"
#include "drivers/slot.h"
#include "spec/spec.h"

namespace backstop::process {

struct Settings {
  std::string name;      // the component's
  std::string label;     // how messages name the instance: the name, or "web (blue slot)"
  std::string releases;  // absolute
  std::string current;   // absolute
  std::vector<std::string> command;
  std::map<std::string, std::string> env;
  int64_t stop_timeout_ms = 10'000;
  bool check_listener = true;  // Health: the probe's loopback port must be served by us
  std::string log;             // empty until the state dir is known
  std::string record_path;     // empty until the state dir is known
  // The environment entries every process of this service is started with,
  // which tell its processes (and their children) from any other, recorded
  // or not: BACKSTOP_COMPONENT=<name> and BACKSTOP_STATE_DIR=<state dir>.
  std::vector<std::string> marker;
};

// The settings of `c`. With an empty `state_dir` (outside a run: listing
// releases), log, record_path and marker stay empty.
Result<Settings> LoadSettings(const ComponentSpec& c, const std::string& state_dir);

// The settings of the instance of `c` (a blue/green service: c.traffic is
// set) that runs in `slot`: its own record (slot-<slot>.json beside
// process.json) and marker (BACKSTOP_SLOT=<slot> added, so that stopping one
// slot never touches the other), every "{port}" in the command and the
// environment replaced by the slot's port, and BACKSTOP_PORT and
// BACKSTOP_SLOT in the environment. The log is the service's.
// REQUIRES: `base` is LoadSettings(c, state_dir) with a state directory.
Settings SlotSettings(const Settings& base, const ComponentSpec& c, Slot slot);

// InvalidArgument naming the setting unless `command` is set.
Status RequireCommand(const Settings& s);

}  // namespace backstop::process

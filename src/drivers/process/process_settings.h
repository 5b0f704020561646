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
#include "spec/spec.h"

namespace backstop::process {

struct Settings {
  std::string name;
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

// InvalidArgument naming the setting unless `command` is set.
Status RequireCommand(const Settings& s);

}  // namespace backstop::process

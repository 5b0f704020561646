// What the command groups of the command line share: the global options,
// the environment a command opens, and the helpers that print results and
// turn a Status into an exit code.
//
// Thread-safety: ProbeAll probes from several threads; everything else runs
// on the command's one thread.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/output.h"
#include "base/status.h"
#include "base/strings.h"  // Pad, for every command's tables
#include "drivers/driver.h"
#include "run/run.h"
#include "run/state_db.h"
#include "spec/spec.h"
#include "store/store.h"

namespace backstop {

// The options every command takes (--spec, --output).
struct GlobalOptions {
  std::string spec_path;
  std::string output = "text";
};

// "healthy", "unhealthy" or "unknown".
std::string HealthWord(const HealthResult& h);

// Everything a command that acts on an environment needs, opened in order.
struct Environment {
  Spec spec;
  std::unique_ptr<Store> store;
  std::unique_ptr<StateDb> state;
  std::unique_ptr<RunEngine> engine;
};

// Loads the spec, opens (and tightens) the state directory, the store and the
// state database, and builds the run engine over them.
Result<std::unique_ptr<Environment>> OpenEnvironment(const GlobalOptions& g, Output& out);

// Disaster recovery: when `selector` (empty: "latest") names no restore point
// of the local store but the spec's remote store holds one, it is fetched
// into the local store first (every blob verified, manifest last), so that
// what follows (a plan, a rollback) finds it as if it had been taken here.
// Nothing is done when there is no remote store or the local store resolves
// the selector; a remote that cannot be reached is a warning, not an error
// (the caller then reports the selector as it always would).
void FetchFromRemoteIfMissing(Environment& e, const std::string& selector, Output& out);

// Reports `st` (text on stderr; in json mode also the JSON document) and
// returns its exit code (base/exit_code.h).
int Fail(Output& out, const Status& st);

// Runs every component's health probe concurrently.
std::map<std::string, HealthResult> ProbeAll(Environment& e, const std::vector<std::string>& names);

}  // namespace backstop

// Fallback (seed 5.3): sending a traffic component's upstream to the spec's
// standby (`fallback:`, spec.h FallbackSpec) when everything else failed,
// and back again. Used by `backstop fallback [--back]` and by the decision
// matrix's `fallback` scope in `backstop watch`.
//
// A fallback is not a run: it is one driver call (Driver::Route, whose own
// journal makes it crash-safe and idempotent) with no restore point, steps,
// data loss or verification to journal. It is recorded instead in the state
// database: the key "fallback" holds the FallbackRecord (the routing it
// replaced, so that --back knows where to return) while it is in force, and
// the event journal gets fallback.switched, fallback.refused or
// fallback.returned (notified like every event; the event's run_id field is
// the fallback's id, "fallback-<time>-<n>").
//
// Never switches to servers that fail their health check: the standby's
// `health` probe, and for --back each recorded server (the probe of the
// service whose traffic block routes that upstream, aimed at the server's
// port, else a TCP connect). A refusal changes nothing and says why.
//
// Crash safety: the record says "switching" (or "returning") before Route
// acts and "active" (or is removed) after; a fallback or --back interrupted
// is completed by running the same command again.
//
// Thread-safety: functions of one thread; they take the environment lock.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "run/run.h"
#include "run/state_db.h"
#include "spec/spec.h"

namespace backstop {

struct FallbackRecord {
  std::string id;                     // "fallback-20261201T061500Z-123456"
  std::string state;                  // switching | active | returning
  std::string traffic;                // the traffic component
  std::string upstream;               // the upstream switched
  std::vector<std::string> previous;  // its servers before the fallback
  std::vector<std::string> standby;   // the standby's servers
  int64_t since_us = 0;               // wall clock of the switch
  std::string triggered_by;           // manual | trigger:<name>
  std::string command;
  nlohmann::json ToJson() const;
  static Result<FallbackRecord> FromJson(const nlohmann::json& j);
};

struct FallbackOptions {
  std::string command;                  // as typed, for the record and the lock
  std::string triggered_by = "manual";  // or trigger:<name>
  nlohmann::json detail;                // added to the events (the watch's decision)
  bool dry_run = false;                 // check health and say what would change
};

struct FallbackOutcome {
  bool changed = false;  // the routing was switched
  bool refused = false;  // a health check failed: nothing changed
  std::string id;
  std::string message;  // one line for people
  FallbackRecord record;
  nlohmann::json ToJson() const;
};

// The fallback in force (any state), if any.
Result<std::optional<FallbackRecord>> ActiveFallback(StateDb& db);

// Routes spec.fallback's upstream to the standby after its health check.
// FailedPrecondition when the spec has no fallback block or the upstream
// was never routed by Backstop (nowhere recorded to return to).
// REQUIRES: the caller does not hold the environment lock.
Result<FallbackOutcome> FallBack(RunEngine& engine, const Spec& spec, StateDb& db,
                                 const FallbackOptions& options);

// Routes the upstream back to the servers recorded by the fallback in force,
// after their health check. FailedPrecondition when no fallback is in force.
Result<FallbackOutcome> FallBackReturn(RunEngine& engine, const Spec& spec, StateDb& db,
                                       const FallbackOptions& options);

}  // namespace backstop

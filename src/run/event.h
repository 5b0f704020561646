// Event: one entry of an environment's event journal (the `events` table of
// the state database).
//
// Everything that happens around an incident is appended here once, when it
// happens: a trigger going pending, firing or resolved, a decision taken (or
// held, and why), a run started or finished, a drill, a restore point taken
// or failed. The incident report reads its timeline from this journal and
// notifications are delivered from it, so a fact is never recorded twice in
// two shapes. Ids grow with every append (SQLite rowid), so a reader can
// follow the journal with `after_id`.
//
// Thread-safety: plain values; StateDb's rules apply to reading and writing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace backstop {

enum class EventKind {
  kTriggerPending,      // a rule's condition holds; firing after its `for` duration
  kTriggerFiring,       // a rule fired
  kTriggerResolved,     // a firing or pending rule is back to ok
  kDecision,            // the decision matrix chose (or held) an action
  kRunStarted,          // a rollback, deploy or drill run began
  kRunFinished,         // a run ended succeeded
  kRunFailed,           // a run ended failed or abandoned
  kDrillStarted,        // a drill began (its run has its own events)
  kDrillFinished,       // a drill ended, passed or not
  kRestorePointTaken,   // a restore point was written to the store
  kRestorePointFailed,  // taking a restore point failed
  kFallbackSwitched,    // traffic was sent to the spec's standby (run/fallback.h)
  kFallbackRefused,     // a fallback or its return was refused (unhealthy, refused route)
  kFallbackReturned,    // traffic went back to where it was before the fallback
  kSlotRetired,         // a blue/green service's previous slot was stopped (keep_previous ended)
};

// The stable name used in the journal, the API, notifications and reports:
// "trigger.pending", "trigger.firing", "trigger.resolved", "decision",
// "run.started", "run.finished", "run.failed", "drill.started",
// "drill.finished", "restore_point.taken", "restore_point.failed",
// "fallback.switched", "fallback.refused", "fallback.returned",
// "slot.retired".
std::string_view EventKindName(EventKind kind);
std::optional<EventKind> ParseEventKind(std::string_view name);

struct Event {
  int64_t id = 0;     // assigned by StateDb::AppendEvent
  int64_t at_us = 0;  // wall clock, microseconds since the epoch
  EventKind kind = EventKind::kDecision;
  std::string run_id;     // the run it belongs to, if any
  std::string component;  // the component it is about, if any
  std::string trigger;    // the rule's name, for trigger and decision events
  std::string message;    // one line for people, no secrets
  nlohmann::json detail = nlohmann::json::object();  // samples, scope, status...

  // {"id","at","at_us","kind","run_id","component","trigger","message","detail"};
  // empty strings are left out, "at" is RFC 3339 UTC.
  nlohmann::json ToJson() const;
};

// Which events ListEvents returns, oldest first.
struct EventQuery {
  int64_t after_id = 0;  // only events with a larger id
  std::string run_id;    // only this run's events, if set
  int limit = 0;         // at most this many (0: all)
};

}  // namespace backstop

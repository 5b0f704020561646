// The watch daemon's entries in the event journal (run/event.h): a trigger
// going pending, firing or resolved, a decision taken (or held, and why), and
// a scheduled restore point that failed. They are made here and appended by
// whoever owns the state database connection on that thread (the Watcher's
// control thread, or the restore-point schedule's).
//
// Thread-safety: pure functions, but JournalRestorePointFailed writes through
// `db`, which belongs to the calling thread.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "run/event.h"
#include "run/state_db.h"
#include "watch/rules.h"

namespace backstop {

// A trigger's change of state as a journal event (trigger.pending, .firing or
// .resolved), with its samples. Samples carry monotonic times: `wall_us` and
// `mono_us` are the same instant on both clocks, to turn them into wall
// times. A pending event's detail has "first_seen_us": the wall time of the
// first sample that held the condition.
Event TriggerJournalEvent(const TriggerEvent& e, int64_t wall_us, int64_t mono_us);

// A decision on a firing trigger: `outcome` is acted | held | alert | dry_run,
// `why` the reason (for a hold, what holds it), `decision` the decision
// matrix's verdict (RollbackDecision::ToJson; null when none was reached).
Event DecisionJournalEvent(const TriggerEvent& e, const std::string& outcome,
                           const std::string& why, const nlohmann::json& decision, int64_t wall_us);

// For the restore-point schedule: journals that a scheduled restore point
// (`label`, such as "hourly") could not be taken, so that it is notified.
// REQUIRES: `db` is the calling thread's connection.
Status JournalRestorePointFailed(StateDb& db, int64_t wall_us, const std::string& label,
                                 const std::string& error);

}  // namespace backstop

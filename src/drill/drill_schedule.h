// The drill schedule (seed 8.1): which of the spec's drills are due, which
// component a rotating drill takes next, and the trend of past drills.
//
// A calendar schedule is due when no drill of that name started in the
// current period (UTC): weekly = the ISO week (Monday first), monthly = the
// month, quarterly = the quarter, annually = the year. A cron schedule
// ("minute hour day-of-month month day-of-week") is due when its most recent
// firing time at or before now is after the drill's last start (or it never
// ran and it has fired within the last year). Everything here is a pure
// function over the history and a wall time, so a test runs a year of
// schedule on a FakeClock.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "run/state_db.h"
#include "spec/spec.h"

namespace backstop {

// The period of `wall_us` for a calendar schedule: "2026-W48", "2026-11",
// "2026-Q4", "2026". Empty for an unknown schedule.
std::string DrillPeriod(const std::string& schedule, int64_t wall_us);

// The newest firing time (wall us, on a minute) of cron expression `expr` at
// or before `wall_us`, looking back at most a year; nullopt when none (or
// when `expr` is malformed).
std::optional<int64_t> LastCronFiring(const std::string& expr, int64_t wall_us);

// Whether `drill` is due at `now_wall_us`, given the history (any order; only
// the drills with its name count, a running one too). `why` gets a sentence:
// "weekly: none yet in 2026-W49" or "weekly: done in 2026-W49 (drill ...)".
bool DrillDue(const DrillSpec& drill, const std::vector<DrillRecord>& history, int64_t now_wall_us,
              std::string* why);

// The component a drill without one takes: for service_failure (and the
// other single-service scenarios) the service after the one its last run
// drilled, in spec order, wrapping round (the first service when it never
// ran or drilled one no longer in the spec); for database_corruption the
// same over databases. Empty when the spec has no component of that kind.
std::string NextRotatingComponent(const Spec& spec, const DrillSpec& drill,
                                  const std::vector<DrillRecord>& history);

// Detection and recovery of the last `n` finished drills (newest first)
// against their targets: "recovery 1.2 min avg over 4 drills (target 5 min,
// met 4 of 4); detection 3.4 s avg, improving" — improving / worsening /
// steady compares the newer half's average recovery with the older half's.
struct DrillTrend {
  int drills = 0;
  int passed = 0;
  int targets_met = 0;  // recovery within target, among those with one
  int with_target = 0;
  int64_t avg_detection_ms = -1;
  int64_t avg_recovery_ms = -1;
  std::string direction;  // improving | worsening | steady | "" (too few)
  std::string Describe() const;
};
DrillTrend ComputeTrend(const std::vector<DrillRecord>& newest_first, int n);

}  // namespace backstop

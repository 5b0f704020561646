// The steps of a blue/green service's deploy or rollback (spec.h
// ServiceTrafficSpec), for the planner (plan.cc). Internal to run/.
//
//   deploy                  start-slot (idle slot, gated on its health), switch
//                           to it; the replaced slot keeps running for
//                           keep_previous
//   rollback, inside the    switch back to the slot still running the target
//   window                  (running and healthy now), then stop-slot of the
//                           slot rolled away from (the bad one)
//   rollback, otherwise     start-slot (idle), switch, stop-slot of the other
//
// Thread-safety: one thread (it reads the state database it is given).
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "drivers/driver.h"
#include "run/plan.h"
#include "run/slot_state.h"
#include "run/state_db.h"

namespace backstop {

// The steps that take blue/green service `c` to `release`, between its
// prepare and verify steps. `notes` receives why a rollback is (or is not) a
// switch back. REQUIRES: c.traffic has a value.
Result<std::vector<PlanStep>> BlueGreenSteps(const ComponentSpec& c, const std::string& release,
                                             RunKind kind, StateDb& state,
                                             const DriverRegistry& registry, DriverContext& ctx,
                                             std::vector<std::string>* notes);

// For a blue/green service stopped and started around a restore of what it
// depends on (the usual stop/restore/start): in place of its start, the
// release started in the slot that was live (blue when none was) and traffic
// switched to it. REQUIRES: c.traffic has a value.
Result<std::vector<PlanStep>> BlueGreenRestartSteps(const ComponentSpec& c,
                                                    const std::string& release, StateDb& state);

}  // namespace backstop

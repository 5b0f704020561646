// The drill report: drill.json and drill.md in <state_dir>/drills/<id>/,
// 0600 in a 0700 folder. It says what was injected, which trigger fired,
// what the decision matrix chose, the rollback run, the measured detection
// time (injection -> trigger firing) and recovery time (injection ->
// rollback verified) against the matrix row's recovery target, whether the
// environment was verified back on the drill's starting restore point, and
// whether the drill passed and why. docs/drills.md documents the JSON.
//
// Thread-safety: plain values and pure functions; WriteDrillReport writes
// through the Env given.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/env.h"
#include "base/status.h"
#include "run/state_db.h"

namespace backstop {

struct DrillOutcome {
  DrillRecord record;        // id, scenario, component, status, reason, run, times
  std::string fault;         // what was injected, one line
  std::string detector;      // "in-process" (the watch machinery run by the drill)
  int64_t injected_us = 0;   // wall clock
  int64_t detected_us = 0;   // 0: not detected
  int64_t recovered_us = 0;  // 0: not recovered by the detected rollback
  std::string trigger;       // the trigger that fired, on which component
  std::string trigger_component;
  std::string trigger_reason;
  std::string decision_scenario;  // the matrix row
  std::string decision_reason;
  bool decision_acted = false;
  int64_t target_min_ms = 0;
  bool verified_back = false;          // on the starting restore point at the end
  std::vector<std::string> end_state;  // one line per component checked at the end
  std::string cleanup_run_id;          // the drill's own rollback when detection failed

  bool passed() const { return record.status == DrillStatus::kPassed; }
  nlohmann::json ToJson() const;
};

// The folder of drill `id`: <state_dir>/drills/<id>.
std::string DrillDir(const std::string& state_dir, const std::string& id);

std::string RenderDrillReport(const DrillOutcome& outcome);

// Writes drill.json and drill.md (atomically, 0600) into DrillDir.
Status WriteDrillReport(Env* env, const std::string& state_dir, const DrillOutcome& outcome);

}  // namespace backstop

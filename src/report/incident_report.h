// The incident report of a run (seed 7.1): report.json and report.md in the
// run's folder (<state_dir>/runs/<run_id>/), written when a run that changed
// something ends and printed by `backstop report RUN`.
//
// Every field is read from what Backstop already recorded: the run record and
// its steps, the event journal (run/event.h), the data-loss ledger in the
// run's folder, the checklist acknowledgements and the spec's decision
// matrix. Nothing is typed in twice; what the journal does not hold is said
// to be "not recorded". The sections for people (root cause, lessons learned,
// follow-up actions) are left as headed, empty sections of the Markdown.
//
// Thread-safety: functions hold no state; StateDb's rules apply.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/env.h"
#include "base/status.h"
#include "run/state_db.h"
#include "spec/spec.h"

namespace backstop {

// The row of the decision matrix whose recovery-time target applies to a
// run: the scenario its decision named, else the row of its trigger, else
// (drill) the drill's scenario, else (manual) the row of the plan's scope.
// nullptr when none matches.
const DecisionRule* DecisionRuleForRun(const Spec& spec, const RunRecord& run);

// Builds the report of `run_id` (an exact id) from the journal. `fs` reads
// the ledger files in the run's folder. The JSON's fields are documented in
// incident_report.cc next to the code that fills them.
Result<nlohmann::json> BuildIncidentReport(const Spec& spec, StateDb& state, FileSystem* fs,
                                           const std::string& run_id);

// The report as Markdown, in the order of the seed's template.
std::string RenderIncidentReport(const nlohmann::json& report);

// <state_dir>/runs/<run_id>: the run's folder (ledgers, reports).
std::string RunDir(const Spec& spec, const std::string& run_id);

// Builds the report and writes report.json and report.md into the run's
// folder, each atomically and private (0600).
Status WriteIncidentReport(Env* env, const Spec& spec, StateDb& state, const std::string& run_id);

// Makes every run engine of this process write the report when a run that
// changed something ends (run/run.h, SetRunEndedHook). A failure to write it
// is printed on stderr and never fails the run.
// REQUIRES: called at program start, before any run.
void InstallIncidentReportWriter();

}  // namespace backstop

// RunEngine: executes a Plan as a journaled, resumable, single-flight run.
//
// Each step is marked started in the state database before it acts and done
// (or failed) after, so a run killed at any point is resumed by re-running the
// step that was in flight (every step is idempotent) and skipping the ones that
// are done. The environment lock is held for the whole run; a new run is
// refused while an unfinished one exists, so a crash is never papered over.
// A run succeeds only when its verify steps pass.
//
// Ownership: the engine borrows everything passed to its constructor; they must
// outlive it. Thread-safety: one thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "base/env.h"
#include "base/output.h"
#include "drivers/driver.h"
#include "run/plan.h"
#include "run/state_db.h"
#include "spec/spec.h"
#include "store/restore_point.h"
#include "store/store.h"

namespace backstop {

struct RunOptions {
  bool accept_data_loss = false;
  std::string command;  // as typed, for the journal and reports
  std::string triggered_by = "manual";
  nlohmann::json trigger_detail;
  // Called with the run's id as soon as it is journaled, before any step
  // runs (on the engine's thread), so that a caller running the engine on
  // another thread (the watch daemon) can report the run while it goes.
  std::function<void(const std::string& run_id)> on_run_id;
};

struct RunOutcome {
  std::string run_id;
  RunStatus status = RunStatus::kFailed;     // succeeded | failed
  std::string error;                         // what failed and what to do, when failed
  Status::Code failure = Status::Code::kOk;  // the failed step's status code
  bool changed_anything = false;             // whether any step that changes components had run
  int64_t duration_ms = 0;
  nlohmann::json summary;  // also stored in the run record
  bool succeeded() const { return status == RunStatus::kSucceeded; }
};

class RunEngine {
 public:
  RunEngine(Env* env, const Spec& spec, Store& store, StateDb& state,
            const DriverRegistry& registry, Output& out);
  ~RunEngine();

  // Journals `plan` as a new run and executes it. Refused (Aborted) when
  // another process holds the environment lock or an unfinished run exists.
  // A run that starts and then fails returns a RunOutcome with status failed.
  Result<RunOutcome> Start(const Plan& plan, const RunOptions& options);
  // Continues an unfinished run from its first step that is not done.
  Result<RunOutcome> Resume(const std::string& run_id, const RunOptions& options);
  // Marks an unfinished run abandoned (the operator takes over by hand).
  Status Abandon(const std::string& run_id);

  // A context for driver calls outside a run (status, verify, snapshot).
  DriverContext Context(const std::string& run_id = "");
  // The journal this engine writes (plans of blue/green services read their
  // slot state from it).
  StateDb& state() { return state_; }
  // The driver of a component, created on first use and kept (drivers may hold state).
  Result<Driver*> DriverFor(const ComponentSpec& c);

  // Polls the component's health until it passes or its start period ends.
  HealthResult WaitUntilHealthy(const ComponentSpec& c, DriverContext& ctx, int* attempts);
  // The same with the health of one of a blue/green service's slots.
  HealthResult WaitUntilSlotHealthy(const ComponentSpec& c, Slot slot, DriverContext& ctx,
                                    int* attempts);

 private:
  struct Progress;
  Result<RunOutcome> Drive(const RunRecord& run, const Plan& plan, const RunOptions& options);
  Status ExecuteStep(const RunRecord& run, const Plan& plan, int index, const RunOptions& options,
                     Progress& progress, std::string* detail, nlohmann::json* result);
  Status CheckDataLossLimit(const Progress& progress, const RunOptions& options) const;
  // `probe_once` polled until it passes for `c` or c's start period ends.
  HealthResult PollHealth(const ComponentSpec& c, DriverContext& ctx,
                          const std::function<HealthResult()>& probe_once, int* attempts);
  // The blue/green steps (run_blue_green.cc): start-slot, switch, stop-slot.
  Status ExecuteSlotStep(const RunRecord& run, const Plan& plan, const PlanStep& step,
                         const ComponentSpec& c, Driver& driver, DriverContext& ctx,
                         std::string* detail, nlohmann::json* result);
  // A blue/green service's verify: `current` is the target release, and the
  // live slot (as recorded by the switch) is healthy.
  Status VerifyBlueGreen(const ComponentSpec& c, const nlohmann::json& entry, Driver& driver,
                         DriverContext& ctx, std::map<std::string, std::string>& health,
                         std::string* detail, nlohmann::json* result);
  // Adds `name`'s release in the plan to its history, once per run.
  Status RecordRelease(const RunRecord& run, const Plan& plan, const std::string& name);
  // After a failure that changed something: starts every service this run
  // stopped and did not switch yet, on the release it ran before.
  void Recover(const RunRecord& run, const Plan& plan);
  // Where each affected component is: release, running, healthy.
  nlohmann::json Account(const RunRecord& run, const Plan& plan);
  std::string NewRunId();
  // Once a rollback is verified: a fresh restore point of what it changed,
  // labelled post-rollback, its id in the summary (seed 7.2, "backup systems
  // updated"). A failure is journaled and summarised, never fails the run.
  void TakePostRollbackRestorePoint(const RunRecord& run, const Plan& plan,
                                    nlohmann::json* summary);
  // A verified rollback's last verification (run_performance.cc): every
  // component's performance against the baseline of the restore point it
  // went back to, in the summary ("performance") and the run's output. A
  // degraded result is reported loudly; it does not undo the rollback.
  void VerifyPerformanceAfterRollback(const RunRecord& run, nlohmann::json* summary);

  Env* env_;
  const Spec& spec_;
  Store& store_;
  StateDb& state_;
  const DriverRegistry& registry_;
  Output& out_;
  std::map<std::string, std::unique_ptr<Driver>> drivers_;
};

// What a layer above the engine is told when a run that changed something
// has ended (its record is finished): the incident report (report/) is
// written from here, whichever command or daemon ran the run.
struct RunEnded {
  Env* env;
  const Spec& spec;
  Store& store;
  StateDb& state;
  std::string run_id;
};
using RunEndedHook = std::function<void(const RunEnded&)>;
// Sets the hook every RunEngine of this process calls after such a run (an
// empty hook: none), in place of any set or added before. A failing hook
// never changes the run's outcome.
// REQUIRES: called at program start, before any run (it is not synchronized).
void SetRunEndedHook(RunEndedHook hook);
// Adds a hook called after those set or added before (notify/ after report/).
// REQUIRES: as SetRunEndedHook.
void AddRunEndedHook(RunEndedHook hook);

// Whether a health result counts as healthy for `c`: a pass, or "unknown"
// only when the component has no probe of its own (nothing to check). A
// configured probe that cannot run (bad URL, gRPC not built in) is a failure.
bool HealthAcceptable(const ComponentSpec& c, const HealthResult& h);
// "healthy (HTTP 200)", "unhealthy (connection refused)", "unknown": a health
// result as steps and summaries show it.
std::string HealthLine(const HealthResult& h);

// Takes a restore point of `components` (all when empty) and writes its
// manifest after every blob. Used by `backstop snapshot` and by the engine's
// safety step. `id` empty: a fresh id.
Result<RestorePoint> TakeRestorePoint(RunEngine& engine, const Spec& spec, Store& store,
                                      const std::vector<std::string>& components,
                                      const std::string& label, RestorePointKind kind,
                                      const std::string& run_id, const std::string& id);

}  // namespace backstop

// RollbackJob: one rollback (or fallback) the watch daemon runs on its own thread.
//
// The job opens its own store and state-database connection, plans each
// request (PlanRollback may connect to databases: never on the control
// thread) and runs it through the RunEngine under the environment lock. The
// engine's output goes to the daemon's log, line by line. What the daemon
// needs to know while the job goes is handed to its Hooks, on the job's
// thread.
//
// Ownership: borrows env, spec, registry and log (they must outlive it);
// owns its thread. Thread-safety: Start, Join and the destructor on one
// thread (the daemon's control thread).
#pragma once

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/env.h"
#include "drivers/driver.h"
#include "run/plan.h"
#include "run/run.h"
#include "spec/spec.h"
#include "watch/watch_logger.h"

namespace backstop {

// What to roll back, and how the run is to be recorded.
struct RunJob {
  std::vector<RollbackRequest> requests;
  // Instead of the requests: fall back to the spec's standby (run/fallback.h).
  bool fallback = false;
  std::vector<std::string> components;  // for cooldowns and suppression
  std::string triggered_by = "manual";
  nlohmann::json detail;
  std::string command;
  std::string description;
  bool automatic = false;
  std::string trigger;
};

class RollbackJob {
 public:
  struct Hooks {
    // Once the first request is planned, before anything acts; `plan_error`
    // is empty when it could be planned. Returns whether the job goes on (a
    // request the API has already answered must not act).
    std::function<bool(const std::string& plan_error)> planned;
    // The run's id, as soon as the engine has journaled it.
    std::function<void(const std::string& run_id)> run_started;
    // Components a planned run affects (their samples are not fed to rules).
    std::function<void(const std::vector<std::string>& affected)> affects;
    std::function<void(const RunOutcome& outcome)> finished_run;
    // Each line the run prints (its steps as they go); may be empty.
    std::function<void(const std::string& line)> output;
    // Last: `acted` is false when `planned` called the job off.
    std::function<void(bool acted, const std::string& error)> done;
  };

  RollbackJob(Env* env, const Spec& spec, const DriverRegistry& registry, WatchLogger* log,
              RunJob job, Hooks hooks);
  ~RollbackJob();  // joins
  RollbackJob(const RollbackJob&) = delete;
  RollbackJob& operator=(const RollbackJob&) = delete;

  void Start();
  void Join();

 private:
  void Run();

  Env* env_;
  const Spec& spec_;
  const DriverRegistry& registry_;
  WatchLogger* log_;
  const RunJob job_;
  const Hooks hooks_;
  std::thread thread_;
};

}  // namespace backstop

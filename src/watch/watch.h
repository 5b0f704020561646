// `backstop watch`: the daemon that probes every component, feeds the trigger
// rules, decides on firing triggers and rolls back with no human.
//
// Threads:
//   control   (the caller of Run) owns the rule engine: it takes probe
//             outcomes, derives signals (signals.h), evaluates the rules
//             (rules.h) on every outcome and on a short tick (for `for`
//             durations), decides (decision.h) and starts rollbacks
//   prober    one event loop for HTTP and TCP probes, plus a small worker
//             pool for blocking probes (prober.h)
//   decider   the blocking half of a decision on a firing trigger: reads
//             and checksums the restore points' manifests, asks the drivers
//             what runs now (Describe), applies the decision matrix and
//             re-reads the pause flag; the control thread then gates and
//             acts on its result
//   state     writes trigger state, recent rollbacks and journal events to
//             the state database and reads the pause flag (state_writer.h):
//             the control thread never waits on SQLite
//   rollback  at most one at a time: plans (plan.h) and runs (run.h) a
//             rollback under the environment lock the CLI also takes
//   api       cpp-httplib's workers (api.h)
//
// Safety rules on an automatic rollback (every decision is logged):
//   - dry run (--dry-run): decide and log, never act
//   - paused (`backstop watch pause`, or POST /api/v1/pause): stored in the
//     state database, so it survives restarts; re-read every second and
//     before every action
//   - one rollback at a time; a run held by someone else (a manual rollback:
//     the environment lock) makes the daemon hold and log
//   - a cooldown per component (default 10m) and a cap of automatic
//     rollbacks per hour (default 3), both persisted in the state database
//   - no restore point: hold; a component already on its restore point's
//     release: hold (Decide's safety rule)
//
// The `integrity` signal: every integrity_interval_ms, the invariants of each
// data component a trigger watches for it (foreign keys, orphaned rows, the
// spec's integrity queries; Driver::CheckInvariants) are checked in the worker
// pool, against the latest restore point's entry. A check that cannot run
// (database down, timeout) gives no sample: unreachability has its own
// triggers, and a slow check must not roll a database back.
// A firing trigger held by a gate that later opens (resumed, the other run
// ended, the lock was released, the cooldown or the hourly cap expired) is
// decided again while it still fires; so is one found firing in the saved
// state at start-up, once its component has been probed afresh.
// Trigger state is saved in the state database (RuleEngine::SaveState) on
// every change and every few seconds, and reloaded on start; a decision is
// acted on only while its trigger still fires.
//
// While a rollback runs, the samples of the components it affects are not
// fed to the rules (their downtime is deliberate); when it ends, their
// trigger instances are reset, so the restored release is judged afresh.
//
// Ownership: a Watcher borrows the Env, Spec and registry (they must outlive
// it) and owns everything else (prober, API server, databases, threads).
// Thread-safety: Run/Once on one thread; Stop from any thread; the ApiBackend
// methods from the API threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/env.h"
#include "base/mutex.h"
#include "base/output.h"
#include "base/status.h"
#include "drivers/driver.h"
#include "run/state_db.h"
#include "spec/spec.h"
#include "store/restore_point.h"
#include "store/store.h"
#include "watch/action_gate.h"
#include "watch/api.h"
#include "watch/decision.h"
#include "watch/prober.h"
#include "watch/restore_point_scheduler.h"
#include "watch/rollback_job.h"
#include "watch/rules.h"
#include "watch/service_notify.h"
#include "watch/signals.h"
#include "watch/slot_retirer.h"
#include "watch/state_writer.h"
#include "watch/store_replicator.h"
#include "watch/watch_logger.h"
#include "watch/watch_state.h"

namespace backstop {

struct WatchOptions {
  bool dry_run = false;
  bool once = false;                      // probe everything once, evaluate, print, exit
  std::string listen = "127.0.0.1:8742";  // the API; "off" disables it
  bool allow_remote = false;              // --allow-remote: --listen beyond loopback
  std::string token_file;                 // else $BACKSTOP_API_TOKEN, else <state_dir>/api-token
  int64_t cooldown_ms = 10 * 60 * 1000;   // per component, between rollbacks
  int max_rollbacks_per_hour = 3;         // automatic ones
  std::string log_format = "text";        // text | json (one object per line)
  int workers = 4;                        // threads for blocking probes
  // How often the data components' invariants (Driver::CheckInvariants) are
  // checked for the `integrity` signal, when a trigger uses it; 0: never.
  int64_t integrity_interval_ms = 5 * 60 * 1000;
  int64_t duration_ms = 0;   // stop after this long; 0: until Stop()
  int64_t tick_ms = 50;      // rule evaluation between samples
  std::string command;       // as typed, for run records
  bool json_output = false;  // --output json (for --once)
};

class Watcher final : public ApiBackend {
 public:
  Watcher(Env* env, const Spec& spec, const DriverRegistry& registry, WatchOptions options,
          WatchLogger* log);
  ~Watcher() override;
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Runs the daemon until Stop() (or options.duration_ms).
  Status Run();
  // Probes every component once, evaluates the rules (with the saved state),
  // decides on firing triggers without acting. `healthy` is set to whether
  // every probed component passed and no trigger fires.
  Result<nlohmann::json> Once(bool* healthy);
  // Asks Run to return. Thread-safe (not async-signal-safe).
  void Stop();
  // The API's bound port once Run has started it (0 before, or without API).
  int api_port() const;

  // ApiBackend.
  nlohmann::json GetStatus() override;
  ApiReply GetComponents() override;
  ApiReply GetRestorePoints() override;
  ApiReply VerifyRestorePoint(const std::string& id) override;
  ApiReply GetRuns(int limit, int offset) override;
  ApiReply GetRun(const std::string& id) override;
  ApiReply GetRunReport(const std::string& id) override;
  ApiReply GetLatencyHistory() override;
  ApiReply PlanRollback(const nlohmann::json& body) override;
  ApiReply RequestRollback(const nlohmann::json& body, const std::string& actor) override;
  ApiReply SetPaused(bool paused, const std::string& reason, const std::string& actor) override;
  std::string MetricsText() override;

  // For tests: how long RequestRollback waits for the control thread to take
  // a request before answering 503 (and withdrawing it).
  void SetApiAnswerTimeoutForTesting(int64_t ms) EXCLUDES(mu_);

 private:
  struct ComponentView;
  // A firing trigger, as the decider found it: the restore point to go back
  // to (or why there is none) and the decision matrix's verdict.
  struct PreparedDecision {
    TriggerEvent event;
    std::optional<RestorePoint> restore_point;
    std::string no_restore_point;  // why, when restore_point is empty
    RollbackDecision decision;     // when restore_point is set
  };
  // A firing trigger for the decider, with the rule states when it fired.
  struct DecisionRequest {
    TriggerEvent event;
    std::vector<TriggerStatus> trigger_states;
  };
  // A rollback asked for through the API, from the API thread that waits for
  // the answer to the control thread and the job. Only a request still
  // pending when it is withdrawn (503) is answered by the API thread; a
  // withdrawn request never acts.
  struct ApiRequest {
    enum class State { kQueued, kTaken, kStarted, kRefused, kWithdrawn };
    RunJob job;
    State state = State::kQueued;  // guarded by the Watcher's mu_
    int code = 0;                  // kRefused: the HTTP status
    std::string why;               // kRefused: the reason
  };

  Status Open();
  std::vector<ProbeTarget> BuildTargets(bool spread);
  // Adds a component's view to views_ (BuildTargets), under mu_: another
  // thread may call GetStatus while Run is still building the map.
  void AddView(const std::string& name, std::unique_ptr<ComponentView> view) EXCLUDES(mu_);
  // Adds `c`'s invariant checks ("<name>#integrity") when a trigger watches
  // its integrity signal.
  void AddIntegrityTarget(const ComponentSpec& c, std::vector<ProbeTarget>& targets);
  // For driver calls outside a run (health, invariants, Describe).
  DriverContext DaemonDriverContext();
  void OnOutcome(ProbeOutcome&& outcome) EXCLUDES(mu_);
  void HandleOutcome(ProbeOutcome& outcome, int64_t now_us) EXCLUDES(mu_);
  void HandleEvents(const std::vector<TriggerEvent>& events, bool may_act) EXCLUDES(mu_);
  // Decides on a firing trigger: in Run, hands it to the decider and acts
  // on its answer later (ActOnDecisions); in Once, at once.
  void HandleFiring(const TriggerEvent& event, bool may_act) EXCLUDES(mu_);
  // The blocking half of a decision (store, drivers; the pause flag from
  // `pause_db` when the decision is to act). Any thread.
  PreparedDecision PrepareDecision(const DecisionRequest& request, StateDb* pause_db) EXCLUDES(mu_);
  // The decider thread: prepares what HandleFiring queued.
  void DeciderLoop(StateDb* pause_db) EXCLUDES(mu_);
  // Control thread: gates, acts on and records a prepared decision.
  void ActOnDecision(const PreparedDecision& prepared, bool may_act) EXCLUDES(mu_);
  void ActOnDecisions() EXCLUDES(mu_);
  // Takes the pause flag as read from the state database; logs a change.
  void TakePauseState(const PauseState& state) EXCLUDES(mu_);
  void RetryHeld() EXCLUDES(mu_);
  // What the gate needs to know now (reads the lock file, then takes mu_).
  GateInputs ReadGateInputs() EXCLUDES(mu_);
  // Starts `job` on its own thread unless a job runs or awaits FinishJobIfDone.
  // `request`: the API request it answers, if any.
  bool StartJob(RunJob job, std::shared_ptr<ApiRequest> request, std::string* refusal)
      EXCLUDES(mu_);
  void ProcessApiJobs() EXCLUDES(mu_);
  // Reaps a finished job: its components' trigger instances start afresh.
  void FinishJobIfDone(int64_t now_us) EXCLUDES(mu_);
  void SaveRuleState(bool force, int64_t now_us);
  void SaveActions() EXCLUDES(mu_);
  DecisionContext BuildDecisionContext(std::vector<TriggerStatus> trigger_states) EXCLUDES(mu_);
  // Stops the decider and the state writer (this one after writing what is pending).
  void StopWorkers() EXCLUDES(mu_);
  void WriteDaemonInfo() EXCLUDES(mu_);
  nlohmann::json StatusLocked() REQUIRES(mu_);
  // For the status of trigger `t`: the decision-matrix row it would select
  // if it fired now and whether the daemon would act on it at this moment.
  nlohmann::json IfFiredLocked(const TriggerStatus& t) const REQUIRES(mu_);
  // Pushes a change of state to the dashboards (GET /api/v1/events); a no-op
  // without the API. Any thread; never blocks on a client.
  void Emit(const std::string& type, const nlohmann::json& data);
  // The short state systemd shows (service_notify.h). Control thread.
  std::string ServiceStatus() EXCLUDES(mu_);

  Env* env_;
  const Spec& spec_;
  const DriverRegistry& registry_;
  WatchOptions options_;
  WatchLogger* log_;

  // Control thread only (the store is also read by the decider and the
  // integrity checks: Store is thread-safe).
  std::unique_ptr<Store> store_;
  std::unique_ptr<StateDb> db_;          // read at start; written by writer_ only
  std::unique_ptr<StateWriter> writer_;  // Run only
  std::thread decider_;                  // Run only
  std::unique_ptr<StateDb> decider_db_;  // the decider's connection
  std::unique_ptr<RuleEngine> engine_;
  SignalDeriver deriver_;
  ProcessSampler sampler_;
  std::map<std::string, std::unique_ptr<Driver>> health_drivers_;     // used by worker threads
  std::map<std::string, std::unique_ptr<Driver>> integrity_drivers_;  // the same, own instances
  std::unique_ptr<Prober> prober_;
  std::unique_ptr<ApiServer> api_;
  std::atomic<ApiServer*> events_{nullptr};               // api_ once started, for Emit
  std::set<std::pair<std::string, std::string>> non_ok_;  // instances pending or firing
  bool rules_dirty_ = false;
  int64_t last_rules_save_us_ = 0;
  int64_t last_held_retry_us_ = 0;
  std::unique_ptr<RollbackJob> job_;  // running, or finished and not yet reaped
  // restore_points.every of the spec (null when not set).
  std::unique_ptr<RestorePointScheduler> scheduled_;
  // Stops blue/green services' previous slots when keep_previous ends (null
  // when the spec has none).
  std::unique_ptr<SlotRetirer> retirer_;
  std::unique_ptr<StoreReplicator> replicator_;  // when the spec has a remote store
  ServiceNotifier service_;                      // readiness, watchdog and STATUS= for systemd

  // Shared between the control, prober, job and API threads.
  mutable Mutex mu_;
  CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  std::deque<ProbeOutcome> outcomes_ GUARDED_BY(mu_);
  // Firing triggers for the decider, and its answers for the control thread.
  std::deque<DecisionRequest> to_decide_ GUARDED_BY(mu_);
  std::deque<PreparedDecision> decided_ GUARDED_BY(mu_);
  bool decider_stop_ GUARDED_BY(mu_) = false;
  // The map is built by the control thread under mu_ (AddView) before the
  // prober starts, then only read: the control thread reads it without mu_,
  // other threads with it. The views' fields are guarded by mu_.
  std::map<std::string, std::unique_ptr<ComponentView>> views_;
  std::vector<TriggerStatus> trigger_states_ GUARDED_BY(mu_);
  PauseState paused_ GUARDED_BY(mu_);
  ActionGate gate_ GUARDED_BY(mu_);
  bool actions_dirty_ GUARDED_BY(mu_) = false;  // recorded by a job, to persist
  bool run_active_ GUARDED_BY(mu_) = false;
  bool run_finished_ GUARDED_BY(mu_) = false;  // until FinishJobIfDone reaps it
  std::string run_id_ GUARDED_BY(mu_);         // the run in progress (once known)
  // "rollback of orchestrator (trigger:health_check_failures)"
  std::string run_description_ GUARDED_BY(mu_);
  int64_t run_started_wall_us_ GUARDED_BY(mu_) = 0;
  // Components the running rollback affects.
  std::set<std::string> suppressed_ GUARDED_BY(mu_);
  std::vector<std::string> finished_affected_ GUARDED_BY(mu_);  // to reset when reaped
  std::deque<nlohmann::json> decisions_ GUARDED_BY(mu_);        // recent, newest last
  // Rollbacks asked for through the API, for the control thread to start.
  std::deque<std::shared_ptr<ApiRequest>> api_requests_ GUARDED_BY(mu_);
  int64_t api_answer_timeout_ms_ GUARDED_BY(mu_) = 10'000;
  WatchMetrics metrics_ GUARDED_BY(mu_);
  int api_port_ GUARDED_BY(mu_) = 0;

  // API threads: their own connection to the state database.
  Mutex api_db_mu_;
  std::unique_ptr<StateDb> api_db_ PT_GUARDED_BY(api_db_mu_);
};

// `backstop watch` (and `--once`): runs the daemon, stopping on SIGINT or
// SIGTERM. Returns the process exit code (0 ok; 1 --once found a problem; 2
// bad input; 3 refused).
int RunWatchCommand(Env* env, const Spec& spec, const DriverRegistry& registry,
                    const WatchOptions& options, Output& out);

}  // namespace backstop

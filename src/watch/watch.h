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
//   rollback  at most one at a time: plans (plan.h) and runs (run.h) a
//             rollback under the environment lock the CLI also takes
//   api       cpp-httplib's workers (api.h)
//
// Safety rules on an automatic rollback (every decision is logged):
//   - dry run (--dry-run): decide and log, never act
//   - paused (`backstop watch pause`, or POST /api/v1/pause): stored in the
//     state database, so it survives restarts; re-read before every action
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
// every change and every few seconds, and reloaded on start.
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

#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/env.h"
#include "base/output.h"
#include "base/status.h"
#include "drivers/driver.h"
#include "run/state_db.h"
#include "spec/spec.h"
#include "store/store.h"
#include "watch/api.h"
#include "watch/decision.h"
#include "watch/prober.h"
#include "watch/rules.h"
#include "watch/service_notify.h"
#include "watch/signals.h"

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

// Log lines: text ("<ts> LEVEL msg key=value ...") or JSON lines
// ({"ts", "level", "msg", "fields"}), on `out` (stderr by default). Any
// registered secret is replaced by "[redacted]" wherever it would appear.
// Thread-safety: safe from any thread.
class WatchLogger {
 public:
  explicit WatchLogger(bool json, FILE* out = stderr, Clock* clock = nullptr);
  void Log(const std::string& level, const std::string& msg,
           const nlohmann::json& fields = nlohmann::json::object());
  void Info(const std::string& msg, const nlohmann::json& fields = nlohmann::json::object()) {
    Log("info", msg, fields);
  }
  void Warn(const std::string& msg, const nlohmann::json& fields = nlohmann::json::object()) {
    Log("warn", msg, fields);
  }
  void Error(const std::string& msg, const nlohmann::json& fields = nlohmann::json::object()) {
    Log("error", msg, fields);
  }
  void AddSecret(const std::string& secret);

 private:
  std::string Redact(std::string text) const;
  bool json_;
  FILE* out_;
  Clock* clock_;
  std::mutex mu_;
  std::vector<std::string> secrets_;
};

// The pause flag, kept in the state database under "watch.paused".
struct PauseState {
  bool paused = false;
  std::string reason;
  std::string by;  // "cli", "api 127.0.0.1"
  int64_t at_wall_us = 0;
  nlohmann::json ToJson() const;
};
Result<PauseState> ReadPauseState(StateDb& db);
Status WritePauseState(StateDb& db, const PauseState& state);

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
  ApiReply GetRuns(int limit) override;
  ApiReply GetRun(const std::string& id) override;
  ApiReply RequestRollback(const nlohmann::json& body, const std::string& actor) override;
  ApiReply SetPaused(bool paused, const std::string& reason, const std::string& actor) override;
  std::string MetricsText() override;

 private:
  struct ComponentView;
  struct RunJob;
  // Why a firing trigger is held, for the ones that can clear by themselves.
  enum class Gate { kPaused, kRunActive, kLockHeld, kCooldown, kCap, kRestart };
  struct Held {
    TriggerEvent event;
    Gate gate = Gate::kPaused;
  };
  struct Action {
    int64_t at_wall_us = 0;
    std::vector<std::string> components;
    std::string trigger;  // empty for API requests
    bool automatic = false;
  };

  Status Open();
  std::vector<ProbeTarget> BuildTargets(bool spread);
  // Adds `c`'s invariant checks ("<name>#integrity") when a trigger watches
  // its integrity signal.
  void AddIntegrityTarget(const ComponentSpec& c, std::vector<ProbeTarget>& targets);
  // For driver calls outside a run (health, invariants, Describe).
  DriverContext DaemonDriverContext();
  void OnOutcome(ProbeOutcome&& outcome);
  void HandleOutcome(ProbeOutcome& outcome, int64_t now_us);
  void HandleEvents(const std::vector<TriggerEvent>& events, bool may_act);
  void HandleFiring(const TriggerEvent& event, bool may_act);
  void RetryHeld();
  bool StartJob(RunJob job, std::string* refusal);
  void ProcessApiJobs();
  void RunJobThread(std::shared_ptr<RunJob> job);
  void FinishJobIfDone(int64_t now_us);
  void SaveRuleState(bool force, int64_t now_us);
  void RefreshPaused();
  void LoadActions();
  void SaveActions();
  DecisionContext BuildDecisionContext();
  std::string CooldownBlock(const std::vector<std::string>& components, int64_t now_wall_us);
  int AutomaticInLastHour(int64_t now_wall_us);
  void WriteDaemonInfo();
  nlohmann::json StatusLocked();
  // The short state systemd shows (service_notify.h). Control thread.
  std::string ServiceStatus();

  Env* env_;
  const Spec& spec_;
  const DriverRegistry& registry_;
  WatchOptions options_;
  WatchLogger* log_;

  // Control thread only.
  std::unique_ptr<Store> store_;
  std::unique_ptr<StateDb> db_;
  std::unique_ptr<RuleEngine> engine_;
  SignalDeriver deriver_;
  ProcessSampler sampler_;
  std::map<std::string, std::unique_ptr<Driver>> health_drivers_;     // used by worker threads
  std::map<std::string, std::unique_ptr<Driver>> integrity_drivers_;  // the same, own instances
  std::unique_ptr<Prober> prober_;
  std::unique_ptr<ApiServer> api_;
  std::map<std::pair<std::string, std::string>, Held> held_;  // (trigger, component)
  std::set<std::pair<std::string, std::string>> non_ok_;      // instances pending or firing
  bool rules_dirty_ = false;
  int64_t last_rules_save_us_ = 0;
  int64_t last_pause_check_us_ = 0;
  std::thread run_thread_;
  ServiceNotifier service_;  // readiness, watchdog and STATUS= for systemd

  // Shared; guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::deque<ProbeOutcome> outcomes_;
  std::map<std::string, std::unique_ptr<ComponentView>> views_;
  std::vector<TriggerStatus> trigger_states_;
  PauseState paused_;
  std::vector<Action> actions_;
  bool run_active_ = false;
  bool run_finished_ = false;
  std::string run_id_;           // the run in progress (once known)
  std::string run_description_;  // "rollback of orchestrator (trigger:health_check_failures)"
  int64_t run_started_wall_us_ = 0;
  std::set<std::string> suppressed_;            // components the running rollback affects
  std::vector<std::string> finished_affected_;  // to reset when the job ends
  std::deque<nlohmann::json> decisions_;        // recent decisions, newest last
  // Rollbacks asked for through the API, for the control thread to start;
  // the promise receives {0, ""} (started) or {HTTP status, why not}.
  using ApiAnswer = std::pair<int, std::string>;
  std::deque<std::pair<std::shared_ptr<RunJob>, std::shared_ptr<std::promise<ApiAnswer>>>>
      api_jobs_;
  WatchMetrics metrics_;
  int api_port_ = 0;

  // API threads: their own connection to the state database.
  std::mutex api_db_mu_;
  std::unique_ptr<StateDb> api_db_;
};

// `backstop watch` (and `--once`): runs the daemon, stopping on SIGINT or
// SIGTERM. Returns the process exit code (0 ok; 1 --once found a problem; 2
// bad input; 3 refused).
int RunWatchCommand(Env* env, const Spec& spec, const DriverRegistry& registry,
                    const WatchOptions& options, Output& out);

}  // namespace backstop

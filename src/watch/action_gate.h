// ActionGate: whether an automatic rollback may go now.
//
// The gates, in the order they are checked: automatic actions paused, a
// rollback already running, the environment lock held by someone else (a
// manual operation), a component rolled back within the cooldown, the cap of
// automatic rollbacks per hour. A firing trigger a gate holds is kept
// (Hold) and handed back (TakeReopened) once that gate opens, while the
// trigger still fires; so is one found firing in the saved state at start-up
// (Gate::kRestart), once its component has been probed afresh.
//
// A pure class: it reads the time from its Clock and is told everything else
// (GateInputs: what the caller just read of the pause flag, the running job
// and the lock); it does no I/O and starts no thread. The actions it counts
// are persisted by the caller (watch_state.h).
//
// Ownership: borrows the clock. Thread-safety: none; the Watcher keeps it
// under its mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/enum_names.h"
#include "base/env.h"
#include "watch/rules.h"
#include "watch/watch_state.h"

namespace backstop {

// A gate that holds a firing trigger and can open by itself.
enum class Gate { kPaused, kRunActive, kLockHeld, kCooldown, kCap, kRestart };
inline constexpr EnumNames<Gate, 6> kGateNames{{{
    {Gate::kPaused, "paused"},
    {Gate::kRunActive, "run_active"},
    {Gate::kLockHeld, "lock_held"},
    {Gate::kCooldown, "cooldown"},
    {Gate::kCap, "cap"},
    {Gate::kRestart, "restart"},
}}};
constexpr std::string_view Name(Gate g) { return kGateNames.Name(g); }

// What the caller knows of the world when it asks.
struct GateInputs {
  PauseState pause;
  bool run_active = false;
  std::string active_run;      // the running job's run id, else its description
  nlohmann::json lock_holder;  // EnvironmentLock::CurrentHolder; null: free
};

struct GateVerdict {
  bool go = false;
  std::optional<Gate> gate;  // the gate that holds (unset when go)
  std::string why;           // for the decision log; empty when go
};

class ActionGate {
 public:
  ActionGate(Clock* clock, int64_t cooldown_ms, int max_per_hour);

  // Whether an automatic rollback of `components` may start now.
  GateVerdict MayAct(const std::vector<std::string>& components, const GateInputs& in) const;

  // Counts a rollback that started now (automatic or asked for through the API).
  void RecordAction(const std::vector<std::string>& components, const std::string& trigger,
                    bool automatic);
  // Replaces the actions (as loaded from the state database).
  void SetActions(std::vector<WatchAction> actions);
  // Drops the actions that no longer count for a cooldown or the cap, and
  // returns the rest (what to persist).
  const std::vector<WatchAction>& PruneActions();
  const std::vector<WatchAction>& actions() const { return actions_; }

  int AutomaticInLastHour() const;
  // "" when none of `components` is in its cooldown, else why.
  std::string CooldownBlock(const std::vector<std::string>& components) const;

  // Held triggers, one per (trigger, component).
  void Hold(const TriggerEvent& event, Gate gate);
  void Forget(const std::string& trigger, const std::string& component);
  bool HasHeld() const { return !held_.empty(); }
  size_t held_count() const { return held_.size(); }

  // The state of a trigger instance now: its reason when it still fires,
  // nullopt when it does not.
  using FiringReason = std::function<std::optional<std::string>(const std::string& trigger,
                                                                const std::string& comp)>;
  // Whether a component has been probed since the daemon started.
  using ProbedAfresh = std::function<bool(const std::string& component)>;
  // Removes and returns the held triggers whose gate is open now (with their
  // current reason); forgets those that stopped firing.
  std::vector<TriggerEvent> TakeReopened(const GateInputs& in, const FiringReason& firing,
                                         const ProbedAfresh& probed);

 private:
  struct Held {
    TriggerEvent event;
    Gate gate = Gate::kPaused;
  };

  Clock* clock_;
  int64_t cooldown_us_;
  int max_per_hour_;
  std::vector<WatchAction> actions_;
  std::map<std::pair<std::string, std::string>, Held> held_;  // (trigger, component)
};

}  // namespace backstop

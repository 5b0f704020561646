// The gate in front of every automatic rollback. See action_gate.h.
#include "watch/action_gate.h"

#include <algorithm>

#include "base/units.h"

namespace backstop {

ActionGate::ActionGate(Clock* clock, int64_t cooldown_ms, int max_per_hour)
    : clock_(clock), cooldown_us_(cooldown_ms * 1000), max_per_hour_(max_per_hour) {}

GateVerdict ActionGate::MayAct(const std::vector<std::string>& components,
                               const GateInputs& in) const {
  GateVerdict v;
  if (in.pause.paused) {
    v.gate = Gate::kPaused;
    v.why = "automatic actions are paused (by " + (in.pause.by.empty() ? "?" : in.pause.by) +
            (in.pause.reason.empty() ? "" : ": " + in.pause.reason) +
            "); resume with `backstop watch resume`";
    return v;
  }
  if (in.run_active) {
    v.gate = Gate::kRunActive;
    v.why = "a rollback is already running (" + in.active_run + ")";
    return v;
  }
  if (!in.lock_holder.is_null()) {
    v.gate = Gate::kLockHeld;
    v.why = "the environment lock is held (run " +
            in.lock_holder.value("run_id", std::string("?")) + ", `" +
            in.lock_holder.value("command", std::string("?")) +
            "`): a manual operation is in progress";
    return v;
  }
  if (std::string cooldown = CooldownBlock(components); !cooldown.empty()) {
    v.gate = Gate::kCooldown;
    v.why = cooldown;
    return v;
  }
  if (const int last_hour = AutomaticInLastHour(); last_hour >= max_per_hour_) {
    v.gate = Gate::kCap;
    v.why = "cap reached: " + std::to_string(last_hour) +
            " automatic rollbacks in the last hour (--max-per-hour " +
            std::to_string(max_per_hour_) + ")";
    return v;
  }
  v.go = true;
  return v;
}

void ActionGate::RecordAction(const std::vector<std::string>& components,
                              const std::string& trigger, bool automatic) {
  actions_.push_back(WatchAction{clock_->WallMicros(), components, trigger, automatic});
}

void ActionGate::SetActions(std::vector<WatchAction> actions) { actions_ = std::move(actions); }

const std::vector<WatchAction>& ActionGate::PruneActions() {
  const int64_t now = clock_->WallMicros();
  const int64_t keep_us = std::max<int64_t>(kActionHourUs, cooldown_us_);
  actions_.erase(std::remove_if(actions_.begin(), actions_.end(),
                                [&](const WatchAction& a) { return now - a.at_wall_us > keep_us; }),
                 actions_.end());
  return actions_;
}

int ActionGate::AutomaticInLastHour() const {
  const int64_t now = clock_->WallMicros();
  int n = 0;
  for (const auto& a : actions_) n += a.automatic && now - a.at_wall_us < kActionHourUs;
  return n;
}

std::string ActionGate::CooldownBlock(const std::vector<std::string>& components) const {
  const int64_t now = clock_->WallMicros();
  for (auto it = actions_.rbegin(); it != actions_.rend(); ++it) {
    const int64_t age_us = now - it->at_wall_us;
    if (age_us >= cooldown_us_) continue;
    for (const auto& c : components) {
      if (std::find(it->components.begin(), it->components.end(), c) != it->components.end()) {
        return "cooldown: " + c + " was rolled back " + FormatDurationMs(age_us / 1000) +
               " ago (cooldown " + FormatDurationSpec(cooldown_us_ / 1000) + ", --cooldown)";
      }
    }
  }
  return "";
}

void ActionGate::Hold(const TriggerEvent& event, Gate gate) {
  held_[{event.trigger, event.component}] = Held{event, gate};
}

void ActionGate::Forget(const std::string& trigger, const std::string& component) {
  held_.erase({trigger, component});
}

std::vector<TriggerEvent> ActionGate::TakeReopened(const GateInputs& in, const FiringReason& firing,
                                                   const ProbedAfresh& probed) {
  std::vector<TriggerEvent> again;
  for (auto it = held_.begin(); it != held_.end();) {
    const auto& [trigger, component] = it->first;
    std::optional<std::string> reason = firing(trigger, component);
    if (!reason) {
      it = held_.erase(it);  // resolved meanwhile: nothing to decide
      continue;
    }
    bool open = false;
    switch (it->second.gate) {
      case Gate::kPaused:
        open = !in.pause.paused;
        break;
      case Gate::kRunActive:
        open = !in.run_active;
        break;
      case Gate::kLockHeld:
        open = in.lock_holder.is_null();
        break;
      case Gate::kCooldown:
        open = CooldownBlock({component}).empty();
        break;
      case Gate::kCap:
        open = AutomaticInLastHour() < max_per_hour_;
        break;
      case Gate::kRestart:
        open = probed(component);
        break;
    }
    if (!open) {
      ++it;
      continue;
    }
    TriggerEvent e = it->second.event;
    if (!reason->empty()) e.reason = *reason;
    again.push_back(std::move(e));
    it = held_.erase(it);
  }
  return again;
}

}  // namespace backstop

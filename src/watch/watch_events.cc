#include "watch/watch_events.h"

#include <utility>

namespace backstop {

Event TriggerJournalEvent(const TriggerEvent& e, int64_t wall_us, int64_t mono_us) {
  auto to_wall = [&](int64_t t_us) { return wall_us - (mono_us - t_us); };
  Event event;
  event.at_us = e.t_us > 0 ? to_wall(e.t_us) : wall_us;
  event.kind = e.to == TriggerState::kPending  ? EventKind::kTriggerPending
               : e.to == TriggerState::kFiring ? EventKind::kTriggerFiring
                                               : EventKind::kTriggerResolved;
  event.component = e.component;
  event.trigger = e.trigger;
  const char* verb = e.to == TriggerState::kPending  ? " pending on "
                     : e.to == TriggerState::kFiring ? " firing on "
                                                     : " resolved on ";
  event.message = "trigger " + e.trigger + verb + e.component + ": " + e.reason;
  nlohmann::json samples = nlohmann::json::array();
  for (const auto& s : e.samples) {
    nlohmann::json j = {{"at_us", to_wall(s.t_us)}, {"signal", s.signal}};
    if (s.missing) {
      j["missing"] = true;
    } else {
      j["value"] = s.value;
    }
    if (!s.detail.empty()) j["detail"] = s.detail;
    samples.push_back(std::move(j));
  }
  event.detail = {{"from", TriggerStateName(e.from)},
                  {"to", TriggerStateName(e.to)},
                  {"signal", e.signal},
                  {"action", e.action},
                  {"reason", e.reason},
                  {"samples", samples}};
  if (e.last_value) event.detail["last_value"] = *e.last_value;
  if (e.to == TriggerState::kPending) {
    event.detail["first_seen_us"] =
        e.samples.empty() ? event.at_us : to_wall(e.samples.front().t_us);
  }
  return event;
}

Event DecisionJournalEvent(const TriggerEvent& e, const std::string& outcome,
                           const std::string& why, const nlohmann::json& decision,
                           int64_t wall_us) {
  Event event;
  event.at_us = wall_us;
  event.kind = EventKind::kDecision;
  event.component = e.component;
  event.trigger = e.trigger;
  // The message is the reason the incident report shows for the run.
  event.message = outcome == "acted" ? why : outcome + ": " + why;
  event.detail = {{"outcome", outcome}, {"why", why}, {"held", outcome == "held"}};
  if (!decision.is_null()) event.detail["decision"] = decision;
  return event;
}

Status JournalRestorePointFailed(StateDb& db, int64_t wall_us, const std::string& label,
                                 const std::string& error) {
  Event event;
  event.at_us = wall_us;
  event.kind = EventKind::kRestorePointFailed;
  event.message = "scheduled restore point (" + label + ") failed: " + error;
  event.detail = {{"label", label}, {"scheduled", true}, {"error", error}};
  return db.AppendEvent(event).status();
}

}  // namespace backstop

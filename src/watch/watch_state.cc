// The watch daemon's persisted state. See watch_state.h.
#include "watch/watch_state.h"

#include "base/units.h"

namespace backstop {
namespace {

constexpr const char* kPausedKey = "watch.paused";
constexpr const char* kActionsKey = "watch.actions";

}  // namespace

nlohmann::json PauseState::ToJson() const {
  nlohmann::json j = {{"paused", paused}, {"reason", reason}, {"by", by}};
  j["at"] = at_wall_us > 0 ? nlohmann::json(FormatRfc3339(at_wall_us)) : nlohmann::json();
  j["at_us"] = at_wall_us;
  return j;
}

Result<PauseState> ReadPauseState(StateDb& db) {
  BACKSTOP_ASSIGN_OR_RETURN(auto value, db.Get(kPausedKey));
  PauseState s;
  if (!value) return s;
  auto j = nlohmann::json::parse(*value, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Corruption("state database key " + std::string(kPausedKey) +
                              " is not JSON; rewrite it with `backstop watch pause` or `resume`");
  }
  s.paused = j.value("paused", false);
  s.reason = j.value("reason", "");
  s.by = j.value("by", "");
  s.at_wall_us = j.value("at_us", int64_t{0});
  return s;
}

Status WritePauseState(StateDb& db, const PauseState& state) {
  return db.Put(kPausedKey, state.ToJson().dump());
}

std::vector<WatchAction> ReadWatchActions(StateDb& db) {
  std::vector<WatchAction> actions;
  auto value = db.Get(kActionsKey);
  if (!value.ok() || !*value) return actions;
  auto j = nlohmann::json::parse(**value, nullptr, false);
  if (!j.is_array()) return actions;
  for (const auto& a : j) {
    if (!a.is_object()) continue;
    WatchAction act;
    act.at_wall_us = a.value("at_us", int64_t{0});
    act.components = a.value("components", std::vector<std::string>{});
    act.trigger = a.value("trigger", "");
    act.automatic = a.value("automatic", false);
    actions.push_back(std::move(act));
  }
  return actions;
}

Status WriteWatchActions(StateDb& db, const std::vector<WatchAction>& actions) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& a : actions) {
    j.push_back({{"at_us", a.at_wall_us},
                 {"at", FormatRfc3339(a.at_wall_us)},
                 {"components", a.components},
                 {"trigger", a.trigger},
                 {"automatic", a.automatic}});
  }
  return db.Put(kActionsKey, j.dump());
}

}  // namespace backstop

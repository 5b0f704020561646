// The watch daemon's persisted state. See watch_state.h.
#include "watch/watch_state.h"

#include "base/units.h"

namespace backstop {
namespace {

constexpr const char* kPausedKey = "watch.paused";

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

}  // namespace backstop

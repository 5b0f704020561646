// The watch daemon's state kept in the state database, so that it survives
// restarts: the pause flag ("watch.paused") and the recent rollbacks that
// cooldowns and the hourly cap count ("watch.actions").
//
// Thread-safety: as StateDb (one connection per thread).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "run/state_db.h"

namespace backstop {

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

// How long an automatic rollback counts towards the hourly cap.
constexpr int64_t kActionHourUs = 3'600'000'000;

// A rollback the daemon started, automatic or asked for through the API.
struct WatchAction {
  int64_t at_wall_us = 0;
  std::vector<std::string> components;
  std::string trigger;  // empty for API requests
  bool automatic = false;
};
// The recorded actions; none when the key is absent or unreadable (the
// cooldowns then start afresh, as on a first start).
std::vector<WatchAction> ReadWatchActions(StateDb& db);
Status WriteWatchActions(StateDb& db, const std::vector<WatchAction>& actions);

}  // namespace backstop

// The watch daemon's state kept in the state database, so that it survives
// restarts: the pause flag ("watch.paused").
//
// Thread-safety: as StateDb (one connection per thread).
#pragma once

#include <cstdint>
#include <string>

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

}  // namespace backstop

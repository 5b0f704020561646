// Pruning: what rollbacks keep aside and old restore points, released on
// purpose rather than silently.
//
// A rollback never destroys data: the replaced database stays as
// <db>_pre_rollback_<run>, replaced release directories and saved stream
// content stay in the store. `backstop prune` releases them for all but the
// newest runs, deletes restore points beyond a retention count (never a
// labelled one unless asked), then deletes the blobs no remaining restore
// point or kept run refers to.
//
// REQUIRES: the caller holds the environment lock and no run is unfinished
// (a resume may need what would be pruned).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "run/run.h"

namespace backstop {

struct PruneOptions {
  int keep_runs = 3;             // the newest finished runs keep what they set aside
  int keep_restore_points = 10;  // the newest restore points are kept
  bool keep_labelled = true;     // labelled restore points are kept regardless
  bool dry_run = false;
};

struct PruneReport {
  std::vector<std::string> actions;  // one human line per thing released
  std::vector<std::string> errors;   // what could not be released (pruning continues)
  uint64_t blobs_deleted = 0;
  uint64_t bytes_freed = 0;
};

Result<PruneReport> PruneEnvironment(RunEngine& engine, const Spec& spec, Store& store,
                                     StateDb& state, const PruneOptions& options);

}  // namespace backstop

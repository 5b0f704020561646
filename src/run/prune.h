// Pruning: what rollbacks keep aside and old restore points, released on
// purpose rather than silently.
//
// A rollback never destroys data: the replaced database stays as
// <db>_pre_rollback_<run>, replaced release directories and saved stream
// content stay in the store. `backstop prune` releases them for all but the
// newest runs, deletes the restore points the retention policy does not keep
// (run/retention.h; never one with a user label unless asked, nor one a kept
// run needs), then deletes the blobs no remaining restore point or kept run
// refers to.
//
// REQUIRES: the caller holds the environment lock and no run is unfinished
// (a resume may need what would be pruned).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "run/run.h"
#include "spec/spec.h"

namespace backstop {

struct PruneOptions {
  int keep_runs = 3;  // the newest finished runs keep what they set aside
  // Which restore points are kept by age (the spec's restore_points.keep,
  // overridden by flags). Empty: the newest `keep_restore_points`.
  KeepPolicy keep;
  int keep_restore_points = 10;
  bool keep_labelled = true;  // restore points with a user label are kept regardless
  // Only restore points and unreferenced blobs: what runs kept aside stays
  // (the retention applied after each scheduled restore point).
  bool restore_points_only = false;
  bool dry_run = false;
};

struct PruneReport {
  std::vector<std::string> actions;  // one human line per thing released
  std::vector<std::string> kept;     // one line per restore point kept, saying why
  std::vector<std::string> errors;   // what could not be released (pruning continues)
  uint64_t blobs_deleted = 0;
  uint64_t bytes_freed = 0;
};

Result<PruneReport> PruneEnvironment(RunEngine& engine, const Spec& spec, Store& store,
                                     StateDb& state, const PruneOptions& options);

}  // namespace backstop

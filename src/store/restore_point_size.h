// How much of the store each restore point takes, for `backstop snapshots`
// and the dashboard: the blobs are content-addressed and shared, so a
// restore point has two sizes, as in pgBackRest's "backup" and "repository"
// sizes: what it names in all, and what it added to the store.
//
// Thread-safety: reads the store only; safe beside writers (a blob being
// written is not yet named by any manifest).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "store/restore_point.h"
#include "store/store.h"

namespace backstop {

struct RestorePointSize {
  uint64_t stored_bytes = 0;  // every blob it names, as stored (compressed)
  uint64_t added_bytes = 0;   // of those, the blobs no older restore point names
  size_t missing_blobs = 0;   // named but not in the store (counted as 0 bytes)
};

// One size per restore point of `points`, in the same order. REQUIRES:
// `points` oldest first (as ListRestorePoints gives them), so that "older"
// means earlier in the list. Stats each distinct blob once.
std::vector<RestorePointSize> MeasureRestorePoints(Store& store,
                                                   const std::vector<RestorePoint>& points);

}  // namespace backstop

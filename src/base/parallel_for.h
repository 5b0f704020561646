// ParallelFor: runs a function over the indexes 0..n-1 on a few threads,
// for work that is many independent, similar items (re-hashing blobs,
// extracting dump files). Not a pool of long-lived workers.
//
// Thread-safety: `fn` is called from several threads at once and must be
// safe for that; ParallelFor itself may be called from any thread.
#pragma once

#include <cstddef>
#include <functional>

#include "base/status.h"

namespace backstop {

// Calls fn(i) for each i in [0, n), on up to `threads` threads (the caller's
// among them; fewer when n is smaller; at least one). After the first
// failure no further index is started; the calls already running finish.
// Returns the first failure, or OK. Each index is passed at most once.
Status ParallelFor(size_t n, int threads, const std::function<Status(size_t)>& fn);

}  // namespace backstop

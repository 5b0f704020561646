// Exit codes of every Backstop command, as the README's table documents them,
// and the one mapping from a Status to its exit code. The CLI and the watch
// daemon both use it, so that a kind of error always exits the same way.
//
// Thread-safety: pure functions.
#pragma once

#include "base/status.h"

namespace backstop {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;   // the operation ran and failed (unhealthy, verify failed...)
constexpr int kExitInvalid = 2;  // bad input: spec, flags, selectors
constexpr int kExitRefused = 3;  // refused before acting: lock held, confirmation, data loss,
                                 // a damaged restore point, a run that cannot be resumed

// InvalidArgument, NotFound -> 2; Aborted, DataLoss, Corruption -> 3; OK -> 0;
// anything else -> 1.
int ExitCodeFor(const Status& status);

}  // namespace backstop

// Retention of restore points in the manner of restic's `forget --keep-*`:
// which restore points a KeepPolicy keeps, and why.
//
// Walking the restore points newest first, each rule keeps the newest one of
// each of its periods (hour, day, ISO week, month, in UTC) until it has kept
// as many periods as its count: `hourly: 24` keeps the newest restore point
// of each of the last 24 hours that have one, however far back they go.
// `last: N` keeps the newest N. A restore point kept by several rules lists
// every reason. What else `backstop prune` keeps regardless of the policy
// (user labels, what kept runs need) is decided there (prune.cc).
//
// Thread-safety: pure functions.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "spec/spec.h"
#include "store/restore_point.h"

namespace backstop {

// For each restore point the policy keeps (by id), why: "last 1",
// "hourly 2026-11-30T14", "daily 2026-11-30", "weekly 2026-W48",
// "monthly 2026-11". `points` may be in any order.
std::map<std::string, std::vector<std::string>> KeptByPolicy(
    const std::vector<RestorePoint>& points, const KeepPolicy& policy);

// "last 3, hourly 24, daily 7" (the rules with a count), or "none".
std::string DescribeKeepPolicy(const KeepPolicy& policy);

}  // namespace backstop

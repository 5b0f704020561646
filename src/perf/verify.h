// `backstop verify --performance` and a rollback's last verification:
// measure every component now and compare it with the baseline of the
// restore point it is on (compare.h).
//
// "The restore point it is on": `preferred_restore_point` when it holds the
// component (the rollback's target, or `verify --performance --against`);
// otherwise the newest restore point that is not a safety one and holds the
// component. A restore point taken before baselines existed has none: its
// rows say "no baseline recorded", never an error.
//
// Thread-safety: one thread (it drives the caller's drivers).
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "drivers/driver.h"
#include "perf/compare.h"
#include "spec/spec.h"
#include "store/store.h"

namespace backstop {

using DriverLookup = std::function<Result<Driver*>(const ComponentSpec&)>;

// The "performance" value of a restore point's entry for `c`, measured now
// (baseline.h); null when the component has nothing to measure. Never fails:
// a measurement that fails is recorded as missing with its reason.
nlohmann::json MeasureBaseline(Driver& driver, const ComponentSpec& c, DriverContext& ctx);

// Measures every component of `spec` now and compares. Errors only when the
// store cannot be listed or a restore point named by `preferred_restore_point`
// cannot be read.
Result<PerformanceVerdict> VerifyPerformance(const Spec& spec, Store& store,
                                             const DriverLookup& driver_for,
                                             const DriverContext& context,
                                             const std::string& preferred_restore_point = "");

}  // namespace backstop

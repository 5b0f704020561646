// DeployGuard: after `backstop deploy --atomic --watch-for DURATION`, watches
// the deployed components for DURATION with the spec's triggers, evaluated
// in-process by the same rule engine (rules.h) and signal derivation
// (signals.h) as `backstop watch`, and reports the first trigger that fires.
//
// Each component is probed at its own health interval (capped so that a
// short DURATION still sees a few samples) by the `probe` callback given
// (the command line passes the component's driver Health). Time comes from
// the Env's clock only, so a test runs an hour of watching on a FakeClock.
//
// `backstop drill` runs the same loop after injecting a fault, with the
// integrity checks of data components as well (DeployGuardOptions::integrity).
//
// Thread-safety: one thread; Watch blocks for up to DURATION.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/env.h"
#include "drivers/driver.h"
#include "spec/spec.h"
#include "watch/rules.h"

namespace backstop {

using ProbeComponent = std::function<HealthResult(const ComponentSpec&)>;

struct DeployGuardOptions {
  int64_t watch_for_ms = 0;
  // Probes at most this far apart, whatever the component's interval.
  int64_t max_interval_ms = 5'000;
  // Called after each round of probes (for progress lines); may be empty.
  std::function<void(int64_t elapsed_ms)> on_round;
  // Called with every change of a trigger's state (pending, firing,
  // resolved), for the event journal; may be empty.
  std::function<void(const TriggerEvent&)> on_event;
  // When set, components watched by an `integrity` trigger are also checked
  // with it each round (IntegrityHealth of their invariants): a pass or fail
  // is an integrity sample, an unknown result none (as in `backstop watch`).
  ProbeComponent integrity;
};

// The first trigger that fired within the window, or nullopt when none did.
// Only triggers that apply to `components` are evaluated; a component not in
// the spec is an InvalidArgument.
Result<std::optional<TriggerEvent>> WatchAfterDeploy(Env* env, const Spec& spec,
                                                     const std::vector<std::string>& components,
                                                     const DeployGuardOptions& options,
                                                     const ProbeComponent& probe);

// "trigger service_down fired for orchestrator: 3 consecutive failures (last:
// HTTP 503); samples: 0 at 12:00:01.250 (HTTP 503), ..."
std::string DescribeFiring(const TriggerEvent& event);

}  // namespace backstop

// What the Watcher's source files (watch.cc, watcher_probes.cc,
// watcher_api.cc) share: the per-component view. Not for
// use outside the Watcher.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "drivers/driver.h"
#include "watch/signals.h"
#include "watch/watch.h"

namespace backstop {

// A probe's state as the API and the event stream name it.
inline const char* HealthStateName(HealthResult::State s) {
  switch (s) {
    case HealthResult::State::kPass:
      return "pass";
    case HealthResult::State::kFail:
      return "fail";
    default:
      return "unknown";
  }
}

struct Watcher::ComponentView {
  std::string name;
  ComponentKind kind = ComponentKind::kService;
  std::string driver;
  std::string mode;   // http | tcp | exec | grpc | driver | "" (not probed)
  std::string probe;  // what is probed, for status
  int64_t interval_ms = 0;
  bool process_driver = false;
  bool has_result = false;
  HealthResult last;
  bool reachable = true;
  bool reachability_known = false;
  int64_t last_wall_us = 0;
  std::string metrics_url;
  std::optional<MetricRatio> ratio;
  std::string metrics_problem;
  std::string integrity;  // the last invariant check, for status ("" : none)
  uint64_t total = 0;
  uint64_t failures = 0;
  Histogram latency{ProbeLatencyBounds()};
};

}  // namespace backstop

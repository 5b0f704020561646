// What the Watcher's source files (watch.cc, watcher_probes.cc,
// watcher_api.cc) share: the per-component view and a few constants. Not for
// use outside the Watcher.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "drivers/driver.h"
#include "run/plan.h"
#include "watch/signals.h"
#include "watch/watch.h"

namespace backstop {

constexpr int64_t kHourUs = 3'600'000'000;

struct Watcher::ComponentView {
  std::string name, kind, driver;
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

struct Watcher::RunJob {
  std::vector<RollbackRequest> requests;
  std::vector<std::string> components;  // for cooldowns and suppression
  std::string triggered_by = "manual";
  nlohmann::json detail;
  std::string command;
  std::string description;
  bool automatic = false;
  std::string trigger;
};

}  // namespace backstop

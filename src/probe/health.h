// HealthResult: the outcome of one health check of one component, from a
// probe (probe.h) or from a driver's own check (Driver::Health).
//
// Thread-safety: a plain value.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

namespace backstop {

struct HealthResult {
  enum class State { kPass, kFail, kUnknown };
  State state = State::kUnknown;
  int64_t latency_ms = 0;
  std::string detail;  // "HTTP 200", "connection refused", "accepting connections"
  // Extra signals for triggers: "connect_time_ms", "disconnected_ms", "cpu_percent", ...
  std::map<std::string, double> signals;
  bool pass() const { return state == State::kPass; }
  static HealthResult Make(State state, int64_t latency_ms, std::string detail) {
    HealthResult r;
    r.state = state;
    r.latency_ms = latency_ms;
    r.detail = std::move(detail);
    return r;
  }
};

}  // namespace backstop

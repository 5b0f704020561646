// Performance baselines (seed 4.3): what each component measures of itself
// (Driver::MeasurePerformance), in the form stored with a restore point.
//
// A restore point's entry for a component carries, under "performance":
//   {"metrics": [{"name": "probe p95", "kind": "latency", "value": 1.82}, ...],
//    "samples": 20}
// or, when the measurement failed (the snapshot itself does not fail):
//   {"missing": "the health probe of webui ... did not pass: ..."}
// and nothing at all when the component has nothing to measure (config
// files) or the restore point predates baselines. Latency and query values
// are milliseconds, throughput values messages per second. The entry is
// part of the manifest, so the manifest's checksum covers it and it is
// written, like the rest, in one atomic create.
//
// Thread-safety: free functions; the Driver's own rules apply.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "drivers/driver.h"

namespace backstop {

// "latency", "query", "throughput".
const char* MetricKindName(PerformanceMetric::Kind kind);
std::optional<PerformanceMetric::Kind> ParseMetricKind(const std::string& name);

nlohmann::json MetricsToJson(const std::vector<PerformanceMetric>& metrics);
// Entries that are not {"name": string, "kind": known, "value": number} are skipped.
std::vector<PerformanceMetric> MetricsFromJson(const nlohmann::json& j);

// One measurement, as stored (above).
struct Measurement {
  std::vector<PerformanceMetric> metrics;
  std::string missing;  // why nothing was measured, when the driver failed
  bool nothing_to_measure() const { return metrics.empty() && missing.empty(); }
};

// Runs driver.MeasurePerformance and records a failure as `missing`.
Measurement MeasureComponent(Driver& driver, const ComponentSpec& c, DriverContext& ctx);

// The "performance" value of an entry; null for nothing_to_measure().
nlohmann::json BaselineToJson(const Measurement& m, int samples);
// Reads an entry's "performance"; nullopt when the entry has none.
std::optional<Measurement> BaselineFromEntry(const nlohmann::json& entry);

}  // namespace backstop

// Comparing a measurement of now with a restore point's performance
// baseline, within the spec's `performance` tolerances (seed 4.3).
//
// Per metric, with tolerance t (percent) from the spec:
//   latency, query  degraded when now > baseline × (1 + t/100) and now −
//                   baseline >= min_change (small absolute changes are
//                   noise), or when max_latency is set and now exceeds it
//                   (with or without a baseline);
//   throughput      degraded when now < baseline × (1 − t/100).
// ratio = now / baseline. A metric with no baseline is "no baseline" (never
// an error: older restore points have none); a component that could not be
// measured now is "failed", one whose driver declined (a stream would
// capture the benchmark's messages) "skipped". A row's status is an enum
// (MetricStatus) with one EnumNames table; JSON and the table carry its name,
// and a verdict read back from a run's summary refuses a name it does not
// know (Corruption).
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/enum_names.h"
#include "base/status.h"
#include "perf/baseline.h"
#include "spec/spec.h"

namespace backstop {

// Where one row of a comparison stands (above).
enum class MetricStatus { kOk, kDegraded, kNoBaseline, kFailed, kSkipped };
inline constexpr EnumNames<MetricStatus, 5> kMetricStatusNames{{{
    {MetricStatus::kOk, "ok"},
    {MetricStatus::kDegraded, "degraded"},
    {MetricStatus::kNoBaseline, "no baseline"},
    {MetricStatus::kFailed, "failed"},
    {MetricStatus::kSkipped, "skipped"},
}}};
constexpr std::string_view Name(MetricStatus s) { return kMetricStatusNames.Name(s); }
inline void to_json(nlohmann::json& j, MetricStatus v) { j = Name(v); }

struct MetricComparison {
  std::string component;
  std::string metric;  // "probe p95"; empty for a row about the whole component
  PerformanceMetric::Kind kind = PerformanceMetric::Kind::kLatency;
  std::optional<double> baseline;
  std::optional<double> now;
  std::optional<double> ratio;  // now / baseline
  double tolerance_pct = 0;
  MetricStatus status = MetricStatus::kOk;
  std::string detail;  // why, for every status but ok
};

struct PerformanceVerdict {
  std::vector<MetricComparison> rows;
  // False when any row is degraded or failed.
  bool ok() const;
  std::vector<const MetricComparison*> Problems() const;
  // One line: "performance within the baselines (9 metrics)" or
  // "performance DEGRADED: webui probe p95 4.1× the baseline (tolerance +50%)".
  std::string Summary() const;
  // {"ok", "summary", "rows": [{"component","metric","kind","baseline","now","ratio",
  //  "tolerance_pct","status","detail"}]} (absent numbers are null).
  nlohmann::json ToJson() const;
  // Reads ToJson's form back (rows that are not objects are skipped). A row
  // whose status is not one Backstop writes is Corruption; `where` names the
  // JSON's home for that message ("run run-1's summary").
  static Result<PerformanceVerdict> FromJson(const nlohmann::json& j, const std::string& where);
};

// The tolerance the spec gives metrics of `kind`, in percent.
double ToleranceFor(const PerformanceSpec& spec, PerformanceMetric::Kind kind);

// Compares one metric. `baseline` nullopt: none recorded (`why_no_baseline`
// then says so in the detail).
MetricComparison CompareMetric(const PerformanceSpec& spec, const std::string& component,
                               const PerformanceMetric& now, std::optional<double> baseline,
                               const std::string& why_no_baseline = "no baseline recorded");

// Compares everything `now` measured of `component` with `baseline` (the
// restore point's, nullopt when it has none; `baseline_source` names the
// restore point for the details). A component with nothing to measure
// yields no row.
std::vector<MetricComparison> CompareComponent(const PerformanceSpec& spec,
                                               const std::string& component, const Measurement& now,
                                               const std::optional<Measurement>& baseline,
                                               const std::string& baseline_source);

// The table: component, metric, baseline, now, ratio, tolerance, result.
std::string RenderPerformanceTable(const PerformanceVerdict& verdict);

}  // namespace backstop

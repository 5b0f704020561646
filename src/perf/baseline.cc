#include "perf/baseline.h"

namespace backstop {

const char* MetricKindName(PerformanceMetric::Kind kind) {
  switch (kind) {
    case PerformanceMetric::Kind::kLatency:
      return "latency";
    case PerformanceMetric::Kind::kQuery:
      return "query";
    case PerformanceMetric::Kind::kThroughput:
      return "throughput";
  }
  return "latency";
}

std::optional<PerformanceMetric::Kind> ParseMetricKind(const std::string& name) {
  for (auto k : {PerformanceMetric::Kind::kLatency, PerformanceMetric::Kind::kQuery,
                 PerformanceMetric::Kind::kThroughput}) {
    if (name == MetricKindName(k)) return k;
  }
  return std::nullopt;
}

nlohmann::json MetricsToJson(const std::vector<PerformanceMetric>& metrics) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& m : metrics) {
    out.push_back({{"name", m.name}, {"kind", MetricKindName(m.kind)}, {"value", m.value}});
  }
  return out;
}

std::vector<PerformanceMetric> MetricsFromJson(const nlohmann::json& j) {
  std::vector<PerformanceMetric> out;
  if (!j.is_array()) return out;
  for (const auto& m : j) {
    if (!m.is_object()) continue;
    auto name = m.find("name");
    auto kind = m.find("kind");
    auto value = m.find("value");
    if (name == m.end() || !name->is_string() || kind == m.end() || !kind->is_string() ||
        value == m.end() || !value->is_number()) {
      continue;
    }
    auto k = ParseMetricKind(kind->get<std::string>());
    if (!k) continue;
    out.push_back({name->get<std::string>(), *k, value->get<double>()});
  }
  return out;
}

Measurement MeasureComponent(Driver& driver, const ComponentSpec& c, DriverContext& ctx) {
  Measurement m;
  auto metrics = driver.MeasurePerformance(c, ctx);
  if (metrics.ok()) {
    m.metrics = std::move(metrics).value();
  } else {
    m.missing = metrics.status().message();
  }
  return m;
}

nlohmann::json BaselineToJson(const Measurement& m, int samples) {
  if (m.nothing_to_measure()) return nullptr;
  if (!m.missing.empty()) return {{"missing", m.missing}};
  return {{"metrics", MetricsToJson(m.metrics)}, {"samples", samples}};
}

std::optional<Measurement> BaselineFromEntry(const nlohmann::json& entry) {
  if (!entry.is_object()) return std::nullopt;
  auto p = entry.find("performance");
  if (p == entry.end() || !p->is_object()) return std::nullopt;
  Measurement m;
  m.missing = p->value("missing", "");
  if (p->contains("metrics")) m.metrics = MetricsFromJson((*p)["metrics"]);
  if (m.nothing_to_measure()) m.missing = "the baseline recorded no metric";
  return m;
}

}  // namespace backstop

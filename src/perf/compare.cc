#include "perf/compare.h"

#include <cstdio>

#include "base/strings.h"

namespace backstop {
namespace {

bool LowerIsBetter(PerformanceMetric::Kind kind) {
  return kind != PerformanceMetric::Kind::kThroughput;
}

std::string Number(double v, PerformanceMetric::Kind kind) {
  char buf[48];
  if (LowerIsBetter(kind)) {
    std::snprintf(buf, sizeof buf, "%.2f ms", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f msg/s", v);
  }
  return buf;
}

std::string RatioText(double r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f×", r);
  return buf;
}

std::string ToleranceText(const MetricComparison& m) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%g%%", LowerIsBetter(m.kind) ? "+" : "-", m.tolerance_pct);
  return buf;
}

nlohmann::json Opt(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json();
}

std::optional<double> OptFrom(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

}  // namespace

double ToleranceFor(const PerformanceSpec& spec, PerformanceMetric::Kind kind) {
  switch (kind) {
    case PerformanceMetric::Kind::kLatency:
      return spec.latency_tolerance_pct;
    case PerformanceMetric::Kind::kQuery:
      return spec.query_tolerance_pct;
    case PerformanceMetric::Kind::kThroughput:
      return spec.throughput_tolerance_pct;
  }
  return 0;
}

MetricComparison CompareMetric(const PerformanceSpec& spec, const std::string& component,
                               const PerformanceMetric& now, std::optional<double> baseline,
                               const std::string& why_no_baseline) {
  MetricComparison m;
  m.component = component;
  m.metric = now.name;
  m.kind = now.kind;
  m.now = now.value;
  m.baseline = baseline;
  m.tolerance_pct = ToleranceFor(spec, now.kind);
  m.status = MetricStatus::kOk;
  if (baseline && *baseline > 0) m.ratio = now.value / *baseline;
  const bool lower_better = LowerIsBetter(now.kind);
  if (lower_better && spec.max_latency_ms > 0 &&
      now.value > static_cast<double>(spec.max_latency_ms)) {
    m.status = MetricStatus::kDegraded;
    m.detail = Number(now.value, now.kind) + " is above max_latency (" +
               Number(static_cast<double>(spec.max_latency_ms), now.kind) + ")";
    return m;
  }
  if (!baseline) {
    m.status = MetricStatus::kNoBaseline;
    m.detail = why_no_baseline;
    return m;
  }
  if (lower_better) {
    const double limit = *baseline * (1 + m.tolerance_pct / 100);
    if (now.value > limit && now.value - *baseline >= static_cast<double>(spec.min_change_ms)) {
      m.status = MetricStatus::kDegraded;
      m.detail = Number(now.value, now.kind) + " is above " + Number(limit, now.kind) +
                 " (the baseline " + ToleranceText(m) + ")";
    }
  } else {
    const double floor = *baseline * (1 - m.tolerance_pct / 100);
    if (now.value < floor) {
      m.status = MetricStatus::kDegraded;
      m.detail = Number(now.value, now.kind) + " is below " + Number(floor, now.kind) +
                 " (the baseline " + ToleranceText(m) + ")";
    }
  }
  return m;
}

std::vector<MetricComparison> CompareComponent(const PerformanceSpec& spec,
                                               const std::string& component, const Measurement& now,
                                               const std::optional<Measurement>& baseline,
                                               const std::string& baseline_source) {
  std::vector<MetricComparison> rows;
  if (now.nothing_to_measure()) return rows;
  if (!now.missing.empty()) {
    MetricComparison m;
    m.component = component;
    // A driver that declines says "not measured: ..." (FailedPrecondition):
    // nothing is wrong with the component.
    m.status =
        now.missing.rfind("not measured", 0) == 0 ? MetricStatus::kSkipped : MetricStatus::kFailed;
    m.detail = now.missing;
    rows.push_back(std::move(m));
    return rows;
  }
  std::string why = "no baseline recorded in " + baseline_source;
  if (baseline && !baseline->missing.empty()) {
    why = "no baseline in " + baseline_source + ": " + baseline->missing;
  }
  for (const auto& metric : now.metrics) {
    std::optional<double> base;
    if (baseline) {
      for (const auto& b : baseline->metrics) {
        if (b.name == metric.name && b.kind == metric.kind) base = b.value;
      }
    }
    rows.push_back(CompareMetric(spec, component, metric, base, why));
  }
  return rows;
}

bool PerformanceVerdict::ok() const { return Problems().empty(); }

std::vector<const MetricComparison*> PerformanceVerdict::Problems() const {
  std::vector<const MetricComparison*> out;
  for (const auto& r : rows) {
    if (r.status == MetricStatus::kDegraded || r.status == MetricStatus::kFailed) {
      out.push_back(&r);
    }
  }
  return out;
}

std::string PerformanceVerdict::Summary() const {
  auto problems = Problems();
  if (problems.empty()) {
    size_t compared = 0;
    for (const auto& r : rows) compared += r.status == MetricStatus::kOk;
    std::string s = "performance within the baselines (" + std::to_string(compared) + " of " +
                    std::to_string(rows.size()) + " metrics compared";
    return s + ")";
  }
  std::string s = "performance DEGRADED: ";
  for (size_t i = 0; i < problems.size(); ++i) {
    const MetricComparison& p = *problems[i];
    if (i > 0) s += "; ";
    s += p.component + (p.metric.empty() ? "" : " " + p.metric) + " " + std::string(Name(p.status));
    if (p.ratio && p.status == MetricStatus::kDegraded)
      s += " at " + RatioText(*p.ratio) + " the baseline";
    if (!p.detail.empty()) s += " (" + p.detail + ")";
  }
  return s;
}

nlohmann::json PerformanceVerdict::ToJson() const {
  nlohmann::json rows_json = nlohmann::json::array();
  for (const auto& r : rows) {
    rows_json.push_back({{"component", r.component},
                         {"metric", r.metric},
                         {"kind", MetricKindName(r.kind)},
                         {"baseline", Opt(r.baseline)},
                         {"now", Opt(r.now)},
                         {"ratio", Opt(r.ratio)},
                         {"tolerance_pct", r.tolerance_pct},
                         {"status", r.status},
                         {"detail", r.detail}});
  }
  return {{"ok", ok()}, {"summary", Summary()}, {"rows", rows_json}};
}

Result<PerformanceVerdict> PerformanceVerdict::FromJson(const nlohmann::json& j,
                                                        const std::string& where) {
  PerformanceVerdict v;
  if (!j.is_object() || !j.contains("rows") || !j["rows"].is_array()) return v;
  for (size_t i = 0; i < j["rows"].size(); ++i) {
    const nlohmann::json& r = j["rows"][i];
    if (!r.is_object()) continue;
    MetricComparison m;
    m.component = r.value("component", "");
    m.metric = r.value("metric", "");
    m.kind =
        ParseMetricKind(r.value("kind", "latency")).value_or(PerformanceMetric::Kind::kLatency);
    m.baseline = OptFrom(r, "baseline");
    m.now = OptFrom(r, "now");
    m.ratio = OptFrom(r, "ratio");
    m.tolerance_pct = OptFrom(r, "tolerance_pct").value_or(0);
    BACKSTOP_ASSIGN_OR_RETURN(
        m.status, ParseStored(kMetricStatusNames, r.value("status", ""),
                              where + ": performance row " + std::to_string(i + 1) + " (" +
                                  m.component + "): status"));
    m.detail = r.value("detail", "");
    v.rows.push_back(std::move(m));
  }
  return v;
}

std::string RenderPerformanceTable(const PerformanceVerdict& verdict) {
  std::string out = Pad("COMPONENT", 15) + Pad("METRIC", 15) + Pad("BASELINE", 15) +
                    Pad("NOW", 15) + Pad("RATIO", 9) + Pad("TOLERANCE", 11) + "RESULT\n";
  for (const auto& r : verdict.rows) {
    out += Pad(r.component, 15) + Pad(r.metric.empty() ? "-" : r.metric, 15) +
           Pad(r.baseline ? Number(*r.baseline, r.kind) : "-", 15) +
           Pad(r.now ? Number(*r.now, r.kind) : "-", 15) +
           Pad(r.ratio ? RatioText(*r.ratio) : "-", 9) +
           Pad(r.metric.empty() ? "-" : ToleranceText(r), 11) + std::string(Name(r.status));
    if (!r.detail.empty()) out += ": " + r.detail;
    out += "\n";
  }
  out += verdict.Summary() + "\n";
  return out;
}

}  // namespace backstop

// The Prometheus text exposition of the watch daemon's /metrics: histograms,
// label escaping, RenderMetrics. See api.h.
#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "watch/api.h"

namespace backstop {

// --- Metrics ----------------------------------------------------------------------

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++counts_[i];
  sum_ += value;
  ++count_;
}

std::vector<uint64_t> Histogram::Cumulative() const {
  std::vector<uint64_t> out(counts_.size());
  uint64_t running = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    running += counts_[i];
    out[i] = running;
  }
  return out;
}

std::vector<double> ProbeLatencyBounds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}
std::vector<double> RunDurationBounds() {
  return {0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200};
}

std::string PromEscape(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

std::string Num(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  std::ostringstream s;
  s.precision(12);
  s << v;
  return s.str();
}

void Header(std::ostringstream& o, const char* name, const char* type, const char* help) {
  o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
}

void RenderHistogram(std::ostringstream& o, const std::string& name, const std::string& labels,
                     const Histogram& h) {
  const auto cum = h.Cumulative();
  const std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < h.bounds().size(); ++i) {
    o << name << "_bucket{" << labels << sep << "le=\"" << Num(h.bounds()[i]) << "\"} " << cum[i]
      << "\n";
  }
  o << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << cum.back() << "\n";
  std::string braces = labels.empty() ? "" : "{" + labels + "}";
  o << name << "_sum" << braces << " " << Num(h.sum()) << "\n";
  o << name << "_count" << braces << " " << h.count() << "\n";
}

}  // namespace

std::string RenderMetrics(const WatchMetrics& m) {
  std::ostringstream o;
  Header(o, "backstop_probe_success", "gauge",
         "1 if the component's last health probe passed, 0 if it failed.");
  for (const auto& p : m.probes) {
    if (!p.has_result) continue;
    o << "backstop_probe_success{component=\"" << PromEscape(p.component) << "\"} "
      << (p.success ? 1 : 0) << "\n";
  }
  Header(o, "backstop_probes_total", "counter", "Health probes run, by component and result.");
  for (const auto& p : m.probes) {
    o << "backstop_probes_total{component=\"" << PromEscape(p.component)
      << "\",result=\"success\"} " << (p.total - p.failures) << "\n";
    o << "backstop_probes_total{component=\"" << PromEscape(p.component)
      << "\",result=\"failure\"} " << p.failures << "\n";
  }
  Header(o, "backstop_probe_latency_seconds", "histogram", "Health probe latency.");
  for (const auto& p : m.probes) {
    RenderHistogram(o, "backstop_probe_latency_seconds",
                    "component=\"" + PromEscape(p.component) + "\"", p.latency);
  }
  Header(o, "backstop_trigger_state", "gauge",
         "State of each trigger per component: 0 ok, 1 pending, 2 firing.");
  for (const auto& t : m.triggers) {
    o << "backstop_trigger_state{trigger=\"" << PromEscape(t.trigger) << "\",component=\""
      << PromEscape(t.component) << "\"} " << t.state << "\n";
  }
  Header(o, "backstop_runs_total", "counter",
         "Runs started by this watcher (automatic and through the API), by kind and final status.");
  for (const auto& [key, n] : m.runs_total) {
    o << "backstop_runs_total{kind=\"" << PromEscape(key.first) << "\",status=\""
      << PromEscape(key.second) << "\"} " << n << "\n";
  }
  Header(o, "backstop_run_duration_seconds", "histogram", "Duration of finished runs.");
  RenderHistogram(o, "backstop_run_duration_seconds", "", m.run_duration);
  Header(o, "backstop_decisions_total", "counter",
         "Rollback decisions on firing triggers, by outcome (acted, held, dry_run, alert).");
  for (const auto& [outcome, n] : m.decisions_total) {
    o << "backstop_decisions_total{outcome=\"" << PromEscape(outcome) << "\"} " << n << "\n";
  }
  Header(o, "backstop_watch_paused", "gauge", "1 while automatic actions are paused.");
  o << "backstop_watch_paused " << (m.paused ? 1 : 0) << "\n";
  return o.str();
}

}  // namespace backstop

#include "drivers/driver.h"

#include <algorithm>
#include <cmath>

#include "base/units.h"
#include "probe/probe.h"

namespace backstop {

uint64_t DataLossReport::TotalRows() const {
  uint64_t n = 0;
  for (const auto& i : items) {
    if (i.unit == "rows") n += i.total();
  }
  return n;
}

uint64_t DataLossReport::TotalMessages() const {
  uint64_t n = 0;
  for (const auto& i : items) {
    if (i.unit == "messages") n += i.total();
  }
  return n;
}

std::string DataLossReport::Summary() const {
  std::string parts;
  for (const auto& i : items) {
    if (i.total() == 0) continue;
    if (!parts.empty()) parts += ", ";
    std::string unit = i.unit;
    if (i.total() == 1 && !unit.empty() && unit.back() == 's') unit.pop_back();
    parts += FormatThousands(i.total()) + " " + unit + " in " + i.object;
  }
  std::string rewound;
  for (const auto& r : rewinds) {
    if (r.count() == 0) continue;
    if (!rewound.empty()) rewound += ", ";
    rewound += FormatThousands(r.count()) + " " + r.unit + " by " + r.object;
  }
  std::string out = parts.empty() ? "Data loss: none" : "Data loss: yes — " + parts;
  if (!rewound.empty()) out += "; positions moved back: " + rewound;
  return out;
}

void DataLossReport::Append(const DataLossReport& other) {
  items.insert(items.end(), other.items.begin(), other.items.end());
  rewinds.insert(rewinds.end(), other.rewinds.begin(), other.rewinds.end());
  ledger_files.insert(ledger_files.end(), other.ledger_files.begin(), other.ledger_files.end());
}

nlohmann::json DataLossReport::ToJson() const {
  nlohmann::json j_items = nlohmann::json::array();
  for (const auto& i : items) {
    j_items.push_back({{"component", i.component},
                       {"object", i.object},
                       {"unit", i.unit},
                       {"inserted", i.inserted},
                       {"deleted", i.deleted},
                       {"changed", i.changed}});
  }
  nlohmann::json j_rewinds = nlohmann::json::array();
  for (const auto& r : rewinds) {
    j_rewinds.push_back({{"component", r.component},
                         {"object", r.object},
                         {"unit", r.unit},
                         {"from", r.from},
                         {"to", r.to},
                         {"count", r.count()}});
  }
  return {{"items", j_items}, {"rewinds", j_rewinds}, {"ledger_files", ledger_files}};
}

DataLossReport DataLossReport::FromJson(const nlohmann::json& j) {
  DataLossReport r;
  if (!j.is_object()) return r;
  for (const auto& i : j.value("items", nlohmann::json::array())) {
    DataLossItem item;
    item.component = i.value("component", "");
    item.object = i.value("object", "");
    item.unit = i.value("unit", "");
    item.inserted = i.value("inserted", uint64_t{0});
    item.deleted = i.value("deleted", uint64_t{0});
    item.changed = i.value("changed", uint64_t{0});
    r.items.push_back(item);
  }
  for (const auto& i : j.value("rewinds", nlohmann::json::array())) {
    PositionRewind rw;
    rw.component = i.value("component", "");
    rw.object = i.value("object", "");
    rw.unit = i.value("unit", "");
    rw.from = i.value("from", int64_t{0});
    rw.to = i.value("to", int64_t{0});
    r.rewinds.push_back(rw);
  }
  r.ledger_files = j.value("ledger_files", std::vector<std::string>{});
  return r;
}

HealthResult Driver::Health(const ComponentSpec& c, DriverContext& ctx) {
  if (!c.health.enabled()) {
    HealthResult r;
    r.state = HealthResult::State::kUnknown;
    r.detail = "no health probe configured";
    return r;
  }
  return RunProbe(c.health, ctx.env);
}

HealthResult Driver::SlotHealth(const ComponentSpec& c, Slot slot, DriverContext& ctx) {
  if (!c.health.enabled() || !c.traffic) {
    HealthResult r;
    r.state = HealthResult::State::kUnknown;
    r.detail = !c.traffic ? "not a blue/green service" : "no health probe configured";
    return r;
  }
  return RunProbe(c.health.ForPort(SlotPort(c, slot)), ctx.env);
}

DriverRegistry& DriverRegistry::Global() {
  static DriverRegistry* registry = [] {
    auto* r = new DriverRegistry();
    RegisterBuiltinDrivers(*r);
    return r;
  }();
  return *registry;
}

void DriverRegistry::Register(DriverInfo info) {
  // The parser learns whether the driver runs slots from the driver itself
  // (drivers are cheap to create: they act only when called).
  const bool supports_slots = info.factory && info.factory()->SupportsSlots();
  schemas_.Add(DriverSchema{info.name, info.kinds, info.settings, supports_slots});
  std::string name = info.name;
  drivers_[name] = std::move(info);
}

const DriverInfo* DriverRegistry::Find(const std::string& name) const {
  auto it = drivers_.find(name);
  return it == drivers_.end() ? nullptr : &it->second;
}

const DriverSchema* DriverRegistry::FindSchema(const std::string& name) const {
  return schemas_.FindSchema(name);
}

std::vector<std::string> DriverRegistry::Names() const {
  std::vector<std::string> out;
  for (const auto& [name, info] : drivers_) out.push_back(name);
  return out;
}

Result<std::unique_ptr<Driver>> DriverRegistry::Create(const std::string& name) const {
  const DriverInfo* info = Find(name);
  if (info == nullptr) {
    std::string known;
    for (const auto& n : Names()) known += (known.empty() ? "" : ", ") + n;
    return Status::NotFound("unknown driver '" + name + "'; known drivers: " + known);
  }
  return info->factory();
}

std::vector<PerformanceMetric> PercentileMetrics(const std::string& prefix,
                                                 PerformanceMetric::Kind kind,
                                                 std::vector<double> samples_ms) {
  std::sort(samples_ms.begin(), samples_ms.end());
  // Nearest rank: the smallest sample with at least p% of them at or below it.
  auto rank = [&](double p) {
    size_t n = samples_ms.size();
    size_t r = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(n)));
    return samples_ms[std::clamp<size_t>(r, 1, n) - 1];
  };
  return {PerformanceMetric{prefix + " p50", kind, rank(50)},
          PerformanceMetric{prefix + " p95", kind, rank(95)}};
}

Result<std::vector<PerformanceMetric>> MeasureProbeLatency(const ComponentSpec& c,
                                                           DriverContext& ctx) {
  if (!c.health.enabled()) {
    return Status::FailedPrecondition("component " + c.name + " has no health probe to time");
  }
  const int samples = ctx.spec != nullptr ? ctx.spec->performance.samples : 20;
  std::vector<double> latencies;
  for (int i = 0; i < samples; ++i) {
    // Timed here in microseconds: HealthResult's whole milliseconds would
    // round a loopback probe to 0.
    int64_t t0 = ctx.env->clock()->NowMicros();
    HealthResult h = RunProbe(c.health, ctx.env);
    int64_t took_us = ctx.env->clock()->NowMicros() - t0;
    if (h.state != HealthResult::State::kPass) {
      return Status::Unavailable("the health probe of " + c.name + " (" + c.health.Describe() +
                                 ") did not pass: " + h.detail);
    }
    latencies.push_back(static_cast<double>(took_us) / 1000.0);
  }
  return PercentileMetrics("probe", PerformanceMetric::Kind::kLatency, std::move(latencies));
}

}  // namespace backstop

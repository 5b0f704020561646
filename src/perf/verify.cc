#include "perf/verify.h"

#include <vector>

#include "store/restore_point.h"

namespace backstop {

nlohmann::json MeasureBaseline(Driver& driver, const ComponentSpec& c, DriverContext& ctx) {
  const int samples = ctx.spec != nullptr ? ctx.spec->performance.samples : 20;
  return BaselineToJson(MeasureComponent(driver, c, ctx), samples);
}

Result<PerformanceVerdict> VerifyPerformance(const Spec& spec, Store& store,
                                             const DriverLookup& driver_for,
                                             const DriverContext& context,
                                             const std::string& preferred_restore_point) {
  std::optional<RestorePoint> preferred;
  if (!preferred_restore_point.empty()) {
    BACKSTOP_ASSIGN_OR_RETURN(RestorePoint rp, ReadRestorePoint(store, preferred_restore_point));
    preferred = std::move(rp);
  }
  // Damaged manifests are left out here; `snapshots verify` reports them.
  std::vector<RestorePoint> all = ListRestorePoints(store, nullptr);
  PerformanceVerdict verdict;
  for (const auto& name : spec.component_order) {
    const ComponentSpec& c = spec.components.at(name);
    auto driver = driver_for(c);
    if (!driver.ok()) {
      MetricComparison row;
      row.component = name;
      row.status = MetricStatus::kFailed;
      row.detail = driver.status().message();
      verdict.rows.push_back(std::move(row));
      continue;
    }
    DriverContext ctx = context;
    Measurement now = MeasureComponent(**driver, c, ctx);
    if (now.nothing_to_measure()) continue;
    const RestorePoint* from = nullptr;
    if (preferred && preferred->components.contains(name)) {
      from = &*preferred;
    } else {
      for (auto it = all.rbegin(); it != all.rend(); ++it) {
        if (it->kind != RestorePointKind::kSafety && it->kind != RestorePointKind::kPostRollback &&
            it->components.contains(name)) {
          from = &*it;
          break;
        }
      }
    }
    std::optional<Measurement> baseline;
    std::string source = "any restore point";
    if (from != nullptr) {
      baseline = BaselineFromEntry(from->components[name]);
      source = "restore point " + from->id;
    }
    for (auto& row : CompareComponent(spec.performance, name, now, baseline, source)) {
      verdict.rows.push_back(std::move(row));
    }
  }
  return verdict;
}

}  // namespace backstop

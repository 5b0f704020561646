#include "report/checklist.h"

#include <map>

#include "base/output.h"
#include "base/units.h"
#include "drivers/driver.h"
#include "perf/verify.h"
#include "run/event.h"
#include "store/restore_point.h"

namespace backstop {
namespace {

struct Verdict {
  ChecklistStatus status = ChecklistStatus::kOk;
  std::vector<std::string> evidence = {};
};

constexpr ChecklistStatus kOk = ChecklistStatus::kOk;
constexpr ChecklistStatus kFailed = ChecklistStatus::kFailed;

std::string HealthText(const HealthResult& h) {
  std::string word = h.state == HealthResult::State::kPass   ? "healthy"
                     : h.state == HealthResult::State::kFail ? "unhealthy"
                                                             : "unknown";
  return h.detail.empty() ? word : word + " (" + h.detail + ")";
}

// Items 1: every component answers its health check now.
Verdict ServicesHealthy(RunEngine& engine, const Spec& spec) {
  Verdict v;
  for (const auto& name : spec.component_order) {
    const ComponentSpec& c = spec.components.at(name);
    auto driver = engine.DriverFor(c);
    if (!driver.ok()) {
      v.status = kFailed;
      v.evidence.push_back(name + ": " + driver.status().message());
      continue;
    }
    DriverContext ctx = engine.Context();
    HealthResult h = (*driver)->Health(c, ctx);
    if (!HealthAcceptable(c, h)) v.status = kFailed;
    v.evidence.push_back(name + ": " + HealthText(h));
  }
  return v;
}

// Items 2 and 3: the drivers' invariant checks of every component of `kind`
// (database or stream), and for streams their health too.
Verdict Invariants(RunEngine& engine, const Spec& spec, ComponentKind kind) {
  Verdict v;
  bool any = false;
  for (const auto& name : spec.component_order) {
    const ComponentSpec& c = spec.components.at(name);
    if (c.kind != kind) continue;
    any = true;
    auto driver = engine.DriverFor(c);
    if (!driver.ok()) {
      v.status = kFailed;
      v.evidence.push_back(name + ": " + driver.status().message());
      continue;
    }
    DriverContext ctx = engine.Context();
    if (kind == ComponentKind::kStream) {
      HealthResult h = (*driver)->Health(c, ctx);
      if (!HealthAcceptable(c, h)) v.status = kFailed;
      v.evidence.push_back(name + ": " + HealthText(h));
    }
    auto checks = (*driver)->CheckInvariants(c, nlohmann::json(), ctx);
    if (!checks.ok()) {
      v.status = kFailed;
      v.evidence.push_back(name + ": " + checks.status().message());
      continue;
    }
    int passed = 0;
    for (const auto& chk : *checks) {
      if (chk.passed) {
        ++passed;
      } else {
        v.status = kFailed;
        v.evidence.push_back(name + ": " + chk.name + " failed" +
                             (chk.detail.empty() ? "" : ": " + chk.detail));
      }
    }
    v.evidence.push_back(name + ": " + std::to_string(passed) + " of " +
                         std::to_string(checks->size()) + " integrity checks passed");
  }
  if (!any) {
    v.status = ChecklistStatus::kNotApplicable;
    v.evidence.push_back("the spec has no " + std::string(Name(kind)) + " component");
  }
  return v;
}

// Item 4: the run's data loss, from its ledger.
Verdict DataLoss(const RunRecord& run) {
  DataLossReport loss = DataLossReport::FromJson(run.summary.value("data_loss", nlohmann::json()));
  Verdict v{loss.TotalRows() + loss.TotalMessages() == 0 ? kOk : kFailed};
  v.evidence.push_back(loss.Summary());
  if (v.status != kOk) {
    v.evidence.push_back("the discarded rows and messages: `backstop ledger " + run.id +
                         "`; to bring some back: `backstop salvage " + run.id + "`");
  }
  return v;
}

// Item 5: the rollback's last verification (its summary), or, for a run
// that recorded none (older runs, deploys), a measurement now against the
// run's restore point. Each compared or failing metric is evidence.
Verdict PerformanceBaselines(RunEngine& engine, const Spec& spec, Store& store,
                             const RunRecord& run) {
  PerformanceVerdict verdict;
  std::string when;
  if (run.summary.is_object() && run.summary.contains("performance")) {
    auto stored =
        PerformanceVerdict::FromJson(run.summary["performance"], "run " + run.id + "'s summary");
    if (!stored.ok()) return Verdict{kFailed, {stored.status().message()}};
    verdict = std::move(stored).value();
    when = "measured at the end of the rollback";
    if (verdict.rows.empty() && !run.summary["performance"].value("ok", true)) {
      return Verdict{kFailed, {run.summary["performance"].value("summary", "")}};
    }
  } else {
    auto now = VerifyPerformance(
        spec, store, [&engine](const ComponentSpec& c) { return engine.DriverFor(c); },
        engine.Context(), ReadRestorePoint(store, run.restore_point).ok() ? run.restore_point : "");
    if (!now.ok()) return Verdict{kFailed, {now.status().message()}};
    verdict = std::move(now).value();
    when = "measured now (the run recorded no performance verification)";
  }
  Verdict v{verdict.ok() ? kOk : kFailed};
  bool compared = false;
  for (const auto& r : verdict.rows) {
    compared = compared || r.status == MetricStatus::kOk || r.status == MetricStatus::kDegraded;
  }
  if (verdict.ok() && !compared) v.status = ChecklistStatus::kNotMeasured;
  v.evidence.push_back(verdict.Summary() + ", " + when);
  for (const auto& r : verdict.rows) {
    if (r.status == MetricStatus::kOk) continue;
    v.evidence.push_back(r.component + (r.metric.empty() ? "" : " " + r.metric) + ": " +
                         std::string(Name(r.status)) +
                         (r.detail.empty() ? "" : " (" + r.detail + ")"));
  }
  return v;
}

// Item 7: every trigger's last event in the journal is not pending or firing.
Verdict TriggersOk(StateDb& state) {
  Verdict v;
  auto events = state.ListEvents(EventQuery{});
  if (!events.ok()) return Verdict{kFailed, {events.status().message()}};
  std::map<std::string, const Event*> last;  // per trigger and component
  for (const auto& e : *events) {
    if (e.kind == EventKind::kTriggerPending || e.kind == EventKind::kTriggerFiring ||
        e.kind == EventKind::kTriggerResolved) {
      last[e.trigger + (e.component.empty() ? "" : " on " + e.component)] = &e;
    }
  }
  for (const auto& [name, e] : last) {
    if (e->kind == EventKind::kTriggerResolved) continue;
    v.status = kFailed;
    v.evidence.push_back(name + ": " + std::string(EventKindName(e->kind)) + " since " +
                         FormatRfc3339(e->at_us));
  }
  if (v.status == kOk) {
    v.evidence.push_back(last.empty() ? "the journal records no trigger that left ok"
                                      : "every trigger in the journal is back to ok (" +
                                            std::to_string(last.size()) + " seen)");
  }
  return v;
}

// Item 8: the restore point the engine took once the rollback was verified.
Verdict FreshRestorePoint(Store& store, const RunRecord& run) {
  const std::string id = run.summary.value("post_restore_point", "");
  if (id.empty()) {
    std::string why = run.summary.value("post_restore_point_error", "");
    if (run.kind != RunKind::kRollback) why = "a " + std::string(Name(run.kind)) + " takes none";
    if (why.empty()) why = "the run did not end verified (" + std::string(Name(run.status)) + ")";
    return Verdict{kFailed,
                   {"no post-rollback restore point: " + why +
                    "; take one with `backstop snapshot --label post-rollback`"}};
  }
  auto rp = ReadRestorePoint(store, id);
  if (!rp.ok()) return Verdict{kFailed, {id + ": " + rp.status().message()}};
  return Verdict{kOk, {id + " (" + rp->label + ", " + FormatRfc3339(rp->created_wall_us) + ")"}};
}

}  // namespace

const std::vector<ChecklistItem>& RecoveryChecklistItems() {
  static const std::vector<ChecklistItem> kItems = {
      {1, "services-healthy", "All services responding to health checks", true},
      {2, "database-integrity", "Database integrity verified", true},
      {3, "queues-operational", "Message queues operational", true},
      {4, "no-data-loss", "No data loss confirmed", true},
      {5, "performance-baselines", "Performance baselines met", true},
      {6, "user-access", "User access restored", false},
      {7, "alerts-cleared", "Monitoring alerts cleared", true},
      {8, "backups-updated", "Backup systems updated", true},
      {9, "documentation-updated", "Documentation updated", false},
      {10, "team-notified", "Team notified", false},
  };
  return kItems;
}

Result<const ChecklistItem*> AcknowledgeableItem(const std::string& selector) {
  std::string people;  // "user-access (6), documentation-updated (9), team-notified (10)"
  for (const auto& item : RecoveryChecklistItems()) {
    if (item.machine) continue;
    people += std::string(people.empty() ? "" : ", ") + item.id + " (" +
              std::to_string(item.number) + ")";
  }
  for (const auto& item : RecoveryChecklistItems()) {
    if (selector != item.id && selector != std::to_string(item.number)) continue;
    if (item.machine) {
      return Status::InvalidArgument(std::string("item ") + item.id +
                                     " is checked by Backstop, not acknowledged; people "
                                     "acknowledge " +
                                     people);
    }
    return &item;
  }
  return Status::InvalidArgument("no checklist item '" + selector + "'; people acknowledge " +
                                 people);
}

Result<Checklist> BuildChecklist(RunEngine& engine, const Spec& spec, Store& store, StateDb& state,
                                 const std::string& run_id) {
  BACKSTOP_ASSIGN_OR_RETURN(RunRecord run, state.GetRun(run_id));
  BACKSTOP_ASSIGN_OR_RETURN(auto acks, state.ChecklistAcks(run_id));
  Checklist checklist;
  checklist.run_id = run_id;
  for (const auto& item : RecoveryChecklistItems()) {
    Verdict v;
    const std::string id = item.id;
    if (id == "services-healthy") {
      v = ServicesHealthy(engine, spec);
    } else if (id == "database-integrity") {
      v = Invariants(engine, spec, ComponentKind::kDatabase);
    } else if (id == "queues-operational") {
      v = Invariants(engine, spec, ComponentKind::kStream);
    } else if (id == "no-data-loss") {
      v = DataLoss(run);
    } else if (id == "performance-baselines") {
      v = PerformanceBaselines(engine, spec, store, run);
    } else if (id == "alerts-cleared") {
      v = TriggersOk(state);
    } else if (id == "backups-updated") {
      v = FreshRestorePoint(store, run);
    } else {
      v.status = ChecklistStatus::kAwaitingAcknowledgement;
      v.evidence.push_back("`backstop checklist ack " + run_id + " " + id + " --by NAME`");
      for (const auto& a : acks) {
        if (a.item != id) continue;
        v.status = ChecklistStatus::kAcknowledged;
        v.evidence = {"by " + a.by + " at " + FormatRfc3339(a.at_us) +
                      (a.note.empty() ? "" : ": " + a.note)};
      }
    }
    checklist.items.push_back({&item, v.status, std::move(v.evidence)});
  }
  return checklist;
}

bool Checklist::ok() const {
  for (const auto& checked : items) {
    if (checked.status == ChecklistStatus::kFailed) return false;
  }
  return true;
}

nlohmann::json Checklist::ToJson() const {
  nlohmann::json items_json = nlohmann::json::array();
  for (const auto& checked : items) {
    items_json.push_back({{"number", checked.item->number},
                          {"id", checked.item->id},
                          {"title", checked.item->title},
                          {"machine", checked.item->machine},
                          {"status", checked.status},
                          {"evidence", checked.evidence}});
  }
  return nlohmann::json{{"run_id", run_id}, {"items", items_json}, {"ok", ok()}};
}

std::string RenderChecklist(const Checklist& checklist) {
  std::string out = "Recovery checklist for " + checklist.run_id + "\n";
  for (const auto& checked : checklist.items) {
    const ChecklistStatus status = checked.status;
    const char* mark = status == ChecklistStatus::kOk || status == ChecklistStatus::kAcknowledged
                           ? Output::Ok()
                       : status == ChecklistStatus::kFailed ? Output::Fail()
                                                            : "-";
    char number[8];
    std::snprintf(number, sizeof number, "%2d", checked.item->number);
    out += std::string(mark) + " " + number + ". " + checked.item->title + " [" + checked.item->id +
           "]: " + std::string(Name(status)) + "\n";
    for (const auto& e : checked.evidence) out += "       " + e + "\n";
  }
  return out;
}

}  // namespace backstop

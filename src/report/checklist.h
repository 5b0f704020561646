// The recovery checklist of a run (seed 7.2): ten items, checked after a
// rollback before the incident is closed.
//
// Seven are checked by Backstop and show their evidence: every service
// answers its health check (probed now), database integrity and the queues
// (the drivers' invariant checks, probed now), data loss (the run's ledger),
// performance baselines (the rollback's last verification, perf/verify.h, or
// measured now when the run recorded none; "not measured" when no metric
// had a baseline to compare with), triggers
// back to ok (the event journal) and a fresh restore point taken after the
// rollback (the run's post-rollback restore point, in the store). The other
// three are confirmed by people with `backstop checklist ack`, stored in the
// state database with who and when (StateDb::AckChecklistItem).
//
// An item's status is an enum (ChecklistStatus) with one EnumNames table;
// the JSON and the text carry its name. Statuses are computed each time,
// never stored, so nothing reads them back.
//
// Thread-safety: one thread (it drives the run engine's drivers).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/enum_names.h"
#include "base/status.h"
#include "run/run.h"
#include "run/state_db.h"
#include "spec/spec.h"
#include "store/store.h"

namespace backstop {

struct ChecklistItem {
  int number;         // 1..10, the seed's order
  const char* id;     // "services-healthy", ... (stable: stored with acknowledgements)
  const char* title;  // the seed's wording
  bool machine;       // checked by Backstop; otherwise acknowledged by a person
};

// Where one item stands.
enum class ChecklistStatus {
  kOk,
  kFailed,
  kNotMeasured,    // performance: no metric had a baseline to compare with
  kNotApplicable,  // the spec has no component the item is about
  kAcknowledged,
  kAwaitingAcknowledgement,
};
inline constexpr EnumNames<ChecklistStatus, 6> kChecklistStatusNames{{{
    {ChecklistStatus::kOk, "ok"},
    {ChecklistStatus::kFailed, "failed"},
    {ChecklistStatus::kNotMeasured, "not measured"},
    {ChecklistStatus::kNotApplicable, "not applicable"},
    {ChecklistStatus::kAcknowledged, "acknowledged"},
    {ChecklistStatus::kAwaitingAcknowledgement, "awaiting acknowledgement"},
}}};
constexpr std::string_view Name(ChecklistStatus s) { return kChecklistStatusNames.Name(s); }
inline void to_json(nlohmann::json& j, ChecklistStatus v) { j = Name(v); }

// The ten items, in the seed's order.
const std::vector<ChecklistItem>& RecoveryChecklistItems();

// The item a person may acknowledge, by id or number ("6", "user-access").
// InvalidArgument for an unknown item or one Backstop checks itself.
Result<const ChecklistItem*> AcknowledgeableItem(const std::string& selector);

// One item as checked, with what shows it.
struct CheckedItem {
  const ChecklistItem* item = nullptr;  // one of RecoveryChecklistItems()
  ChecklistStatus status = ChecklistStatus::kOk;
  std::vector<std::string> evidence;
};

struct Checklist {
  std::string run_id;
  std::vector<CheckedItem> items;  // the ten, in the seed's order

  // False when an item failed.
  bool ok() const;
  // {"run_id", "items": [{"number","id","title","machine","status",
  // "evidence"}], "ok"}; status is the name of a ChecklistStatus.
  nlohmann::json ToJson() const;
};

// Checks the machine items now and adds the acknowledgements of `run_id` (an
// exact id).
Result<Checklist> BuildChecklist(RunEngine& engine, const Spec& spec, Store& store, StateDb& state,
                                 const std::string& run_id);

// The checklist as text: one line per item and its evidence.
std::string RenderChecklist(const Checklist& checklist);

}  // namespace backstop

#include "run/event.h"

#include <array>
#include <utility>

#include "base/units.h"

namespace backstop {
namespace {

// One table, so that names and parsing cannot drift apart.
constexpr std::array<std::pair<EventKind, std::string_view>, 15> kEventNames = {{
    {EventKind::kTriggerPending, "trigger.pending"},
    {EventKind::kTriggerFiring, "trigger.firing"},
    {EventKind::kTriggerResolved, "trigger.resolved"},
    {EventKind::kDecision, "decision"},
    {EventKind::kRunStarted, "run.started"},
    {EventKind::kRunFinished, "run.finished"},
    {EventKind::kRunFailed, "run.failed"},
    {EventKind::kDrillStarted, "drill.started"},
    {EventKind::kDrillFinished, "drill.finished"},
    {EventKind::kRestorePointTaken, "restore_point.taken"},
    {EventKind::kRestorePointFailed, "restore_point.failed"},
    {EventKind::kFallbackSwitched, "fallback.switched"},
    {EventKind::kFallbackRefused, "fallback.refused"},
    {EventKind::kFallbackReturned, "fallback.returned"},
    {EventKind::kSlotRetired, "slot.retired"},
}};

}  // namespace

std::string_view EventKindName(EventKind kind) {
  for (const auto& [k, name] : kEventNames) {
    if (k == kind) return name;
  }
  return "unknown";
}

std::optional<EventKind> ParseEventKind(std::string_view name) {
  for (const auto& [k, n] : kEventNames) {
    if (n == name) return k;
  }
  return std::nullopt;
}

nlohmann::json Event::ToJson() const {
  nlohmann::json j = {{"id", id},
                      {"at", FormatRfc3339(at_us, /*millis=*/true)},
                      {"at_us", at_us},
                      {"kind", std::string(EventKindName(kind))}};
  if (!run_id.empty()) j["run_id"] = run_id;
  if (!component.empty()) j["component"] = component;
  if (!trigger.empty()) j["trigger"] = trigger;
  if (!message.empty()) j["message"] = message;
  j["detail"] = detail.is_null() ? nlohmann::json::object() : detail;
  return j;
}

}  // namespace backstop

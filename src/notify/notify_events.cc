#include "notify/notify_events.h"

#include <array>
#include <utility>

namespace backstop {
namespace {

// rollback_* keep the names the spec has always accepted: they stand for
// every run (rollback, deploy, drill); the event's detail.kind says which.
constexpr std::array<std::pair<std::string_view, EventKind>, 13> kOnNames = {{
    {"rollback_started", EventKind::kRunStarted},
    {"rollback_finished", EventKind::kRunFinished},
    {"rollback_failed", EventKind::kRunFailed},
    {"trigger_pending", EventKind::kTriggerPending},
    {"trigger_firing", EventKind::kTriggerFiring},
    {"trigger_resolved", EventKind::kTriggerResolved},
    {"decision", EventKind::kDecision},
    {"drill_started", EventKind::kDrillStarted},
    {"drill_finished", EventKind::kDrillFinished},
    {"restore_point_failed", EventKind::kRestorePointFailed},
    {"fallback_switched", EventKind::kFallbackSwitched},
    {"fallback_refused", EventKind::kFallbackRefused},
    {"fallback_returned", EventKind::kFallbackReturned},
}};

}  // namespace

std::optional<EventKind> NotifyEventKind(std::string_view on_name) {
  for (const auto& [name, kind] : kOnNames) {
    if (name == on_name) return kind;
  }
  return std::nullopt;
}

bool TargetWants(const NotifySpec& target, EventKind kind) {
  for (const auto& name : target.on) {
    if (NotifyEventKind(name) == kind) return true;
  }
  return false;
}

}  // namespace backstop

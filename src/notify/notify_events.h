// The event names a notify target's `on:` accepts (spec/spec.h,
// NotifyEventNames) and the journal's event kinds (run/event.h) they stand
// for, in one table.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string_view>

#include "run/event.h"
#include "spec/spec.h"

namespace backstop {

// The journal kind an `on:` name stands for ("rollback_started" ->
// run.started); nullopt for a name the table does not know.
std::optional<EventKind> NotifyEventKind(std::string_view on_name);

// Whether `target` is to be told of events of `kind`.
bool TargetWants(const NotifySpec& target, EventKind kind);

}  // namespace backstop

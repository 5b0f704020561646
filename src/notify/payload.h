// What a notification says, per target type (docs/notify.md has the schemas):
// the webhook's and the command's JSON document, Slack's incoming-webhook
// body with blocks, and the `log` target's line.
//
// Thread-safety: pure functions.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "run/event.h"

namespace backstop {

// The payload's schema version ("version" in the document).
inline constexpr int kNotifyPayloadVersion = 1;

// The id receivers drop duplicates by: "<environment>:<journal id>". It is
// the payload's "event_id" and the webhook's X-Backstop-Event-Id header.
std::string NotificationId(const std::string& environment, const Event& event);

// {"version", "event_id", "kind", "at", "environment", "run", "component",
//  "trigger", "message", "detail"}; absent run, component and trigger are null.
nlohmann::json WebhookPayload(const std::string& environment, const Event& event);

// {"text": <fallback line>, "blocks": [header, section, context]}.
nlohmann::json SlackPayload(const std::string& environment, const Event& event);

// "notify <target>: <kind> [<environment>] <message> (run …, component …)".
std::string NotificationLogLine(const std::string& target, const std::string& environment,
                                const Event& event);

}  // namespace backstop

#include "notify/payload.h"

#include "base/units.h"

namespace backstop {
namespace {

nlohmann::json OrNull(const std::string& s) { return s.empty() ? nlohmann::json() : nlohmann::json(s); }

// Slack's mrkdwn treats these three as markup.
std::string SlackEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&') {
      out += "&amp;";
    } else if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string NotificationId(const std::string& environment, const Event& event) {
  return environment + ":" + std::to_string(event.id);
}

nlohmann::json WebhookPayload(const std::string& environment, const Event& event) {
  return {{"version", kNotifyPayloadVersion},
          {"event_id", NotificationId(environment, event)},
          {"kind", std::string(EventKindName(event.kind))},
          {"at", FormatRfc3339(event.at_us, /*millis=*/true)},
          {"environment", environment},
          {"run", OrNull(event.run_id)},
          {"component", OrNull(event.component)},
          {"trigger", OrNull(event.trigger)},
          {"message", event.message},
          {"detail", event.detail.is_null() ? nlohmann::json::object() : event.detail}};
}

nlohmann::json SlackPayload(const std::string& environment, const Event& event) {
  const std::string kind(EventKindName(event.kind));
  std::string context = FormatRfc3339(event.at_us, /*millis=*/false);
  if (!event.run_id.empty()) context += " · run `" + SlackEscape(event.run_id) + "`";
  if (!event.component.empty()) context += " · component `" + SlackEscape(event.component) + "`";
  if (!event.trigger.empty()) context += " · trigger `" + SlackEscape(event.trigger) + "`";
  context += " · event " + NotificationId(environment, event);
  return {
      {"text", "Backstop [" + environment + "] " + kind + ": " + event.message},
      {"blocks",
       {{{"type", "header"},
         {"text", {{"type", "plain_text"}, {"text", "Backstop " + environment + ": " + kind}}}},
        {{"type", "section"}, {"text", {{"type", "mrkdwn"}, {"text", SlackEscape(event.message)}}}},
        {{"type", "context"}, {"elements", {{{"type", "mrkdwn"}, {"text", context}}}}}}}};
}

std::string NotificationLogLine(const std::string& target, const std::string& environment,
                                const Event& event) {
  std::string line = "notify " + target + ": " + std::string(EventKindName(event.kind)) + " [" +
                     environment + "] " + event.message;
  std::string where;
  if (!event.run_id.empty()) where += "run " + event.run_id;
  if (!event.component.empty())
    where += (where.empty() ? "" : ", ") + ("component " + event.component);
  if (!where.empty()) line += " (" + where + ")";
  return line;
}

}  // namespace backstop

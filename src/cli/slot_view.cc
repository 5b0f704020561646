// The slots of a blue/green service as `status` and `history` show them.
#include "cli/slot_view.h"

#include "base/env.h"
#include "base/units.h"
#include "drivers/driver.h"
#include "run/slot_state.h"

namespace backstop {

nlohmann::json SlotsView(Environment& e, const ComponentSpec& c) {
  auto record = ReadSlotRecord(*e.state, c.name);
  if (!record.ok()) return {{"error", record.status().message()}};
  auto driver = e.engine->DriverFor(c);
  if (!driver.ok()) return {{"error", driver.status().message()}};
  DriverContext ctx = e.engine->Context();
  auto slots = (*driver)->Slots(c, ctx);
  if (!slots.ok()) return {{"error", slots.status().message()}};
  nlohmann::json view;
  view["live"] = record->live ? nlohmann::json(std::string(Name(*record->live))) : nullptr;
  view["previous"] =
      record->previous ? nlohmann::json(std::string(Name(*record->previous))) : nullptr;
  view["keep_previous_until"] =
      record->previous ? nlohmann::json(FormatRfc3339(record->keep_until_us)) : nullptr;
  view["slots"] = nlohmann::json::array();
  for (const SlotState& s : *slots) {
    view["slots"].push_back({{"slot", std::string(Name(s.slot))},
                             {"release", s.release},
                             {"port", s.port},
                             {"running", s.running},
                             {"live", record->live == s.slot},
                             {"previous", record->previous == s.slot},
                             {"detail", s.detail}});
  }
  return view;
}

std::vector<std::string> SlotLines(const nlohmann::json& view) {
  if (view.contains("error")) return {"  slots: " + view["error"].get<std::string>()};
  std::vector<std::string> lines;
  for (const auto& s : view["slots"]) {
    std::string line = "  " + Pad(s["slot"].get<std::string>(), 7) + "port " +
                       std::to_string(s["port"].get<int>()) + "  ";
    const std::string release = s["release"];
    line += release.empty() ? "no release" : "release " + release;
    line += s["running"].get<bool>() ? " (running" : " (stopped";
    if (!s["detail"].get<std::string>().empty() && s["running"].get<bool>()) {
      line += ", " + s["detail"].get<std::string>();
    }
    line += ")";
    if (s["live"].get<bool>()) line += "  LIVE";
    if (s["previous"].get<bool>()) {
      line += "  previous, kept until " + view["keep_previous_until"].get<std::string>();
    }
    lines.push_back(line);
  }
  return lines;
}

}  // namespace backstop

// The steps of a blue/green deploy or rollback. See plan_blue_green.h.
#include "run/plan_blue_green.h"

#include "probe/health.h"

namespace backstop {

namespace {

PlanStep SlotStep(StepAction action, const ComponentSpec& c, Slot slot, const std::string& release,
                  std::string description) {
  nlohmann::json args = {{"slot", std::string(Name(slot))}};
  if (!release.empty()) args["release"] = release;
  return PlanStep{action, c.name, std::move(description), std::move(args)};
}

std::string PortOf(const ComponentSpec& c, Slot slot) {
  return std::string(Name(slot)) + " slot, port " + std::to_string(SlotPort(c, slot));
}

PlanStep StartSlotStep(const ComponentSpec& c, Slot slot, const std::string& release) {
  return SlotStep(StepAction::kStartSlot, c, slot, release,
                  "start " + c.name + " release " + release + " in the " + PortOf(c, slot) +
                      ", and wait until its health check passes");
}

PlanStep SwitchStep(const ComponentSpec& c, Slot slot, const std::string& release) {
  return SlotStep(StepAction::kSwitch, c, slot, release,
                  "switch " + c.traffic->component + " (upstream " + c.traffic->upstream +
                      ") to the " + PortOf(c, slot) + ": " + c.name + " release " + release +
                      " (recorded in its history)");
}

PlanStep StopSlotStep(const ComponentSpec& c, Slot slot, const std::string& why) {
  return SlotStep(StepAction::kStopSlot, c, slot, "",
                  "stop " + c.name + " in the " + PortOf(c, slot) + " (" + why + ")");
}

// Why the slot that ran `release` before cannot simply be switched back to;
// empty when it can (kept, running `release`, healthy now).
std::string WhyNoSwitchBack(const ComponentSpec& c, const SlotRecord& record,
                            const std::string& release, Driver& driver, DriverContext& ctx) {
  if (!record.previous) return "no previous slot is kept";
  if (record.previous_release != release) {
    return "the kept slot runs " + record.previous_release + ", not " + release;
  }
  if (!record.PreviousKept(ctx.env->clock()->WallMicros())) {
    return "keep_previous ended for the " + std::string(Name(*record.previous)) + " slot";
  }
  auto slots = driver.Slots(c, ctx);
  if (!slots.ok()) return "its slots cannot be read: " + slots.status().message();
  for (const SlotState& s : *slots) {
    if (s.slot != *record.previous) continue;
    if (!s.running || s.release != release) {
      return "the " + std::string(Name(s.slot)) + " slot no longer runs " + release;
    }
    HealthResult h = driver.SlotHealth(c, s.slot, ctx);
    if (!h.pass()) return "the " + std::string(Name(s.slot)) + " slot is unhealthy: " + h.detail;
    return "";
  }
  return "the driver reports no " + std::string(Name(*record.previous)) + " slot";
}

}  // namespace

Result<std::vector<PlanStep>> BlueGreenSteps(const ComponentSpec& c, const std::string& release,
                                             RunKind kind, StateDb& state,
                                             const DriverRegistry& registry, DriverContext& ctx,
                                             std::vector<std::string>* notes) {
  BACKSTOP_ASSIGN_OR_RETURN(SlotRecord record, ReadSlotRecord(state, c.name));
  std::vector<PlanStep> steps;
  const Slot idle = record.Idle();
  if (kind == RunKind::kDeploy) {
    steps.push_back(StartSlotStep(c, idle, release));
    steps.push_back(SwitchStep(c, idle, release));
    if (record.live) {
      notes->push_back(c.name + " release " + record.live_release + " keeps running in the " +
                       PortOf(c, *record.live) + " for " +
                       std::to_string(c.traffic->keep_previous_ms / 1000) +
                       "s after the switch (keep_previous): a rollback inside that time is a "
                       "switch back");
    }
    return steps;
  }
  BACKSTOP_ASSIGN_OR_RETURN(auto driver, registry.Create(c.driver));
  const std::string why = WhyNoSwitchBack(c, record, release, *driver, ctx);
  if (why.empty() && record.live) {
    notes->push_back(c.name + " release " + release + " still runs, healthy, in the " +
                     PortOf(c, *record.previous) +
                     ": the rollback switches traffic back to it (nothing is started)");
    steps.push_back(SwitchStep(c, *record.previous, release));
    steps.push_back(StopSlotStep(c, *record.live, "the release rolled away from"));
    return steps;
  }
  if (record.live) {
    notes->push_back(c.name + ": not a switch back (" + why + "); " + release +
                     " is started in the " + std::string(Name(idle)) + " slot first");
  }
  steps.push_back(StartSlotStep(c, idle, release));
  steps.push_back(SwitchStep(c, idle, release));
  if (record.live) {
    steps.push_back(StopSlotStep(c, *record.live, "the release rolled away from"));
  }
  return steps;
}

Result<std::vector<PlanStep>> BlueGreenRestartSteps(const ComponentSpec& c,
                                                    const std::string& release, StateDb& state) {
  BACKSTOP_ASSIGN_OR_RETURN(SlotRecord record, ReadSlotRecord(state, c.name));
  const Slot slot = record.live.value_or(Slot::kBlue);
  return std::vector<PlanStep>{StartSlotStep(c, slot, release), SwitchStep(c, slot, release)};
}

}  // namespace backstop

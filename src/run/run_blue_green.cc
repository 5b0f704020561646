// The run engine's steps for blue/green services (plan_blue_green.h):
// start-slot, switch, stop-slot, and their verify. Each is idempotent, so a
// resumed run redoes the one that was in flight: a slot already running the
// release is kept (Driver::StartSlot), routing already equal is left alone
// (Driver::Route leaves it alone, finishing an interrupted route), the slot state and the history
// are written once.
#include <string>
#include <vector>

#include "base/crash_point.h"
#include "base/units.h"
#include "run/run.h"
#include "run/slot_state.h"

namespace backstop {

namespace {

Result<Slot> StepSlot(const PlanStep& step) {
  auto slot = kSlotNames.Parse(step.args.value("slot", std::string()));
  if (!slot) {
    return Status::Corruption("stored plan: step '" + step.description + "' names no slot");
  }
  return *slot;
}

std::string SlotServer(const ComponentSpec& c, Slot slot) {
  return "127.0.0.1:" + std::to_string(SlotPort(c, slot));
}

}  // namespace

HealthResult RunEngine::WaitUntilSlotHealthy(const ComponentSpec& c, Slot slot, DriverContext& ctx,
                                             int* attempts) {
  auto driver = DriverFor(c);
  if (!driver.ok()) {
    HealthResult r;
    r.state = HealthResult::State::kFail;
    r.detail = driver.status().message();
    return r;
  }
  return PollHealth(
      c, ctx, [&] { return (*driver)->SlotHealth(c, slot, ctx); }, attempts);
}

Status RunEngine::ExecuteSlotStep(const RunRecord& run, const Plan& plan, const PlanStep& step,
                                  const ComponentSpec& c, Driver& driver, DriverContext& ctx,
                                  std::string* detail, nlohmann::json* result) {
  if (!c.traffic) {
    return Status::FailedPrecondition(c.name + " has no traffic block any more; the plan's " +
                                      std::string(Name(step.action)) + " step cannot run");
  }
  BACKSTOP_ASSIGN_OR_RETURN(Slot slot, StepSlot(step));
  const std::string slot_name(Name(slot));
  const std::string release = step.args.value("release", std::string());

  if (step.action == StepAction::kStartSlot) {
    BACKSTOP_RETURN_IF_ERROR(
        driver.StartSlot(c, slot, release, ctx)
            .WithContext("start " + c.name + " in the " + slot_name + " slot"));
    CrashPointForTest("run.start-slot.after-start");
    int attempts = 0;
    HealthResult h = WaitUntilSlotHealthy(c, slot, ctx, &attempts);
    (*result)["health_attempts"] = attempts;
    if (!HealthAcceptable(c, h)) {
      std::string diagnosis = driver.Diagnose(c, ctx);
      // Nothing routes to it: stopped, so that no broken instance lingers.
      Status stopped = driver.StopSlot(c, slot, ctx);
      return Status::Unavailable(
          c.name + " release " + release + " started in the " + slot_name +
          " slot but its health check did not pass within " +
          FormatDurationMs(c.health.start_period_ms) + " (" + std::to_string(attempts) +
          " probes; last: " + h.detail + "); traffic was not switched" +
          (stopped.ok() ? "" : "; stopping it failed: " + stopped.message()) +
          (diagnosis.empty() ? "" : "\n" + diagnosis));
    }
    *detail = HealthLine(h) + " after " + std::to_string(attempts) + " probe" +
              (attempts == 1 ? "" : "s");
    return Status::OK();
  }

  if (step.action == StepAction::kSwitch) {
    const ComponentSpec* traffic = spec_.Find(c.traffic->component);
    if (traffic == nullptr) {
      return Status::FailedPrecondition("traffic component " + c.traffic->component + " of " +
                                        c.name + " is not in the spec");
    }
    BACKSTOP_ASSIGN_OR_RETURN(Driver * router, DriverFor(*traffic));
    const std::vector<std::string> servers = {SlotServer(c, slot)};
    // Route, not Routed first: a route killed after its file was swapped but
    // before the reload reads back as done while nginx still sends traffic
    // the old way; Route finishes it (and leaves settled equal routing alone).
    // Timed apart from the step: once Route returns, nginx's new workers
    // send traffic to the slot; what follows is bookkeeping.
    const int64_t route_start_us = env_->clock()->NowMicros();
    BACKSTOP_RETURN_IF_ERROR(router->Route(*traffic, c.traffic->upstream, servers, ctx)
                                 .WithContext("switch " + traffic->name));
    (*result)["route_ms"] = (env_->clock()->NowMicros() - route_start_us) / 1000.0;
    CrashPointForTest("run.switch.after-route");
    // `current` follows the live release, so that Describe stays true.
    BACKSTOP_RETURN_IF_ERROR(driver.Restore(c, nlohmann::json{{"release", release}}, ctx)
                                 .WithContext("point " + c.name + " at " + release));
    CrashPointForTest("run.switch.after-current");
    BACKSTOP_ASSIGN_OR_RETURN(SlotRecord record, ReadSlotRecord(state_, c.name));
    if (record.live != slot || record.live_release != release) {
      if (record.live && *record.live != slot) {
        record.previous = record.live;
        record.previous_release = record.live_release;
        record.keep_until_us = env_->clock()->WallMicros() + c.traffic->keep_previous_ms * 1000;
      }
      record.live = slot;
      record.live_release = release;
      record.run_id = run.id;
      BACKSTOP_RETURN_IF_ERROR(WriteSlotRecord(state_, c.name, record));
    }
    CrashPointForTest("run.switch.after-state");
    BACKSTOP_RETURN_IF_ERROR(RecordRelease(run, plan, c.name));
    (*result)["routed"] = servers;
    *detail = c.traffic->component + " routes " + c.traffic->upstream + " to " + servers[0] + " (" +
              slot_name + ", release " + release + ")";
    return Status::OK();
  }

  // kStopSlot
  BACKSTOP_ASSIGN_OR_RETURN(SlotRecord record, ReadSlotRecord(state_, c.name));
  if (record.live == slot) {
    return Status::FailedPrecondition("refusing to stop the " + slot_name + " slot of " + c.name +
                                      ": traffic goes to it");
  }
  BACKSTOP_RETURN_IF_ERROR(
      driver.StopSlot(c, slot, ctx).WithContext("stop the " + slot_name + " slot of " + c.name));
  CrashPointForTest("run.stop-slot.after-stop");
  if (record.previous == slot) {
    record.previous.reset();
    record.previous_release.clear();
    record.keep_until_us = 0;
    BACKSTOP_RETURN_IF_ERROR(WriteSlotRecord(state_, c.name, record));
  }
  *detail = "stopped";
  return Status::OK();
}

Status RunEngine::VerifyBlueGreen(const ComponentSpec& c, const nlohmann::json& entry,
                                  Driver& driver, DriverContext& ctx,
                                  std::map<std::string, std::string>& health, std::string* detail,
                                  nlohmann::json* result) {
  if (!entry.is_null()) {
    BACKSTOP_RETURN_IF_ERROR(driver.VerifyRestored(c, entry, ctx).WithContext("verify " + c.name));
  }
  BACKSTOP_ASSIGN_OR_RETURN(SlotRecord record, ReadSlotRecord(state_, c.name));
  if (!record.live) {
    return Status::FailedPrecondition(c.name + ": no live slot is recorded after the switch");
  }
  int attempts = 0;
  HealthResult h = WaitUntilSlotHealthy(c, *record.live, ctx, &attempts);
  health[c.name] = HealthLine(h);
  (*result)["health"] = HealthLine(h);
  (*result)["latency_ms"] = h.latency_ms;
  (*result)["slot"] = std::string(Name(*record.live));
  if (!HealthAcceptable(c, h)) {
    return Status::Unavailable(c.name + " (" + std::string(Name(*record.live)) +
                               " slot) is not healthy: " + h.detail);
  }
  *detail = HealthLine(h) + " (" + std::string(Name(*record.live)) + " slot)";
  return Status::OK();
}

}  // namespace backstop

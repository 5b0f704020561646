// SlotRecord: where a blue/green service stands (spec.h ServiceTrafficSpec),
// as the run engine last switched it: which slot is live with which release,
// and which slot still runs the release it replaced, until when. Kept in the
// state database (key "slots/<component>", JSON), written by the switch and
// stop-slot steps and by the watch when it retires the previous slot.
//
// Thread-safety: plain values; the functions use the StateDb they are given
// (one per thread).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "drivers/slot.h"

namespace backstop {

class StateDb;

struct SlotRecord {
  std::optional<Slot> live;  // nullopt: never switched (nothing routed yet)
  std::string live_release;
  std::optional<Slot> previous;  // still running the replaced release
  std::string previous_release;
  int64_t keep_until_us = 0;  // wall clock: `previous` is stopped after it
  std::string run_id;         // the run that switched last

  // The slot a new release starts in: the one not live (blue when none is).
  Slot Idle() const { return live ? OtherSlot(*live) : Slot::kBlue; }
  // `previous` still counts for a switch back at `now_us`.
  bool PreviousKept(int64_t now_us) const { return previous.has_value() && now_us < keep_until_us; }

  nlohmann::json ToJson() const;
  // Corruption naming the component when `j` is not what ToJson wrote.
  static Result<SlotRecord> FromJson(const nlohmann::json& j, const std::string& component);
};

// The record of `component`; an empty one when none was written.
Result<SlotRecord> ReadSlotRecord(StateDb& state, const std::string& component);
Status WriteSlotRecord(StateDb& state, const std::string& component, const SlotRecord& record);

}  // namespace backstop

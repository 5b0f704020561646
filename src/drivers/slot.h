// Slots: the two instances of a blue/green service (spec.h,
// ServiceTrafficSpec), and what a service driver reports about them.
//
// A service driver that supports slots (Driver::SupportsSlots) runs a
// release in either slot on that slot's port, next to the other slot,
// without touching it. Which slot serves is decided by the run engine and
// carried out by the traffic component (Driver::Route); drivers only start,
// stop and describe slots.
//
// Thread-safety: plain values and constants.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/enum_names.h"
#include "spec/spec.h"

namespace backstop {

enum class Slot { kBlue, kGreen };
inline constexpr EnumNames<Slot, 2> kSlotNames{{{
    {Slot::kBlue, "blue"},
    {Slot::kGreen, "green"},
}}};
constexpr std::string_view Name(Slot s) { return kSlotNames.Name(s); }
constexpr Slot OtherSlot(Slot s) { return s == Slot::kBlue ? Slot::kGreen : Slot::kBlue; }
inline void to_json(nlohmann::json& j, Slot s) { j = std::string(Name(s)); }

// The port of `slot` in the service's `traffic.ports`.
// REQUIRES: c.traffic has a value.
inline int SlotPort(const ComponentSpec& c, Slot slot) {
  return c.traffic->ports[slot == Slot::kBlue ? 0 : 1];
}

// What runs in one slot.
struct SlotState {
  Slot slot = Slot::kBlue;
  std::string release;  // empty: nothing recorded in this slot
  int port = 0;
  bool running = false;    // the recorded instance is alive now
  int64_t started_us = 0;  // wall clock of its start, 0 when unknown
  std::string detail;      // "pid 4242" or "container webui-green-3f2a"
};

}  // namespace backstop

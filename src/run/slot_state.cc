// Where a blue/green service stands. See slot_state.h.
#include "run/slot_state.h"

#include "run/state_db.h"

namespace backstop {

namespace {

std::string Key(const std::string& component) { return "slots/" + component; }

nlohmann::json SlotOrNull(const std::optional<Slot>& s) {
  return s ? nlohmann::json(std::string(Name(*s))) : nlohmann::json();
}

// The slot named at `key` of `j`; nullopt for null; false when it is not a slot.
bool ReadSlot(const nlohmann::json& j, const char* key, std::optional<Slot>* out) {
  if (!j.contains(key) || j[key].is_null()) return true;
  if (!j[key].is_string()) return false;
  *out = kSlotNames.Parse(j[key].get<std::string>());
  return out->has_value();
}

}  // namespace

nlohmann::json SlotRecord::ToJson() const {
  return {{"live", SlotOrNull(live)},         {"live_release", live_release},
          {"previous", SlotOrNull(previous)}, {"previous_release", previous_release},
          {"keep_until_us", keep_until_us},   {"run_id", run_id}};
}

Result<SlotRecord> SlotRecord::FromJson(const nlohmann::json& j, const std::string& component) {
  SlotRecord r;
  try {
    if (!ReadSlot(j, "live", &r.live) || !ReadSlot(j, "previous", &r.previous)) {
      return Status::Corruption("slot state of " + component +
                                ": a slot that is not blue or green");
    }
    r.live_release = j.value("live_release", "");
    r.previous_release = j.value("previous_release", "");
    r.keep_until_us = j.value("keep_until_us", int64_t{0});
    r.run_id = j.value("run_id", "");
  } catch (const std::exception& e) {
    return Status::Corruption("slot state of " + component + " cannot be read: " + e.what());
  }
  return r;
}

Result<SlotRecord> ReadSlotRecord(StateDb& state, const std::string& component) {
  BACKSTOP_ASSIGN_OR_RETURN(std::optional<std::string> text, state.Get(Key(component)));
  if (!text) return SlotRecord{};
  auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Corruption("slot state of " + component + " is not JSON");
  }
  return SlotRecord::FromJson(j, component);
}

Status WriteSlotRecord(StateDb& state, const std::string& component, const SlotRecord& record) {
  return state.Put(Key(component), record.ToJson().dump());
}

}  // namespace backstop

// Stream records and positions. See stream_record.h.
#include "drivers/nats/stream_record.h"

#include <algorithm>

#include "base/units.h"

namespace backstop::nats {

using nlohmann::json;

uint64_t U64(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return 0;
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  if (it->is_number_integer())
    return static_cast<uint64_t>(std::max<int64_t>(0, it->get<int64_t>()));
  return static_cast<uint64_t>(it->get<double>());
}

Position PositionOf(const json& state) {
  Position p;
  p.first_seq = U64(state, "first_seq");
  p.last_seq = U64(state, "last_seq");
  p.messages = U64(state, "messages");
  p.bytes = U64(state, "bytes");
  return p;
}

bool SamePosition(const Position& a, const Position& b) {
  return a.messages == b.messages && a.last_seq == b.last_seq &&
         (a.messages == 0 || a.first_seq == b.first_seq);
}

Result<std::map<std::string, json>> EntryStreams(const json& entry, const std::string& component) {
  std::map<std::string, json> out;
  if (!entry.is_object() || !entry.contains("streams") || !entry["streams"].is_object()) {
    return Status::InvalidArgument("component " + component +
                                   ": the restore point's entry has no \"streams\" object");
  }
  for (const auto& [name, rec] : entry["streams"].items()) {
    if (!rec.is_object() || !rec.contains("blob") || !rec["blob"].is_string() ||
        !rec.contains("config") || !rec.contains("state") || !rec.contains("position")) {
      return Status::InvalidArgument("component " + component + ": stream " + name +
                                     ": the restore point's record lacks blob, config, state or "
                                     "position");
    }
    out[name] = rec;
  }
  return out;
}

}  // namespace backstop::nats

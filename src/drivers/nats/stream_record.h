// A stream's record in a restore point entry (nats_driver.h draws it):
// reading the entry's records, and a stream's position (first and last
// sequence, message count, bytes) as recorded and as live.
//
// Thread-safety: the functions are safe to call from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "base/units.h"

namespace backstop::nats {

struct Position {
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  uint64_t messages = 0;
  uint64_t bytes = 0;
  nlohmann::json ToJson() const {
    return {
        {"first_seq", first_seq}, {"last_seq", last_seq}, {"messages", messages}, {"bytes", bytes}};
  }
  std::string Describe() const {
    return FormatThousands(messages) + " messages, sequences " + std::to_string(first_seq) + ".." +
           std::to_string(last_seq);
  }
};

uint64_t U64(const nlohmann::json& j, const char* key);

// From a stream state ("messages", "first_seq", ...) or a recorded "position".
Position PositionOf(const nlohmann::json& state);

bool SamePosition(const Position& a, const Position& b);

// The stream records of an entry, validated: each has a blob, config, state, position.
Result<std::map<std::string, nlohmann::json>> EntryStreams(const nlohmann::json& entry,
                                                           const std::string& component);

}  // namespace backstop::nats

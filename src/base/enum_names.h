// EnumNames: the one table that maps an enum's values to the names Backstop
// reads and writes (spec files, the journal, JSON, log lines).
//
// Each concept (a component's kind, a trigger's signal, a step's action...)
// declares its enum next to a single EnumNames table; its Name and Parse
// functions both read that table, so the names a value is written as and the
// names the parser accepts cannot drift apart. The table's order is the order
// names are listed in messages ("one of service, config, ...").
//
// Names read back from disk (the journal, manifests, stored plans) go through
// ParseStored: a name the table does not hold is damage or the work of a newer
// Backstop, reported as Corruption, never read as some default.
//
// Thread-safety: a table is a constant; every function is safe to call from
// any thread.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "base/strings.h"

namespace backstop {

template <typename Enum, size_t N>
struct EnumNames {
  std::array<std::pair<Enum, std::string_view>, N> entries;

  // REQUIRES: `value` is in the table (every enumerator is: each table lists
  // its enum whole).
  constexpr std::string_view Name(Enum value) const {
    for (const auto& [e, name] : entries) {
      if (e == value) return name;
    }
    return {};
  }
  // nullopt for a name not in the table; names are case-sensitive.
  constexpr std::optional<Enum> Parse(std::string_view name) const {
    for (const auto& [e, n] : entries) {
      if (n == name) return e;
    }
    return std::nullopt;
  }
  // Every name, in table order.
  std::vector<std::string> All() const {
    std::vector<std::string> out;
    out.reserve(N);
    for (const auto& entry : entries) out.emplace_back(entry.second);
    return out;
  }
};

// The value named `name`, or Corruption naming it: "<what> 'name' is not one
// Backstop writes (one of a, b, c)". `what` says which field of which file or
// table, e.g. "run run-1 in the state database: status".
template <typename Enum, size_t N>
Result<Enum> ParseStored(const EnumNames<Enum, N>& names, std::string_view name,
                         const std::string& what) {
  if (auto value = names.Parse(name)) return *value;
  return Status::Corruption(what + " '" + std::string(name) +
                            "' is not one Backstop writes (one of " + Join(names.All(), ", ") +
                            ")");
}

}  // namespace backstop

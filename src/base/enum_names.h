// EnumNames: the one table that maps an enum's values to the names Backstop
// reads and writes (spec files, the journal, JSON, log lines).
//
// Each concept (a component's kind, a trigger's signal, a step's action...)
// declares its enum next to a single EnumNames table; its Name and Parse
// functions both read that table, so the names a value is written as and the
// names the parser accepts cannot drift apart. The table's order is the order
// names are listed in messages ("one of service, config, ...").
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

}  // namespace backstop

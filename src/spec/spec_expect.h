// Expectation: what a spec's integrity query must return (`expect:`), typed.
//
// Written as a number ("0", "2.5", "-1") or a comparison with one ("<= 0",
// "> 5", "== 0", "!= 0", ">= 1", "< 10"). The query's first column is
// compared as a number; a result that is not a number (text, NULL) never
// meets an expectation. Parsing is done once by the spec parser (errors with
// file:line:column) and again by the driver from the stored text.
//
// Thread-safety: a value type; the functions are pure.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace backstop {

struct Expectation {
  enum class Op { kEq, kNe, kLt, kLe, kGt, kGe };
  Op op = Op::kEq;
  std::string number;  // as written ("0", "2.5")

  // nullopt (and *why: what is wrong) for anything else than a number or a
  // comparison operator followed by a number.
  static std::optional<Expectation> Parse(std::string_view text, std::string* why);
  // Whether `got` (a query result as text) meets the expectation. When it is
  // not a number, false with *why saying so.
  bool Matches(std::string_view got, std::string* why = nullptr) const;
  // "0" for equality, else "<= 0", "> 5": parses back to the same expectation.
  std::string ToString() const;
};

// What the spec accepts, for error messages.
inline constexpr char kExpectationHelp[] =
    "a number such as 0, or a comparison such as '<= 0', '> 5' or '== 0' (quote it when it "
    "starts with '>')";

}  // namespace backstop

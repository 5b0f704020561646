// Typed integrity expectations. See spec_expect.h.
#include "spec/spec_expect.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>

namespace backstop {

namespace {

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A decimal number: optional sign, digits, optional fraction. No exponent,
// no hex, no inf/nan: what a count or a sum prints.
bool IsNumber(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t digits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
  }
  return digits > 0 && i == s.size();
}

std::optional<int64_t> AsInt(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// -1, 0, 1 as a < b, a == b, a > b. Exact for integers; doubles otherwise.
int Compare(std::string_view a, std::string_view b) {
  auto ia = AsInt(a), ib = AsInt(b);
  if (ia && ib) return *ia < *ib ? -1 : (*ia > *ib ? 1 : 0);
  double da = std::strtod(std::string(a).c_str(), nullptr);
  double db = std::strtod(std::string(b).c_str(), nullptr);
  return da < db ? -1 : (da > db ? 1 : 0);
}

}  // namespace

std::optional<Expectation> Expectation::Parse(std::string_view text, std::string* why) {
  std::string_view s = TrimSpaces(text);
  Expectation e;
  struct OpText {
    const char* text;
    Op op;
  };
  // Two-character operators first, so "<=" is not read as "<" then "=0".
  static const OpText kOps[] = {{"==", Op::kEq}, {"!=", Op::kNe}, {"<=", Op::kLe},
                                {">=", Op::kGe}, {"<", Op::kLt},  {">", Op::kGt}};
  bool has_op = false;
  for (const auto& o : kOps) {
    std::string_view t(o.text);
    if (s.substr(0, t.size()) == t) {
      e.op = o.op;
      s.remove_prefix(t.size());
      has_op = true;
      break;
    }
  }
  s = TrimSpaces(s);
  if (!IsNumber(s)) {
    if (why) {
      *why = s.empty() && has_op ? "'" + std::string(TrimSpaces(text)) + "' has no number"
                                 : "'" + std::string(TrimSpaces(text)) +
                                       "' is neither a number nor a comparison with one";
    }
    return std::nullopt;
  }
  e.number = std::string(s);
  return e;
}

bool Expectation::Matches(std::string_view got, std::string* why) const {
  std::string_view g = TrimSpaces(got);
  if (!IsNumber(g)) {
    if (why) *why = "'" + std::string(got) + "' is not a number";
    return false;
  }
  const int c = Compare(g, number);
  switch (op) {
    case Op::kEq:
      return c == 0;
    case Op::kNe:
      return c != 0;
    case Op::kLt:
      return c < 0;
    case Op::kLe:
      return c <= 0;
    case Op::kGt:
      return c > 0;
    case Op::kGe:
      return c >= 0;
  }
  return false;
}

std::string Expectation::ToString() const {
  switch (op) {
    case Op::kEq:
      return number;
    case Op::kNe:
      return "!= " + number;
    case Op::kLt:
      return "< " + number;
    case Op::kLe:
      return "<= " + number;
    case Op::kGt:
      return "> " + number;
    case Op::kGe:
      return ">= " + number;
  }
  return number;
}

}  // namespace backstop

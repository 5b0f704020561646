// Helpers of the spec parser (spec.cc), exposed for its unit tests.
// Not part of the spec contract: other modules use spec.h.
//
// Thread-safety: pure functions; ExpandEnv reads the process environment.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace backstop::spec_internal {

// Levenshtein distance; SIZE_MAX for words longer than 64 characters.
size_t EditDistance(std::string_view a, std::string_view b);

// " (did you mean 'x'?)" naming the closest candidate when it is close enough
// to be a typo of `word`, else "".
std::string DidYouMean(const std::string& word, const std::vector<std::string>& candidates);

// Expands ${VAR} and ${VAR:-default} (default used when VAR is unset or
// empty; it may contain references itself) and turns "$$" into "$". Any
// other '$' is kept as is. Each problem (unset variable without default,
// malformed reference) is appended to `problems` as "what; expected what".
std::string ExpandEnv(std::string_view in, std::vector<std::string>* problems, int depth = 0);

// Checks a 5-field cron expression (minute hour day-of-month month
// day-of-week; '*', lists, ranges, steps, month and weekday names). On
// failure sets *why to what is wrong ("hour field '25' is out of range 0-23").
bool ValidateCron(const std::string& expr, std::string* why);

// "2-5m" -> {120000, 300000}; "5m" -> {300000, 300000}; "90s-2m" works too.
std::optional<std::pair<int64_t, int64_t>> ParseRecoveryTime(const std::string& text);

}  // namespace backstop::spec_internal

// Helpers of the spec parser (spec_parser.h and the files of each section),
// exposed for its unit tests. Not part of the spec contract: other modules
// use spec.h.
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

// ---- text (spec_internal.cc) ----

// The items joined with `sep`: "a, b, c".
std::string JoinList(const std::vector<std::string>& items, const std::string& sep = ", ");
bool Contains(const std::vector<std::string>& v, const std::string& s);
// A name of letters, digits, '_', '.' and '-' (environments, components).
bool ValidName(const std::string& name);
// "a.b" + "c" -> "a.b.c"; "" + "c" -> "c".
std::string JoinPathKey(const std::string& path, const std::string& key);
// "triggers" + 2 -> "triggers[2]".
std::string IndexPath(const std::string& path, size_t i);
// A whole decimal integer ("+5" too); nullopt otherwise.
std::optional<int64_t> ParseInt(const std::string& text);
// true/yes/on and false/no/off, in any case.
std::optional<bool> ParseBool(const std::string& text);
// Digits and dots only: a number written without a unit.
bool LooksNumeric(const std::string& text);

// ---- addresses (spec_address.cc) ----

// "host:port" or "[v6]:port" with a port in 1..65535.
bool ValidHostPort(const std::string& text);
// Checks "scheme://[user[:password]@]host[:port][/path...]": a scheme in
// `schemes`, a host, and a port (when given) in 1..65535. On failure sets
// *why ("port 99999 is out of range 1..65535"); never quotes the password.
bool CheckUrl(const std::string& text, const std::vector<std::string>& schemes, std::string* why);
// An http:// or https:// URL, checked as CheckUrl does.
bool ValidHttpUrl(const std::string& text, std::string* why);
// A string setting that holds URLs ("nats://a:4222" or, as NATS accepts, a
// comma-separated list of them) is checked as such; other strings pass.
bool CheckUrlsIn(const std::string& text, std::string* why);
// A libpq conninfo string ("host=x port=5432 ...") names its port as
// port=N: it must be in 1..65535 (libpq would only say so when connecting).
bool CheckConninfoPort(const std::string& text, std::string* why);

}  // namespace backstop::spec_internal

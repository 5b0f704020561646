// Helpers of the spec parser: typo suggestions, ${VAR} expansion, cron
// expressions and recovery-time ranges (see spec_internal.h).
#include "spec/spec_internal.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdlib>

#include "base/units.h"

namespace backstop::spec_internal {

size_t EditDistance(std::string_view a, std::string_view b) {
  // Only short words can be typos of a key; this also bounds the work.
  if (a.size() > 64 || b.size() > 64) return SIZE_MAX;
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string DidYouMean(const std::string& word, const std::vector<std::string>& candidates) {
  auto lower = [](std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  std::string w = lower(word);
  size_t best = SIZE_MAX;
  const std::string* best_word = nullptr;
  for (const auto& c : candidates) {
    if (c == word) continue;
    size_t d = EditDistance(w, lower(c));
    if (d < best) best = d, best_word = &c;
  }
  size_t limit = word.size() <= 3 ? 1 : word.size() <= 6 ? 2 : 3;
  if (best_word == nullptr || best > limit) return "";
  return " (did you mean '" + *best_word + "'?)";
}

std::string ExpandEnv(std::string_view in, std::vector<std::string>* problems, int depth) {
  auto is_name_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  };
  std::string out;
  size_t i = 0;
  while (i < in.size()) {
    char c = in[i];
    if (c != '$' || i + 1 >= in.size() || (in[i + 1] != '$' && in[i + 1] != '{')) {
      out += c;
      ++i;
      continue;
    }
    if (in[i + 1] == '$') {
      out += '$';
      i += 2;
      continue;
    }
    size_t j = i + 2;
    while (j < in.size() && is_name_char(in[j])) ++j;
    std::string name(in.substr(i + 2, j - (i + 2)));
    bool valid_name = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0]));
    const std::string shown(in.substr(i, std::min<size_t>(j + 1, in.size()) - i));
    if (!valid_name || j >= in.size() || (in[j] != '}' && in[j] != ':') ||
        (in[j] == ':' && (j + 1 >= in.size() || in[j + 1] != '-'))) {
      problems->push_back("bad variable reference '" + shown +
                          "'; expected ${NAME} or ${NAME:-default} (write $$ for a literal $)");
      return out;
    }
    if (in[j] == '}') {
      const char* value = std::getenv(name.c_str());
      if (value == nullptr) {
        problems->push_back("environment variable " + name +
                            " is not set; expected it to be set, or a default as in ${" + name +
                            ":-value}");
      } else {
        out += value;
      }
      i = j + 1;
      continue;
    }
    // ${NAME:-default}: the default runs to the matching '}' and may itself
    // contain references.
    size_t k = j + 2;
    int level = 1;
    while (k < in.size()) {
      if (in[k] == '$' && k + 1 < in.size() && (in[k + 1] == '$' || in[k + 1] == '{')) {
        if (in[k + 1] == '{') ++level;
        k += 2;
        continue;
      }
      if (in[k] == '}' && --level == 0) break;
      ++k;
    }
    if (k >= in.size()) {
      problems->push_back("unterminated '${" + name + ":-'; expected a closing '}'");
      return out;
    }
    const char* value = std::getenv(name.c_str());
    if (value != nullptr && *value != '\0') {
      out += value;
    } else if (depth >= 8) {
      problems->push_back("defaults nested more than 8 deep in '${" + name +
                          ":-...}'; expected a simpler default");
      return out;
    } else {
      out += ExpandEnv(in.substr(j + 2, k - (j + 2)), problems, depth + 1);
    }
    i = k + 1;
  }
  return out;
}

namespace {

struct CronField {
  const char* name;
  int min;
  int max;
  std::vector<std::string> names;  // names[i] stands for min + i
};

std::optional<int> CronValue(std::string_view text, const CronField& field) {
  if (text.empty()) return std::nullopt;
  int v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc() && ptr == text.data() + text.size()) return v;
  std::string lower;
  for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (size_t i = 0; i < field.names.size(); ++i) {
    if (field.names[i] == lower) return field.min + static_cast<int>(i);
  }
  return std::nullopt;
}

}  // namespace

bool ValidateCron(const std::string& expr, std::string* why) {
  static const std::vector<CronField> kFields = {
      {"minute", 0, 59, {}},
      {"hour", 0, 23, {}},
      {"day-of-month", 1, 31, {}},
      {"month",
       1,
       12,
       {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
      {"day-of-week", 0, 7, {"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
  };
  std::vector<std::string> fields;
  std::string cur;
  for (char c : expr) {
    if (c == ' ' || c == '\t') {
      if (!cur.empty()) fields.push_back(cur), cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) fields.push_back(cur);
  if (fields.size() != 5) {
    *why = "has " + std::to_string(fields.size()) + " field" + (fields.size() == 1 ? "" : "s");
    return false;
  }
  for (size_t f = 0; f < 5; ++f) {
    const CronField& spec = kFields[f];
    std::string_view text = fields[f];
    auto bad = [&](const std::string& what) {
      *why = std::string(spec.name) + " field '" + std::string(text) + "' " + what;
      return false;
    };
    size_t start = 0;
    while (start <= text.size()) {
      size_t comma = text.find(',', start);
      if (comma == std::string_view::npos) comma = text.size();
      std::string_view item = text.substr(start, comma - start);
      if (item.empty()) return bad("has an empty list item");
      std::string_view range = item;
      size_t slash = item.find('/');
      if (slash != std::string_view::npos) {
        range = item.substr(0, slash);
        std::string_view step_text = item.substr(slash + 1);
        int step = 0;
        auto [ptr, ec] =
            std::from_chars(step_text.data(), step_text.data() + step_text.size(), step);
        if (step_text.empty() || ec != std::errc() || ptr != step_text.data() + step_text.size() ||
            step < 1 || step > spec.max) {
          return bad("has a bad step '" + std::string(step_text) + "' (1-" +
                     std::to_string(spec.max) + ")");
        }
      }
      if (range != "*") {
        size_t dash = range.find('-');
        std::string_view lo_text = range.substr(0, dash);
        std::string_view hi_text =
            dash == std::string_view::npos ? std::string_view() : range.substr(dash + 1);
        auto lo = CronValue(lo_text, spec);
        auto hi = dash == std::string_view::npos ? lo : CronValue(hi_text, spec);
        if (!lo || !hi) return bad("is not a number or a range");
        if (*lo < spec.min || *lo > spec.max || *hi < spec.min || *hi > spec.max) {
          return bad("is out of range " + std::to_string(spec.min) + "-" +
                     std::to_string(spec.max));
        }
        if (*lo > *hi) return bad("has a range that runs backwards");
      }
      start = comma + 1;
    }
  }
  return true;
}

std::optional<std::pair<int64_t, int64_t>> ParseRecoveryTime(const std::string& text) {
  size_t dash = text.find('-');
  if (dash == std::string::npos) {
    auto ms = ParseDurationMs(text);
    if (!ms) return std::nullopt;
    return std::make_pair(*ms, *ms);
  }
  std::string lo_text = text.substr(0, dash);
  std::string hi_text = text.substr(dash + 1);
  auto hi = ParseDurationMs(hi_text);
  if (!hi) return std::nullopt;
  auto lo = ParseDurationMs(lo_text);
  if (!lo) {
    // "2-5m": the lower bound borrows the upper bound's unit.
    size_t unit = hi_text.size();
    while (unit > 0 && std::isalpha(static_cast<unsigned char>(hi_text[unit - 1]))) --unit;
    lo = ParseDurationMs(lo_text + hi_text.substr(unit));
  }
  if (!lo || *lo > *hi) return std::nullopt;
  return std::make_pair(*lo, *hi);
}

std::string JoinList(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out += sep;
    out += i;
  }
  return out;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

bool ValidName(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return false;
    }
  }
  return true;
}

std::string JoinPathKey(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

std::string IndexPath(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

std::optional<int64_t> ParseInt(const std::string& text) {
  if (text.empty()) return std::nullopt;
  const char* begin = text.data();
  if (*begin == '+') ++begin;
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(begin, text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return v;
}

std::optional<bool> ParseBool(const std::string& text) {
  std::string lower;
  for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "true" || lower == "yes" || lower == "on") return true;
  if (lower == "false" || lower == "no" || lower == "off") return false;
  return std::nullopt;
}

bool LooksNumeric(const std::string& text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.') return false;
  }
  return true;
}

}  // namespace backstop::spec_internal

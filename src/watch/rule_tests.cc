// `backstop test-rules FILE` (RunRuleTests in rules.h): replays series of
// samples against the trigger rules and checks the expected states, like
// `promtool test rules`. The file format is in docs/rules.md.
//
// Triggers written in the file are validated by the spec parser itself: the
// lines of the `triggers:` block are handed to ParseSpec at their original
// line numbers (every other line blanked, a synthetic component list
// appended), so errors carry the test file's real line and column and the
// same wording as `backstop check`.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "base/env.h"
#include "base/strings.h"
#include "base/units.h"
#include "drivers/driver.h"
#include "spec/spec.h"
#include "watch/rules.h"

namespace backstop {

namespace {

const std::vector<std::string> kTopKeys = {"spec", "triggers", "components", "interval", "tests"};
const std::vector<std::string> kTestKeys = {"name", "interval", "series", "expect"};
const std::vector<std::string> kExpectKeys = {"at", "trigger", "component", "state"};
const std::vector<std::string> kKinds = {"service", "config", "database", "stream", "traffic"};
const std::vector<std::string> kSignals = {"health",       "latency",     "error_rate",
                                           "cpu",          "memory",      "connect_time",
                                           "disconnected", "unreachable", "integrity"};
const std::vector<std::string> kStates = {"ok", "pending", "firing"};
constexpr int64_t kDefaultIntervalMs = 30'000;  // the seed's probe interval
// Engine time of the first sample: away from 0 so no "unset" sentinel can hide a bug.
constexpr int64_t kOriginUs = 1'000'000'000;

size_t Distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t prev = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cur = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1)});
      prev = cur;
    }
  }
  return row[b.size()];
}

std::string Suggest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (const auto& c : candidates) {
    size_t d = Distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  if (best.empty() || best_d > std::max<size_t>(2, word.size() / 3)) return "";
  return " (did you mean '" + best + "'?)";
}

bool ValidName(const std::string& name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

// One series value: a number, or missing.
struct Point {
  bool missing = false;
  double value = 0;
};

// Expands promtool's notation: "1 1 0", "6000x10" (11 values), "0+10x5"
// (0 10 20 30 40 50), "100-5x2", "_" (missing), "_x3" (3 missing).
bool ExpandSeries(const std::string& text, std::vector<Point>* out, std::string* why) {
  std::istringstream in(text);
  std::string tok;
  while (in >> tok) {
    size_t x = tok.rfind('x');
    std::string head = x == std::string::npos ? tok : tok.substr(0, x);
    long long count = -1;
    if (x != std::string::npos) {
      std::string n = tok.substr(x + 1);
      char* end = nullptr;
      count = n.empty() ? -1 : std::strtoll(n.c_str(), &end, 10);
      if (n.empty() || *end != '\0' || count < 0 || count > 1'000'000) {
        *why = "bad repeat count in '" + tok + "'";
        return false;
      }
    }
    if (head == "_") {
      // promtool: "_x3" is three missing samples.
      for (long long i = 0; i < (count < 0 ? 1 : count); ++i) out->push_back({true, 0});
      continue;
    }
    const char* s = head.c_str();
    char* end = nullptr;
    double a = std::strtod(s, &end);
    if (end == s) {
      *why = "'" + tok + "' is not a value";
      return false;
    }
    double step = 0;
    if (*end == '+' || *end == '-') {
      if (count < 0) {
        *why = "'" + tok + "' has a step but no repeat count";
        return false;
      }
      const char* b = end;
      step = std::strtod(b, &end);
      if (end == b + 1 || end == b) {
        *why = "'" + tok + "' has a bad step";
        return false;
      }
    }
    if (*end != '\0') {
      *why = "'" + tok + "' is not a value";
      return false;
    }
    if (!std::isfinite(a) || !std::isfinite(step)) {
      *why = "'" + tok + "' is not a finite value";
      return false;
    }
    // promtool: "axn" / "a+bxn" are n+1 values.
    long long n = count < 0 ? 0 : count;
    for (long long i = 0; i <= n; ++i) out->push_back({false, a + step * static_cast<double>(i)});
  }
  if (out->empty()) {
    *why = "empty series";
    return false;
  }
  return true;
}

struct Expectation {
  int64_t at_ms = 0;
  std::string trigger;
  std::string component;
  TriggerState state = TriggerState::kOk;
  std::string pos;
};

struct SeriesKey {
  std::string component;
  std::string signal;
  std::string counter;  // "", "total" or "errors"
};

struct TestCase {
  std::string name;
  std::string pos;
  int64_t interval_ms = kDefaultIntervalMs;
  // (component, signal) -> values; counters as total/errors pairs.
  std::map<std::pair<std::string, std::string>, std::vector<Point>> values;
  std::map<std::pair<std::string, std::string>, std::vector<Point>> totals;
  std::map<std::pair<std::string, std::string>, std::vector<Point>> errors;
  std::vector<Expectation> expect;
};

class Parser {
 public:
  Parser(std::string path, std::string text) : path_(std::move(path)), text_(std::move(text)) {}

  Result<RuleTestResult> Run() {
    YAML::Node root;
    try {
      root = YAML::Load(text_);
    } catch (const YAML::ParserException& e) {
      return Status::InvalidArgument(Pos(e.mark) + ": YAML syntax error: " + e.msg +
                                     "; fix the YAML (indentation, quotes, brackets)");
    } catch (const YAML::Exception& e) {
      return Status::InvalidArgument(path_ + ": cannot read YAML: " + e.what());
    }
    try {
      Parse(root);
    } catch (const YAML::Exception& e) {
      Err(e.mark, std::string("unexpected YAML structure: ") + e.what(), "see docs/rules.md");
    }
    if (!errors_.empty()) return Status::InvalidArgument(JoinLines(errors_));
    return Execute();
  }

 private:
  std::string Pos(const YAML::Mark& m) const {
    if (m.line < 0) return path_;
    return path_ + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
  }
  void Err(const YAML::Mark& m, const std::string& what, const std::string& todo) {
    errors_.push_back(Pos(m) + ": " + what + (todo.empty() ? "" : "; " + todo));
  }
  static std::string JoinLines(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out += (out.empty() ? "" : "\n") + l;
    return out;
  }

  std::optional<std::string> Scalar(const YAML::Node& n, const std::string& key,
                                    const std::string& expected) {
    if (!n.IsScalar()) {
      Err(n.Mark(), key + ": expected " + expected, "write " + expected);
      return std::nullopt;
    }
    return n.Scalar();
  }

  std::optional<int64_t> Duration(const YAML::Node& n, const std::string& key, bool positive) {
    auto s = Scalar(n, key, "a duration such as 30s or 2m30s");
    if (!s) return std::nullopt;
    auto ms = ParseDurationMs(*s);
    if (!ms || *ms < 0 || (positive && *ms == 0)) {
      Err(n.Mark(), key + ": bad duration '" + *s + "'",
          std::string("write a ") + (positive ? "positive " : "") +
              "duration with a unit such as 30s, 5m or 2m30s");
      return std::nullopt;
    }
    return ms;
  }

  void RejectUnknown(const YAML::Node& map, const std::vector<std::string>& known,
                     const std::string& where) {
    for (auto it = map.begin(); it != map.end(); ++it) {
      std::string key = it->first.IsScalar() ? it->first.Scalar() : "?";
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        Err(it->first.Mark(), "unknown key '" + key + "'" + Suggest(key, known) + " in " + where,
            "use one of " + Join(known));
      }
    }
  }

  void Parse(const YAML::Node& root) {
    if (!root.IsMap()) {
      Err(root.Mark(),
          "the file must be a map with 'tests' (and optionally spec, triggers, "
          "components, interval)",
          "see docs/rules.md for the format");
      return;
    }
    RejectUnknown(root, kTopKeys, "the test file");

    // Components and triggers: from `spec:` if given, then `components:`
    // (added to or overriding the spec's kinds), then `triggers:`.
    std::vector<TriggerSpec> spec_triggers = DefaultTriggers();
    if (YAML::Node s = root["spec"]) {
      if (auto p = Scalar(s, "spec", "a path to a spec file")) {
        std::string spec_path = AbsolutePath(*p, Dirname(AbsolutePath(path_, CurrentDir())));
        auto spec = LoadSpec(spec_path, DriverRegistry::Global());
        if (!spec.ok()) {
          Err(s.Mark(), "spec " + spec_path + " is not valid:\n" + spec.status().message(),
              "fix it (backstop check) or point 'spec' at another file");
        } else {
          for (const auto& [name, c] : spec->components) components_[name] = c.kind;
          spec_triggers = spec->triggers;
        }
      }
    }
    if (YAML::Node c = root["components"]) {
      if (!c.IsMap()) {
        Err(c.Mark(), "components: expected a map of component name to kind",
            "write for example 'components: {api: service, db: database}'");
      } else {
        for (auto it = c.begin(); it != c.end(); ++it) {
          std::string name = it->first.Scalar();
          if (!ValidName(name)) {
            Err(it->first.Mark(), "bad component name '" + name + "'",
                "use letters, digits, '_', '.' and '-' only");
            continue;
          }
          auto kind = Scalar(it->second, "components." + name, "a kind (" + Join(kKinds) + ")");
          if (!kind) continue;
          if (std::find(kKinds.begin(), kKinds.end(), *kind) == kKinds.end()) {
            Err(it->second.Mark(),
                "components." + name + ": unknown kind '" + *kind + "'" + Suggest(*kind, kKinds),
                "use one of " + Join(kKinds));
            continue;
          }
          components_[name] = *kind;
        }
      }
    }
    if (components_.empty()) {
      Err(root.Mark(), "no components", "add 'components: {name: kind, ...}' or 'spec: PATH'");
      return;
    }
    if (YAML::Node t = root["triggers"]) {
      ParseTriggers(root, t);
    } else {
      triggers_ = spec_triggers;
    }
    for (const auto& t : triggers_) trigger_names_.push_back(t.name);

    int64_t interval = kDefaultIntervalMs;
    if (YAML::Node i = root["interval"]) {
      if (auto v = Duration(i, "interval", true)) interval = *v;
    }
    YAML::Node tests = root["tests"];
    if (!tests) {
      Err(root.Mark(), "missing key 'tests'", "add 'tests:' with a list of {series, expect}");
      return;
    }
    if (!tests.IsSequence() || tests.size() == 0) {
      Err(tests.Mark(), "tests: expected a non-empty list of test cases",
          "write '- {name: ..., series: {...}, expect: [...]}' items");
      return;
    }
    size_t i = 0;
    for (auto it = tests.begin(); it != tests.end(); ++it, ++i) {
      ParseCase(*it, i, interval);
    }
  }

  // Hands the `triggers:` block to the spec parser at its original lines.
  void ParseTriggers(const YAML::Node& root, const YAML::Node& triggers) {
    int start = -1, end = std::numeric_limits<int>::max();
    for (auto it = root.begin(); it != root.end(); ++it) {
      const YAML::Mark& m = it->first.Mark();
      if (it->first.Scalar() == "triggers") {
        start = m.line;
        if (m.column != 0) start = -1;
      }
    }
    for (auto it = root.begin(); it != root.end(); ++it) {
      int line = it->first.Mark().line;
      if (start >= 0 && line > start) end = std::min(end, line);
    }
    if (start < 0) {
      Err(triggers.Mark(), "cannot read 'triggers' here",
          "write the test file in block style with 'triggers:' at the start of a line");
      return;
    }
    std::istringstream in(text_);
    std::string line, text;
    for (int n = 0; std::getline(in, line); ++n) {
      text += (n >= start && n < end) ? line : "";
      text += "\n";
    }
    text += "environment: rules-test\ncomponents:\n";
    for (const auto& [name, kind] : components_) {
      text += "  \"" + name + "\": {kind: " + kind + ", driver: rules-test}\n";
    }
    DriverRegistry registry;
    DriverInfo info;
    info.name = "rules-test";
    info.kinds = kKinds;
    info.summary = "stands in for real drivers in backstop test-rules";
    registry.Register(info);
    auto spec = ParseSpec(text, path_, registry);
    if (!spec.ok()) {
      triggers_failed_ = true;
      std::istringstream lines(spec.status().message());
      while (std::getline(lines, line)) {
        if (!line.empty()) errors_.push_back(line);
      }
      return;
    }
    triggers_ = spec->triggers;
  }

  std::optional<SeriesKey> ParseSeriesKey(const YAML::Node& key) {
    const std::string todo =
        "write COMPONENT/SIGNAL such as api/health, or api/error_rate:total and "
        "api/error_rate:errors for counters";
    std::string k = key.Scalar();
    size_t slash = k.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == k.size()) {
      Err(key.Mark(), "series '" + k + "' does not name a component and a signal", todo);
      return std::nullopt;
    }
    SeriesKey out;
    out.component = k.substr(0, slash);
    out.signal = k.substr(slash + 1);
    if (size_t colon = out.signal.find(':'); colon != std::string::npos) {
      out.counter = out.signal.substr(colon + 1);
      out.signal = out.signal.substr(0, colon);
      if ((out.counter != "total" && out.counter != "errors") || out.signal != "error_rate") {
        Err(key.Mark(), "series '" + k + "': only error_rate has counters (:total and :errors)",
            todo);
        return std::nullopt;
      }
    }
    if (components_.count(out.component) == 0) {
      std::vector<std::string> names;
      for (const auto& [n, kind] : components_) names.push_back(n);
      Err(key.Mark(),
          "series '" + k + "': unknown component '" + out.component + "'" +
              Suggest(out.component, names),
          "use one of " + Join(names) + ", or add it under 'components:'");
      return std::nullopt;
    }
    if (std::find(kSignals.begin(), kSignals.end(), out.signal) == kSignals.end()) {
      Err(key.Mark(),
          "series '" + k + "': unknown signal '" + out.signal + "'" + Suggest(out.signal, kSignals),
          "use one of " + Join(kSignals));
      return std::nullopt;
    }
    return out;
  }

  void ParseCase(const YAML::Node& n, size_t index, int64_t interval) {
    TestCase tc;
    tc.pos = Pos(n.Mark());
    tc.name = "tests[" + std::to_string(index) + "]";
    tc.interval_ms = interval;
    if (!n.IsMap()) {
      Err(n.Mark(), tc.name + ": expected a map with series and expect",
          "write '- {name: ..., series: {...}, expect: [...]}'");
      return;
    }
    RejectUnknown(n, kTestKeys, tc.name);
    if (YAML::Node name = n["name"]) {
      if (auto s = Scalar(name, tc.name + ".name", "a name")) tc.name += " '" + *s + "'";
    }
    if (YAML::Node i = n["interval"]) {
      if (auto v = Duration(i, tc.name + ".interval", true)) tc.interval_ms = *v;
    }
    YAML::Node series = n["series"];
    if (!series || !series.IsMap() || series.size() == 0) {
      Err(series ? series.Mark() : n.Mark(), tc.name + ": missing or empty 'series'",
          "add 'series: {COMPONENT/SIGNAL: \"1 1 0 0\"}'");
    } else {
      for (auto it = series.begin(); it != series.end(); ++it) {
        auto key = ParseSeriesKey(it->first);
        if (!key) continue;
        auto text = Scalar(it->second, "series " + it->first.Scalar(),
                           "a string of values such as \"1 1 0 0\" or \"200 6000x10\"");
        if (!text) continue;
        std::vector<Point> points;
        std::string why;
        if (!ExpandSeries(*text, &points, &why)) {
          Err(it->second.Mark(), "series " + it->first.Scalar() + ": " + why,
              "write values separated by spaces: 200, 6000x10 (11 values), 0+10x5, _ (missing), "
              "_x3");
          continue;
        }
        std::pair<std::string, std::string> id{key->component, key->signal};
        auto& dest = key->counter == "total"    ? tc.totals
                     : key->counter == "errors" ? tc.errors
                                                : tc.values;
        dest[id] = std::move(points);
      }
      for (const auto& [id, pts] : tc.totals) {
        if (tc.errors.count(id) == 0) {
          Err(series.Mark(), tc.name + ": " + id.first + "/error_rate:total has no :errors series",
              "add " + id.first + "/error_rate:errors");
        } else if (tc.values.count(id)) {
          Err(series.Mark(),
              tc.name + ": " + id.first + "/error_rate is given both as percent " +
                  "values and as counters",
              "keep one of the two forms");
        }
      }
      for (const auto& [id, pts] : tc.errors) {
        if (tc.totals.count(id) == 0) {
          Err(series.Mark(), tc.name + ": " + id.first + "/error_rate:errors has no :total series",
              "add " + id.first + "/error_rate:total");
        }
      }
    }
    YAML::Node expect = n["expect"];
    if (!expect || !expect.IsSequence() || expect.size() == 0) {
      Err(expect ? expect.Mark() : n.Mark(), tc.name + ": missing or empty 'expect'",
          "add 'expect: [{at: 1m, trigger: NAME, component: NAME, state: firing}]'");
    } else {
      for (auto it = expect.begin(); it != expect.end(); ++it) ParseExpect(*it, &tc);
    }
    cases_.push_back(std::move(tc));
  }

  void ParseExpect(const YAML::Node& n, TestCase* tc) {
    const std::string where = tc->name + ".expect";
    if (!n.IsMap()) {
      Err(n.Mark(), where + ": expected a map {at, trigger, component, state}",
          "write '- {at: 1m, trigger: NAME, component: NAME, state: firing}'");
      return;
    }
    RejectUnknown(n, kExpectKeys, where);
    Expectation e;
    e.pos = Pos(n.Mark());
    bool ok = true;
    for (const char* key : {"at", "trigger", "component", "state"}) {
      if (!n[key]) {
        Err(n.Mark(), where + ": missing key '" + key + "'",
            "each expectation needs at, trigger, component and state");
        ok = false;
      }
    }
    if (!ok) return;
    if (auto v = Duration(n["at"], where + ".at", false)) {
      e.at_ms = *v;
    } else {
      ok = false;
    }
    if (auto s = Scalar(n["trigger"], where + ".trigger", "a trigger name")) {
      e.trigger = *s;
      // When the triggers themselves failed to parse, their errors say enough.
      if (!triggers_failed_ &&
          std::find(trigger_names_.begin(), trigger_names_.end(), *s) == trigger_names_.end()) {
        Err(n["trigger"].Mark(),
            where + ": unknown trigger '" + *s + "'" + Suggest(*s, trigger_names_),
            "use one of " + Join(trigger_names_));
        ok = false;
      }
    } else {
      ok = false;
    }
    if (auto s = Scalar(n["component"], where + ".component", "a component name")) {
      e.component = *s;
      std::vector<std::string> names;
      for (const auto& [name, kind] : components_) names.push_back(name);
      if (components_.count(*s) == 0) {
        Err(n["component"].Mark(), where + ": unknown component '" + *s + "'" + Suggest(*s, names),
            "use one of " + Join(names));
        ok = false;
      }
    } else {
      ok = false;
    }
    if (auto s = Scalar(n["state"], where + ".state", "ok, pending or firing")) {
      auto st = ParseTriggerState(*s);
      if (!st) {
        Err(n["state"].Mark(), where + ": unknown state '" + *s + "'" + Suggest(*s, kStates),
            "use one of ok, pending, firing");
        ok = false;
      } else {
        e.state = *st;
      }
    } else {
      ok = false;
    }
    if (!ok) return;
    for (const auto& t : triggers_) {
      if (t.name == e.trigger && !TriggerAppliesTo(t, e.component, components_[e.component])) {
        Err(n.Mark(),
            where + ": trigger '" + e.trigger + "' (signal " + t.signal +
                ") does not apply to component '" + e.component + "' of kind " +
                components_[e.component],
            "expect it on a component it applies to, or give the trigger 'component: " +
                e.component + "'");
        return;
      }
    }
    tc->expect.push_back(e);
  }

  Result<RuleTestResult> Execute() {
    RuleTestResult result;
    for (const auto& tc : cases_) {
      ++result.cases;
      RuleEngine engine(triggers_, components_);
      // Every time something happens: each sample index, each expectation.
      std::set<int64_t> times;
      size_t longest = 0;
      for (const auto* m : {&tc.values, &tc.totals}) {
        for (const auto& [id, pts] : *m) longest = std::max(longest, pts.size());
      }
      for (size_t i = 0; i < longest; ++i) times.insert(static_cast<int64_t>(i) * tc.interval_ms);
      for (const auto& e : tc.expect) times.insert(e.at_ms);
      for (int64_t t_ms : times) {
        const int64_t now_us = kOriginUs + t_ms * 1000;
        if (t_ms % tc.interval_ms == 0) {
          size_t index = static_cast<size_t>(t_ms / tc.interval_ms);
          for (const auto& [id, pts] : tc.values) {
            if (index >= pts.size()) continue;
            Sample s;
            s.component = id.first;
            s.signal = id.second;
            s.t_us = now_us;
            s.missing = pts[index].missing;
            s.value = pts[index].value;
            engine.Observe(s);
          }
          for (const auto& [id, pts] : tc.totals) {
            const auto& errs = tc.errors.at(id);
            if (index >= pts.size() && index >= errs.size()) continue;
            Sample s;
            s.component = id.first;
            s.signal = id.second;
            s.t_us = now_us;
            bool have = index < pts.size() && index < errs.size() && !pts[index].missing &&
                        !errs[index].missing;
            s.missing = !have;
            if (have) {
              s.counter_total = pts[index].value;
              s.counter_errors = errs[index].value;
            }
            engine.Observe(s);
          }
        }
        engine.Evaluate(now_us);
        for (const auto& e : tc.expect) {
          if (e.at_ms != t_ms) continue;
          ++result.expectations;
          auto st = engine.State(e.trigger, e.component);
          if (!st.ok()) {
            result.failures.push_back(e.pos + ": " + tc.name + " at " +
                                      FormatDurationSpec(e.at_ms) + ": " + st.status().message());
            continue;
          }
          if (st->state != e.state) {
            std::string detail;
            if (st->state != TriggerState::kOk) {
              detail = "since " + FormatDurationSpec((st->since_us - kOriginUs) / 1000);
            }
            if (!st->reason.empty()) detail += (detail.empty() ? "" : "; ") + st->reason;
            result.failures.push_back(
                e.pos + ": " + tc.name + " at " + FormatDurationSpec(e.at_ms) + ": " + e.trigger +
                " on " + e.component + ": expected " + TriggerStateName(e.state) + ", got " +
                TriggerStateName(st->state) + (detail.empty() ? "" : " (" + detail + ")"));
          }
        }
      }
    }
    return result;
  }

  std::string path_;
  std::string text_;
  std::vector<std::string> errors_;
  std::map<std::string, std::string> components_;
  std::vector<TriggerSpec> triggers_;
  std::vector<std::string> trigger_names_;
  std::vector<TestCase> cases_;
  bool triggers_failed_ = false;
};

}  // namespace

Result<RuleTestResult> RunRuleTests(const std::string& path) {
  auto text = Env::Default()->fs()->ReadFile(path);
  if (!text.ok()) {
    return Status::InvalidArgument("cannot read rule test file " + path + ": " +
                                   text.status().message());
  }
  return Parser(path, *text).Run();
}

}  // namespace backstop

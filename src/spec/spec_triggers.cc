// The triggers section (signal, condition, action) and the decision matrix
// that maps firing triggers to a rollback scope.
#include <map>
#include <string>
#include <vector>

#include "base/units.h"
#include "spec/spec_parser.h"

namespace backstop::spec_internal {

namespace {

const std::vector<std::string> kTriggerKeys = {
    "name",  "component", "signal", "metric",          "consecutive",  "above",
    "below", "for",       "window", "keep_firing_for", "missing_data", "action"};
const std::vector<std::string> kMissingData = {"fail", "ignore", "keep"};
const std::vector<std::string> kRuleKeys = {"scenario", "triggers", "scope", "procedure",
                                            "recovery_time"};

// Signals measured as a time (thresholds are durations, stored in ms), as a
// percentage, or as a pass/fail count (only `consecutive` applies).
enum class SignalUnit { kUnknown, kTime, kPercent, kCount };

SignalUnit UnitOf(std::optional<Signal> signal) {
  if (!signal) return SignalUnit::kUnknown;
  switch (*signal) {
    case Signal::kLatency:
    case Signal::kConnectTime:
    case Signal::kDisconnected:
      return SignalUnit::kTime;
    case Signal::kErrorRate:
    case Signal::kCpu:
    case Signal::kMemory:
      return SignalUnit::kPercent;
    case Signal::kHealth:
    case Signal::kUnreachable:
    case Signal::kIntegrity:
      return SignalUnit::kCount;
  }
  return SignalUnit::kUnknown;
}

}  // namespace

std::optional<double> Parser::Threshold(const Entry& e, const std::string& path,
                                        std::optional<Signal> signal) {
  SignalUnit unit = UnitOf(signal);
  const std::string signal_name = signal ? std::string(Name(*signal)) : "";
  const std::string as_time = "a duration such as 5s or 500ms";
  const std::string as_percent = "a percentage between 0% and 100% such as 5%";
  auto text = Str(e, path, unit == SignalUnit::kPercent ? as_percent : as_time);
  if (!text) return std::nullopt;
  bool percent_form = !text->empty() && text->back() == '%';
  switch (unit) {
    case SignalUnit::kTime: {
      if (percent_form) {
        Err(At(e), path,
            "'" + *text + "' is a percentage, but signal '" + signal_name + "' is measured in time",
            as_time);
        return std::nullopt;
      }
      auto ms = ParseDurationMs(*text);
      if (!ms) {
        Err(At(e), path,
            LooksNumeric(*text) ? "'" + *text + "' has no unit" : "bad duration '" + *text + "'",
            as_time);
        return std::nullopt;
      }
      return static_cast<double>(*ms);
    }
    case SignalUnit::kPercent: {
      if (!percent_form && ParseDurationMs(*text)) {
        Err(At(e), path,
            "'" + *text + "' is a duration, but signal '" + signal_name + "' is a percentage",
            as_percent);
        return std::nullopt;
      }
      auto p = ParsePercent(*text);
      if (!p) {
        Err(At(e), path,
            percent_form ? "bad percentage '" + *text + "'" : "'" + *text + "' is not a percentage",
            as_percent);
        return std::nullopt;
      }
      return *p;
    }
    case SignalUnit::kCount:
      Err(e.key_mark, path, "signal '" + signal_name + "' has no threshold",
          "consecutive: N (failures in a row)");
      return std::nullopt;
    case SignalUnit::kUnknown:
      break;
  }
  // No usable signal (already reported): accept either form silently.
  if (auto ms = ParseDurationMs(*text)) return static_cast<double>(*ms);
  if (auto p = ParsePercent(*text)) return *p;
  return std::nullopt;
}

void Parser::ParseTriggers(const Entry& e, Spec* spec) {
  if (!ExpectList(e.value, e.key_mark, "triggers",
                  "a list of triggers such as '- {name: health_check_failures, signal: health, "
                  "consecutive: 3, action: component_rollback}'")) {
    return;
  }
  // Every name written is remembered (trigger_names_), even that of a
  // trigger with other errors, so the decision matrix adds no cascade.
  size_t i = 0;
  std::map<std::string, int> first_line;
  for (auto it = e.value.begin(); it != e.value.end(); ++it, ++i) {
    YAML::Node item = *it;
    TriggerSpec t;
    if (ParseTrigger(item, At(e.value, e.key_mark), IndexPath("triggers", i), *spec, &first_line,
                     &t)) {
      spec->triggers.push_back(std::move(t));
    }
  }
}

bool Parser::ParseTrigger(const YAML::Node& item, const Mark& fallback, const std::string& path,
                          const Spec& spec, std::map<std::string, int>* first_line,
                          TriggerSpec* t) {
  MapFields f;
  if (!ReadMap(item, fallback, path, "a map with name, signal, a condition and action", &f)) {
    return false;
  }
  size_t errors_before = errors_.size();
  t->pos = Pos(f.anchor);

  if (Entry* e = f.Take("name")) {
    if (auto name = NonEmptyStr(*e, path + ".name", "a trigger name")) {
      t->name = *name;
      trigger_names_.insert(*name);
      auto [it, inserted] = first_line->emplace(*name, At(*e).line + 1);
      if (!inserted) {
        Err(At(*e), path + ".name",
            "duplicate trigger name '" + *name + "' (first at line " + std::to_string(it->second) +
                ")",
            "unique trigger names");
      }
    }
  } else {
    Err(f.anchor, path + ".name", "missing required key 'name'", "a trigger name");
  }
  if (Entry* e = f.Take("component")) {
    if (auto c = Str(*e, path + ".component", "a component name")) {
      if (spec.components.count(*c) == 0) {
        Err(At(*e), path + ".component",
            "unknown component '" + *c + "'" + DidYouMean(*c, spec.component_order),
            "one of " + JoinList(spec.component_order));
      } else {
        t->component = *c;
      }
    }
  }
  std::optional<Signal> signal;
  if (Entry* e = f.Take("signal")) {
    signal = OneOf(*e, path + ".signal", kSignalNames, "signal");
    if (signal) t->signal = *signal;
  } else {
    Err(f.anchor, path + ".signal", "missing required key 'signal'",
        "one of " + JoinList(kSignalNames.All()));
  }
  if (Entry* e = f.Take("metric")) {
    if (auto m = NonEmptyStr(*e, path + ".metric", "a Prometheus metric name")) {
      size_t slash = m->find('/');
      if (signal == Signal::kErrorRate &&
          (slash == std::string::npos || slash == 0 || slash + 1 == m->size() ||
           m->find('/', slash + 1) != std::string::npos)) {
        Err(At(*e), path + ".metric", "'" + *m + "' is not a ratio of two counters",
            "errors/total counters such as errors_total/requests_total");
      } else {
        t->metric = *m;
      }
    }
  }
  if (Entry* e = f.Take("consecutive")) {
    if (auto v = Int(*e, path + ".consecutive", 1, 1'000'000, "an integer of at least 1")) {
      t->consecutive = static_cast<int>(*v);
    }
  }
  Entry* above = f.Take("above");
  Entry* below = f.Take("below");
  if (above != nullptr) t->above = Threshold(*above, path + ".above", signal);
  if (below != nullptr) t->below = Threshold(*below, path + ".below", signal);
  if (Entry* e = f.Take("for")) {
    if (auto v = Duration(*e, path + ".for", false)) t->for_ms = *v;
  }
  if (Entry* e = f.Take("window")) {
    if (auto v = Duration(*e, path + ".window", false)) t->window_ms = *v;
  }
  if (Entry* e = f.Take("keep_firing_for")) {
    if (auto v = Duration(*e, path + ".keep_firing_for", false)) t->keep_firing_for_ms = *v;
  }
  if (Entry* e = f.Take("missing_data")) {
    if (auto v = OneOf(*e, path + ".missing_data", kMissingData, "missing_data policy")) {
      t->missing_data = *v;
    }
  }
  if (Entry* e = f.Take("action")) {
    if (auto v = OneOf(*e, path + ".action", kTriggerActionNames, "action")) t->action = *v;
  } else {
    Err(f.anchor, path + ".action", "missing required key 'action'",
        "one of " + JoinList(kTriggerActionNames.All()));
  }
  if (above == nullptr && below == nullptr && !f.Take("consecutive") && signal) {
    Err(f.anchor, path, "trigger has no condition",
        UnitOf(signal) == SignalUnit::kCount
            ? "consecutive: N for signal '" + std::string(Name(*signal)) + "'"
            : "above, below or consecutive (for example above: " +
                  std::string(UnitOf(signal) == SignalUnit::kTime ? "5s" : "5%") + ")");
  }
  RejectUnknown(f, kTriggerKeys);
  return errors_.size() == errors_before;
}

void Parser::ParseDecisionMatrix(const Entry& e, Spec* spec) {
  if (!ExpectList(e.value, e.key_mark, "decision_matrix",
                  "a list of rules {scenario, triggers, scope, procedure, recovery_time}")) {
    return;
  }
  std::map<std::string, int> first_line;
  std::vector<std::string> trigger_names(trigger_names_.begin(), trigger_names_.end());
  size_t i = 0;
  for (auto it = e.value.begin(); it != e.value.end(); ++it, ++i) {
    YAML::Node item = *it;
    const std::string path = IndexPath("decision_matrix", i);
    MapFields f;
    if (!ReadMap(item, At(e), path, "a map with scenario, triggers, scope", &f)) continue;
    DecisionRule r;
    r.pos = Pos(f.anchor);
    if (Entry* s = f.Take("scenario")) {
      if (auto v = NonEmptyStr(*s, path + ".scenario", "a scenario name")) {
        r.scenario = *v;
        scenario_names_.push_back(*v);
        auto [first, inserted] = first_line.emplace(*v, At(*s).line + 1);
        if (!inserted) {
          Err(At(*s), path + ".scenario",
              "duplicate scenario '" + *v + "' (first at line " + std::to_string(first->second) +
                  ")",
              "unique scenario names");
        }
      }
    } else {
      Err(f.anchor, path + ".scenario", "missing required key 'scenario'", "a scenario name");
    }
    if (Entry* t = f.Take("triggers")) {
      auto names = StrList(*t, path + ".triggers", "a list of trigger names", true);
      if (names) {
        for (size_t k = 0; k < names->size(); ++k) {
          const auto& [name, mark] = (*names)[k];
          if (trigger_names_.count(name) == 0) {
            Err(mark, t->value.IsSequence() ? IndexPath(path + ".triggers", k) : path + ".triggers",
                "unknown trigger '" + name + "'" + DidYouMean(name, trigger_names),
                "one of " + JoinList(trigger_names));
          } else {
            r.triggers.push_back(name);
          }
        }
      }
    }
    if (Entry* s = f.Take("scope")) {
      if (auto v = OneOf(*s, path + ".scope", kMatrixScopeNames, "scope")) r.scope = *v;
    } else {
      Err(f.anchor, path + ".scope", "missing required key 'scope'",
          "one of " + JoinList(kMatrixScopeNames.All()));
    }
    if (Entry* p = f.Take("procedure")) {
      if (auto v = Str(*p, path + ".procedure", "a description of the procedure")) {
        r.procedure = *v;
      }
    }
    if (Entry* rt = f.Take("recovery_time")) {
      const std::string expected = "a duration or a range such as 5m or 2-5m";
      if (auto v = Str(*rt, path + ".recovery_time", expected)) {
        auto range = spec_internal::ParseRecoveryTime(*v);
        if (range) {
          r.recovery_min_ms = range->first;
          r.recovery_max_ms = range->second;
        } else {
          Err(At(*rt), path + ".recovery_time", "bad recovery time '" + *v + "'", expected);
        }
      }
    }
    RejectUnknown(f, kRuleKeys);
    spec->decision_matrix.push_back(std::move(r));
  }
}

}  // namespace backstop::spec_internal

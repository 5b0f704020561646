// The trigger rules engine (rules.h). The test-rules file runner is in
// rule_tests.cc.
#include "watch/rules.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <utility>

#include "base/units.h"

namespace backstop {

const char* TriggerStateName(TriggerState s) {
  switch (s) {
    case TriggerState::kOk:
      return "ok";
    case TriggerState::kPending:
      return "pending";
    case TriggerState::kFiring:
      return "firing";
  }
  return "ok";
}

std::optional<TriggerState> ParseTriggerState(const std::string& name) {
  if (name == "ok") return TriggerState::kOk;
  if (name == "pending") return TriggerState::kPending;
  if (name == "firing") return TriggerState::kFiring;
  return std::nullopt;
}

namespace {

// Recent samples kept per instance, quoted in events.
constexpr size_t kRingSize = 20;
constexpr int kStateVersion = 1;

enum class SignalKind { kCount, kTime, kPercent };

SignalKind KindOf(Signal signal) {
  switch (signal) {
    case Signal::kHealth:
    case Signal::kUnreachable:
    case Signal::kIntegrity:
      return SignalKind::kCount;
    case Signal::kErrorRate:
    case Signal::kCpu:
    case Signal::kMemory:
      return SignalKind::kPercent;
    case Signal::kLatency:
    case Signal::kConnectTime:
    case Signal::kDisconnected:
      return SignalKind::kTime;
  }
  return SignalKind::kTime;
}

nlohmann::json SampleToJson(const Sample& s, int64_t t_field, const char* t_name) {
  nlohmann::json j = {{"component", s.component}, {"signal", s.signal}, {t_name, t_field}};
  if (s.missing) {
    j["missing"] = true;
  } else {
    j["value"] = s.value;
  }
  if (s.counter_total) j["counter_total"] = *s.counter_total;
  if (s.counter_errors) j["counter_errors"] = *s.counter_errors;
  if (!s.detail.empty()) j["detail"] = s.detail;
  return j;
}

Sample SampleFromJson(const nlohmann::json& j, int64_t t_us) {
  Sample s;
  s.component = j.at("component").get<std::string>();
  const auto signal_name = j.at("signal").get<std::string>();
  std::optional<Signal> signal = ParseSignal(signal_name);
  if (!signal) {
    throw nlohmann::json::other_error::create(501, "unknown signal '" + signal_name + "'", &j);
  }
  s.signal = *signal;
  s.t_us = t_us;
  s.missing = j.value("missing", false);
  if (!s.missing) s.value = j.at("value").get<double>();
  if (j.contains("counter_total")) s.counter_total = j["counter_total"].get<double>();
  if (j.contains("counter_errors")) s.counter_errors = j["counter_errors"].get<double>();
  s.detail = j.value("detail", "");
  return s;
}

// "7.50" -> "7.5", "5.00" -> "5": a printed decimal without its trailing zeros.
std::string WithoutTrailingZeros(std::string s) {
  while (!s.empty() && s.back() == '0' && s.find('.') != std::string::npos) s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

std::string FormatPercent(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return WithoutTrailingZeros(buf) + "%";
}

// A signal value as people read it: "6.20 s", "7.5%", "fail".
std::string FormatValue(Signal signal, double v) {
  switch (KindOf(signal)) {
    case SignalKind::kCount:
      return v < 0.5 ? "fail" : "pass";
    case SignalKind::kPercent:
      return FormatPercent(v);
    case SignalKind::kTime:
      return FormatDurationMs(static_cast<int64_t>(std::llround(v)));
  }
  return "";
}

// A threshold as written in specs: "5s", "5%".
std::string FormatThreshold(Signal signal, double v) {
  if (KindOf(signal) == SignalKind::kPercent) return FormatPercent(v);
  return FormatDurationSpec(static_cast<int64_t>(std::llround(v)));
}

std::string SignalLabel(Signal signal) {
  switch (signal) {
    case Signal::kConnectTime:
      return "connect time";
    case Signal::kDisconnected:
      return "disconnected time";
    case Signal::kErrorRate:
      return "error rate";
    case Signal::kCpu:
      return "CPU";
    case Signal::kHealth:
    case Signal::kLatency:
    case Signal::kMemory:
    case Signal::kUnreachable:
    case Signal::kIntegrity:
      break;
  }
  return std::string(Name(signal));
}

// "failures", "failed attempts", "failed integrity checks" (count signals).
std::string FailureNoun(Signal signal, int n) {
  bool one = n == 1;
  if (signal == Signal::kUnreachable) return one ? "failed attempt" : "failed attempts";
  if (signal == Signal::kIntegrity)
    return one ? "failed integrity check" : "failed integrity checks";
  return one ? "failure" : "failures";
}

}  // namespace

// Outside the anonymous namespace: RuleEngine::Impl (external linkage) holds
// these, and a type with internal linkage in its members is an error when the
// file is compiled as part of a unity batch (-Wsubobject-linkage).
namespace rule_counters {

struct CounterPoint {
  int64_t t_us = 0;
  double total = 0;
  double errors = 0;
};

// Prometheus increase() without extrapolation: the sum of the increases
// between consecutive points, a decrease meaning the counter restarted from 0.
double Increase(const std::deque<CounterPoint>& points, double CounterPoint::*field) {
  double sum = 0;
  for (size_t i = 1; i < points.size(); ++i) {
    double prev = points[i - 1].*field, cur = points[i].*field;
    sum += cur >= prev ? cur - prev : cur;
  }
  return sum;
}

}  // namespace rule_counters

using rule_counters::CounterPoint;
using rule_counters::Increase;

nlohmann::json TriggerEvent::ToJson() const {
  nlohmann::json j = {
      {"trigger", trigger},         {"component", component}, {"from", TriggerStateName(from)},
      {"to", TriggerStateName(to)}, {"t_us", t_us},           {"action", action},
      {"signal", signal},           {"reason", reason}};
  if (last_value) j["last_value"] = *last_value;
  nlohmann::json s = nlohmann::json::array();
  for (const auto& sample : samples) s.push_back(SampleToJson(sample, sample.t_us, "t_us"));
  j["samples"] = s;
  return j;
}

bool TriggerAppliesTo(const TriggerSpec& trigger, const std::string& component,
                      ComponentKind kind) {
  if (!trigger.component.empty()) return trigger.component == component;
  switch (trigger.signal) {
    case Signal::kHealth:
    case Signal::kLatency:
    case Signal::kUnreachable:
      return true;
    case Signal::kConnectTime:
    case Signal::kIntegrity:
      return kind == ComponentKind::kDatabase;
    case Signal::kDisconnected:
      return kind == ComponentKind::kStream;
    case Signal::kCpu:
    case Signal::kMemory:
    case Signal::kErrorRate:
      return kind == ComponentKind::kService;
  }
  return false;
}

// ---------------------------------------------------------------------------

struct RuleEngine::Impl {
  struct Instance {
    size_t trigger = 0;  // index into triggers
    std::string component;
    TriggerState state = TriggerState::kOk;
    int64_t since_us = 0;
    int consecutive_bad = 0;
    std::optional<int64_t> bad_since_us;    // start of the current run of bad samples
    std::optional<int64_t> clear_since_us;  // firing, condition clear since (keep_firing_for)
    bool last_bad = false;                  // the last judged sample was bad
    std::optional<double> last_value;       // the last judged value (a rate for counters)
    std::optional<int64_t> last_t_us;       // the last sample seen (judged or not)
    std::string reason;
    std::deque<Sample> ring;
    std::deque<CounterPoint> counters;

    // Worth saving across a restart.
    bool Interesting() const {
      return state != TriggerState::kOk || consecutive_bad > 0 || !counters.empty();
    }
  };

  std::vector<TriggerSpec> triggers;
  std::map<std::string, ComponentKind> components;
  std::vector<Instance> instances;
  std::map<std::pair<std::string, Signal>, std::vector<size_t>> by_signal;  // (comp, signal)
  std::map<std::pair<std::string, std::string>, size_t> by_name;            // (trigger, component)
  std::vector<TriggerEvent> pending_events;
  int64_t latest_us = 0;  // the newest time seen (sample or Evaluate)
  bool seen_time = false;

  void Build() {
    instances.clear();
    by_signal.clear();
    by_name.clear();
    for (size_t t = 0; t < triggers.size(); ++t) {
      for (const auto& [name, kind] : components) {
        if (!TriggerAppliesTo(triggers[t], name, kind)) continue;
        Instance inst;
        inst.trigger = t;
        inst.component = name;
        by_signal[{name, triggers[t].signal}].push_back(instances.size());
        by_name[{triggers[t].name, name}] = instances.size();
        instances.push_back(std::move(inst));
      }
    }
  }

  void SeeTime(int64_t t) {
    if (!seen_time || t > latest_us) latest_us = t;
    seen_time = true;
  }

  static bool IsBad(const TriggerSpec& t, double v) {
    if (KindOf(t.signal) == SignalKind::kCount) return v < 0.5;
    if (t.above && v > *t.above) return true;
    if (t.below && v < *t.below) return true;
    return false;
  }

  // ---- reasons ----

  std::string Condition(const TriggerSpec& t) const {
    std::string label = SignalLabel(t.signal);
    std::string out;
    if (t.above) out = label + " above " + FormatThreshold(t.signal, *t.above);
    if (t.below) {
      if (!out.empty()) out += " or ";
      out += label + " below " + FormatThreshold(t.signal, *t.below);
    }
    if (out.empty()) out = label + " missing";  // only missing data can make it bad
    return out;
  }

  // "last: HTTP 503", "last 6.20 s", "last: missing data".
  static std::string Last(const TriggerSpec& t, const Instance& inst) {
    if (inst.ring.empty()) return "";
    const Sample& s = inst.ring.back();
    std::string out;
    if (s.missing) {
      out = "last: missing data";
      if (t.missing_data == "keep" && inst.last_value) {
        out += ", kept " + FormatValue(t.signal, *inst.last_value);
      }
    } else if (KindOf(t.signal) == SignalKind::kCount) {
      out = "last: " + (s.detail.empty() ? FormatValue(t.signal, s.value) : s.detail);
      return out;
    } else if (inst.last_value) {
      out = "last " + FormatValue(t.signal, *inst.last_value);
    }
    if (!s.detail.empty()) out += (out.empty() ? "" : ", ") + s.detail;
    return out;
  }

  static std::string Paren(const std::string& s) { return s.empty() ? "" : " (" + s + ")"; }

  std::string FiringReason(const TriggerSpec& t, const Instance& inst) const {
    std::string last = Last(t, inst);
    int n = inst.consecutive_bad;
    if (KindOf(t.signal) == SignalKind::kCount) {
      if (t.consecutive <= 1 && t.for_ms == 0) {
        return (t.signal == Signal::kIntegrity     ? "integrity check failed"
                : t.signal == Signal::kUnreachable ? "unreachable"
                                                   : "health check failed") +
               Paren(last);
      }
      std::string out = std::to_string(n) + " consecutive " + FailureNoun(t.signal, n);
      if (t.for_ms > 0) out += " over " + FormatDurationSpec(t.for_ms);
      return out + Paren(last);
    }
    std::string out;
    if (t.consecutive > 1) {
      out = std::to_string(n) + " consecutive samples with " + Condition(t);
    } else {
      out = Condition(t);
    }
    if (t.for_ms > 0) out += " for " + FormatDurationSpec(t.for_ms);
    return out + Paren(last);
  }

  std::string PendingReason(const TriggerSpec& t, const Instance& inst) const {
    std::string last = Last(t, inst);
    int n = inst.consecutive_bad;
    std::string out;
    if (KindOf(t.signal) == SignalKind::kCount) {
      out = std::to_string(n) + " consecutive " + FailureNoun(t.signal, n);
      if (t.consecutive > 1) out += " of " + std::to_string(t.consecutive);
    } else {
      out = Condition(t);
      if (t.consecutive > 1) {
        out += ", " + std::to_string(n) + " of " + std::to_string(t.consecutive) + " samples";
      }
    }
    if (t.for_ms > 0) out += "; fires if it lasts " + FormatDurationSpec(t.for_ms);
    return out + Paren(last);
  }

  std::string ClearReason(const TriggerSpec& t, const Instance& inst, int64_t now_us) const {
    std::string last = Last(t, inst);
    std::string out;
    if (inst.ring.empty() || inst.ring.back().missing) {
      out = "condition no longer holds";
    } else if (KindOf(t.signal) == SignalKind::kCount) {
      out = t.signal == Signal::kIntegrity     ? "integrity check passed"
            : t.signal == Signal::kUnreachable ? "reachable again"
                                               : "health check passed";
    } else {
      out = "no longer " + Condition(t);
    }
    if (inst.state == TriggerState::kFiring && t.keep_firing_for_ms > 0 && inst.clear_since_us) {
      out += " for " + FormatDurationSpec((now_us - *inst.clear_since_us) / 1000) +
             " (keep_firing_for " + FormatDurationSpec(t.keep_firing_for_ms) + ")";
    }
    return out + Paren(last);
  }

  // ---- transitions ----

  std::vector<Sample> EventSamples(const Instance& inst, std::optional<int64_t> from_us) const {
    std::vector<Sample> out;
    for (const auto& s : inst.ring) {
      if (!from_us || s.t_us >= *from_us) out.push_back(s);
    }
    if (out.empty() && !inst.ring.empty()) out.push_back(inst.ring.back());
    return out;
  }

  void Transition(Instance& inst, TriggerState to, int64_t t_us, std::string reason,
                  std::optional<int64_t> samples_from) {
    const TriggerSpec& spec = triggers[inst.trigger];
    TriggerEvent ev;
    ev.trigger = spec.name;
    ev.component = inst.component;
    ev.from = inst.state;
    ev.to = to;
    ev.t_us = t_us;
    ev.action = spec.action;
    ev.signal = spec.signal;
    ev.reason = reason;
    ev.samples = EventSamples(inst, samples_from);
    ev.last_value = inst.last_value;
    inst.state = to;
    inst.since_us = t_us;
    inst.reason = std::move(reason);
    if (to != TriggerState::kFiring) inst.clear_since_us.reset();
    pending_events.push_back(std::move(ev));
  }

  bool FireConditionMet(const TriggerSpec& t, const Instance& inst, int64_t now_us) const {
    if (!inst.last_bad || !inst.bad_since_us) return false;
    if (inst.consecutive_bad < std::max(1, t.consecutive)) return false;
    return now_us - *inst.bad_since_us >= t.for_ms * 1000;
  }

  bool ResolveConditionMet(const TriggerSpec& t, const Instance& inst, int64_t now_us) const {
    if (inst.last_bad || !inst.clear_since_us) return false;
    return now_us - *inst.clear_since_us >= t.keep_firing_for_ms * 1000;
  }

  // One judged sample: bad or good, with the value the rule saw (none when missing).
  void Judge(Instance& inst, int64_t t_us, bool bad, std::optional<double> value) {
    const TriggerSpec& t = triggers[inst.trigger];
    if (value) inst.last_value = value;
    if (bad) {
      inst.consecutive_bad = std::min(inst.consecutive_bad + 1, 1'000'000'000);
      if (!inst.bad_since_us) inst.bad_since_us = t_us;
      inst.last_bad = true;
      inst.clear_since_us.reset();
      if (inst.state != TriggerState::kFiring && FireConditionMet(t, inst, t_us)) {
        Transition(inst, TriggerState::kFiring, t_us, FiringReason(t, inst), inst.bad_since_us);
      } else if (inst.state == TriggerState::kOk) {
        Transition(inst, TriggerState::kPending, t_us, PendingReason(t, inst), t_us);
      } else if (inst.state == TriggerState::kPending) {
        inst.reason = PendingReason(t, inst);
      }
      return;
    }
    inst.consecutive_bad = 0;
    inst.bad_since_us.reset();
    inst.last_bad = false;
    if (inst.state == TriggerState::kPending) {
      Transition(inst, TriggerState::kOk, t_us, ClearReason(t, inst, t_us), t_us);
    } else if (inst.state == TriggerState::kFiring) {
      if (!inst.clear_since_us) inst.clear_since_us = t_us;
      if (ResolveConditionMet(t, inst, t_us)) {
        Transition(inst, TriggerState::kOk, t_us, ClearReason(t, inst, t_us), inst.clear_since_us);
      }
    }
  }

  // The error rate in percent from the counters over the window; nullopt
  // with *no_traffic false when there is no earlier point to compare with.
  std::optional<double> CounterRate(Instance& inst, const TriggerSpec& t, const Sample& s,
                                    bool* no_traffic) {
    *no_traffic = false;
    inst.counters.push_back({s.t_us, *s.counter_total, *s.counter_errors});
    int64_t window_us = (t.window_ms > 0 ? t.window_ms : t.for_ms) * 1000;
    // Keep the earliest point inside the window as the base, but always at
    // least the previous point (a window shorter than the interval).
    while (inst.counters.size() >= 3 && inst.counters[0].t_us < s.t_us - window_us) {
      inst.counters.pop_front();
    }
    if (inst.counters.size() < 2) return std::nullopt;
    double total = Increase(inst.counters, &CounterPoint::total);
    double errors = Increase(inst.counters, &CounterPoint::errors);
    if (total <= 0) {
      *no_traffic = true;
      return std::nullopt;
    }
    return std::clamp(errors / total * 100.0, 0.0, 100.0);
  }

  void ObserveOne(Instance& inst, const Sample& s) {
    const TriggerSpec& t = triggers[inst.trigger];
    if (inst.last_t_us && s.t_us < *inst.last_t_us) return;  // out of order: dropped
    inst.last_t_us = s.t_us;
    inst.ring.push_back(s);
    if (inst.ring.size() > kRingSize) inst.ring.pop_front();

    bool missing = s.missing;
    std::optional<double> value;
    if (!missing) {
      if (s.counter_total && s.counter_errors) {
        bool no_traffic = false;
        value = CounterRate(inst, t, s, &no_traffic);
        if (!value && !no_traffic) return;  // the first point: nothing to compare with yet
        if (!value) {
          missing = true;  // no traffic in the window
          inst.ring.back().detail += (inst.ring.back().detail.empty() ? "" : ", ") +
                                     std::string("no traffic in the window");
        }
      } else {
        value = s.value;
      }
    }
    if (missing) {
      if (t.missing_data == "ignore") return;
      if (t.missing_data == "keep") {
        if (!inst.last_value) return;  // nothing to repeat yet
        Judge(inst, s.t_us, IsBad(t, *inst.last_value), inst.last_value);
        return;
      }
      Judge(inst, s.t_us, /*bad=*/true, std::nullopt);  // fail
      return;
    }
    Judge(inst, s.t_us, IsBad(t, *value), value);
  }

  void EvaluateOne(Instance& inst, int64_t now_us) {
    const TriggerSpec& t = triggers[inst.trigger];
    if (inst.state == TriggerState::kPending && FireConditionMet(t, inst, now_us)) {
      Transition(inst, TriggerState::kFiring, now_us, FiringReason(t, inst), inst.bad_since_us);
    } else if (inst.state == TriggerState::kFiring && ResolveConditionMet(t, inst, now_us)) {
      Transition(inst, TriggerState::kOk, now_us, ClearReason(t, inst, now_us),
                 inst.clear_since_us);
    }
  }

  TriggerStatus StatusOf(const Instance& inst) const {
    const TriggerSpec& t = triggers[inst.trigger];
    TriggerStatus st;
    st.trigger = t.name;
    st.component = inst.component;
    st.state = inst.state;
    st.since_us = inst.since_us;
    st.consecutive_bad = inst.consecutive_bad;
    st.last_value = inst.last_value;
    st.reason = inst.reason;
    st.signal = t.signal;
    st.action = t.action;
    return st;
  }
};

RuleEngine::RuleEngine(std::vector<TriggerSpec> triggers,
                       std::map<std::string, ComponentKind> components)
    : impl_(std::make_unique<Impl>()) {
  impl_->triggers = std::move(triggers);
  impl_->components = std::move(components);
  impl_->Build();
}

RuleEngine::~RuleEngine() = default;
RuleEngine::RuleEngine(RuleEngine&&) noexcept = default;
RuleEngine& RuleEngine::operator=(RuleEngine&&) noexcept = default;

void RuleEngine::Observe(const Sample& sample) {
  auto it = impl_->by_signal.find({sample.component, sample.signal});
  if (it == impl_->by_signal.end()) return;
  impl_->SeeTime(sample.t_us);
  for (size_t i : it->second) impl_->ObserveOne(impl_->instances[i], sample);
}

std::vector<TriggerEvent> RuleEngine::Evaluate(int64_t now_us) {
  impl_->SeeTime(now_us);
  for (auto& inst : impl_->instances) impl_->EvaluateOne(inst, now_us);
  std::vector<TriggerEvent> out = std::move(impl_->pending_events);
  impl_->pending_events.clear();
  std::stable_sort(out.begin(), out.end(),
                   [](const TriggerEvent& a, const TriggerEvent& b) { return a.t_us < b.t_us; });
  return out;
}

std::vector<TriggerStatus> RuleEngine::States() const {
  std::vector<TriggerStatus> out;
  out.reserve(impl_->instances.size());
  for (const auto& inst : impl_->instances) out.push_back(impl_->StatusOf(inst));
  return out;
}

Result<TriggerStatus> RuleEngine::State(const std::string& trigger,
                                        const std::string& component) const {
  auto it = impl_->by_name.find({trigger, component});
  if (it == impl_->by_name.end()) {
    return Status::NotFound("trigger '" + trigger + "' does not apply to component '" + component +
                            "'");
  }
  return impl_->StatusOf(impl_->instances[it->second]);
}

std::vector<TriggerSpec> RuleEngine::TriggersFor(const std::string& component) const {
  std::vector<TriggerSpec> out;
  for (const auto& inst : impl_->instances) {
    if (inst.component == component) out.push_back(impl_->triggers[inst.trigger]);
  }
  return out;
}

void RuleEngine::Reset(const std::string& component, int64_t now_us, const std::string& why) {
  impl_->SeeTime(now_us);
  for (auto& inst : impl_->instances) {
    if (inst.component != component) continue;
    if (inst.state != TriggerState::kOk) {
      impl_->Transition(inst, TriggerState::kOk, now_us, why, std::nullopt);
    }
    Impl::Instance fresh;
    fresh.trigger = inst.trigger;
    fresh.component = inst.component;
    fresh.since_us = inst.since_us;
    fresh.reason = inst.reason;
    // Samples before the reset are history: later ones must not be dropped as out of order.
    fresh.last_t_us = inst.last_t_us;
    inst = std::move(fresh);
  }
}

nlohmann::json RuleEngine::SaveState() const {
  const int64_t base = impl_->latest_us;
  auto age = [base](int64_t t) { return base - t; };
  nlohmann::json list = nlohmann::json::array();
  for (const auto& inst : impl_->instances) {
    if (!inst.Interesting()) continue;
    nlohmann::json j = {{"trigger", impl_->triggers[inst.trigger].name},
                        {"component", inst.component},
                        {"state", TriggerStateName(inst.state)},
                        {"since_age_us", age(inst.since_us)},
                        {"consecutive_bad", inst.consecutive_bad},
                        {"last_bad", inst.last_bad},
                        {"reason", inst.reason}};
    if (inst.bad_since_us) j["bad_since_age_us"] = age(*inst.bad_since_us);
    if (inst.clear_since_us) j["clear_since_age_us"] = age(*inst.clear_since_us);
    if (inst.last_value) j["last_value"] = *inst.last_value;
    if (inst.last_t_us) j["last_sample_age_us"] = age(*inst.last_t_us);
    nlohmann::json counters = nlohmann::json::array();
    for (const auto& c : inst.counters) counters.push_back({age(c.t_us), c.total, c.errors});
    j["counters"] = counters;
    nlohmann::json samples = nlohmann::json::array();
    for (const auto& s : inst.ring) samples.push_back(SampleToJson(s, age(s.t_us), "age_us"));
    j["samples"] = samples;
    list.push_back(j);
  }
  return {{"version", kStateVersion}, {"instances", list}};
}

Status RuleEngine::LoadState(const nlohmann::json& state, int64_t now_us) {
  // Parse everything before touching the engine: a bad file changes nothing.
  std::vector<std::pair<size_t, Impl::Instance>> restored;
  try {
    if (!state.is_object()) {
      return Status::InvalidArgument("trigger state: expected a JSON object, got " +
                                     std::string(state.type_name()));
    }
    int version = state.at("version").get<int>();
    if (version != kStateVersion) {
      return Status::InvalidArgument("trigger state: unsupported version " +
                                     std::to_string(version) + " (this build reads version " +
                                     std::to_string(kStateVersion) +
                                     "); delete the state file to start afresh");
    }
    auto at = [now_us](int64_t age_us) { return now_us - age_us; };
    for (const auto& j : state.at("instances")) {
      std::string trigger = j.at("trigger").get<std::string>();
      std::string component = j.at("component").get<std::string>();
      auto it = impl_->by_name.find({trigger, component});
      if (it == impl_->by_name.end()) continue;  // trigger or component gone from the spec
      Impl::Instance inst;
      inst.trigger = impl_->instances[it->second].trigger;
      inst.component = component;
      auto st = ParseTriggerState(j.at("state").get<std::string>());
      if (!st) {
        return Status::InvalidArgument("trigger state: instance " + trigger + "/" + component +
                                       " has unknown state '" + j.at("state").dump() + "'");
      }
      inst.state = *st;
      inst.since_us = at(j.at("since_age_us").get<int64_t>());
      inst.consecutive_bad = j.at("consecutive_bad").get<int>();
      inst.last_bad = j.at("last_bad").get<bool>();
      inst.reason = j.value("reason", "");
      if (j.contains("bad_since_age_us"))
        inst.bad_since_us = at(j["bad_since_age_us"].get<int64_t>());
      if (j.contains("clear_since_age_us"))
        inst.clear_since_us = at(j["clear_since_age_us"].get<int64_t>());
      if (j.contains("last_value")) inst.last_value = j["last_value"].get<double>();
      if (j.contains("last_sample_age_us"))
        inst.last_t_us = at(j["last_sample_age_us"].get<int64_t>());
      for (const auto& c : j.value("counters", nlohmann::json::array())) {
        inst.counters.push_back(
            {at(c.at(0).get<int64_t>()), c.at(1).get<double>(), c.at(2).get<double>()});
      }
      for (const auto& s : j.value("samples", nlohmann::json::array())) {
        inst.ring.push_back(SampleFromJson(s, at(s.at("age_us").get<int64_t>())));
        if (inst.ring.size() > kRingSize) inst.ring.pop_front();
      }
      restored.emplace_back(it->second, std::move(inst));
    }
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument(std::string("trigger state: malformed: ") + e.what() +
                                   "; delete the state file to start afresh");
  }
  for (auto& [index, inst] : restored) impl_->instances[index] = std::move(inst);
  impl_->SeeTime(now_us);
  return Status::OK();
}

}  // namespace backstop

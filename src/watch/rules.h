// Trigger rules: Prometheus-alerting-like evaluation of signal samples.
//
// Each TriggerSpec (spec.h) is evaluated per component it applies to (an
// "instance"; see TriggerAppliesTo). An instance moves ok -> pending -> firing
// and back:
//   consecutive: N     fires on the Nth consecutive bad sample, not before; a
//                      good sample resets the count (1..N-1 bad = pending)
//   above/below + for  the first bad sample moves ok -> pending (since = its
//                      time); it fires at the first sample or Evaluate where
//                      now - since >= for and the last sample is bad; one good
//                      sample while pending resets to ok. for = 0 fires on the
//                      first bad sample. Both `consecutive` and `for`: both must hold.
//   window             error_rate from counters: increase(errors)/increase(total)
//                      over the window (default `for`, at least the previous
//                      sample), counter resets handled like Prometheus increase()
//   keep_firing_for    once firing, a good sample does not resolve the instance
//                      until the condition has been clear that long
//   missing_data       fail (a missing sample counts as bad), ignore (skipped,
//                      state unchanged), keep (repeats the last value). A probe
//                      that timed out is a FAILED sample (value reported by the
//                      prober), never missing data. Missing data is only what the
//                      prober reports as missing: the engine never invents a
//                      sample because none arrived.
// A sample is bad when: health/unreachable/integrity value < 0.5 (0 = fail);
// other signals value > above or value < below. See docs/rules.md.
//
// Time comes only from the samples' timestamps and the `now` passed to
// Evaluate, so a simulated hour runs in milliseconds (see FakeClock).
//
// Thread-safety: not thread-safe; the watch daemon owns one engine and calls
// it from one thread (or under its own mutex).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "spec/spec.h"

namespace backstop {

// One observation of one signal of one component.
//   health, unreachable, integrity: value 1 = good (pass), 0 = bad (fail)
//   latency, connect_time, disconnected: milliseconds
//   error_rate, cpu, memory: percent (error_rate may instead be fed as counters,
//     see `counter_total` / `counter_errors`)
struct Sample {
  std::string component;
  Signal signal = Signal::kHealth;
  int64_t t_us = 0;  // monotonic microseconds
  double value = 0;
  bool missing = false;  // no data could be obtained (not: the probe failed)
  // For error_rate over a window: cumulative counters (Prometheus counters).
  // When both are set they take precedence over `value`.
  std::optional<double> counter_total;
  std::optional<double> counter_errors;
  // What the prober saw, quoted in reasons: "HTTP 503", "timeout after 10 s",
  // "connection refused". Optional.
  std::string detail;
};

enum class TriggerState { kOk, kPending, kFiring };
const char* TriggerStateName(TriggerState s);  // "ok" | "pending" | "firing"
// Parses "ok" | "pending" | "firing".
std::optional<TriggerState> ParseTriggerState(const std::string& name);

// A state change, with the samples that caused it.
struct TriggerEvent {
  std::string trigger;  // TriggerSpec::name
  std::string component;
  TriggerState from = TriggerState::kOk;
  TriggerState to = TriggerState::kOk;
  int64_t t_us = 0;
  TriggerAction action = TriggerAction::kAlert;  // the trigger's action
  Signal signal = Signal::kHealth;               // the trigger's signal
  std::string reason;                            // "3 consecutive failures (last: HTTP 503)",
                                                 // "latency above 5 s for 5m (last 6.20 s)"
  std::vector<Sample> samples;  // the samples that caused it (bounded, newest last)
  // The value the rule last judged (the rate for counter error rates).
  std::optional<double> last_value;

  nlohmann::json ToJson() const;  // times as microseconds, samples included
};

struct TriggerStatus {
  std::string trigger;
  std::string component;
  TriggerState state = TriggerState::kOk;
  int64_t since_us = 0;  // when it entered this state (0: never left ok)
  int consecutive_bad = 0;
  std::optional<double> last_value;
  std::string reason;
  Signal signal = Signal::kHealth;
  TriggerAction action = TriggerAction::kAlert;
};

// Whether a trigger without `component` applies to a component of `kind`:
//   health, latency, unreachable: every component (the daemon feeds only the
//     ones it probes; an instance that never gets a sample stays ok)
//   connect_time, integrity: database    disconnected: stream
//   cpu, memory, error_rate: service
// A trigger with `component` applies to that component only, whatever its kind.
bool TriggerAppliesTo(const TriggerSpec& trigger, const std::string& component, ComponentKind kind);

class RuleEngine {
 public:
  // `components` maps component name -> kind; a trigger without `component`
  // applies to every component its signal makes sense for.
  RuleEngine(std::vector<TriggerSpec> triggers, std::map<std::string, ComponentKind> components);
  ~RuleEngine();
  RuleEngine(RuleEngine&&) noexcept;
  RuleEngine& operator=(RuleEngine&&) noexcept;

  // Feeds one sample to every instance of (sample.component, sample.signal).
  // Count-based transitions happen here (timestamped with the sample); the
  // events are returned by the next Evaluate. Samples for an unknown
  // component or a signal no trigger watches are ignored, as is a sample
  // older than the last one an instance has seen.
  void Observe(const Sample& sample);
  // Advances every trigger to `now_us` (for `for` and keep_firing_for durations)
  // and returns the state changes since the last call, oldest first.
  std::vector<TriggerEvent> Evaluate(int64_t now_us);
  std::vector<TriggerStatus> States() const;
  // The state of one instance; NotFound when the trigger does not apply to the component.
  Result<TriggerStatus> State(const std::string& trigger, const std::string& component) const;

  // The triggers watching `component` (for the daemon: which signals to feed,
  // and whether error_rate is wanted as counters: TriggerSpec::metric).
  std::vector<TriggerSpec> TriggersFor(const std::string& component) const;

  // Puts every instance of `component` back to ok with no history (after a
  // rollback of it, so the restored release is judged afresh). Instances that
  // were not ok produce an event "-> ok" with `why` as its reason at now_us.
  void Reset(const std::string& component, int64_t now_us, const std::string& why);

  // Survives a restart of the daemon: every instance that is not ok or has a
  // bad count or counter history, with its times saved as ages (microseconds
  // before the newest time the engine has seen), so the JSON does not depend
  // on the monotonic clock's origin. Format version 1.
  nlohmann::json SaveState() const;
  // Restores what SaveState wrote, re-basing the ages on `now_us`: a `for`
  // timer that had run 6m of 10m resumes at 6m (the time the daemon was down
  // counts for nothing, as in Prometheus' for-state restoration: nothing was
  // observed then). Instances of triggers or components no longer in the
  // engine are skipped. Emits no events. InvalidArgument on malformed input
  // (the engine is then left unchanged).
  Status LoadState(const nlohmann::json& state, int64_t now_us);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `backstop test-rules FILE`: a timeline of samples and the expected trigger
// states, like `promtool test rules`. Returns the failures (empty = pass);
// InvalidArgument (with file:line:column) when the file itself is malformed.
// The format is described in docs/rules.md.
struct RuleTestResult {
  int cases = 0;         // test cases run
  int expectations = 0;  // expectations checked
  std::vector<std::string> failures;
};
Result<RuleTestResult> RunRuleTests(const std::string& path);

}  // namespace backstop

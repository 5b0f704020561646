// Tests of the trigger rules engine (rules.h) with explicit timestamps: every
// default trigger fires exactly when its rule is met and not one sample
// before; missing data, flapping, hysteresis, counters, state across a
// restart; and the test-rules runner on the files in tests/data/rules/.
#include "watch/rules.h"

#include <gtest/gtest.h>

#include <cmath>

#include "base/env.h"

namespace backstop {
namespace {

constexpr int64_t kSec = 1'000'000;  // microseconds
constexpr int64_t kMin = 60 * kSec;
// Start away from 0, as a real monotonic clock does.
constexpr int64_t kT0 = 1'000'000'000;

std::string SourceDir() { return BACKSTOP_SOURCE_DIR; }
std::string RulesData(const std::string& name) {
  return JoinPath(SourceDir(), "tests/data/rules/" + name);
}

const std::map<std::string, ComponentKind> kComponents = {{"api", ComponentKind::kService},
                                                          {"db", ComponentKind::kDatabase},
                                                          {"bus", ComponentKind::kStream},
                                                          {"conf", ComponentKind::kConfig}};

TriggerSpec Default(const std::string& name) {
  for (const auto& t : DefaultTriggers()) {
    if (t.name == name) return t;
  }
  ADD_FAILURE() << "no default trigger " << name;
  return {};
}

Sample S(const std::string& component, Signal signal, int64_t t_us, double value,
         const std::string& detail = "") {
  Sample s;
  s.component = component;
  s.signal = signal;
  s.t_us = t_us;
  s.value = value;
  s.detail = detail;
  return s;
}

Sample Missing(const std::string& component, Signal signal, int64_t t_us) {
  Sample s = S(component, signal, t_us, 0);
  s.missing = true;
  return s;
}

Sample Counters(const std::string& component, int64_t t_us, double total, double errors) {
  Sample s = S(component, Signal::kErrorRate, t_us, 0);
  s.counter_total = total;
  s.counter_errors = errors;
  return s;
}

TriggerState StateOf(const RuleEngine& e, const std::string& trigger,
                     const std::string& component) {
  auto st = e.State(trigger, component);
  EXPECT_TRUE(st.ok()) << st.status().ToString();
  return st.ok() ? st->state : TriggerState::kOk;
}

// Feeds `values` (one per `interval`, starting at kT0) to one signal,
// evaluating after each sample, and returns the index of the sample at which
// `trigger` first became firing (-1 if never). States at each index go to `states`.
int FeedUntilFiring(RuleEngine& e, const std::string& trigger, const std::string& component,
                    Signal signal, const std::vector<double>& values, int64_t interval,
                    std::vector<TriggerState>* states = nullptr) {
  int fired = -1;
  for (size_t i = 0; i < values.size(); ++i) {
    int64_t t = kT0 + static_cast<int64_t>(i) * interval;
    e.Observe(S(component, signal, t, values[i]));
    for (const auto& ev : e.Evaluate(t)) {
      if (ev.trigger == trigger && ev.component == component && ev.to == TriggerState::kFiring &&
          fired < 0) {
        fired = static_cast<int>(i);
        EXPECT_EQ(ev.t_us, t);
      }
    }
    if (states) states->push_back(StateOf(e, trigger, component));
  }
  return fired;
}

std::vector<double> Repeat(double v, size_t n) { return std::vector<double>(n, v); }

// ---------------------------------------------------------------------------
// Every default trigger, at its own threshold.

TEST(DefaultTriggers, HealthCheckFailuresFiresOnTheThirdConsecutiveFailure) {
  RuleEngine e(DefaultTriggers(), kComponents);
  std::vector<TriggerState> states;
  int fired = FeedUntilFiring(e, "health_check_failures", "api", Signal::kHealth, {0, 0, 0, 0},
                              30 * kSec, &states);
  EXPECT_EQ(fired, 2);
  EXPECT_EQ(states[0], TriggerState::kPending);
  EXPECT_EQ(states[1], TriggerState::kPending);
  EXPECT_EQ(states[2], TriggerState::kFiring);
}

TEST(DefaultTriggers, HealthCheckFailuresNeedsThemConsecutive) {
  RuleEngine e(DefaultTriggers(), kComponents);
  // A good sample resets the count: never three in a row.
  int fired = FeedUntilFiring(e, "health_check_failures", "api", Signal::kHealth,
                              {0, 0, 1, 0, 0, 1, 0, 0, 1}, 30 * kSec);
  EXPECT_EQ(fired, -1);
  EXPECT_EQ(StateOf(e, "health_check_failures", "api"), TriggerState::kOk);
}

TEST(DefaultTriggers, HealthCheckFailuresEventCarriesSamplesAndReason) {
  RuleEngine e(DefaultTriggers(), kComponents);
  e.Observe(S("api", Signal::kHealth, kT0, 1, "HTTP 200"));
  e.Observe(S("api", Signal::kHealth, kT0 + 30 * kSec, 0, "HTTP 503"));
  e.Observe(S("api", Signal::kHealth, kT0 + 60 * kSec, 0, "HTTP 503"));
  e.Observe(S("api", Signal::kHealth, kT0 + 90 * kSec, 0, "timeout after 10 s"));
  auto events = e.Evaluate(kT0 + 90 * kSec);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].to, TriggerState::kPending);
  EXPECT_EQ(events[0].t_us, kT0 + 30 * kSec);
  const TriggerEvent& fire = events[1];
  EXPECT_EQ(fire.from, TriggerState::kPending);
  EXPECT_EQ(fire.to, TriggerState::kFiring);
  EXPECT_EQ(fire.action, TriggerAction::kComponentRollback);
  EXPECT_EQ(fire.reason, "3 consecutive failures (last: timeout after 10 s)");
  // The three failures that made it fire, not the good sample before.
  ASSERT_EQ(fire.samples.size(), 3u);
  EXPECT_EQ(fire.samples.front().t_us, kT0 + 30 * kSec);
  EXPECT_EQ(fire.samples.back().detail, "timeout after 10 s");
  EXPECT_EQ(fire.ToJson()["samples"].size(), 3u);
}

TEST(DefaultTriggers, ResponseTimeFiresAtFiveMinutesNotFourThirty) {
  RuleEngine e(DefaultTriggers(), kComponents);
  std::vector<double> values = {200, 180};
  for (int i = 0; i < 12; ++i) values.push_back(6200);  // bad from index 2 (t = 1m)
  std::vector<TriggerState> states;
  int fired =
      FeedUntilFiring(e, "response_time", "api", Signal::kLatency, values, 30 * kSec, &states);
  // First bad at 1m; 5m later is 6m = index 12. At index 11 (4m30s in) still pending.
  EXPECT_EQ(fired, 12);
  EXPECT_EQ(states[2], TriggerState::kPending);
  EXPECT_EQ(states[11], TriggerState::kPending);
  auto st = e.State("response_time", "api");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->reason, "latency above 5s for 5m (last 6.20 s)");
}

TEST(DefaultTriggers, ResponseTimeFiresOnEvaluateOnceForHasElapsed) {
  // Prometheus semantics: the first evaluation where now - since >= for and
  // the last sample is bad, even between samples.
  RuleEngine e(DefaultTriggers(), kComponents);
  e.Observe(S("api", Signal::kLatency, kT0, 6000));
  e.Observe(S("api", Signal::kLatency, kT0 + 4 * kMin + 50 * kSec, 6000));
  EXPECT_TRUE(e.Evaluate(kT0 + 5 * kMin - 1).size() == 1);  // only the pending event
  EXPECT_EQ(StateOf(e, "response_time", "api"), TriggerState::kPending);
  auto events = e.Evaluate(kT0 + 5 * kMin);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].to, TriggerState::kFiring);
  EXPECT_EQ(events[0].t_us, kT0 + 5 * kMin);
}

TEST(DefaultTriggers, ResponseTimeAtExactlyTheThresholdIsNotBad) {
  RuleEngine e(DefaultTriggers(), kComponents);
  EXPECT_EQ(
      FeedUntilFiring(e, "response_time", "api", Signal::kLatency, Repeat(5000, 20), 30 * kSec),
      -1);
  EXPECT_EQ(StateOf(e, "response_time", "api"), TriggerState::kOk);
}

TEST(DefaultTriggers, ErrorRatePercentFiresAfterTwoMinutes) {
  RuleEngine e(DefaultTriggers(), kComponents);
  std::vector<TriggerState> states;
  int fired = FeedUntilFiring(e, "error_rate", "api", Signal::kErrorRate, Repeat(7.5, 6), 30 * kSec,
                              &states);
  EXPECT_EQ(fired, 4);  // 2m after the first bad sample at 0
  EXPECT_EQ(states[3], TriggerState::kPending);
}

TEST(DefaultTriggers, ErrorRateFromCountersOverTheWindow) {
  RuleEngine e(DefaultTriggers(), kComponents);
  // 100 requests and 10 errors (10%) per 30 s. The first point has nothing to
  // compare with, so the first rate is at 30 s; it fires 2m later, at 2m30s.
  int fired = -1;
  for (int i = 0; i <= 8; ++i) {
    int64_t t = kT0 + i * 30 * kSec;
    e.Observe(Counters("api", t, 1000 + 100.0 * i, 50 + 10.0 * i));
    for (const auto& ev : e.Evaluate(t)) {
      if (ev.to == TriggerState::kFiring && fired < 0) fired = i;
    }
    if (i == 0) {
      EXPECT_EQ(StateOf(e, "error_rate", "api"), TriggerState::kOk);
    }
    if (i == 4) {
      EXPECT_EQ(StateOf(e, "error_rate", "api"), TriggerState::kPending);
    }
  }
  EXPECT_EQ(fired, 5);
  auto st = e.State("error_rate", "api");
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(st->last_value.has_value());
  EXPECT_NEAR(*st->last_value, 10.0, 1e-9);
}

TEST(DefaultTriggers, CpuUsageFiresAfterTenMinutes) {
  RuleEngine e(DefaultTriggers(), kComponents);
  std::vector<TriggerState> states;
  int fired =
      FeedUntilFiring(e, "cpu_usage", "api", Signal::kCpu, Repeat(95, 25), 30 * kSec, &states);
  EXPECT_EQ(fired, 20);
  EXPECT_EQ(states[19], TriggerState::kPending);
  // 90% exactly is not above 90%.
  RuleEngine f(DefaultTriggers(), kComponents);
  EXPECT_EQ(FeedUntilFiring(f, "cpu_usage", "api", Signal::kCpu, Repeat(90, 25), 30 * kSec), -1);
}

TEST(DefaultTriggers, MemoryUsageFiresAfterFiveMinutes) {
  RuleEngine e(DefaultTriggers(), kComponents);
  std::vector<TriggerState> states;
  int fired = FeedUntilFiring(e, "memory_usage", "api", Signal::kMemory, Repeat(96, 12), 30 * kSec,
                              &states);
  EXPECT_EQ(fired, 10);
  EXPECT_EQ(states[9], TriggerState::kPending);
}

TEST(DefaultTriggers, DatabaseTimeoutFiresOnTheFirstConnectOverThirtySeconds) {
  RuleEngine e(DefaultTriggers(), kComponents);
  std::vector<TriggerState> states;
  int fired = FeedUntilFiring(e, "database_timeout", "db", Signal::kConnectTime, {12, 30000, 31000},
                              30 * kSec, &states);
  EXPECT_EQ(fired, 2);
  EXPECT_EQ(states[1], TriggerState::kOk);  // 30 s exactly is not over 30 s
  auto st = e.State("database_timeout", "db");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->reason, "connect time above 30s (last 31.00 s)");
}

TEST(DefaultTriggers, NatsDisconnectionFiresOnceDisconnectedOverSixtySeconds) {
  RuleEngine e(DefaultTriggers(), kComponents);
  // The prober reports how long the stream has been disconnected, each second;
  // it disconnects at t = 10 s.
  std::vector<double> values;
  for (int s = 0; s < 100; ++s) values.push_back(s < 10 ? 0 : (s - 10) * 1000.0);
  std::vector<TriggerState> states;
  int fired =
      FeedUntilFiring(e, "nats_disconnection", "bus", Signal::kDisconnected, values, kSec, &states);
  EXPECT_EQ(fired, 71);                      // disconnected for 61 s
  EXPECT_EQ(states[70], TriggerState::kOk);  // 60 s is not over 60 s
}

TEST(DefaultTriggers, ServiceUnreachableFiresOnTheFourthAttempt) {
  RuleEngine e(DefaultTriggers(), kComponents);
  std::vector<TriggerState> states;
  int fired = FeedUntilFiring(e, "service_unreachable", "api", Signal::kUnreachable,
                              {0, 0, 0, 0, 0}, 10 * kSec, &states);
  EXPECT_EQ(fired, 3);
  EXPECT_EQ(states[2], TriggerState::kPending);
  auto st = e.State("service_unreachable", "api");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->reason, "4 consecutive failed attempts (last: fail)");
}

TEST(DefaultTriggers, DataIntegrityFiresOnOneFailedCheck) {
  RuleEngine e(DefaultTriggers(), kComponents);
  std::vector<TriggerState> states;
  int fired =
      FeedUntilFiring(e, "data_integrity", "db", Signal::kIntegrity, {1, 1, 0}, kMin, &states);
  EXPECT_EQ(fired, 2);
  EXPECT_EQ(states[1], TriggerState::kOk);
}

TEST(DefaultTriggers, ApplyToTheComponentsTheirSignalMakesSenseFor) {
  RuleEngine e(DefaultTriggers(), kComponents);
  auto names = [&](const std::string& component) {
    std::set<std::string> out;
    for (const auto& t : e.TriggersFor(component)) out.insert(t.name);
    return out;
  };
  EXPECT_EQ(names("api"),
            (std::set<std::string>{"health_check_failures", "response_time", "error_rate",
                                   "cpu_usage", "memory_usage", "service_unreachable"}));
  EXPECT_EQ(names("db"),
            (std::set<std::string>{"health_check_failures", "response_time", "database_timeout",
                                   "service_unreachable", "data_integrity"}));
  EXPECT_EQ(names("bus"), (std::set<std::string>{"health_check_failures", "response_time",
                                                 "nats_disconnection", "service_unreachable"}));
  EXPECT_FALSE(e.State("cpu_usage", "db").ok());
  // A sample for a signal no instance watches changes nothing.
  e.Observe(S("db", Signal::kCpu, kT0, 100));
  EXPECT_TRUE(e.Evaluate(kT0).empty());

  TriggerSpec pinned = Default("cpu_usage");
  pinned.component = "db";  // explicit component: applies whatever the kind
  EXPECT_TRUE(TriggerAppliesTo(pinned, "db", ComponentKind::kDatabase));
  EXPECT_FALSE(TriggerAppliesTo(pinned, "api", ComponentKind::kService));
}

// ---------------------------------------------------------------------------
// Transitions and hysteresis.

TEST(Rules, PendingGoesBackToOkOnAGoodSample) {
  RuleEngine e(DefaultTriggers(), kComponents);
  e.Observe(S("api", Signal::kLatency, kT0, 7000));
  e.Observe(S("api", Signal::kLatency, kT0 + 30 * kSec, 300));
  auto events = e.Evaluate(kT0 + 30 * kSec);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].from, TriggerState::kPending);
  EXPECT_EQ(events[1].to, TriggerState::kOk);
  EXPECT_EQ(events[1].reason, "no longer latency above 5s (last 300 ms)");
  // A later bad run starts its own 5 minutes.
  for (int i = 2; i <= 11; ++i) e.Observe(S("api", Signal::kLatency, kT0 + i * 30 * kSec, 7000));
  e.Evaluate(kT0 + 11 * 30 * kSec);
  EXPECT_EQ(StateOf(e, "response_time", "api"), TriggerState::kPending);
  e.Observe(S("api", Signal::kLatency, kT0 + 12 * 30 * kSec, 7000));
  e.Evaluate(kT0 + 12 * 30 * kSec);
  EXPECT_EQ(StateOf(e, "response_time", "api"), TriggerState::kFiring);
}

TEST(Rules, FiringResolvesWhenTheConditionClears) {
  RuleEngine e(DefaultTriggers(), kComponents);
  FeedUntilFiring(e, "health_check_failures", "api", Signal::kHealth, {0, 0, 0}, 30 * kSec);
  e.Observe(S("api", Signal::kHealth, kT0 + 90 * kSec, 1, "HTTP 200"));
  auto events = e.Evaluate(kT0 + 90 * kSec);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].from, TriggerState::kFiring);
  EXPECT_EQ(events[0].to, TriggerState::kOk);
  EXPECT_EQ(events[0].reason, "health check passed (last: HTTP 200)");
}

TEST(Rules, FlappingNeverFiresAForRule) {
  RuleEngine e(DefaultTriggers(), kComponents);
  int transitions = 0;
  for (int i = 0; i < 3600; ++i) {  // an hour, bad and good alternating each second
    int64_t t = kT0 + i * kSec;
    e.Observe(S("api", Signal::kLatency, t, i % 2 == 0 ? 9000 : 100));
    for (const auto& ev : e.Evaluate(t)) {
      ASSERT_NE(ev.to, TriggerState::kFiring) << ev.reason;
      ++transitions;
    }
  }
  EXPECT_EQ(transitions, 3600);  // ok -> pending -> ok ... every sample
  EXPECT_EQ(StateOf(e, "response_time", "api"), TriggerState::kOk);
}

TEST(Rules, KeepFiringForHoldsThroughABriefRecovery) {
  TriggerSpec t;
  t.name = "slow";
  t.signal = Signal::kLatency;
  t.above = 1000;
  t.for_ms = 60'000;
  t.keep_firing_for_ms = 120'000;
  t.action = TriggerAction::kComponentRollback;
  RuleEngine e({t}, kComponents);
  std::vector<double> values = {2000, 2000, 2000};  // fires at 1m (index 2)
  EXPECT_EQ(FeedUntilFiring(e, "slow", "api", Signal::kLatency, values, 30 * kSec), 2);
  // Good at 1m30, bad again at 2m: still firing, no event.
  e.Observe(S("api", Signal::kLatency, kT0 + 90 * kSec, 100));
  EXPECT_TRUE(e.Evaluate(kT0 + 90 * kSec).empty());
  e.Observe(S("api", Signal::kLatency, kT0 + 120 * kSec, 2000));
  EXPECT_TRUE(e.Evaluate(kT0 + 120 * kSec).empty());
  EXPECT_EQ(StateOf(e, "slow", "api"), TriggerState::kFiring);
  // Good from 2m30: resolves exactly when clear for 2m, at 4m30.
  for (int i = 5; i <= 8; ++i) {  // 2m30 .. 4m00
    e.Observe(S("api", Signal::kLatency, kT0 + i * 30 * kSec, 100));
    EXPECT_TRUE(e.Evaluate(kT0 + i * 30 * kSec).empty()) << "at index " << i;
  }
  EXPECT_TRUE(e.Evaluate(kT0 + 270 * kSec - 1).empty());
  auto events = e.Evaluate(kT0 + 270 * kSec);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].to, TriggerState::kOk);
  EXPECT_EQ(events[0].reason,
            "no longer latency above 1s for 2m (keep_firing_for 2m) (last 100 ms)");
}

TEST(Rules, WithoutKeepFiringForOneGoodSampleResolves) {
  TriggerSpec t;
  t.name = "slow";
  t.signal = Signal::kLatency;
  t.above = 1000;
  t.action = TriggerAction::kAlert;
  RuleEngine e({t}, kComponents);
  EXPECT_EQ(FeedUntilFiring(e, "slow", "api", Signal::kLatency, {2000}, kSec), 0);
  e.Observe(S("api", Signal::kLatency, kT0 + kSec, 10));
  auto events = e.Evaluate(kT0 + kSec);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].to, TriggerState::kOk);
}

TEST(Rules, BelowThreshold) {
  TriggerSpec t;
  t.name = "idle";
  t.signal = Signal::kCpu;
  t.below = 1;
  t.for_ms = 60'000;
  t.action = TriggerAction::kAlert;
  RuleEngine e({t}, kComponents);
  EXPECT_EQ(FeedUntilFiring(e, "idle", "api", Signal::kCpu, {5, 0.5, 0.5, 0.5, 0.2}, 30 * kSec), 3);
}

TEST(Rules, ConsecutiveAndForTogetherNeedBoth) {
  TriggerSpec t;
  t.name = "slow3";
  t.signal = Signal::kLatency;
  t.above = 1000;
  t.consecutive = 3;
  t.for_ms = 90'000;
  t.action = TriggerAction::kAlert;
  RuleEngine e({t}, kComponents);
  // 3 bad samples at 30 s reach the count at 1m but `for` only at 1m30.
  EXPECT_EQ(FeedUntilFiring(e, "slow3", "api", Signal::kLatency, Repeat(2000, 5), 30 * kSec), 3);
}

// ---------------------------------------------------------------------------
// Missing data and timeouts.

TriggerSpec HealthRule(const std::string& missing) {
  TriggerSpec t = Default("health_check_failures");
  t.missing_data = missing;
  return t;
}

TEST(MissingData, FailCountsAMissingSampleAsBad) {
  RuleEngine e({HealthRule("fail")}, kComponents);
  e.Observe(S("api", Signal::kHealth, kT0, 0));
  e.Observe(Missing("api", Signal::kHealth, kT0 + 30 * kSec));
  e.Evaluate(kT0 + 30 * kSec);
  EXPECT_EQ(StateOf(e, "health_check_failures", "api"), TriggerState::kPending);
  e.Observe(Missing("api", Signal::kHealth, kT0 + 60 * kSec));
  auto events = e.Evaluate(kT0 + 60 * kSec);
  EXPECT_EQ(StateOf(e, "health_check_failures", "api"), TriggerState::kFiring);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().reason, "3 consecutive failures (last: missing data)");
}

TEST(MissingData, IgnoreSkipsTheSample) {
  RuleEngine e({HealthRule("ignore")}, kComponents);
  e.Observe(S("api", Signal::kHealth, kT0, 0));
  e.Observe(Missing("api", Signal::kHealth, kT0 + 30 * kSec));
  e.Observe(Missing("api", Signal::kHealth, kT0 + 60 * kSec));
  e.Observe(S("api", Signal::kHealth, kT0 + 90 * kSec, 0));
  e.Evaluate(kT0 + 90 * kSec);
  auto st = e.State("health_check_failures", "api");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->state, TriggerState::kPending);
  EXPECT_EQ(st->consecutive_bad, 2);
  e.Observe(S("api", Signal::kHealth, kT0 + 120 * kSec, 0));
  e.Evaluate(kT0 + 120 * kSec);
  EXPECT_EQ(StateOf(e, "health_check_failures", "api"), TriggerState::kFiring);
}

TEST(MissingData, IgnoreDoesNotResetAPendingForRule) {
  TriggerSpec t = Default("response_time");
  t.missing_data = "ignore";
  RuleEngine e({t}, kComponents);
  e.Observe(S("api", Signal::kLatency, kT0, 6000));
  for (int i = 1; i < 10; ++i) e.Observe(Missing("api", Signal::kLatency, kT0 + i * 30 * kSec));
  e.Evaluate(kT0 + 9 * 30 * kSec);
  EXPECT_EQ(StateOf(e, "response_time", "api"), TriggerState::kPending);
  e.Observe(S("api", Signal::kLatency, kT0 + 5 * kMin, 6000));
  e.Evaluate(kT0 + 5 * kMin);
  EXPECT_EQ(StateOf(e, "response_time", "api"), TriggerState::kFiring);
}

TEST(MissingData, KeepRepeatsTheLastValue) {
  RuleEngine e({HealthRule("keep")}, kComponents);
  e.Observe(Missing("api", Signal::kHealth, kT0));  // nothing to repeat yet: skipped
  e.Evaluate(kT0);
  EXPECT_EQ(StateOf(e, "health_check_failures", "api"), TriggerState::kOk);
  e.Observe(S("api", Signal::kHealth, kT0 + 30 * kSec, 0));
  e.Observe(Missing("api", Signal::kHealth, kT0 + 60 * kSec));
  e.Observe(Missing("api", Signal::kHealth, kT0 + 90 * kSec));
  e.Evaluate(kT0 + 90 * kSec);
  EXPECT_EQ(StateOf(e, "health_check_failures", "api"), TriggerState::kFiring);

  // Keeping a good value keeps it good.
  RuleEngine g({HealthRule("keep")}, kComponents);
  g.Observe(S("api", Signal::kHealth, kT0, 1));
  for (int i = 1; i < 10; ++i) g.Observe(Missing("api", Signal::kHealth, kT0 + i * 30 * kSec));
  g.Evaluate(kT0 + 10 * 30 * kSec);
  EXPECT_EQ(StateOf(g, "health_check_failures", "api"), TriggerState::kOk);
}

TEST(MissingData, AProbeTimeoutIsAFailureNotAGap) {
  // Even under `ignore`, a timed-out probe (value 0, not missing) counts.
  RuleEngine e({HealthRule("ignore")}, kComponents);
  for (int i = 0; i < 3; ++i) {
    e.Observe(S("api", Signal::kHealth, kT0 + i * 30 * kSec, 0, "timeout after 10 s"));
  }
  auto events = e.Evaluate(kT0 + 60 * kSec);
  EXPECT_EQ(StateOf(e, "health_check_failures", "api"), TriggerState::kFiring);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().reason, "3 consecutive failures (last: timeout after 10 s)");
}

TEST(MissingData, NoTrafficInTheWindowIsMissingData) {
  TriggerSpec fail = Default("error_rate");
  fail.for_ms = 0;
  TriggerSpec ignore = fail;
  ignore.name = "error_rate_ignore";
  ignore.missing_data = "ignore";
  RuleEngine e({fail, ignore}, kComponents);
  e.Observe(Counters("api", kT0, 500, 5));
  e.Observe(Counters("api", kT0 + 30 * kSec, 500, 5));  // no requests at all
  e.Evaluate(kT0 + 30 * kSec);
  EXPECT_EQ(StateOf(e, "error_rate", "api"), TriggerState::kFiring);
  EXPECT_EQ(StateOf(e, "error_rate_ignore", "api"), TriggerState::kOk);
}

TEST(Counters, AResetCountsFromZero) {
  TriggerSpec t = Default("error_rate");
  t.for_ms = 0;
  t.window_ms = 60'000;
  RuleEngine e({t}, kComponents);
  e.Observe(Counters("api", kT0, 1000, 0));
  e.Observe(Counters("api", kT0 + 30 * kSec, 1100, 0));
  // The service restarted: both counters start again from zero. Increase over
  // the minute: 100 + 60 requests, 0 errors: 0%, not "no traffic".
  e.Observe(Counters("api", kT0 + 60 * kSec, 60, 0));
  e.Evaluate(kT0 + 60 * kSec);
  auto st = e.State("error_rate", "api");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->state, TriggerState::kOk);
  ASSERT_TRUE(st->last_value.has_value());
  EXPECT_NEAR(*st->last_value, 0.0, 1e-9);
  // Errors after the restart.
  e.Observe(Counters("api", kT0 + 90 * kSec, 160, 40));
  e.Evaluate(kT0 + 90 * kSec);
  st = e.State("error_rate", "api");
  ASSERT_TRUE(st.ok());
  // Points in the window [30 s, 90 s]: 1100 -> 60 (reset: +60) -> 160 (+100) = 160 requests;
  // errors 0 -> 0 -> 40 = 40: 25%.
  EXPECT_NEAR(*st->last_value, 25.0, 1e-9);
  EXPECT_EQ(st->state, TriggerState::kFiring);
}

TEST(Counters, WindowShorterThanTheIntervalUsesThePreviousSample) {
  TriggerSpec t = Default("error_rate");
  t.for_ms = 0;
  t.window_ms = 1000;  // shorter than the 30 s interval
  RuleEngine e({t}, kComponents);
  e.Observe(Counters("api", kT0, 0, 0));
  e.Observe(Counters("api", kT0 + 30 * kSec, 100, 20));
  e.Evaluate(kT0 + 30 * kSec);
  auto st = e.State("error_rate", "api");
  ASSERT_TRUE(st.ok() && st->last_value.has_value());
  EXPECT_NEAR(*st->last_value, 20.0, 1e-9);
}

TEST(Counters, OldPointsLeaveTheWindow) {
  TriggerSpec t = Default("error_rate");
  t.for_ms = 0;
  t.window_ms = 60'000;
  RuleEngine e({t}, kComponents);
  // A burst of errors early on, then clean traffic: the rate over the last
  // minute must forget the burst.
  e.Observe(Counters("api", kT0, 0, 0));
  e.Observe(Counters("api", kT0 + 30 * kSec, 100, 100));
  e.Evaluate(kT0 + 30 * kSec);
  EXPECT_EQ(StateOf(e, "error_rate", "api"), TriggerState::kFiring);
  for (int i = 2; i <= 5; ++i) {
    e.Observe(Counters("api", kT0 + i * 30 * kSec, 100 + 100.0 * (i - 1), 100));
  }
  e.Evaluate(kT0 + 5 * 30 * kSec);
  auto st = e.State("error_rate", "api");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->state, TriggerState::kOk);
  EXPECT_NEAR(*st->last_value, 0.0, 1e-9);
}

// ---------------------------------------------------------------------------
// State across a restart of the daemon.

TEST(RulesState, SaveAndLoadMidPendingKeepsTheTimer) {
  RuleEngine before(DefaultTriggers(), kComponents);
  for (int i = 0; i <= 6; ++i) {  // bad from 0 to 3m
    before.Observe(S("api", Signal::kLatency, kT0 + i * 30 * kSec, 6000));
    before.Observe(S("api", Signal::kHealth, kT0 + i * 30 * kSec, i >= 5 ? 0 : 1));
  }
  before.Evaluate(kT0 + 3 * kMin);
  ASSERT_EQ(StateOf(before, "response_time", "api"), TriggerState::kPending);
  // Through text, as the daemon stores it.
  nlohmann::json saved = nlohmann::json::parse(before.SaveState().dump());

  // The new process has another monotonic origin.
  const int64_t t1 = 77 * 60 * kMin;
  RuleEngine after(DefaultTriggers(), kComponents);
  ASSERT_TRUE(after.LoadState(saved, t1).ok());
  EXPECT_TRUE(after.Evaluate(t1).empty());  // loading emits nothing
  auto st = after.State("response_time", "api");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->state, TriggerState::kPending);
  EXPECT_EQ(st->since_us, t1 - 3 * kMin);
  EXPECT_EQ(after.State("health_check_failures", "api")->consecutive_bad, 2);

  // 3m were done before the restart: it fires 2m after it, not 5m.
  int fired = -1;
  for (int i = 1; i <= 6; ++i) {
    int64_t t = t1 + i * 30 * kSec;
    after.Observe(S("api", Signal::kLatency, t, 6000));
    for (const auto& ev : after.Evaluate(t)) {
      if (ev.trigger == "response_time" && ev.to == TriggerState::kFiring) fired = i;
    }
  }
  EXPECT_EQ(fired, 4);
  // The count carried over too: one more failure is the third.
  after.Observe(S("api", Signal::kHealth, t1 + 4 * kMin, 0));
  after.Evaluate(t1 + 4 * kMin);
  EXPECT_EQ(StateOf(after, "health_check_failures", "api"), TriggerState::kFiring);
}

TEST(RulesState, FiringAndCountersSurvive) {
  TriggerSpec rate = Default("error_rate");
  rate.for_ms = 0;
  rate.window_ms = 60'000;
  RuleEngine before({rate, Default("data_integrity")}, kComponents);
  before.Observe(Counters("api", kT0, 0, 0));
  before.Observe(Counters("api", kT0 + 30 * kSec, 100, 0));
  before.Observe(S("db", Signal::kIntegrity, kT0 + 30 * kSec, 0, "orphan rows in tasks"));
  before.Evaluate(kT0 + 30 * kSec);
  nlohmann::json saved = before.SaveState();

  RuleEngine after({rate, Default("data_integrity")}, kComponents);
  const int64_t t1 = 5 * kT0;
  ASSERT_TRUE(after.LoadState(saved, t1).ok());
  EXPECT_EQ(StateOf(after, "data_integrity", "db"), TriggerState::kFiring);
  // The counter history continues: 100 more requests, 50 errors over the window.
  after.Observe(Counters("api", t1 + 30 * kSec, 200, 50));
  after.Evaluate(t1 + 30 * kSec);
  auto st = after.State("error_rate", "api");
  ASSERT_TRUE(st.ok() && st->last_value.has_value());
  EXPECT_NEAR(*st->last_value, 25.0, 1e-9);  // 50 of 200 over [0 s, 60 s]
}

TEST(RulesState, LoadRejectsGarbageAndLeavesTheEngineAlone) {
  RuleEngine e(DefaultTriggers(), kComponents);
  FeedUntilFiring(e, "health_check_failures", "api", Signal::kHealth, {0, 0, 0}, 30 * kSec);
  Status st = e.LoadState(nlohmann::json::parse(R"({"version": 1, "instances": [
      {"trigger": "health_check_failures", "component": "api", "state": "pending"}]})"),
                          kT0);
  EXPECT_TRUE((st.code() == Status::Code::kInvalidArgument)) << st.ToString();
  EXPECT_EQ(StateOf(e, "health_check_failures", "api"), TriggerState::kFiring);
  st = e.LoadState(nlohmann::json::parse(R"({"version": 9, "instances": []})"), kT0);
  EXPECT_TRUE((st.code() == Status::Code::kInvalidArgument));
  EXPECT_NE(st.message().find("version 9"), std::string::npos);
  st = e.LoadState(nlohmann::json::array(), kT0);
  EXPECT_TRUE((st.code() == Status::Code::kInvalidArgument));
}

TEST(RulesState, InstancesNoLongerInTheSpecAreSkipped) {
  RuleEngine before(DefaultTriggers(), kComponents);
  FeedUntilFiring(before, "health_check_failures", "api", Signal::kHealth, {0, 0}, 30 * kSec);
  RuleEngine after({Default("response_time")}, {{"api", ComponentKind::kService}});
  EXPECT_TRUE(after.LoadState(before.SaveState(), kT0).ok());
  EXPECT_EQ(StateOf(after, "response_time", "api"), TriggerState::kOk);
}

// ---------------------------------------------------------------------------

TEST(Rules, OutOfOrderSamplesAreDropped) {
  RuleEngine e(DefaultTriggers(), kComponents);
  e.Observe(S("api", Signal::kHealth, kT0 + 60 * kSec, 0));
  e.Observe(S("api", Signal::kHealth, kT0 + 30 * kSec, 0));  // older: ignored
  e.Evaluate(kT0 + 60 * kSec);
  EXPECT_EQ(e.State("health_check_failures", "api")->consecutive_bad, 1);
}

TEST(Rules, ResetPutsAComponentBackToOk) {
  RuleEngine e(DefaultTriggers(), kComponents);
  FeedUntilFiring(e, "health_check_failures", "api", Signal::kHealth, {0, 0, 0}, 30 * kSec);
  e.Observe(S("db", Signal::kHealth, kT0, 0));
  e.Evaluate(kT0 + 60 * kSec);
  e.Reset("api", kT0 + 2 * kMin, "rolled back by run r-1");
  auto events = e.Evaluate(kT0 + 2 * kMin);
  ASSERT_EQ(events.size(), 1u);  // only health_check_failures was not ok on api
  for (const auto& ev : events) {
    EXPECT_EQ(ev.component, "api");
    EXPECT_EQ(ev.to, TriggerState::kOk);
    EXPECT_EQ(ev.reason, "rolled back by run r-1");
  }
  EXPECT_EQ(e.State("health_check_failures", "api")->consecutive_bad, 0);
  EXPECT_EQ(StateOf(e, "health_check_failures", "db"), TriggerState::kPending);
}

TEST(Rules, AnHourOfSamplesAtOneSecond) {
  RuleEngine e(DefaultTriggers(), kComponents);
  std::vector<TriggerEvent> fired;
  for (int s = 0; s < 3600; ++s) {
    int64_t t = kT0 + s * kSec;
    e.Observe(S("api", Signal::kHealth, t, 1));
    e.Observe(S("api", Signal::kLatency, t, 40 + s % 7));
    e.Observe(S("api", Signal::kCpu, t, 30));
    // Memory climbs over 95% from minute 20 and stays there.
    e.Observe(S("api", Signal::kMemory, t, s >= 20 * 60 ? 97 : 60));
    e.Observe(S("db", Signal::kHealth, t, 1));
    e.Observe(S("db", Signal::kConnectTime, t, 5));
    e.Observe(S("bus", Signal::kDisconnected, t, 0));
    for (auto& ev : e.Evaluate(t)) {
      if (ev.to == TriggerState::kFiring) fired.push_back(ev);
    }
  }
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0].trigger, "memory_usage");
  EXPECT_EQ(fired[0].t_us, kT0 + 25 * kMin);
  EXPECT_LE(fired[0].samples.size(), 20u);  // bounded
  EXPECT_EQ(fired[0].samples.back().t_us, kT0 + 25 * kMin);
}

// ---------------------------------------------------------------------------
// backstop test-rules, black box on the shipped files.

TEST(RuleTests, DefaultsFilePasses) {
  auto r = RunRuleTests(RulesData("defaults.yaml"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (const auto& f : r->failures) ADD_FAILURE() << f;
  EXPECT_GE(r->cases, 9);
  EXPECT_GE(r->expectations, 30);
}

TEST(RuleTests, ExamplesPass) {
  for (const char* name : {"custom.yaml", "counters.yaml", "mistersmith.yaml"}) {
    auto r = RunRuleTests(RulesData(name));
    ASSERT_TRUE(r.ok()) << name << ": " << r.status().ToString();
    for (const auto& f : r->failures) ADD_FAILURE() << name << ": " << f;
    EXPECT_GT(r->expectations, 0);
  }
}

TEST(RuleTests, FailingFileReportsWhatAndWhere) {
  std::string path = RulesData("failing.yaml");
  auto r = RunRuleTests(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->failures.size(), 2u);
  EXPECT_EQ(r->failures[0],
            path +
                ":12:9: tests[0] 'fires one sample too early' at 30s: health_check_failures "
                "on api: expected firing, got pending (since 0s; 2 consecutive failures of 3 "
                "(last: fail))");
  EXPECT_EQ(r->failures[1],
            path +
                ":20:9: tests[1] 'for is not a sample count' at 4m30s: response_time on api: "
                "expected firing, got pending (since 0s; latency above 5s; fires if it lasts "
                "5m (last 6.00 s))");
}

TEST(RuleTests, MalformedFilesSayWhereAndWhatToDo) {
  struct Case {
    const char* file;
    const char* needle;
  };
  for (const Case& c : std::vector<Case>{
           {"bad_series.yaml", ":8:19: series api/health: 'O' is not a value; write values"},
           {"bad_trigger.yaml", ":5:12: triggers[0].above: '5' has no unit"},
           {"bad_expect.yaml",
            ":9:27: tests[0].expect: unknown trigger "
            "'health_check_failure' (did you mean 'health_check_failures'?)"},
           {"bad_yaml.yaml", ":8:1: YAML syntax error: end of map flow not found"},
       }) {
    std::string path = RulesData(c.file);
    auto r = RunRuleTests(path);
    ASSERT_FALSE(r.ok()) << c.file;
    EXPECT_TRUE((r.status().code() == Status::Code::kInvalidArgument)) << c.file;
    EXPECT_NE(r.status().message().find(path + c.needle), std::string::npos)
        << c.file << ": " << r.status().message();
  }
  // A trigger that failed to parse adds no cascade of "unknown trigger" errors.
  auto bad = RunRuleTests(RulesData("bad_trigger.yaml"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().find("unknown trigger"), std::string::npos)
      << bad.status().message();
  auto missing = RunRuleTests(RulesData("no_such_file.yaml"));
  EXPECT_FALSE(missing.ok());
}

}  // namespace
}  // namespace backstop

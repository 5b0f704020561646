// ActionGate: every gate in front of an automatic rollback, on a FakeClock,
// with exact reasons and counts.
#include "watch/action_gate.h"

#include <gtest/gtest.h>

#include "testing/test_env.h"

namespace backstop {
namespace {

constexpr int64_t kMinuteMs = 60'000;

class ActionGateTest : public ::testing::Test {
 protected:
  // Cooldown 10m, at most 3 automatic rollbacks per hour (the daemon's defaults).
  ActionGateTest() : gate_(&clock_, 10 * kMinuteMs, 3) {}

  TriggerEvent Firing(const std::string& trigger, const std::string& component) {
    TriggerEvent e;
    e.trigger = trigger;
    e.component = component;
    e.from = TriggerState::kPending;
    e.to = TriggerState::kFiring;
    e.reason = "3 failed probes";
    return e;
  }
  std::vector<TriggerEvent> Reopened(const GateInputs& in) {
    return gate_.TakeReopened(
        in,
        [&](const std::string& t, const std::string& c) -> std::optional<std::string> {
          if (resolved_.count({t, c})) return std::nullopt;
          return current_reason_;
        },
        [&](const std::string& c) { return probed_.count(c) > 0; });
  }

  testing::FakeClock clock_;
  ActionGate gate_;
  std::set<std::pair<std::string, std::string>> resolved_;
  std::set<std::string> probed_;
  std::string current_reason_ = "";
};

TEST_F(ActionGateTest, AQuietEnvironmentMayAct) {
  GateVerdict v = gate_.MayAct({"api"}, GateInputs{});
  EXPECT_TRUE(v.go);
  EXPECT_FALSE(v.gate.has_value());
  EXPECT_EQ(v.why, "");
}

TEST_F(ActionGateTest, PausedHoldsAndSaysByWhomAndWhy) {
  GateInputs in;
  in.pause.paused = true;
  in.pause.by = "cli";
  in.pause.reason = "maintenance";
  GateVerdict v = gate_.MayAct({"api"}, in);
  EXPECT_FALSE(v.go);
  EXPECT_EQ(v.gate, Gate::kPaused);
  EXPECT_EQ(v.why,
            "automatic actions are paused (by cli: maintenance); resume with `backstop watch "
            "resume`");
}

TEST_F(ActionGateTest, PauseIsCheckedBeforeARunningRollback) {
  GateInputs in;
  in.pause.paused = true;
  in.run_active = true;
  EXPECT_EQ(gate_.MayAct({"api"}, in).gate, Gate::kPaused);
  in.pause.paused = false;
  in.active_run = "run-20260101-000000-abcd";
  GateVerdict v = gate_.MayAct({"api"}, in);
  EXPECT_EQ(v.gate, Gate::kRunActive);
  EXPECT_EQ(v.why, "a rollback is already running (run-20260101-000000-abcd)");
}

TEST_F(ActionGateTest, TheEnvironmentLockHeldByAManualRunHolds) {
  GateInputs in;
  in.lock_holder = {{"run_id", "run-7"}, {"command", "backstop rollback api"}};
  GateVerdict v = gate_.MayAct({"api"}, in);
  EXPECT_EQ(v.gate, Gate::kLockHeld);
  EXPECT_EQ(v.why,
            "the environment lock is held (run run-7, `backstop rollback api`): a manual "
            "operation is in progress");
}

TEST_F(ActionGateTest, ACooldownHoldsTheSameComponentOnlyUntilItEnds) {
  gate_.RecordAction({"api"}, "health", /*automatic=*/true);
  clock_.AdvanceMs(4 * kMinuteMs);
  GateVerdict v = gate_.MayAct({"api"}, GateInputs{});
  EXPECT_EQ(v.gate, Gate::kCooldown);
  EXPECT_EQ(v.why, "cooldown: api was rolled back 4m00s ago (cooldown 10m, --cooldown)");
  EXPECT_TRUE(gate_.MayAct({"db"}, GateInputs{}).go);
  clock_.AdvanceMs(6 * kMinuteMs);  // exactly the cooldown: over
  EXPECT_TRUE(gate_.MayAct({"api"}, GateInputs{}).go);
}

TEST_F(ActionGateTest, ApiRollbacksStartACooldownButDoNotCountTowardsTheCap) {
  gate_.RecordAction({"api"}, "", /*automatic=*/false);
  EXPECT_EQ(gate_.MayAct({"api"}, GateInputs{}).gate, Gate::kCooldown);
  EXPECT_EQ(gate_.AutomaticInLastHour(), 0);
}

TEST_F(ActionGateTest, TheHourlyCapCountsAutomaticRollbacksOfTheLastHour) {
  for (const char* c : {"a", "b", "c"}) {
    gate_.RecordAction({c}, "health", true);
    clock_.AdvanceMs(11 * kMinuteMs);
  }
  EXPECT_EQ(gate_.AutomaticInLastHour(), 3);
  GateVerdict v = gate_.MayAct({"d"}, GateInputs{});
  EXPECT_EQ(v.gate, Gate::kCap);
  EXPECT_EQ(v.why, "cap reached: 3 automatic rollbacks in the last hour (--max-per-hour 3)");
  clock_.AdvanceMs(60 * kMinuteMs - 33 * kMinuteMs);  // the first is an hour old
  EXPECT_EQ(gate_.AutomaticInLastHour(), 2);
  EXPECT_TRUE(gate_.MayAct({"d"}, GateInputs{}).go);
}

TEST_F(ActionGateTest, PruneKeepsWhatStillCountsForACooldownOrTheCap) {
  gate_.RecordAction({"a"}, "health", true);
  clock_.AdvanceMs(50 * kMinuteMs);
  gate_.RecordAction({"b"}, "health", true);
  clock_.AdvanceMs(10 * kMinuteMs + 1);  // "a" is an hour and 1 ms old
  const auto& kept = gate_.PruneActions();
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].components, std::vector<std::string>{"b"});
  EXPECT_EQ(kept[0].trigger, "health");
  EXPECT_TRUE(kept[0].automatic);
}

TEST_F(ActionGateTest, AHeldTriggerIsHandedBackWhenItsGateOpensWithItsCurrentReason) {
  gate_.Hold(Firing("health", "api"), Gate::kPaused);
  GateInputs paused;
  paused.pause.paused = true;
  EXPECT_TRUE(Reopened(paused).empty());
  EXPECT_EQ(gate_.held_count(), 1u);
  current_reason_ = "5 failed probes";
  std::vector<TriggerEvent> again = Reopened(GateInputs{});
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].trigger, "health");
  EXPECT_EQ(again[0].component, "api");
  EXPECT_EQ(again[0].reason, "5 failed probes");
  EXPECT_FALSE(gate_.HasHeld());
}

TEST_F(ActionGateTest, AHeldTriggerThatStoppedFiringIsForgotten) {
  gate_.Hold(Firing("health", "api"), Gate::kRunActive);
  resolved_.insert({"health", "api"});
  GateInputs running;
  running.run_active = true;
  EXPECT_TRUE(Reopened(running).empty());
  EXPECT_FALSE(gate_.HasHeld());
}

TEST_F(ActionGateTest, EachGateReopensOnItsOwnCondition) {
  gate_.Hold(Firing("t1", "api"), Gate::kRunActive);
  gate_.Hold(Firing("t2", "api"), Gate::kLockHeld);
  gate_.Hold(Firing("t3", "db"), Gate::kCooldown);
  gate_.Hold(Firing("t4", "web"), Gate::kRestart);
  gate_.RecordAction({"db"}, "t3", true);
  GateInputs in;
  in.lock_holder = {{"run_id", "run-1"}};
  std::vector<TriggerEvent> again = Reopened(in);  // no run: only t1
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].trigger, "t1");
  again = Reopened(GateInputs{});  // lock free: t2
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].trigger, "t2");
  clock_.AdvanceMs(10 * kMinuteMs);  // cooldown over: t3
  again = Reopened(GateInputs{});
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].trigger, "t3");
  EXPECT_EQ(again[0].reason, "3 failed probes");  // no newer reason
  probed_.insert("web");                          // probed afresh since the restart: t4
  again = Reopened(GateInputs{});
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].trigger, "t4");
  EXPECT_FALSE(gate_.HasHeld());
}

TEST_F(ActionGateTest, TheCapGateReopensWhenTheOldestAutomaticRollbackAgesOut) {
  for (const char* c : {"a", "b", "c"}) gate_.RecordAction({c}, "t", true);
  gate_.Hold(Firing("t", "d"), Gate::kCap);
  clock_.AdvanceMs(60 * kMinuteMs - 1);
  EXPECT_TRUE(Reopened(GateInputs{}).empty());
  clock_.AdvanceMs(1);
  EXPECT_EQ(Reopened(GateInputs{}).size(), 1u);
}

TEST_F(ActionGateTest, HoldingAgainReplacesTheEarlierHoldOfTheSameInstance) {
  gate_.Hold(Firing("health", "api"), Gate::kPaused);
  gate_.Hold(Firing("health", "api"), Gate::kRunActive);
  EXPECT_EQ(gate_.held_count(), 1u);
  GateInputs paused;
  paused.pause.paused = true;  // the pause no longer matters, the run does
  EXPECT_EQ(Reopened(paused).size(), 1u);
  gate_.Hold(Firing("health", "api"), Gate::kPaused);
  gate_.Forget("health", "api");
  EXPECT_FALSE(gate_.HasHeld());
}

}  // namespace
}  // namespace backstop

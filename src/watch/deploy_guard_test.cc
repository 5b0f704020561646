// The watch after `deploy --atomic --watch-for`, on a FakeClock: the spec's
// triggers fire on the probed health of the deployed component within the
// window (with their samples), nothing fires for a healthy one, and the
// window ends on time.
#include "watch/deploy_guard.h"

#include <gtest/gtest.h>

#include "testing/test_env.h"

namespace backstop {
namespace {

Spec OneService() {
  Spec spec;
  spec.environment = "test";
  ComponentSpec web;
  web.name = "web";
  web.kind = ComponentKind::kService;
  web.health.interval_ms = 1000;
  spec.components["web"] = web;
  spec.component_order = {"web"};
  TriggerSpec down;
  down.name = "service_down";
  down.signal = Signal::kHealth;
  down.consecutive = 3;
  down.action = TriggerAction::kComponentRollback;
  spec.triggers = {down};
  return spec;
}

TEST(DeployGuardTest, ATriggerFiringWithinTheWindowIsReportedWithItsSamples) {
  testing::FakeClock clock;
  Env env = testing::MakeEnvWithClock(&clock);
  const int64_t start = clock.NowMicros();
  int probes = 0;
  DeployGuardOptions options;
  options.watch_for_ms = 60'000;
  auto fired = WatchAfterDeploy(&env, OneService(), {"web"}, options, [&](const ComponentSpec&) {
    // Healthy for 10 s, then answering 503.
    ++probes;
    bool failing = clock.NowMicros() - start >= 10'000'000;
    return HealthResult::Make(failing ? HealthResult::State::kFail : HealthResult::State::kPass, 5,
                              failing ? "HTTP 503" : "HTTP 200");
  });
  ASSERT_TRUE(fired.ok()) << fired.status().ToString();
  ASSERT_TRUE(fired->has_value());
  EXPECT_EQ((*fired)->trigger, "service_down");
  EXPECT_EQ((*fired)->component, "web");
  EXPECT_EQ(probes, 13);  // 0..12 s: the third failure at 12 s
  EXPECT_EQ(clock.NowMicros() - start, 12'000'000);
  std::string why = DescribeFiring(**fired);
  EXPECT_NE(why.find("trigger service_down fired for web"), std::string::npos) << why;
  EXPECT_NE(why.find("HTTP 503"), std::string::npos) << why;
}

TEST(DeployGuardTest, AHealthyReleaseIsWatchedForTheWholeWindow) {
  testing::FakeClock clock;
  Env env = testing::MakeEnvWithClock(&clock);
  const int64_t start = clock.NowMicros();
  DeployGuardOptions options;
  options.watch_for_ms = 30'000;
  auto fired = WatchAfterDeploy(&env, OneService(), {"web"}, options, [](const ComponentSpec&) {
    return HealthResult::Make(HealthResult::State::kPass, 5, "HTTP 200");
  });
  ASSERT_TRUE(fired.ok());
  EXPECT_FALSE(fired->has_value());
  EXPECT_EQ(clock.NowMicros() - start, 30'000'000);
}

TEST(DeployGuardTest, AnUnknownComponentIsAnError) {
  testing::FakeClock clock;
  Env env = testing::MakeEnvWithClock(&clock);
  DeployGuardOptions options;
  options.watch_for_ms = 1000;
  auto fired = WatchAfterDeploy(&env, OneService(), {"nope"}, options, [](const ComponentSpec&) {
    return HealthResult::Make(HealthResult::State::kPass, 0, "");
  });
  EXPECT_EQ(fired.status().code(), Status::Code::kInvalidArgument);
}

}  // namespace
}  // namespace backstop

// Tests of a service's `traffic:` block (spec_traffic.cc): what it becomes
// in the model, and each error with its position.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "spec/driver_catalog.h"
#include "spec/spec.h"

namespace backstop {
namespace {

using Type = SettingSchema::Type;

DriverSchemaList Drivers() {
  DriverSchemaList r;
  SettingSchema releases;
  releases.key = "releases";
  releases.type = Type::kString;
  DriverSchema process{"process", {"service"}, {releases}, /*supports_slots=*/true};
  r.Add(process);
  r.Add(DriverSchema{"oldproc", {"service"}, {}, /*supports_slots=*/false});
  r.Add(DriverSchema{"nginx", {"traffic"}, {}, false});
  r.Add(DriverSchema{"files", {"config"}, {}, false});
  return r;
}

// A spec with a front (nginx), a config and the service `web` whose traffic
// block is `traffic` (YAML lines indented by 6 spaces, starting on line 9).
std::string SpecWith(const std::string& traffic, const std::string& web_driver = "process") {
  return "environment: test\n"                        // 1
         "components:\n"                              // 2
         "  front: {kind: traffic, driver: nginx}\n"  // 3
         "  conf: {kind: config, driver: files}\n"    // 4
         "  web:\n"                                   // 5
         "    kind: service\n"                        // 6
         "    driver: " +
         web_driver +
         "\n"                // 7
         "    traffic:\n" +  // 8
         traffic;            // 9...
}

std::vector<std::string> Errors(const std::string& text) {
  std::vector<std::string> out;
  for (const auto& e : CheckSpecText(text, "b.yaml", Drivers())) out.push_back(e.ToString());
  return out;
}

// The one error of `text`, which must contain `needle`.
void ExpectOneError(const std::string& text, const std::string& needle) {
  auto errors = Errors(text);
  ASSERT_EQ(errors.size(), 1u) << ::testing::PrintToString(errors);
  EXPECT_NE(errors[0].find(needle), std::string::npos) << errors[0];
}

TEST(SpecTrafficTest, ParsesTheBlockWithItsDefaults) {
  auto spec = ParseSpec(SpecWith("      component: front\n"
                                 "      strategy: blue_green\n"
                                 "      ports: [3001, 3002]\n"),
                        "b.yaml", Drivers());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const ComponentSpec* web = spec->Find("web");
  ASSERT_TRUE(web->traffic.has_value());
  EXPECT_EQ(web->traffic->component, "front");
  EXPECT_EQ(web->traffic->strategy, TrafficStrategy::kBlueGreen);
  EXPECT_EQ(web->traffic->ports[0], 3001);
  EXPECT_EQ(web->traffic->ports[1], 3002);
  EXPECT_EQ(web->traffic->keep_previous_ms, 600'000);
  EXPECT_EQ(web->traffic->upstream, "web");
  EXPECT_EQ(web->traffic->pos.line, 8);
  // No implicit dependency on the traffic component.
  EXPECT_TRUE(web->depends_on.empty());
  EXPECT_FALSE(spec->Find("front")->traffic.has_value());
}

TEST(SpecTrafficTest, ParsesKeepPreviousAndUpstream) {
  auto spec = ParseSpec(SpecWith("      component: front\n"
                                 "      strategy: blue_green\n"
                                 "      ports: [8081, 8082]\n"
                                 "      keep_previous: 90s\n"
                                 "      upstream: web_pool\n"),
                        "b.yaml", Drivers());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->Find("web")->traffic->keep_previous_ms, 90'000);
  EXPECT_EQ(spec->Find("web")->traffic->upstream, "web_pool");
}

TEST(SpecTrafficTest, TheHealthProbeMayNameTheSlotPort) {
  auto spec = ParseSpec(SpecWith("      component: front\n"
                                 "      strategy: blue_green\n"
                                 "      ports: [3001, 3002]\n"
                                 "    health: {http: \"http://127.0.0.1:{port}/health\"}\n"),
                        "b.yaml", Drivers());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->Find("web")->health.target, "http://127.0.0.1:{port}/health");
  EXPECT_EQ(spec->Find("web")->health.ForPort(3002).target, "http://127.0.0.1:3002/health");
}

TEST(SpecTrafficTest, ASlotPortWithoutATrafficBlockIsAnErrorAtTheProbe) {
  auto errors = Errors(
      "environment: test\n"
      "components:\n"
      "  web:\n"
      "    kind: service\n"
      "    driver: process\n"
      "    health: {tcp: \"127.0.0.1:{port}\"}\n");
  ASSERT_EQ(errors.size(), 1u) << ::testing::PrintToString(errors);
  EXPECT_EQ(errors[0].rfind("b.yaml:6:5: components.web.health: the probe names {port}", 0), 0u)
      << errors[0];
}

TEST(SpecTrafficTest, UnknownComponent) {
  ExpectOneError(SpecWith("      component: frnt\n"
                          "      strategy: blue_green\n"
                          "      ports: [3001, 3002]\n"),
                 "b.yaml:9:18: components.web.traffic.component: unknown component 'frnt' (did "
                 "you mean 'front'?)");
}

TEST(SpecTrafficTest, ComponentNotOfKindTraffic) {
  ExpectOneError(SpecWith("      component: conf\n"
                          "      strategy: blue_green\n"
                          "      ports: [3001, 3002]\n"),
                 "b.yaml:9:18: components.web.traffic.component: 'conf' is a config, not a "
                 "traffic component; expected a component of kind traffic: front");
}

TEST(SpecTrafficTest, MissingComponent) {
  ExpectOneError(SpecWith("      strategy: blue_green\n"
                          "      ports: [3001, 3002]\n"),
                 "b.yaml:8:5: components.web.traffic.component: missing required key");
}

TEST(SpecTrafficTest, MissingStrategy) {
  ExpectOneError(SpecWith("      component: front\n"
                          "      ports: [3001, 3002]\n"),
                 "b.yaml:8:5: components.web.traffic.strategy: missing required key 'strategy'; "
                 "expected one of blue_green");
}

TEST(SpecTrafficTest, UnknownStrategy) {
  ExpectOneError(SpecWith("      component: front\n"
                          "      strategy: canary\n"
                          "      ports: [3001, 3002]\n"),
                 "b.yaml:10:17: components.web.traffic.strategy: unknown strategy 'canary'");
}

TEST(SpecTrafficTest, MissingPorts) {
  ExpectOneError(SpecWith("      component: front\n"
                          "      strategy: blue_green\n"),
                 "b.yaml:8:5: components.web.traffic.ports: missing required key 'ports'");
}

TEST(SpecTrafficTest, OnePort) {
  ExpectOneError(SpecWith("      component: front\n"
                          "      strategy: blue_green\n"
                          "      ports: [3001]\n"),
                 "b.yaml:11:14: components.web.traffic.ports: 1 ports; expected two distinct");
}

TEST(SpecTrafficTest, PortOutOfRange) {
  ExpectOneError(SpecWith("      component: front\n"
                          "      strategy: blue_green\n"
                          "      ports: [3001, 70000]\n"),
                 "b.yaml:11:21: components.web.traffic.ports[1]: '70000' is not a port");
}

TEST(SpecTrafficTest, PortNotANumber) {
  ExpectOneError(SpecWith("      component: front\n"
                          "      strategy: blue_green\n"
                          "      ports: [http, 3002]\n"),
                 "b.yaml:11:15: components.web.traffic.ports[0]: 'http' is not a port");
}

TEST(SpecTrafficTest, SamePortTwice) {
  ExpectOneError(SpecWith("      component: front\n"
                          "      strategy: blue_green\n"
                          "      ports: [3001, 3001]\n"),
                 "b.yaml:11:21: components.web.traffic.ports[1]: both slots on port 3001");
}

TEST(SpecTrafficTest, BadKeepPrevious) {
  ExpectOneError(SpecWith("      component: front\n"
                          "      strategy: blue_green\n"
                          "      ports: [3001, 3002]\n"
                          "      keep_previous: 10\n"),
                 "b.yaml:12:22: components.web.traffic.keep_previous: '10' has no unit");
}

TEST(SpecTrafficTest, BadUpstream) {
  ExpectOneError(SpecWith("      component: front\n"
                          "      strategy: blue_green\n"
                          "      ports: [3001, 3002]\n"
                          "      upstream: 'a b'\n"),
                 "b.yaml:12:17: components.web.traffic.upstream: bad upstream name 'a b'");
}

TEST(SpecTrafficTest, UnknownKey) {
  ExpectOneError(SpecWith("      component: front\n"
                          "      strategy: blue_green\n"
                          "      ports: [3001, 3002]\n"
                          "      keep: 5m\n"),
                 "b.yaml:12:7: components.web.traffic.keep:");
}

TEST(SpecTrafficTest, DriverWithoutSlots) {
  ExpectOneError(SpecWith("      component: front\n"
                          "      strategy: blue_green\n"
                          "      ports: [3001, 3002]\n",
                          "oldproc"),
                 "b.yaml:8:5: components.web.traffic: driver 'oldproc' cannot run blue/green "
                 "slots");
}

TEST(SpecTrafficTest, NotAService) {
  std::string text =
      "environment: test\n"
      "components:\n"
      "  front: {kind: traffic, driver: nginx}\n"
      "  conf:\n"
      "    kind: config\n"
      "    driver: files\n"
      "    traffic: {component: front, strategy: blue_green, ports: [1, 2]}\n";
  ExpectOneError(text, "b.yaml:7:5: components.conf.traffic: 'traffic' applies only to services");
}

TEST(SpecTrafficTest, NotAMap) {
  ExpectOneError(SpecWith("      - front\n"), "b.yaml:9:7: components.web.traffic:");
}

}  // namespace
}  // namespace backstop

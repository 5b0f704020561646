// Tests of the `fallback:` section (spec_fallback.cc): every error with its
// file:line:column, and the values of a valid block.
#include <gtest/gtest.h>

#include "spec/driver_catalog.h"
#include "spec/spec.h"

namespace backstop {
namespace {

DriverSchemaList Drivers() {
  DriverSchemaList r;
  r.Add(DriverSchema{"nginx", {"traffic"}, {}});
  r.Add(DriverSchema{"files", {"config"}, {}});
  return r;
}

const char kComponents[] =
    "environment: test\n"   // 1
    "components:\n"         // 2
    "  web:\n"              // 3
    "    kind: traffic\n"   // 4
    "    driver: nginx\n"   // 5
    "  conf:\n"             // 6
    "    kind: config\n"    // 7
    "    driver: files\n";  // 8

std::string Errors(const std::string& fallback) {
  std::string out;
  for (const auto& e : CheckSpecText(kComponents + fallback, "b.yaml", Drivers())) {
    out += e.ToString() + "\n";
  }
  return out;
}

TEST(SpecFallbackTest, AValidBlockGivesTheStandbyItsUpstreamAndProbe) {
  auto spec = ParseSpec(std::string(kComponents) +
                            "fallback:\n"
                            "  traffic: web\n"
                            "  upstream: webui\n"
                            "  upstreams: [10.0.0.9:8080, 'standby.internal:80']\n"
                            "  health: {http: 'http://10.0.0.9:8080/health', timeout: 2s}\n",
                        "b.yaml", Drivers());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_TRUE(spec->fallback.has_value());
  EXPECT_EQ(spec->fallback->traffic, "web");
  EXPECT_EQ(spec->fallback->upstream, "webui");
  EXPECT_EQ(spec->fallback->servers,
            (std::vector<std::string>{"10.0.0.9:8080", "standby.internal:80"}));
  EXPECT_EQ(spec->fallback->health.type, ProbeSpec::Type::kHttp);
  EXPECT_EQ(spec->fallback->health.timeout_ms, 2000);
  EXPECT_EQ(spec->fallback->pos.line, 9);
}

TEST(SpecFallbackTest, NoBlockNoFallback) {
  auto spec = ParseSpec(kComponents, "b.yaml", Drivers());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_FALSE(spec->fallback.has_value());
}

TEST(SpecFallbackTest, EveryRequiredKeyIsNamedAtTheBlock) {
  const std::string e = Errors("fallback: {upstream: webui}\n");
  EXPECT_NE(e.find("b.yaml:9:1: fallback.traffic: missing required key 'traffic'"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("b.yaml:9:1: fallback.upstreams: missing required key 'upstreams'"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("b.yaml:9:1: fallback.health: missing required key 'health'"), std::string::npos)
      << e;
}

TEST(SpecFallbackTest, TrafficMustNameATrafficComponent) {
  const std::string probe = "  upstream: app\n  upstreams: [a:1]\n  health: {tcp: 'a:1'}\n";
  std::string e = Errors("fallback:\n  traffic: webb\n" + probe);
  EXPECT_NE(e.find("b.yaml:10:12: fallback.traffic: no component named 'webb' (did you mean "
                   "'web'?); expected a component of kind traffic: web"),
            std::string::npos)
      << e;
  e = Errors("fallback:\n  traffic: conf\n" + probe);
  EXPECT_NE(e.find("b.yaml:10:12: fallback.traffic: component 'conf' is of kind config"),
            std::string::npos)
      << e;
}

TEST(SpecFallbackTest, UpstreamsMustBeANonEmptyListOfHostPort) {
  const std::string rest = "  traffic: web\n  upstream: app\n  health: {tcp: 'a:1'}\n";
  std::string e = Errors("fallback:\n" + rest + "  upstreams: [10.0.0.9, 'a:99999', b:2, b:2]\n");
  EXPECT_NE(e.find("b.yaml:13:15: fallback.upstreams[0]: bad server '10.0.0.9'"), std::string::npos)
      << e;
  EXPECT_NE(e.find("b.yaml:13:25: fallback.upstreams[1]: bad server 'a:99999'"), std::string::npos)
      << e;
  EXPECT_NE(e.find("fallback.upstreams[3]: server 'b:2' is listed twice"), std::string::npos) << e;
  e = Errors("fallback:\n" + rest + "  upstreams: []\n");
  EXPECT_NE(e.find("b.yaml:13:14: fallback.upstreams: empty list"), std::string::npos) << e;
}

TEST(SpecFallbackTest, TheHealthProbeIsCheckedAsAComponentsIs) {
  const std::string e = Errors(
      "fallback:\n  traffic: web\n  upstream: app\n  upstreams: [a:1]\n  health: {htp: x}\n");
  EXPECT_NE(e.find("b.yaml:13:3: fallback.health: no probe type"), std::string::npos) << e;
}

TEST(SpecFallbackTest, WithoutAServiceRoutedThroughTheTrafficComponentTheUpstreamIsRequired) {
  const std::string e =
      Errors("fallback:\n  traffic: web\n  upstreams: [a:1]\n  health: {tcp: 'a:1'}\n");
  EXPECT_NE(e.find("b.yaml:9:1: fallback.upstream: missing key 'upstream': no service's traffic "
                   "block routes through 'web'"),
            std::string::npos)
      << e;
}

TEST(SpecFallbackTest, UnknownKeysAndBadUpstreamNamesAreRefused) {
  const std::string e = Errors(
      "fallback:\n  traffic: web\n  upstream: '../x'\n  upstreams: [a:1]\n"
      "  health: {tcp: 'a:1'}\n  standby: x\n");
  EXPECT_NE(e.find("b.yaml:11:13: fallback.upstream: bad upstream name '../x'"), std::string::npos)
      << e;
  EXPECT_NE(e.find("b.yaml:14:3: fallback.standby: unknown key"), std::string::npos) << e;
}

}  // namespace
}  // namespace backstop

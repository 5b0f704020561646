// Tests of the performance_degradation drill's checks
// (performance_degradation.h): a process service whose latency a trigger
// watches.
#include "drill/performance_degradation.h"

#include <gtest/gtest.h>

namespace backstop {
namespace {

Spec WithService() {
  Spec spec;
  ComponentSpec c;
  c.name = "web";
  c.kind = ComponentKind::kService;
  c.driver = "process";
  spec.components["web"] = c;
  spec.component_order.push_back("web");
  ComponentSpec db;
  db.name = "postgres";
  db.kind = ComponentKind::kDatabase;
  db.driver = "postgres";
  spec.components["postgres"] = db;
  spec.component_order.push_back("postgres");
  spec.triggers = DefaultTriggers();
  return spec;
}

TEST(PerformanceDrillTest, AServiceWatchedForLatencyMayBeDrilled) {
  Spec spec = WithService();
  EXPECT_TRUE(CheckFault(spec, "performance_degradation", "web").ok());
  EXPECT_EQ(DefaultFaultComponent(spec, "performance_degradation"), "web");
  EXPECT_EQ(CheckFault(spec, "performance_degradation", "postgres").code(),
            Status::Code::kInvalidArgument);
}

TEST(PerformanceDrillTest, NoLatencyTriggerIsRefused) {
  Spec spec = WithService();
  std::erase_if(spec.triggers, [](const TriggerSpec& t) { return t.signal == Signal::kLatency; });
  Status st = CheckFault(spec, "performance_degradation", "web");
  EXPECT_EQ(st.code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("latency"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace backstop

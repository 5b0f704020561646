// Tests of the performance_degradation drill's checks
// (performance_degradation.h): a process service whose latency a trigger
// watches.
#include "drill/performance_degradation.h"

#include <gtest/gtest.h>

#include "testing/test_spec.h"

namespace backstop {
namespace {

Spec WithService() {
  Spec spec;
  testing::AddComponent(&spec, "web", ComponentKind::kService, "process");
  testing::AddComponent(&spec, "postgres", ComponentKind::kDatabase, "postgres");
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

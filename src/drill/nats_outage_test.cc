// Tests of the nats_outage drill's checks (nats_outage.h): a nats stream on
// this machine whose reachability a trigger watches; and of ending an outage
// that holds nothing.
#include "drill/nats_outage.h"

#include <gtest/gtest.h>

#include "testing/test_spec.h"

namespace backstop {
namespace {

Spec WithNats(const std::string& url) {
  Spec spec;
  testing::AddComponent(&spec, "nats", ComponentKind::kStream, "nats",
                        {{"url", url}, {"streams", {"TASKS"}}});
  testing::AddComponent(&spec, "postgres", ComponentKind::kDatabase, "postgres");
  spec.triggers = DefaultTriggers();
  return spec;
}

TEST(NatsOutageDrillTest, ALoopbackNatsStreamWatchedForHealthMayBeDrilled) {
  Spec spec = WithNats("nats://127.0.0.1:4222");
  EXPECT_TRUE(CheckFault(spec, "nats_outage", "nats").ok());
  EXPECT_EQ(DefaultFaultComponent(spec, "nats_outage"), "nats");
  EXPECT_TRUE(CheckFault(WithNats("nats://app:pw@localhost:4223,nats://10.0.0.5:4222"),
                         "nats_outage", "nats")
                  .ok());
}

TEST(NatsOutageDrillTest, ARemoteServerOrAnotherComponentIsRefused) {
  Status remote = CheckFault(WithNats("nats://10.0.0.5:4222"), "nats_outage", "nats");
  EXPECT_EQ(remote.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(remote.message().find("loopback"), std::string::npos) << remote.message();
  EXPECT_EQ(CheckFault(WithNats("nats://127.0.0.1:4222"), "nats_outage", "postgres").code(),
            Status::Code::kInvalidArgument);
}

TEST(NatsOutageDrillTest, NothingWatchingReachabilityIsRefused) {
  Spec spec = WithNats("nats://127.0.0.1:4222");
  spec.triggers.clear();
  Status st = CheckFault(spec, "nats_outage", "nats");
  EXPECT_EQ(st.code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(st.message().find("nothing could detect"), std::string::npos) << st.message();
}

TEST(NatsOutageDrillTest, EndingAnOutageThatHoldsNothingDoesNothing) {
  InjectedFault fault;
  EXPECT_TRUE(EndOutage(Env::Default(), &fault).ok());
  EXPECT_TRUE(DrillEndsOutage("nats_outage"));
  EXPECT_FALSE(DrillEndsOutage("service_failure"));
}

}  // namespace
}  // namespace backstop

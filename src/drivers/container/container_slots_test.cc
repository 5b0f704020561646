// Blue/green slots of a container service: the slot's create request, and
// start, stop, describe and health of slots against a real podman service.
#include "drivers/container/container_slots.h"

#include "testing/container_restore_fixture.h"

namespace backstop::container {
namespace {

TEST(ContainerSlots, TheSlotPublishesItsPortAndSeesItAsPort) {
  json base = {
      {"Image", "sha256:1111"},
      {"Cmd", {"serve", "--listen=:{port}"}},
      {"Env", {"MODE=prod", "URL=http://localhost:{port}/"}},
      {"Labels", {{"team", "core"}}},
      {"HostConfig",
       {{"NetworkMode", "bridge"},
        {"PortBindings", {{"8080/tcp", {{{"HostIp", "127.0.0.1"}, {"HostPort", "80"}}}}}}}}};
  auto r = SlotCreateRequest(base, Slot::kGreen, 20002, 0, "localhost/web:2", "2");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)["Image"], "localhost/web:2");
  EXPECT_EQ((*r)["Cmd"], json({"serve", "--listen=:20002"}));
  EXPECT_EQ((*r)["Env"], json({"MODE=prod", "URL=http://localhost:20002/", "BACKSTOP_PORT=20002"}));
  EXPECT_EQ((*r)["HostConfig"]["PortBindings"],
            json({{"8080/tcp", {{{"HostIp", "127.0.0.1"}, {"HostPort", "20002"}}}}}));
  EXPECT_EQ((*r)["HostConfig"]["NetworkMode"], "bridge");
  EXPECT_EQ((*r)["Labels"],
            json({{"team", "core"}, {"backstop.slot", "green"}, {"backstop.release", "2"}}));
}

TEST(ContainerSlots, TwoPublishedPortsNeedContainerPort) {
  json base = {{"HostConfig",
                {{"PortBindings",
                  {{"8080/tcp", {{{"HostPort", "80"}}}}, {"9090/tcp", {{{"HostPort", "90"}}}}}}}}};
  auto refused = SlotCreateRequest(base, Slot::kBlue, 20001, 0, "web:1", "1");
  EXPECT_EQ(refused.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("set container_port"), std::string::npos);
  auto chosen = SlotCreateRequest(base, Slot::kBlue, 20001, 9090, "web:1", "1");
  ASSERT_TRUE(chosen.ok());
  EXPECT_EQ((*chosen)["HostConfig"]["PortBindings"],
            json({{"9090/tcp", {{{"HostIp", "127.0.0.1"}, {"HostPort", "20001"}}}}}));
}

TEST(ContainerSlots, StartedAtIsReadWithItsFractionAndOffset) {
  EXPECT_EQ(ParseStartedAt("1970-01-01T00:00:01.5Z"), 1'500'000);
  EXPECT_EQ(ParseStartedAt("1970-01-01T01:00:01.123456789+01:00"), 1'123'456);
  EXPECT_EQ(ParseStartedAt("0001-01-01T00:00:00Z"), 0);
  EXPECT_EQ(ParseStartedAt(""), 0);
}

class ContainerSlotsTest : public ContainerRestoreTest {
 protected:
  void SetUp() override {
    ContainerRestoreTest::SetUp();
    if (IsSkipped()) return;
    auto blue = testing::ReserveLoopbackPort();
    auto green = testing::ReserveLoopbackPort();
    ASSERT_TRUE(blue.ok() && green.ok());
    c_.traffic = ServiceTrafficSpec{};
    c_.traffic->ports = {*blue, *green};
    c_.health.target = "http://127.0.0.1:{port}/release";
  }
  std::string ServedBy(Slot slot) {
    HealthResult h =
        WaitHealthy(c_.health.ForPort(SlotPort(c_, slot)), Env::Default(), 100, nullptr, nullptr);
    return h.state == HealthResult::State::kPass ? "up" : "down: " + h.detail;
  }
  std::string IdOf(const std::string& name) {
    auto inspected = Client().InspectContainer(name);
    return inspected.ok() ? inspected->value("Id", "") : "";
  }
};

TEST_F(ContainerSlotsTest, SlotsRunReleasesSideBySide) {
  RunFirst();  // the service's container: its configuration is the slots'
  Image("2", kServe);
  ASSERT_TRUE(driver_.SupportsSlots());
  auto empty = driver_.Slots(c_, ctx_);
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ((*empty)[0].release, "");
  EXPECT_FALSE((*empty)[1].running);
  EXPECT_TRUE(driver_.StopSlot(c_, Slot::kGreen, ctx_).ok());  // nothing runs: OK

  ASSERT_TRUE(driver_.StartSlot(c_, Slot::kBlue, "1", ctx_).ok());
  ASSERT_TRUE(driver_.StartSlot(c_, Slot::kGreen, "2", ctx_).ok());
  EXPECT_EQ(ServedBy(Slot::kBlue), "up");
  EXPECT_EQ(ServedBy(Slot::kGreen), "up");
  EXPECT_EQ(driver_.SlotHealth(c_, Slot::kGreen, ctx_).state, HealthResult::State::kPass);
  auto inspected = Client().InspectContainer(name_ + "-green");
  ASSERT_TRUE(inspected.ok());
  EXPECT_NE((*inspected)["Config"]["Env"].dump().find("GREETING=hello"), std::string::npos);
  EXPECT_NE((*inspected)["Config"]["Env"].dump().find("BACKSTOP_PORT=" +
                                                      std::to_string(c_.traffic->ports[1])),
            std::string::npos);

  auto slots = driver_.Slots(c_, ctx_);
  ASSERT_TRUE(slots.ok());
  EXPECT_EQ((*slots)[0].slot, Slot::kBlue);
  EXPECT_EQ((*slots)[0].release, "1");
  EXPECT_EQ((*slots)[1].release, "2");
  EXPECT_TRUE((*slots)[0].running && (*slots)[1].running);
  EXPECT_EQ((*slots)[1].port, c_.traffic->ports[1]);
  EXPECT_GT((*slots)[1].started_us, 0);

  // Again with the same release: left as it is.
  std::string green = IdOf(name_ + "-green");
  ASSERT_TRUE(driver_.StartSlot(c_, Slot::kGreen, "2", ctx_).ok());
  EXPECT_EQ(IdOf(name_ + "-green"), green);

  // Stopped, then another release in that slot: replaced; the other slot untouched.
  ASSERT_TRUE(driver_.StopSlot(c_, Slot::kBlue, ctx_).ok());
  slots = driver_.Slots(c_, ctx_);
  ASSERT_TRUE(slots.ok());
  EXPECT_FALSE((*slots)[0].running);
  EXPECT_EQ(driver_.SlotHealth(c_, Slot::kBlue, ctx_).state, HealthResult::State::kFail);
  ASSERT_TRUE(driver_.StartSlot(c_, Slot::kBlue, "2", ctx_).ok());
  EXPECT_EQ(ServedBy(Slot::kBlue), "up");
  slots = driver_.Slots(c_, ctx_);
  ASSERT_TRUE(slots.ok());
  EXPECT_EQ((*slots)[0].release, "2");
  EXPECT_EQ(IdOf(name_ + "-green"), green);
}

TEST_F(ContainerSlotsTest, ASlotOfAReleaseTheEngineLacksIsNotFound) {
  RunFirst();
  Status st = driver_.StartSlot(c_, Slot::kBlue, "404", ctx_);
  EXPECT_EQ(st.code(), Status::Code::kNotFound) << st.ToString();
}

}  // namespace
}  // namespace backstop::container

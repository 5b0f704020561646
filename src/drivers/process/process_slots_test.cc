// The process driver's blue/green slots, with real processes: each slot its
// own recorded instance on its own port, running its release's directory
// directly, started and stopped without touching the other.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "drivers/process/process_driver.h"
#include "spec/spec.h"
#include "testing/test_env.h"

namespace backstop::process {
namespace {

using nlohmann::json;
using testing::TempDir;
using testing::WriteFileOrDie;

// Says where it runs (release, slot, port from the environment and from its
// command line), then sleeps.
const char kSlotSleeper[] =
    "#!/bin/sh\n"
    "echo \"svc $BACKSTOP_RELEASE slot $BACKSTOP_SLOT port $BACKSTOP_PORT arg $1 env $LISTEN\"\n"
    "exec sleep 600\n";

class ProcessSlotsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = Env::Default();
    releases_ = dir_.Join("app/releases");
    state_ = dir_.Join("state");
    for (const char* r : {"v1", "v2"}) {
      WriteFileOrDie(JoinPath(releases_, std::string(r) + "/bin/svc"), kSlotSleeper, 0755);
    }
    driver_ = ProcessDriverInfo().factory();
    spec_.name = "web";
    spec_.kind = ComponentKind::kService;
    spec_.driver = "process";
    spec_.settings = {{"releases", releases_},
                      {"command", json::array({"bin/svc", "--port={port}"})},
                      {"env", {{"LISTEN", "127.0.0.1:{port}"}}},
                      {"stop_timeout", 5000}};
    ServiceTrafficSpec traffic;
    traffic.component = "front";
    traffic.upstream = "web";
    traffic.ports = {4101, 4102};
    spec_.traffic = traffic;
    // Healthy when the slot's process wrote its port to the log.
    spec_.health.type = ProbeSpec::Type::kExec;
    spec_.health.command = {"grep", "-q", "port {port} arg", Log()};
    spec_.health.timeout_ms = 5000;
    ctx_.state_dir = state_;
  }

  void TearDown() override { (void)driver_->Stop(spec_, ctx_); }

  std::string Log() const { return state_ + "/logs/web.log"; }
  std::string LogText() const {
    auto text = env_->fs()->ReadFile(Log());
    return text.ok() ? *text : "";
  }
  bool WaitForLog(const std::string& needle) {
    for (int i = 0; i < 1000; ++i) {
      if (LogText().find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  SlotState SlotOf(Slot slot) {
    auto slots = driver_->Slots(spec_, ctx_);
    EXPECT_TRUE(slots.ok()) << slots.status().ToString();
    for (const auto& s : slots.ok() ? *slots : std::vector<SlotState>{}) {
      if (s.slot == slot) return s;
    }
    ADD_FAILURE() << "no slot " << Name(slot);
    return {};
  }

  Env* env_ = nullptr;
  TempDir dir_;
  std::string releases_;
  std::string state_;
  std::unique_ptr<Driver> driver_;
  ComponentSpec spec_;
  DriverContext ctx_{*Env::Default()};
};

TEST_F(ProcessSlotsTest, TwoReleasesRunSideBySideEachOnItsPort) {
  EXPECT_TRUE(driver_->SupportsSlots());
  ASSERT_TRUE(driver_->StartSlot(spec_, Slot::kBlue, "v1", ctx_).ok());
  ASSERT_TRUE(driver_->StartSlot(spec_, Slot::kGreen, "v2", ctx_).ok());
  ASSERT_TRUE(WaitForLog("svc v1 slot blue port 4101 arg --port=4101 env 127.0.0.1:4101"));
  ASSERT_TRUE(WaitForLog("svc v2 slot green port 4102 arg --port=4102 env 127.0.0.1:4102"));
  SlotState blue = SlotOf(Slot::kBlue);
  SlotState green = SlotOf(Slot::kGreen);
  EXPECT_EQ(blue.release, "v1");
  EXPECT_TRUE(blue.running);
  EXPECT_EQ(blue.port, 4101);
  EXPECT_GT(blue.started_us, 0);
  EXPECT_EQ(green.release, "v2");
  EXPECT_TRUE(green.running);
  EXPECT_EQ(green.port, 4102);
  EXPECT_TRUE(driver_->SlotHealth(spec_, Slot::kBlue, ctx_).pass());
  EXPECT_TRUE(driver_->SlotHealth(spec_, Slot::kGreen, ctx_).pass());
  // Nothing went through `current`: it was never created.
  EXPECT_FALSE(env_->fs()->Exists(dir_.Join("app/current")));
  // Each slot has its own record.
  EXPECT_TRUE(env_->fs()->Exists(state_ + "/components/web/slot-blue.json"));
  EXPECT_TRUE(env_->fs()->Exists(state_ + "/components/web/slot-green.json"));
}

TEST_F(ProcessSlotsTest, StartingASlotAgainOnItsReleaseKeepsTheProcess) {
  ASSERT_TRUE(driver_->StartSlot(spec_, Slot::kBlue, "v1", ctx_).ok());
  const std::string first = SlotOf(Slot::kBlue).detail;
  ASSERT_TRUE(driver_->StartSlot(spec_, Slot::kBlue, "v1", ctx_).ok());
  EXPECT_EQ(SlotOf(Slot::kBlue).detail, first);
  // Another release replaces it in that slot only.
  ASSERT_TRUE(driver_->StartSlot(spec_, Slot::kGreen, "v1", ctx_).ok());
  const std::string green = SlotOf(Slot::kGreen).detail;
  ASSERT_TRUE(driver_->StartSlot(spec_, Slot::kBlue, "v2", ctx_).ok());
  EXPECT_EQ(SlotOf(Slot::kBlue).release, "v2");
  EXPECT_NE(SlotOf(Slot::kBlue).detail, first);
  EXPECT_EQ(SlotOf(Slot::kGreen).detail, green);
  EXPECT_TRUE(SlotOf(Slot::kGreen).running);
}

TEST_F(ProcessSlotsTest, StoppingASlotLeavesTheOtherRunning) {
  ASSERT_TRUE(driver_->StartSlot(spec_, Slot::kBlue, "v1", ctx_).ok());
  ASSERT_TRUE(driver_->StartSlot(spec_, Slot::kGreen, "v2", ctx_).ok());
  ASSERT_TRUE(driver_->StopSlot(spec_, Slot::kBlue, ctx_).ok());
  EXPECT_FALSE(SlotOf(Slot::kBlue).running);
  EXPECT_EQ(SlotOf(Slot::kBlue).release, "");
  EXPECT_TRUE(SlotOf(Slot::kGreen).running);
  EXPECT_FALSE(driver_->SlotHealth(spec_, Slot::kBlue, ctx_).pass());
  EXPECT_TRUE(driver_->StopSlot(spec_, Slot::kBlue, ctx_).ok());  // nothing runs: OK
  // Stop of the service stops both.
  ASSERT_TRUE(driver_->Stop(spec_, ctx_).ok());
  EXPECT_FALSE(SlotOf(Slot::kGreen).running);
}

TEST_F(ProcessSlotsTest, AMissingReleaseOrNoTrafficBlockIsRefused) {
  Status st = driver_->StartSlot(spec_, Slot::kBlue, "v9", ctx_);
  EXPECT_TRUE(st.code() == Status::Code::kFailedPrecondition) << st.ToString();
  EXPECT_NE(st.message().find("does not exist"), std::string::npos) << st.ToString();
  ComponentSpec plain = spec_;
  plain.traffic.reset();
  EXPECT_TRUE(driver_->StartSlot(plain, Slot::kBlue, "v1", ctx_).code() ==
              Status::Code::kFailedPrecondition);
  // And a blue/green service is not started outside its slots.
  EXPECT_TRUE(driver_->Start(spec_, ctx_).code() == Status::Code::kFailedPrecondition);
}

}  // namespace
}  // namespace backstop::process

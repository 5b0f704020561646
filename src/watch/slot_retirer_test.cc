// Retiring previous slots: RetireExpiredSlots against a real state database
// and a driver that records what it is asked to stop (the slots themselves
// are tests/blue_green.sh's, with real processes and nginx); SlotRetirer's
// schedule on a FakeClock.
#include "watch/slot_retirer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "run/event.h"
#include "run/lock.h"
#include "run/slot_state.h"
#include "run/state_db.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

// Records each StopSlot as "<component> <slot>"; fails it when told to.
class StopRecordingDriver : public Driver {
 public:
  StopRecordingDriver(std::vector<std::string>* stopped, bool fail)
      : stopped_(stopped), fail_(fail) {}
  bool IsService() const override { return true; }
  bool SupportsSlots() const override { return true; }
  Result<nlohmann::json> Snapshot(const ComponentSpec&, DriverContext&) override {
    return nlohmann::json::object();
  }
  Result<nlohmann::json> Describe(const ComponentSpec&, DriverContext&) override {
    return nlohmann::json::object();
  }
  Status Restore(const ComponentSpec&, const nlohmann::json&, DriverContext&) override {
    return Status::OK();
  }
  Status StopSlot(const ComponentSpec& c, Slot slot, DriverContext&) override {
    if (fail_) return Status::Internal("kill: operation not permitted");
    stopped_->push_back(c.name + " " + std::string(Name(slot)));
    return Status::OK();
  }

 private:
  std::vector<std::string>* stopped_;
  bool fail_;
};

class RetireExpiredSlotsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DriverInfo info;
    info.name = "fake-slots";
    info.kinds = {"service"};
    info.factory = [this] { return std::make_unique<StopRecordingDriver>(&stopped_, fail_stop_); };
    registry_.Register(info);
    ComponentSpec web;
    web.name = "web";
    web.driver = "fake-slots";
    ServiceTrafficSpec t;
    t.component = "front";
    t.upstream = "web";
    t.ports = {5001, 5002};
    t.keep_previous_ms = 600'000;
    web.traffic = t;
    ComponentSpec api = web;  // a second one, never switched
    api.name = "api";
    api.traffic->ports = {5003, 5004};
    spec_.environment = "test";
    spec_.state_dir = dir_.Join("state");
    spec_.store_path = dir_.Join("state/store");
    spec_.component_order = {"api", "web"};
    spec_.components = {{"api", api}, {"web", web}};
    ASSERT_TRUE(Env::Default()->fs()->CreateDirs(spec_.state_dir, 0700).ok());
    auto db = StateDb::Open(JoinPath(spec_.state_dir, "state.db"));
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(*db);
  }

  // web live in green on v2, v1 kept in blue until `keep_until_us`.
  void SwitchedAt(int64_t keep_until_us) {
    SlotRecord r;
    r.live = Slot::kGreen;
    r.live_release = "v2";
    r.previous = Slot::kBlue;
    r.previous_release = "v1";
    r.keep_until_us = keep_until_us;
    r.run_id = "run-1";
    ASSERT_TRUE(WriteSlotRecord(*db_, "web", r).ok());
  }
  SlotRetireAttempt Retire() { return RetireExpiredSlots(&env_, spec_, registry_, &log_); }
  std::vector<Event> Events() {
    auto events = db_->ListEvents(EventQuery{});
    EXPECT_TRUE(events.ok());
    return events.ok() ? *events : std::vector<Event>{};
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  Env env_ = testing::MakeEnvWithClock(&clock_);
  FILE* devnull_ = std::fopen("/dev/null", "w");
  WatchLogger log_{false, devnull_};
  DriverRegistry registry_;
  Spec spec_;
  std::unique_ptr<StateDb> db_;
  std::vector<std::string> stopped_;
  bool fail_stop_ = false;

  ~RetireExpiredSlotsTest() override { std::fclose(devnull_); }
};

TEST_F(RetireExpiredSlotsTest, APreviousSlotStillKeptIsLeftRunning) {
  SwitchedAt(clock_.WallMicros() + 1);
  SlotRetireAttempt a = Retire();
  EXPECT_EQ(a.result, SlotRetireAttempt::Result::kNothing);
  EXPECT_TRUE(stopped_.empty());
  auto r = ReadSlotRecord(*db_, "web");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->previous, Slot::kBlue);
  EXPECT_TRUE(Events().empty());
}

TEST_F(RetireExpiredSlotsTest, AnExpiredOneIsStoppedClearedAndJournaled) {
  SwitchedAt(clock_.WallMicros());
  SlotRetireAttempt a = Retire();
  EXPECT_EQ(a.result, SlotRetireAttempt::Result::kRetired);
  EXPECT_EQ(a.retired, (std::vector<std::string>{"web blue"}));
  EXPECT_EQ(stopped_, (std::vector<std::string>{"web blue"}));
  auto r = ReadSlotRecord(*db_, "web");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->previous.has_value());
  EXPECT_EQ(r->previous_release, "");
  EXPECT_EQ(r->keep_until_us, 0);
  EXPECT_EQ(r->live, Slot::kGreen);
  EXPECT_EQ(r->live_release, "v2");
  std::vector<Event> events = Events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, EventKind::kSlotRetired);
  EXPECT_EQ(events[0].component, "web");
  EXPECT_EQ(events[0].message,
            "stopped web release v1 in the blue slot (port 5001): keep_previous (10m) ended");
  EXPECT_EQ(events[0].detail,
            (nlohmann::json{{"slot", "blue"}, {"release", "v1"}, {"port", 5001}}));
  // Done once: the next check finds nothing.
  EXPECT_EQ(Retire().result, SlotRetireAttempt::Result::kNothing);
  EXPECT_EQ(stopped_.size(), 1u);
}

TEST_F(RetireExpiredSlotsTest, APreviousSlotThatIsLiveIsNeverStoppedOnlyUnmarked) {
  SlotRecord r;
  r.live = Slot::kBlue;
  r.live_release = "v1";
  r.previous = Slot::kBlue;
  r.previous_release = "v1";
  r.keep_until_us = clock_.WallMicros();
  ASSERT_TRUE(WriteSlotRecord(*db_, "web", r).ok());
  SlotRetireAttempt a = Retire();
  EXPECT_EQ(a.result, SlotRetireAttempt::Result::kNothing);
  EXPECT_TRUE(stopped_.empty());
  auto after = ReadSlotRecord(*db_, "web");
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->previous.has_value());
  EXPECT_EQ(after->live, Slot::kBlue);
  EXPECT_TRUE(Events().empty());
}

TEST_F(RetireExpiredSlotsTest, BusyWhileARunHoldsTheLockAndAFailedStopKeepsTheRecord) {
  SwitchedAt(clock_.WallMicros());
  {
    auto held = EnvironmentLock::Acquire(&env_, spec_.state_dir, {{"command", "backstop deploy"}});
    ASSERT_TRUE(held.ok()) << held.status().ToString();
    EXPECT_EQ(Retire().result, SlotRetireAttempt::Result::kBusy);
    EXPECT_TRUE(stopped_.empty());
  }
  fail_stop_ = true;
  SlotRetireAttempt a = Retire();
  EXPECT_EQ(a.result, SlotRetireAttempt::Result::kFailed);
  EXPECT_EQ(a.detail, "web: kill: operation not permitted");
  auto r = ReadSlotRecord(*db_, "web");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->previous, Slot::kBlue);  // tried again later, not forgotten
  EXPECT_TRUE(Events().empty());
}

// The schedule alone: the check is a counter that answers `next_`.
class SlotRetirerTest : public ::testing::Test {
 protected:
  // One tick of the daemon's loop, then waits for the check it started.
  void Tick(bool run_active = false) {
    retirer_.Tick(run_active);
    retirer_.Wait();
  }

  testing::FakeClock clock_;
  Env env_ = testing::MakeEnvWithClock(&clock_);
  int checks_ = 0;
  SlotRetireAttempt::Result next_ = SlotRetireAttempt::Result::kNothing;
  SlotRetirer retirer_{&env_, [this] {
                         ++checks_;
                         SlotRetireAttempt a;
                         a.result = next_;
                         return a;
                       }};
};

TEST_F(SlotRetirerTest, ChecksEveryTwoSecondsAndNeverWhileARunIsActive) {
  Tick(/*run_active=*/true);
  EXPECT_EQ(checks_, 0);
  Tick();
  EXPECT_EQ(checks_, 1);
  clock_.AdvanceMs(kSlotRetireCheckEveryMs - 1);
  Tick();
  EXPECT_EQ(checks_, 1);
  clock_.AdvanceMs(1);
  Tick();
  EXPECT_EQ(checks_, 2);
}

TEST_F(SlotRetirerTest, BusyIsCheckedAgainAtOnceAFailureAfterAMinute) {
  next_ = SlotRetireAttempt::Result::kBusy;
  Tick();
  Tick();
  EXPECT_EQ(checks_, 2);
  EXPECT_EQ(retirer_.last().result, SlotRetireAttempt::Result::kBusy);
  next_ = SlotRetireAttempt::Result::kFailed;
  Tick();
  clock_.AdvanceMs(kSlotRetireRetryAfterMs - 1);
  Tick();
  EXPECT_EQ(checks_, 3);
  clock_.AdvanceMs(1);
  Tick();
  EXPECT_EQ(checks_, 4);
}

}  // namespace
}  // namespace backstop

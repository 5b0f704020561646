// Blue/green deploys and rollbacks through the run engine, against a fake
// slot-running service and a fake traffic component that share one world (in
// a file, so that what a run killed in a child process did survives it).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include "run/plan.h"
#include "run/run.h"
#include "run/slot_state.h"
#include "run/state_db.h"
#include "store/store.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

using nlohmann::json;

// Slots ("blue"/"green") -> {release, pid}; pid 0: stopped. Every call logged.
struct World {
  std::string file;
  json j = {{"slots", json::object()},
            {"routed", json::array()},
            {"current", ""},
            {"calls", json::array()},
            {"next_pid", 100}};
  void Load() { j = json::parse(*Env::Default()->fs()->ReadFile(file)); }
  void Save() { ASSERT_TRUE(Env::Default()->fs()->WriteFileAtomic(file, j.dump(), 0600).ok()); }
  void Call(const std::string& c) { j["calls"].push_back(c); }
  std::vector<std::string> Calls() { return j["calls"].get<std::vector<std::string>>(); }
  int Pid(const std::string& slot) {
    return j["slots"].contains(slot) ? j["slots"][slot]["pid"].get<int>() : 0;
  }
  std::string Release(const std::string& slot) {
    return j["slots"].contains(slot) ? j["slots"][slot]["release"].get<std::string>() : "";
  }
};

class Scope {
 public:
  explicit Scope(World* w) : w_(w) { w_->Load(); }
  ~Scope() { w_->Save(); }

 private:
  World* w_;
};

class FakeSlotsDriver : public Driver {
 public:
  explicit FakeSlotsDriver(World* w) : w_(w) {}
  bool IsService() const override { return true; }
  bool SupportsSlots() const override { return true; }
  Result<json> Snapshot(const ComponentSpec&, DriverContext&) override {
    Scope s(w_);
    return json{{"release", w_->j["current"]}};
  }
  Result<json> Describe(const ComponentSpec&, DriverContext&) override {
    Scope s(w_);
    return json{{"release", w_->j["current"]}, {"releases", {"v1", "v2"}}};
  }
  Status Restore(const ComponentSpec&, const json& entry, DriverContext&) override {
    Scope s(w_);
    w_->j["current"] = entry.value("release", "");
    return Status::OK();
  }
  Status VerifyRestored(const ComponentSpec&, const json& entry, DriverContext&) override {
    Scope s(w_);
    return w_->j["current"] == entry.value("release", "") ? Status::OK()
                                                          : Status::FailedPrecondition("current");
  }
  Status StartSlot(const ComponentSpec&, Slot slot, const std::string& release,
                   DriverContext&) override {
    Scope s(w_);
    const std::string name(Name(slot));
    if (w_->Pid(name) != 0 && w_->Release(name) == release) return Status::OK();
    w_->Call("start " + name + " " + release);
    int pid = w_->j["next_pid"].get<int>();
    w_->j["next_pid"] = pid + 1;
    w_->j["slots"][name] = {{"release", release}, {"pid", pid}};
    return Status::OK();
  }
  Status StopSlot(const ComponentSpec&, Slot slot, DriverContext&) override {
    Scope s(w_);
    const std::string name(Name(slot));
    if (w_->Pid(name) == 0) return Status::OK();
    w_->Call("stop " + name);
    w_->j["slots"][name] = {{"release", ""}, {"pid", 0}};
    return Status::OK();
  }
  Result<std::vector<SlotState>> Slots(const ComponentSpec& c, DriverContext&) override {
    Scope s(w_);
    std::vector<SlotState> out;
    for (Slot slot : {Slot::kBlue, Slot::kGreen}) {
      const std::string name(Name(slot));
      out.push_back(SlotState{slot, w_->Release(name), SlotPort(c, slot), w_->Pid(name) != 0, 0,
                              "pid " + std::to_string(w_->Pid(name))});
    }
    return out;
  }
  HealthResult SlotHealth(const ComponentSpec&, Slot slot, DriverContext&) override {
    Scope s(w_);
    bool ok = w_->Pid(std::string(Name(slot))) != 0;
    return HealthResult::Make(ok ? HealthResult::State::kPass : HealthResult::State::kFail, 1,
                              ok ? "HTTP 200" : "connection refused");
  }

 private:
  World* w_;
};

class FakeTrafficDriver : public Driver {
 public:
  explicit FakeTrafficDriver(World* w) : w_(w) {}
  Result<json> Snapshot(const ComponentSpec&, DriverContext&) override { return json::object(); }
  Result<json> Describe(const ComponentSpec&, DriverContext&) override { return json::object(); }
  Status Restore(const ComponentSpec&, const json&, DriverContext&) override {
    return Status::OK();
  }
  Status Route(const ComponentSpec&, const std::string& upstream,
               const std::vector<std::string>& servers, DriverContext&) override {
    Scope s(w_);
    w_->Call("route " + upstream + " " + servers.at(0));
    w_->j["routed"] = servers;
    return Status::OK();
  }
  Result<std::vector<std::string>> Routed(const ComponentSpec&, const std::string&,
                                          DriverContext&) override {
    Scope s(w_);
    return w_->j["routed"].get<std::vector<std::string>>();
  }

 private:
  World* w_;
};

class RunBlueGreenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    World* w = &world_;
    DriverInfo slots;
    slots.name = "fakeslots";
    slots.kinds = {"service"};
    slots.factory = [w] { return std::make_unique<FakeSlotsDriver>(w); };
    registry_.Register(slots);
    DriverInfo traffic;
    traffic.name = "faketraffic";
    traffic.kinds = {"traffic"};
    traffic.factory = [w] { return std::make_unique<FakeTrafficDriver>(w); };
    registry_.Register(traffic);

    ComponentSpec front;
    front.name = "front";
    front.kind = ComponentKind::kTraffic;
    front.driver = "faketraffic";
    ComponentSpec web;
    web.name = "web";
    web.driver = "fakeslots";
    web.health.start_period_ms = 0;
    ServiceTrafficSpec t;
    t.component = "front";
    t.upstream = "web";
    t.ports = {5001, 5002};
    t.keep_previous_ms = 600'000;
    web.traffic = t;
    spec_.environment = "test";
    spec_.component_order = {"front", "web"};
    spec_.components = {{"front", front}, {"web", web}};
    Open("main");
  }

  // The site `name`: its state, store and engine (and the world's file).
  void Open(const std::string& name) {
    engine_.reset();
    spec_.state_dir = dir_.Join(name + "/state");
    spec_.store_path = dir_.Join(name + "/state/store");
    world_.file = dir_.Join(name + "-world.json");
    if (!Env::Default()->fs()->Exists(world_.file)) world_.Save();
    auto store = Store::Open(&env_, spec_.store_path);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    auto state = StateDb::Open(dir_.Join(name + "/state.db"));
    ASSERT_TRUE(state.ok()) << state.status().ToString();
    state_ = std::move(*state);
    engine_ = std::make_unique<RunEngine>(&env_, spec_, *store_, *state_, registry_, out_);
  }

  Plan DeployPlan(const std::string& release) {
    DriverContext ctx = engine_->Context();
    auto plan = PlanDeploy(spec_, "web", release, registry_, ctx, state_.get());
    EXPECT_TRUE(plan.ok()) << plan.status().ToString();
    return plan.ok() ? *plan : Plan{};
  }
  Plan RollbackPlan(const std::string& to) {
    DriverContext ctx = engine_->Context();
    RollbackRequest req;
    req.component = "web";
    req.to = to;
    auto plan = PlanRollback(spec_, req, *store_, *state_, registry_, ctx);
    EXPECT_TRUE(plan.ok()) << plan.status().ToString();
    return plan.ok() ? *plan : Plan{};
  }
  void Run(const Plan& plan) {
    auto outcome = engine_->Start(plan, RunOptions{});
    ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
    ASSERT_TRUE(outcome->succeeded()) << outcome->error;
  }
  static std::vector<std::string> Actions(const Plan& plan) {
    std::vector<std::string> out;
    for (const auto& s : plan.steps) {
      out.push_back(std::string(Name(s.action)) + " " + s.args.value("slot", std::string()));
    }
    return out;
  }
  SlotRecord Record() {
    auto r = ReadSlotRecord(*state_, "web");
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : SlotRecord{};
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  Env env_ = testing::MakeEnvWithClock(&clock_);
  World world_;
  DriverRegistry registry_;
  Spec spec_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<StateDb> state_;
  Output out_{false, stdout, stdout};
  std::unique_ptr<RunEngine> engine_;
};

TEST_F(RunBlueGreenTest, DeployStartsTheIdleSlotSwitchesAndKeepsThePrevious) {
  Plan first = DeployPlan("v1");
  EXPECT_EQ(Actions(first),
            (std::vector<std::string>{"prepare ", "start-slot blue", "switch blue", "verify "}));
  Run(first);
  Run(DeployPlan("v2"));
  world_.Load();
  EXPECT_EQ(world_.Calls(),
            (std::vector<std::string>{"start blue v1", "route web 127.0.0.1:5001", "start green v2",
                                      "route web 127.0.0.1:5002"}));
  EXPECT_EQ(world_.j["current"], "v2");
  EXPECT_EQ(world_.Release("blue"), "v1");  // still running
  SlotRecord r = Record();
  EXPECT_EQ(r.live, Slot::kGreen);
  EXPECT_EQ(r.live_release, "v2");
  EXPECT_EQ(r.previous, Slot::kBlue);
  EXPECT_EQ(r.previous_release, "v1");
  EXPECT_EQ(r.keep_until_us, clock_.WallMicros() + 600'000'000);
  auto history = state_->History("web");
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[1].release, "v2");
}

TEST_F(RunBlueGreenTest, RollbackInsideTheWindowIsASwitchBackThenTheBadSlotStops) {
  Run(DeployPlan("v1"));
  Run(DeployPlan("v2"));
  world_.Load();
  const int v1_pid = world_.Pid("blue");
  Plan plan = RollbackPlan("v1");
  EXPECT_EQ(Actions(plan), (std::vector<std::string>{"safety-snapshot ", "prepare ", "switch blue",
                                                     "stop-slot green", "verify "}));
  Run(plan);
  world_.Load();
  EXPECT_EQ(world_.Pid("blue"), v1_pid);  // not restarted
  EXPECT_EQ(world_.Pid("green"), 0);
  EXPECT_EQ(world_.j["routed"], json::array({"127.0.0.1:5001"}));
  EXPECT_EQ(world_.j["current"], "v1");
  SlotRecord r = Record();
  EXPECT_EQ(r.live, Slot::kBlue);
  EXPECT_FALSE(r.previous.has_value());
}

TEST_F(RunBlueGreenTest, RollbackAfterTheWindowStartsSwitchesAndStopsTheOther) {
  Run(DeployPlan("v1"));
  Run(DeployPlan("v2"));
  clock_.AdvanceMs(600'001);
  Plan plan = RollbackPlan("v1");
  EXPECT_EQ(Actions(plan),
            (std::vector<std::string>{"safety-snapshot ", "prepare ", "start-slot blue",
                                      "switch blue", "stop-slot green", "verify "}));
  // The slot still runs v1: StartSlot keeps it (idempotent), traffic goes back.
  Run(plan);
  world_.Load();
  EXPECT_EQ(world_.Release("blue"), "v1");
  EXPECT_EQ(world_.Pid("green"), 0);
  EXPECT_EQ(Record().live, Slot::kBlue);
}

TEST_F(RunBlueGreenTest, RollbackWhenThePreviousSlotIsGoneStartsItAgain) {
  Run(DeployPlan("v1"));
  Run(DeployPlan("v2"));
  world_.Load();
  world_.j["slots"]["blue"] = {{"release", ""}, {"pid", 0}};  // crashed or stopped by hand
  world_.Save();
  Plan plan = RollbackPlan("v1");
  EXPECT_EQ(Actions(plan),
            (std::vector<std::string>{"safety-snapshot ", "prepare ", "start-slot blue",
                                      "switch blue", "stop-slot green", "verify "}));
  Run(plan);
  world_.Load();
  EXPECT_NE(world_.Pid("blue"), 0);
  EXPECT_EQ(world_.Release("blue"), "v1");
}

// Killed after every step, and inside every step after it acted: the resume
// ends where an uninterrupted rollback ends, every call made at most twice.
TEST_F(RunBlueGreenTest, ARollbackKilledAtAnyStepEndsAsAnUninterruptedOneWhenResumed) {
  auto scenario = [&](const std::string& name, const std::string& crash_at) {
    Open(name);
    Run(DeployPlan("v1"));
    Run(DeployPlan("v2"));
    if (crash_at.empty()) {
      Run(RollbackPlan("v1"));
    } else {
      pid_t child = ::fork();
      if (child == 0) {
        ::setenv("BACKSTOP_CRASH_AT_STEP_FOR_TEST", crash_at.c_str(), 1);
        Open(name);
        (void)engine_->Start(RollbackPlan("v1"), RunOptions{});
        ::_exit(3);
      }
      int status = 0;
      EXPECT_EQ(::waitpid(child, &status, 0), child);
      EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << crash_at;
      Open(name);
      auto unfinished = state_->UnfinishedRuns();
      EXPECT_TRUE(unfinished.ok() && unfinished->size() == 1u) << crash_at;
      if (unfinished.ok() && !unfinished->empty()) {
        auto outcome = engine_->Resume(unfinished->front().id, RunOptions{});
        EXPECT_TRUE(outcome.ok() && outcome->succeeded()) << crash_at;
      }
    }
    world_.Load();
    SlotRecord r = Record();
    return json{{"routed", world_.j["routed"]},
                {"current", world_.j["current"]},
                {"blue", world_.Release("blue")},
                {"green", world_.Pid("green")},
                {"live", r.live ? std::string(Name(*r.live)) : ""},
                {"previous", r.previous.has_value()},
                {"history", state_->History("web")->size()}};
  };
  const json whole = scenario("whole", "");
  // safety-snapshot, prepare, switch, stop-slot, verify
  for (size_t k = 1; k <= 5; ++k) {
    for (const std::string suffix : {"", ":before-done"}) {
      const std::string at = std::to_string(k) + suffix;
      SCOPED_TRACE("killed at " + at);
      EXPECT_EQ(scenario("at-" + std::to_string(k) + (suffix.empty() ? "" : "-in"), at), whole);
    }
  }
}

}  // namespace
}  // namespace backstop

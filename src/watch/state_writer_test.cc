// StateWriter: what it is handed reaches the state database (the latest
// document of each key, every journal event in order) by the time Stop
// returns; the pause flag another process wrote is read back on request.
#include "watch/state_writer.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdio>
#include <mutex>

#include "testing/test_env.h"

namespace backstop {
namespace {

Event Journaled(const std::string& trigger) {
  Event e;
  e.at_us = 1'790'000'000'000'000;
  e.kind = EventKind::kTriggerPending;
  e.component = "api";
  e.trigger = trigger;
  e.message = trigger + " pending";
  return e;
}

TEST(StateWriterTest, AStopWritesTheLatestStateAndEveryEventInOrder) {
  testing::TempDir dir;
  const std::string path = dir.Join("state.db");
  FILE* logf = std::tmpfile();
  WatchLogger log(false, logf);
  StateWriter writer(path, &log, [](const PauseState&) {});
  ASSERT_TRUE(writer.Start().ok());
  writer.SaveRules(R"({"version": 1})");
  writer.Append(Journaled("first"));
  writer.SaveRules(R"({"version": 2})");
  writer.Append(Journaled("second"));
  WatchAction action;
  action.at_wall_us = 1'790'000'000'000'000;
  action.components = {"api"};
  action.trigger = "first";
  action.automatic = true;
  writer.SaveActions({action});
  writer.Stop();
  std::fclose(logf);

  auto db = StateDb::Open(path);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  auto rules = (*db)->Get(kRulesStateKey);
  ASSERT_TRUE(rules.ok());
  ASSERT_TRUE(rules->has_value());
  EXPECT_EQ(**rules, R"({"version": 2})");
  auto events = (*db)->ListEvents({0, "", 10});
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].trigger, "first");
  EXPECT_EQ((*events)[1].trigger, "second");
  std::vector<WatchAction> actions = ReadWatchActions(**db);
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_EQ(actions[0].components, std::vector<std::string>{"api"});
  EXPECT_TRUE(actions[0].automatic);
}

TEST(StateWriterTest, ReadsThePauseFlagAnotherProcessWrote) {
  testing::TempDir dir;
  const std::string path = dir.Join("state.db");
  FILE* logf = std::tmpfile();
  WatchLogger log(false, logf);
  std::mutex mu;
  std::condition_variable cv;
  bool seen_paused = false;
  StateWriter writer(path, &log, [&](const PauseState& s) {
    std::lock_guard<std::mutex> lock(mu);
    if (s.paused && s.reason == "incident 7") seen_paused = true;
    cv.notify_all();
  });
  ASSERT_TRUE(writer.Start().ok());
  auto other = StateDb::Open(path);
  ASSERT_TRUE(other.ok());
  PauseState s;
  s.paused = true;
  s.reason = "incident 7";
  s.by = "cli";
  ASSERT_TRUE(WritePauseState(**other, s).ok());
  writer.RefreshPause();
  {
    std::unique_lock<std::mutex> lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return seen_paused; }));
  }
  writer.Stop();
  std::fclose(logf);
}

}  // namespace
}  // namespace backstop

#include "run/lock.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run/state_db.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

TEST(EnvironmentLockTest, SecondHolderIsRefusedAndToldWhoHoldsIt) {
  testing::TempDir dir;
  Env* env = Env::Default();
  auto first = EnvironmentLock::Acquire(env, dir.path(), {{"run_id", "run-A"}, {"command", "x"}});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  // flock is per open file description: a second open in this process conflicts too.
  auto second = EnvironmentLock::Acquire(env, dir.path(), {{"run_id", "run-B"}});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Status::Code::kAborted);
  EXPECT_NE(second.status().message().find("run-A"), std::string::npos)
      << second.status().message();
  EXPECT_EQ(EnvironmentLock::CurrentHolder(dir.path()).value("run_id", ""), "run-A");
  first->reset();
  EXPECT_TRUE(EnvironmentLock::CurrentHolder(dir.path()).is_null());
  auto third = EnvironmentLock::Acquire(env, dir.path(), {{"run_id", "run-C"}});
  EXPECT_TRUE(third.ok());
}

TEST(EnvironmentLockTest, BetweenRunsIsRefusedWhileARunIsUnfinishedAndReleasesTheLock) {
  testing::TempDir dir;
  Env* env = Env::Default();
  auto db = StateDb::Open(dir.Join("state.db"));
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  auto free = AcquireBetweenRuns(env, dir.path(), **db, {{"command", "backstop watch"}});
  ASSERT_TRUE(free.ok()) << free.status().ToString();
  free->reset();

  RunRecord run;
  run.id = "run-7";
  run.kind = RunKind::kRollback;
  run.status = RunStatus::kRunning;
  run.started_us = 100;
  ASSERT_TRUE((*db)->CreateRun(run, {}).ok());  // killed before it ended
  auto busy = AcquireBetweenRuns(env, dir.path(), **db, {{"command", "backstop watch"}});
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.status().code(), Status::Code::kAborted);
  EXPECT_EQ(busy.status().message(), "run run-7 is unfinished");
  // The lock it took to look is not kept: the resume can take it.
  EXPECT_TRUE(EnvironmentLock::Acquire(env, dir.path(), {{"run_id", "run-7"}}).ok());
}

TEST(EnvironmentLockTest, ReleasedWhenTheHolderIsKilled) {
  testing::TempDir dir;
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  if (child == 0) {
    auto lock = EnvironmentLock::Acquire(Env::Default(), dir.path(), {{"run_id", "run-child"}});
    char c = lock.ok() ? '1' : '0';
    (void)!::write(ready[1], &c, 1);
    ::pause();
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, '1');
  auto refused = EnvironmentLock::Acquire(Env::Default(), dir.path(), {{"run_id", "run-me"}});
  EXPECT_FALSE(refused.ok());
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  auto taken = EnvironmentLock::Acquire(Env::Default(), dir.path(), {{"run_id", "run-me"}});
  EXPECT_TRUE(taken.ok()) << taken.status().ToString();
}

}  // namespace
}  // namespace backstop

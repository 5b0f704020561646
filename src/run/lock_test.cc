#include "run/lock.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

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

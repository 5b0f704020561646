// The restore point schedule on a FakeClock: first due at once (or `every`
// after the newest scheduled one), never while a run is active (taken when
// it ends), a busy environment retried on the next tick, the next one
// `every` after a taken or failed one.
#include "watch/restore_point_scheduler.h"

#include <gtest/gtest.h>

#include "testing/test_env.h"

namespace backstop {
namespace {

constexpr int64_t kHourMs = 3600 * 1000;

class SchedulerTest : public ::testing::Test {
 protected:
  testing::FakeClock clock_;
  Env env_ = testing::MakeEnvWithClock(&clock_);
  int attempts_ = 0;
  ScheduledAttempt::Result next_ = ScheduledAttempt::Result::kTaken;

  RestorePointScheduler::TakeFn Take() {
    return [this] {
      ++attempts_;
      ScheduledAttempt a;
      a.result = next_;
      return a;
    };
  }
  // One tick of the daemon's loop, then waits for the attempt it started.
  void Tick(RestorePointScheduler& s, bool run_active) {
    s.Tick(run_active);
    s.Wait();
  }
};

TEST_F(SchedulerTest, TheFirstIsDueAtOnceThenEveryInterval) {
  RestorePointScheduler s(&env_, kHourMs, 0, Take());
  Tick(s, false);
  EXPECT_EQ(attempts_, 1);
  clock_.AdvanceMs(kHourMs - 1);
  Tick(s, false);
  EXPECT_EQ(attempts_, 1);
  clock_.AdvanceMs(1);
  Tick(s, false);
  EXPECT_EQ(attempts_, 2);
  EXPECT_EQ(s.next_due_wall_us(), clock_.WallMicros() + kHourMs * 1000);
}

TEST_F(SchedulerTest, FollowsTheNewestScheduledRestorePointAcrossARestart) {
  const int64_t taken = clock_.WallMicros() - 20 * 60 * 1000000LL;  // 20 minutes ago
  RestorePointScheduler s(&env_, kHourMs, taken, Take());
  Tick(s, false);
  EXPECT_EQ(attempts_, 0);
  clock_.AdvanceMs(40 * 60 * 1000);
  Tick(s, false);
  EXPECT_EQ(attempts_, 1);
}

TEST_F(SchedulerTest, NeverWhileARunIsActiveAndTakenWhenItEnds) {
  RestorePointScheduler s(&env_, kHourMs, 0, Take());
  Tick(s, true);
  clock_.AdvanceMs(3 * kHourMs);  // a long run: still only one, when it ends
  Tick(s, true);
  EXPECT_EQ(attempts_, 0);
  Tick(s, false);
  EXPECT_EQ(attempts_, 1);
  Tick(s, false);
  EXPECT_EQ(attempts_, 1);
}

TEST_F(SchedulerTest, ABusyEnvironmentIsRetriedAndAFailureWaitsAnInterval) {
  RestorePointScheduler s(&env_, kHourMs, 0, Take());
  next_ = ScheduledAttempt::Result::kBusy;  // a manual run holds the lock
  Tick(s, false);
  Tick(s, false);
  EXPECT_EQ(attempts_, 2);
  next_ = ScheduledAttempt::Result::kFailed;
  Tick(s, false);
  Tick(s, false);
  EXPECT_EQ(attempts_, 3);
  clock_.AdvanceMs(kHourMs);
  next_ = ScheduledAttempt::Result::kTaken;
  Tick(s, false);
  EXPECT_EQ(attempts_, 4);
}

}  // namespace
}  // namespace backstop

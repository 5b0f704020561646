// Background replication: StoreReplicator's schedule on a FakeClock (the
// uploads themselves are remote_store_test's and tests/store_remote.sh's),
// and ReplicateRestorePoints against a directory remote store.
#include "watch/store_replicator.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "store/remote/remote_store_open.h"
#include "store/restore_point.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

class StoreReplicatorTest : public ::testing::Test {
 protected:
  void Tick(bool run_active = false) {
    replicator_.Tick(run_active);
    replicator_.Wait();
  }

  testing::FakeClock clock_;
  Env env_ = testing::MakeEnvWithClock(&clock_);
  int attempts_ = 0;
  ReplicateAttempt::Result next_ = ReplicateAttempt::Result::kNothing;
  StoreReplicator replicator_{&env_, [this] {
                                ++attempts_;
                                ReplicateAttempt a;
                                a.result = next_;
                                return a;
                              }};
};

TEST_F(StoreReplicatorTest, ChecksEveryTenSecondsAndNeverWhileARunIsActive) {
  Tick(/*run_active=*/true);
  EXPECT_EQ(attempts_, 0);
  Tick();
  EXPECT_EQ(attempts_, 1);
  clock_.AdvanceMs(kReplicateCheckEveryMs - 1);
  Tick();
  EXPECT_EQ(attempts_, 1);
  clock_.AdvanceMs(1);
  Tick();
  EXPECT_EQ(attempts_, 2);
}

TEST_F(StoreReplicatorTest, FailuresBackOffFromThirtySecondsDoublingToTenMinutesThenReset) {
  next_ = ReplicateAttempt::Result::kFailed;
  Tick();
  EXPECT_EQ(replicator_.failures(), 1);
  // 30 s, 60 s, 120 s, 240 s, 480 s, then the 600 s cap.
  for (int64_t wait_ms : {30'000, 60'000, 120'000, 240'000, 480'000, 600'000, 600'000}) {
    const int before = attempts_;
    clock_.AdvanceMs(wait_ms - 1);
    Tick();
    EXPECT_EQ(attempts_, before) << "retried before " << wait_ms << " ms";
    clock_.AdvanceMs(1);
    Tick();
    EXPECT_EQ(attempts_, before + 1) << "not retried after " << wait_ms << " ms";
  }
  next_ = ReplicateAttempt::Result::kReplicated;
  clock_.AdvanceMs(600'000);
  Tick();
  EXPECT_EQ(replicator_.failures(), 0);
  clock_.AdvanceMs(kReplicateCheckEveryMs);
  const int before = attempts_;
  Tick();
  EXPECT_EQ(attempts_, before + 1);
}

TEST(ReplicateRestorePointsTest, UploadsWhatIsNotReplicatedAndThenHasNothingToDo) {
  testing::TempDir dir;
  Spec spec;
  spec.store_path = dir.Join("store");
  RemoteStoreSpec remote;
  remote.url = "file://" + dir.Join("offsite");
  remote.encrypt = false;
  spec.remote_store = remote;
  {
    auto store = Store::Open(Env::Default(), spec.store_path);
    ASSERT_TRUE(store.ok());
    RestorePoint rp;
    rp.id = "rp-20261126T021947Z-aaaaaa";
    rp.created_wall_us = 1'795'659'587'000'000;
    rp.components["app"] = {{"blobs", {*(*store)->Put("release tree")}}};
    ASSERT_TRUE(WriteRestorePoint(**store, rp).ok());
  }
  char* buffer = nullptr;
  size_t size = 0;
  FILE* sink = open_memstream(&buffer, &size);
  ASSERT_NE(sink, nullptr);
  WatchLogger log(/*json=*/false, sink);
  ReplicateAttempt first = ReplicateRestorePoints(Env::Default(), spec, &log);
  std::fflush(sink);
  const std::string log_text(buffer, size);
  EXPECT_EQ(first.result, ReplicateAttempt::Result::kReplicated) << first.detail;
  EXPECT_EQ(first.uploaded, std::vector<std::string>{"rp-20261126T021947Z-aaaaaa"});
  EXPECT_NE(log_text.find("restore point replicated"), std::string::npos) << log_text;
  ReplicateAttempt second = ReplicateRestorePoints(Env::Default(), spec, &log);
  EXPECT_EQ(second.result, ReplicateAttempt::Result::kNothing);
  std::fclose(sink);
  std::free(buffer);
}

}  // namespace
}  // namespace backstop

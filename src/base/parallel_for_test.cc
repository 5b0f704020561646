#include "base/parallel_for.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace backstop {
namespace {

TEST(ParallelForTest, CallsEachIndexOnce) {
  std::vector<std::atomic<int>> calls(1000);
  Status st = ParallelFor(calls.size(), 4, [&](size_t i) {
    ++calls[i];
    return Status::OK();
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  for (size_t i = 0; i < calls.size(); ++i) EXPECT_EQ(calls[i].load(), 1) << i;
}

TEST(ParallelForTest, NothingToDoIsOk) {
  bool called = false;
  EXPECT_TRUE(ParallelFor(0, 4, [&](size_t) {
                called = true;
                return Status::OK();
              }).ok());
  EXPECT_FALSE(called);
}

TEST(ParallelForTest, ZeroOrNegativeThreadsStillRunsOnTheCaller) {
  std::atomic<int> calls{0};
  EXPECT_TRUE(ParallelFor(3, 0, [&](size_t) {
                ++calls;
                return Status::OK();
              }).ok());
  EXPECT_EQ(calls.load(), 3);
  EXPECT_TRUE(ParallelFor(2, -1, [&](size_t) {
                ++calls;
                return Status::OK();
              }).ok());
  EXPECT_EQ(calls.load(), 5);
}

TEST(ParallelForTest, StopsAfterTheFirstFailureAndReturnsIt) {
  // One thread: the order is fixed, so exactly indexes 0..3 run.
  std::vector<size_t> seen;
  Status st = ParallelFor(10, 1, [&](size_t i) {
    seen.push_back(i);
    return i == 3 ? Status::IOError("item 3") : Status::OK();
  });
  EXPECT_EQ(st.code(), Status::Code::kIOError);
  EXPECT_EQ(st.message(), "item 3");
  EXPECT_EQ(seen, (std::vector<size_t>{0, 1, 2, 3}));
}

TEST(ParallelForTest, OneOfManyFailuresIsReturnedWithThreads) {
  Status st = ParallelFor(100, 4, [&](size_t i) {
    return i % 10 == 9 ? Status::NotFound("item " + std::to_string(i)) : Status::OK();
  });
  EXPECT_TRUE(st.IsNotFound());
}

}  // namespace
}  // namespace backstop

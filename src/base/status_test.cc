#include "base/status.h"

#include <gtest/gtest.h>

namespace backstop {
namespace {

TEST(ResultTest, BuiltFromAnOkStatusIsAnInternalErrorInEveryBuild) {
  Result<int> r(Status::OK());
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInternal);
  EXPECT_EQ(r.status().message(), "a Result was built from an OK status");
}

}  // namespace
}  // namespace backstop

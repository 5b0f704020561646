#include "drivers/driver_settings.h"

#include <gtest/gtest.h>

namespace backstop {
namespace {

TEST(DurationSettingMsTest, AbsentOrNullIsTheFallbackANumberIsMillisecondsAStringIsParsed) {
  nlohmann::json s = {{"stop_timeout", 2500}, {"reload", "1m30s"}, {"gone", nullptr}};
  EXPECT_EQ(*DurationSettingMs(s, "stop_timeout", 10'000), 2500);
  EXPECT_EQ(*DurationSettingMs(s, "reload", 10'000), 90'000);
  EXPECT_EQ(*DurationSettingMs(s, "gone", 10'000), 10'000);
  EXPECT_EQ(*DurationSettingMs(s, "absent", 7), 7);
}

TEST(DurationSettingMsTest, AnythingElseIsInvalidArgumentNamingTheKeyAndValue) {
  nlohmann::json s = {{"stop_timeout", "soon"}};
  auto r = DurationSettingMs(s, "stop_timeout", 10'000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "setting 'stop_timeout' must be a duration such as 10s, not \"soon\"");
}

}  // namespace
}  // namespace backstop

#include "base/units.h"

#include <gtest/gtest.h>

#include "base/status.h"

namespace backstop {
namespace {

TEST(UnitsTest, ParsesDurations) {
  EXPECT_EQ(ParseDurationMs("250ms"), 250);
  EXPECT_EQ(ParseDurationMs("30s"), 30'000);
  EXPECT_EQ(ParseDurationMs("5m"), 300'000);
  EXPECT_EQ(ParseDurationMs("1h30m"), 5'400'000);
  EXPECT_EQ(ParseDurationMs("1.5s"), 1'500);
  EXPECT_FALSE(ParseDurationMs("30"));
  EXPECT_FALSE(ParseDurationMs("5 minutes"));
  EXPECT_FALSE(ParseDurationMs(""));
  EXPECT_FALSE(ParseDurationMs("s"));
}

TEST(UnitsTest, ParsesPercentages) {
  EXPECT_EQ(ParsePercent("5%"), 5.0);
  EXPECT_EQ(ParsePercent("95.5%"), 95.5);
  EXPECT_FALSE(ParsePercent("5"));
  EXPECT_FALSE(ParsePercent("101%"));
  EXPECT_FALSE(ParsePercent("-1%"));
  EXPECT_FALSE(ParsePercent("%"));
}

TEST(UnitsTest, ParsesBytes) {
  EXPECT_EQ(ParseBytes("512MB"), 512'000'000u);
  EXPECT_EQ(ParseBytes("2GiB"), 2ull * 1024 * 1024 * 1024);
  EXPECT_EQ(ParseBytes("100"), 100u);
  EXPECT_FALSE(ParseBytes("lots"));
}

TEST(UnitsTest, FormatsForHumans) {
  EXPECT_EQ(FormatDurationMs(850), "850 ms");
  EXPECT_EQ(FormatDurationMs(2310), "2.31 s");
  EXPECT_EQ(FormatDurationMs(245'000), "4m05s");
  EXPECT_EQ(FormatDurationSpec(5'400'000), "1h30m");
  EXPECT_EQ(FormatThousands(1204), "1,204");
  EXPECT_EQ(FormatThousands(12), "12");
  EXPECT_EQ(FormatRfc3339(1'700'000'000'123'000, true), "2023-11-14T22:13:20.123Z");
}

TEST(UnitsTest, FormatBytesInPowersOf1024WithOneDecimalBelowAHundred) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1024), "1.0 KiB");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(24'536'678), "23.4 MiB");
  EXPECT_EQ(FormatBytes(126'701'535'232), "118 GiB");
  EXPECT_EQ(FormatBytes(UINT64_MAX), "16.0 EiB");
}

TEST(StatusTest, CarriesCodeAndContext) {
  Status st = Status::NotFound("blob abc").WithContext("restore point rp-1");
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(st.IsNotFound());
  EXPECT_EQ(st.ToString(), "not found: restore point rp-1: blob abc");
  Result<int> r = Status::Corruption("bad");
  EXPECT_FALSE(r.ok());
  Result<int> v = 3;
  EXPECT_EQ(*v, 3);
}

}  // namespace
TEST(UnitsTest, TimestampsInRfc3339AndPostgresFormsWithTheirOffsets) {
  EXPECT_EQ(ParseTimestamp("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(ParseTimestamp("1970-01-01 00:00:00+00"), 0);
  EXPECT_EQ(ParseTimestamp("2026-11-30T14:03:12Z"), 1796047392'000000);
  EXPECT_EQ(ParseTimestamp("2026-11-30T16:03:12.5+02:00"), 1796047392'500000);
  EXPECT_EQ(ParseTimestamp("1970-01-01 05:30:00.000001+05:30"), 1);
  EXPECT_EQ(ParseTimestamp("1969-12-31 23:59:59.123-00:00:01"), 123000);
  EXPECT_EQ(ParseTimestamp("2000-02-29 00:00:00+00"), 951782400'000000);
  EXPECT_EQ(ParseTimestamp("2024-05-01 12:00:00"), std::nullopt);  // no offset
  EXPECT_EQ(ParseTimestamp("2024-13-01 12:00:00+00"), std::nullopt);
  EXPECT_EQ(ParseTimestamp("2024-05-01T12:00:00Zjunk"), std::nullopt);
  EXPECT_EQ(ParseTimestamp("yesterday"), std::nullopt);
}

}  // namespace backstop

#include "drivers/driver.h"

#include <gtest/gtest.h>

#include "testing/test_env.h"

namespace backstop {
namespace {

TEST(ReadJsonLinesTest, ReadsObjectsSkipsBlankLinesAndNamesABadLine) {
  testing::TempDir dir;
  FileSystem* fs = Env::Default()->fs();
  auto missing = ReadJsonLines(fs, dir.Join("absent.jsonl"));
  ASSERT_TRUE(missing.ok()) << missing.status().ToString();
  EXPECT_TRUE(missing->empty());

  testing::WriteFileOrDie(dir.Join("ledger.jsonl"), "{\"a\":1}\n\n{\"b\":2}\n");
  auto lines = ReadJsonLines(fs, dir.Join("ledger.jsonl"));
  ASSERT_TRUE(lines.ok()) << lines.status().ToString();
  ASSERT_EQ(lines->size(), 2u);
  EXPECT_EQ((*lines)[1]["b"], 2);

  testing::WriteFileOrDie(dir.Join("torn.jsonl"), "{\"a\":1}\n{\"b\":");
  auto torn = ReadJsonLines(fs, dir.Join("torn.jsonl"));
  ASSERT_FALSE(torn.ok());
  EXPECT_EQ(torn.status().code(), Status::Code::kCorruption);
  EXPECT_NE(torn.status().message().find("torn.jsonl:2"), std::string::npos)
      << torn.status().ToString();
}

}  // namespace
}  // namespace backstop

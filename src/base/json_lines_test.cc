#include "base/json_lines.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "testing/fault_fs.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

using nlohmann::json;
using testing::FaultFileSystem;
using testing::TempDir;
using testing::WriteFileOrDie;

class JsonLinesTest : public ::testing::Test {
 protected:
  FileSystem* real_ = Env::Default()->fs();
  FaultFileSystem faults_{real_};
  TempDir dir_;
  std::string path_ = dir_.Join("ledger.jsonl");
};

TEST_F(JsonLinesTest, CreateWritesLinesThatAppearOnlyOnClose) {
  auto w = JsonLinesWriter::Create(real_, path_);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_TRUE((*w)->Append({{"sequence", 1}, {"subject", "a"}}).ok());
  ASSERT_TRUE((*w)->Append({{"sequence", 2}, {"subject", "b"}}).ok());
  EXPECT_FALSE(real_->Exists(path_));  // half-written: not under its name
  ASSERT_TRUE((*w)->Close().ok());
  EXPECT_EQ((*w)->lines(), 2u);
  EXPECT_EQ(*real_->ReadFile(path_),
            "{\"sequence\":1,\"subject\":\"a\"}\n{\"sequence\":2,\"subject\":\"b\"}\n");
  auto info = real_->Stat(path_);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->mode, 0600u);
  EXPECT_EQ(*real_->ListDir(dir_.path()), std::vector<std::string>{"ledger.jsonl"});
  auto back = ReadJsonLines(real_, path_);
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[1]["subject"], "b");
}

TEST_F(JsonLinesTest, EachLineIsFlushedAsItIsAppended) {
  auto file = real_->NewWritableFile(path_, 0600, WriteMode::kAppend);
  ASSERT_TRUE(file.ok());
  JsonLinesWriter w(std::move(*file), path_);
  ASSERT_TRUE(w.Append({{"n", 1}}).ok());
  // Readable at once: a crash of Backstop now would not lose it.
  EXPECT_EQ(*real_->ReadFile(path_), "{\"n\":1}\n");
  ASSERT_TRUE(w.Sync().ok());
  ASSERT_TRUE(w.Close().ok());
}

TEST_F(JsonLinesTest, BadUtf8IsReplacedNotThrown) {
  auto w = JsonLinesWriter::Create(real_, path_);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append({{"key", std::string("a\xff")}}).ok());
  ASSERT_TRUE((*w)->Close().ok());
  EXPECT_EQ(*real_->ReadFile(path_), "{\"key\":\"a\xef\xbf\xbd\"}\n");
}

TEST_F(JsonLinesTest, DestroyedWithoutCloseLeavesNothing) {
  {
    auto w = JsonLinesWriter::Create(real_, path_);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append({{"n", 1}}).ok());
  }
  EXPECT_TRUE(real_->ListDir(dir_.path())->empty());
}

TEST_F(JsonLinesTest, AFullDiskIsReportedAndNoLedgerAppears) {
  faults_.FailWriteNumber("*ledger.jsonl*", 2);
  auto w = JsonLinesWriter::Create(&faults_, path_);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append({{"n", 1}}).ok());
  Status st = (*w)->Append({{"n", 2}});
  EXPECT_EQ(st.code(), Status::Code::kIOError);
  EXPECT_NE(st.message().find("No space left"), std::string::npos) << st.ToString();
  EXPECT_FALSE((*w)->Close().ok());  // the first error, again
  w->reset();
  EXPECT_TRUE(real_->ListDir(dir_.path())->empty());
}

TEST_F(JsonLinesTest, AFailedSyncIsReportedAndNoLedgerAppears) {
  faults_.FailSyncs("*ledger.jsonl*");
  auto w = JsonLinesWriter::Create(&faults_, path_);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append({{"n", 1}}).ok());
  EXPECT_EQ((*w)->Sync().code(), Status::Code::kIOError);
  EXPECT_EQ((*w)->Close().code(), Status::Code::kIOError);
  w->reset();
  EXPECT_FALSE(real_->Exists(path_));
  EXPECT_EQ(faults_.faults_injected(), 1);
}

TEST_F(JsonLinesTest, AFailedRenameIsReportedAndNoLedgerAppears) {
  faults_.FailRenames("*ledger.jsonl");
  auto w = JsonLinesWriter::Create(&faults_, path_);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append({{"n", 1}}).ok());
  EXPECT_EQ((*w)->Close().code(), Status::Code::kIOError);
  w->reset();
  EXPECT_TRUE(real_->ListDir(dir_.path())->empty());
}

TEST_F(JsonLinesTest, ATornLastLineIsNeverReadAsARecord) {
  // An appended journal whose third line was torn by a failing device.
  faults_.TearWriteNumber("*ledger.jsonl", 3, 9);
  auto file = faults_.NewWritableFile(path_, 0600, WriteMode::kAppend);
  ASSERT_TRUE(file.ok());
  JsonLinesWriter w(std::move(*file), path_);
  ASSERT_TRUE(w.Append({{"n", 1}}).ok());
  ASSERT_TRUE(w.Append({{"n", 2}}).ok());
  EXPECT_EQ(w.Append({{"n", 3}, {"subject", "orders"}}).code(), Status::Code::kIOError);
  EXPECT_EQ(w.Append({{"n", 4}}).code(), Status::Code::kIOError);  // refused after a failure
  EXPECT_EQ(*real_->ReadFile(path_), "{\"n\":1}\n{\"n\":2}\n{\"n\":3,\"s");
  auto back = ReadJsonLines(real_, path_, TornTail::kLeaveOut);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, (std::vector<json>{{{"n", 1}}, {{"n", 2}}}));
}

TEST_F(JsonLinesTest, ADiskFullMidLineLeavesATornTailThatIsLeftOut) {
  faults_.FailWritesAfterBytes("*ledger.jsonl", 12);
  auto file = faults_.NewWritableFile(path_, 0600, WriteMode::kAppend);
  ASSERT_TRUE(file.ok());
  JsonLinesWriter w(std::move(*file), path_);
  ASSERT_TRUE(w.Append({{"n", 1}}).ok());                          // 8 bytes
  EXPECT_EQ(w.Append({{"n", 2}}).code(), Status::Code::kIOError);  // 4 of 8 land
  EXPECT_EQ(*real_->ReadFile(path_), "{\"n\":1}\n{\"n\"");
  auto back = ReadJsonLines(real_, path_, TornTail::kLeaveOut);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, (std::vector<json>{{{"n", 1}}}));
}

TEST_F(JsonLinesTest, ATornTailOfALedgerIsCorruptionNamingTheLine) {
  WriteFileOrDie(path_, "{\"n\":1}\n{\"n\":");
  auto back = ReadJsonLines(real_, path_);
  EXPECT_EQ(back.status().code(), Status::Code::kCorruption);
  EXPECT_NE(back.status().message().find(":2: not a JSON object (the file ends inside this line)"),
            std::string::npos)
      << back.status().ToString();
}

TEST_F(JsonLinesTest, ReaderKeepsAnUnterminatedValidLastLine) {
  WriteFileOrDie(path_, "{\"n\":1}\n\n42");  // written by hand: no final newline
  auto back = ReadJsonLines(real_, path_);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, (std::vector<json>{{{"n", 1}}, 42}));
}

TEST_F(JsonLinesTest, ReaderReportsADamagedLineBeforeTheEnd) {
  WriteFileOrDie(path_, "{\"n\":1}\n{\"n\"\n{\"n\":3}\n");
  auto back = ReadJsonLines(real_, path_);
  EXPECT_EQ(back.status().code(), Status::Code::kCorruption);
  EXPECT_NE(back.status().message().find(":2:"), std::string::npos);
  // Terminated but damaged is damage, not a torn tail.
  WriteFileOrDie(path_, "{\"n\":1}\n{\"n\"\n");
  EXPECT_EQ(ReadJsonLines(real_, path_).status().code(), Status::Code::kCorruption);
}

TEST_F(JsonLinesTest, ReaderOfAMissingFileReturnsNothing) {
  auto back = ReadJsonLines(real_, dir_.Join("none"));
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->empty());
}

}  // namespace
}  // namespace backstop

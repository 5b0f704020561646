#include "base/env.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/hash.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

using testing::TempDir;
using testing::WriteFileOrDie;

uint32_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

class EnvFileTest : public ::testing::Test {
 protected:
  FileSystem* fs_ = Env::Default()->fs();
  TempDir dir_;
};

TEST_F(EnvFileTest, WritableFileIsPrivateAndHoldsWhatWasAppended) {
  std::string path = dir_.Join("out");
  mode_t old = ::umask(0);  // the mode is exact whatever the umask
  auto file = fs_->NewWritableFile(path);
  ::umask(old);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ASSERT_TRUE((*file)->Append("one ").ok());
  std::string big(200 << 10, 'x');  // larger than the write buffer
  ASSERT_TRUE((*file)->Append(big).ok());
  ASSERT_TRUE((*file)->Append(" two").ok());
  ASSERT_TRUE((*file)->Sync().ok());
  ASSERT_TRUE((*file)->Close().ok());
  EXPECT_EQ(ModeOf(path), 0600u);
  EXPECT_EQ(*fs_->ReadFile(path), "one " + big + " two");
  EXPECT_EQ((*file)->Append("late").code(), Status::Code::kFailedPrecondition);
}

TEST_F(EnvFileTest, FlushHandsBufferedBytesToTheSystem) {
  std::string path = dir_.Join("out");
  auto file = fs_->NewWritableFile(path);
  ASSERT_TRUE(file.ok());
  ASSERT_TRUE((*file)->Append("line\n").ok());
  EXPECT_EQ(*fs_->ReadFile(path), "");  // still buffered
  ASSERT_TRUE((*file)->Flush().ok());
  EXPECT_EQ(*fs_->ReadFile(path), "line\n");
}

TEST_F(EnvFileTest, WriteModesTruncateCreateNewAndAppend) {
  std::string path = dir_.Join("f");
  WriteFileOrDie(path, "old content", 0644);
  auto truncated = fs_->NewWritableFile(path, 0640, WriteMode::kTruncate);
  ASSERT_TRUE(truncated.ok());
  ASSERT_TRUE((*truncated)->Append("new").ok());
  ASSERT_TRUE((*truncated)->Close().ok());
  EXPECT_EQ(*fs_->ReadFile(path), "new");
  EXPECT_EQ(ModeOf(path), 0640u);

  auto again = fs_->NewWritableFile(path, 0600, WriteMode::kCreateNew);
  EXPECT_EQ(again.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(*fs_->ReadFile(path), "new");

  auto appended = fs_->NewWritableFile(path, 0600, WriteMode::kAppend);
  ASSERT_TRUE(appended.ok());
  ASSERT_TRUE((*appended)->Append(" more").ok());
  ASSERT_TRUE((*appended)->Close().ok());
  EXPECT_EQ(*fs_->ReadFile(path), "new more");
  EXPECT_EQ(ModeOf(path), 0640u);  // an existing file keeps its mode
}

TEST_F(EnvFileTest, NeverWritesOrReadsThroughALink) {
  std::string target = dir_.Join("target");
  WriteFileOrDie(target, "secret", 0600);
  std::string link = dir_.Join("link");
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  for (WriteMode how : {WriteMode::kTruncate, WriteMode::kAppend, WriteMode::kCreateNew}) {
    EXPECT_EQ(fs_->NewWritableFile(link, 0600, how).status().code(),
              Status::Code::kFailedPrecondition);
  }
  EXPECT_EQ(fs_->NewSequentialFile(link).status().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(fs_->AppendFile(link, "x").code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(*fs_->ReadFile(target), "secret");
}

TEST_F(EnvFileTest, SequentialFileReadsAndSkips) {
  std::string path = dir_.Join("in");
  WriteFileOrDie(path, "0123456789");
  auto file = fs_->NewSequentialFile(path);
  ASSERT_TRUE(file.ok());
  char scratch[4];
  EXPECT_EQ(*(*file)->Read(4, scratch), "0123");
  ASSERT_TRUE((*file)->Skip(3).ok());
  EXPECT_EQ(*(*file)->Read(4, scratch), "789");
  EXPECT_EQ(*(*file)->Read(4, scratch), "");
  EXPECT_EQ(fs_->NewSequentialFile(dir_.Join("none")).status().code(), Status::Code::kNotFound);
}

TEST_F(EnvFileTest, WholeFileHelpersStillBehave) {
  std::string path = dir_.Join("a");
  ASSERT_TRUE(fs_->WriteFileAtomic(path, "v1", 0644).ok());
  ASSERT_TRUE(fs_->WriteFileAtomic(path, "v2", 0640).ok());
  EXPECT_EQ(*fs_->ReadFile(path), "v2");
  EXPECT_EQ(ModeOf(path), 0640u);
  std::string log = dir_.Join("log");
  ASSERT_TRUE(fs_->AppendFile(log, "a\n").ok());
  ASSERT_TRUE(fs_->AppendFile(log, "b\n").ok());
  EXPECT_EQ(*fs_->ReadFile(log), "a\nb\n");
  EXPECT_EQ(ModeOf(log), 0600u);
  EXPECT_EQ(*fs_->ListDir(dir_.path()), (std::vector<std::string>{"a", "log"}));  // no temp left
}

TEST_F(EnvFileTest, RenameNoReplaceRefusesAnExistingTarget) {
  std::string from = dir_.Join("from"), to = dir_.Join("to");
  WriteFileOrDie(from, "new");
  WriteFileOrDie(to, "old");
  EXPECT_EQ(fs_->RenameNoReplace(from, to).code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(*fs_->ReadFile(to), "old");
  EXPECT_TRUE(fs_->Exists(from));
  ASSERT_TRUE(fs_->Remove(to).ok());
  ASSERT_TRUE(fs_->RenameNoReplace(from, to).ok());
  EXPECT_EQ(*fs_->ReadFile(to), "new");
  EXPECT_FALSE(fs_->Exists(from));
}

// A wrapper that only counts reads: everything else reaches the target.
class CountingReads : public FileSystemWrapper {
 public:
  using FileSystemWrapper::FileSystemWrapper;
  int opened = 0;
  Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) override {
    ++opened;
    return FileSystemWrapper::NewSequentialFile(path);
  }
};

TEST_F(EnvFileTest, WrapperForwardsAndHashingGoesThroughTheFileSystem) {
  CountingReads counting(fs_);
  std::string path = dir_.Join("h");
  ASSERT_TRUE(counting.WriteFileAtomic(path, "abc", 0600).ok());
  EXPECT_TRUE(counting.Exists(path));
  auto digest = Sha256File(&counting, path);
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(*digest, Sha256Hex("abc"));
  EXPECT_EQ(counting.opened, 1);
}

TEST(EnvProcessTest, ChildrenDoNotInheritTheServiceManagersNotifySocketOrWatchdog) {
  ::setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
  ::setenv("WATCHDOG_USEC", "30000000", 1);
  ::setenv("WATCHDOG_PID", "1", 1);
  ::setenv("BACKSTOP_ENV_TEST_KEPT", "yes", 1);
  ProcessOptions o;
  o.argv = {"sh", "-c",
            "echo \"${NOTIFY_SOCKET:-none} ${WATCHDOG_USEC:-none} ${WATCHDOG_PID:-none} "
            "${BACKSTOP_ENV_TEST_KEPT:-none}\""};
  auto r = Env::Default()->processes()->Run(o);
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  ::unsetenv("BACKSTOP_ENV_TEST_KEPT");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->out, "none none none yes\n");
}

}  // namespace
}  // namespace backstop

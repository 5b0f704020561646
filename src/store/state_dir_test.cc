#include "store/state_dir.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run/lock.h"
#include "run/state_db.h"
#include "store/restore_point.h"
#include "store/store.h"
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

// Every file and folder under `root` that someone other than its owner may
// read, write or enter, with its mode.
std::vector<std::string> Loose(const std::string& root) {
  std::vector<std::string> out;
  FileSystem* fs = Env::Default()->fs();
  auto info = fs->Stat(root);
  if (!info.ok() || info->is_symlink) return out;
  if ((info->mode & 0077) != 0) out.push_back(root + " " + std::to_string(info->mode));
  if (info->is_dir) {
    auto names = fs->ListDir(root);
    if (!names.ok()) return out;
    for (const auto& name : *names) {
      for (auto& l : Loose(JoinPath(root, name))) out.push_back(std::move(l));
    }
  }
  return out;
}

// Sets the umask for one test and puts the old one back.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }

 private:
  mode_t old_;
};

TEST(StateDirTest, EverythingCreatedIsPrivateWhateverTheUmask) {
  ScopedUmask open_umask(0);
  TempDir dir;
  Env* env = Env::Default();
  const std::string state = dir.Join("state");
  auto opened = OpenStateDir(env, state, JoinPath(state, "store"));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(ModeOf(state), 0700u);
  {
    auto store = Store::Open(env, JoinPath(state, "store"));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto digest = (*store)->Put("a full database dump");
    ASSERT_TRUE(digest.ok());
    EXPECT_EQ(ModeOf((*store)->BlobPath(*digest)), 0400u);
    RestorePoint rp;
    rp.id = NewRestorePointId(env->clock()->WallMicros());
    ASSERT_TRUE(WriteRestorePoint(**store, rp).ok());
    ASSERT_TRUE((*store)->FlushCache().ok());
    auto db = StateDb::Open(JoinPath(state, "state.db"));
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    auto lock = EnvironmentLock::Acquire(env, state, {{"command", "test"}});
    ASSERT_TRUE(lock.ok()) << lock.status().ToString();
    FileSystem* fs = env->fs();
    ASSERT_TRUE(fs->CreateDirs(JoinPath(state, "runs/run-1")).ok());
    ASSERT_TRUE(fs->AppendFile(JoinPath(state, "logs.log"), "started\n").ok());
    ASSERT_TRUE(fs->WriteFileAtomic(JoinPath(state, "runs/run-1/ledger.jsonl"), "{}\n").ok());
    EXPECT_TRUE(fs->Exists(JoinPath(state, "state.db-wal")));
    EXPECT_EQ(Loose(state), std::vector<std::string>{});
  }
  EXPECT_EQ(Loose(state), std::vector<std::string>{});
}

TEST(StateDirTest, ALooseStateDirIsTightenedOnceAndSaysSo) {
  TempDir dir;
  const std::string state = dir.Join("state");
  WriteFileOrDie(JoinPath(state, "state.db"), "x", 0644);
  WriteFileOrDie(JoinPath(state, "store/blobs/ab/abcd"), "x", 0444);
  WriteFileOrDie(JoinPath(state, "runs/run-1/ledger-postgres.jsonl"), "x", 0666);
  WriteFileOrDie(JoinPath(state, "runs/run-1/private"), "x", 0600);
  for (const char* d : {"", "store", "store/blobs", "store/blobs/ab", "runs", "runs/run-1"}) {
    ASSERT_EQ(::chmod(JoinPath(state, d).c_str(), 0755), 0);
  }
  // A link inside is neither followed nor changed.
  const std::string outside = dir.Join("outside");
  WriteFileOrDie(outside, "y", 0644);
  ASSERT_EQ(::symlink(outside.c_str(), JoinPath(state, "link").c_str()), 0);

  auto first = OpenStateDir(Env::Default(), state, JoinPath(state, "store"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->tightened, 9u);  // 6 folders, 3 files
  EXPECT_EQ(first->Message(), "tightened permissions of 9 files under " + state +
                                  " (now private to its owner: folders 0700, files 0600)");
  EXPECT_EQ(Loose(state), std::vector<std::string>{});
  EXPECT_EQ(ModeOf(JoinPath(state, "store/blobs/ab/abcd")), 0400u);
  EXPECT_EQ(ModeOf(outside), 0644u);

  auto second = OpenStateDir(Env::Default(), state, JoinPath(state, "store"));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->tightened, 0u);
  EXPECT_EQ(second->Message(), "");
}

TEST(StateDirTest, AStoreOutsideTheStateDirIsTightenedToo) {
  TempDir dir;
  WriteFileOrDie(dir.Join("store/blobs/ab/abcd"), "x", 0444);
  auto opened = OpenStateDir(Env::Default(), dir.Join("state"), dir.Join("store"));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(Loose(dir.Join("store")), std::vector<std::string>{});
}

TEST(StateDirTest, AStateDirThatIsALinkIsRefused) {
  TempDir dir;
  ASSERT_TRUE(Env::Default()->fs()->CreateDirs(dir.Join("real")).ok());
  ASSERT_EQ(::symlink(dir.Join("real").c_str(), dir.Join("state").c_str()), 0);
  auto opened = OpenStateDir(Env::Default(), dir.Join("state"), dir.Join("state/store"));
  EXPECT_EQ(opened.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find("is a symbolic link"), std::string::npos);
}

TEST(StateDirTest, StateDatabaseThatIsALinkIsRefused) {
  TempDir dir;
  WriteFileOrDie(dir.Join("elsewhere.db"), "", 0644);
  ASSERT_EQ(::symlink(dir.Join("elsewhere.db").c_str(), dir.Join("state.db").c_str()), 0);
  auto db = StateDb::Open(dir.Join("state.db"));
  EXPECT_FALSE(db.ok());
  EXPECT_NE(db.status().message().find("symbolic link"), std::string::npos);
}

}  // namespace
}  // namespace backstop

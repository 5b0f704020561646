#include "testing/test_env.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>

namespace backstop::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/backstop-test-XXXXXX";
  char* made = ::mkdtemp(templ.data());
  if (made == nullptr) std::abort();
  path_ = made;
}

TempDir::~TempDir() {
  if (std::getenv("BACKSTOP_KEEP_TEST_DIRS") == nullptr) {
    (void)Env::Default()->fs()->RemoveAll(path_);
  }
}

Env MakeEnvWithClock(Clock* clock) {
  Env* real = Env::Default();
  return Env(clock, real->fs(), real->processes());
}

void WriteFileOrDie(const std::string& path, const std::string& content, uint32_t mode) {
  FileSystem* fs = Env::Default()->fs();
  Status st = fs->CreateDirs(Dirname(path));
  ASSERT_TRUE(st.ok()) << st.ToString();
  st = fs->WriteFileAtomic(path, content, mode);
  ASSERT_TRUE(st.ok()) << st.ToString();
}

}  // namespace backstop::testing

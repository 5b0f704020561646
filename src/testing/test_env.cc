#include "testing/test_env.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>

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

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(out.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return out;
}

void FakeProcFileSystem::Set(const std::string& path, const std::string& content) {
  if (content.empty()) {
    files_.erase(path);
  } else {
    files_[path] = content;
  }
}

Result<std::string> FakeProcFileSystem::ReadFile(const std::string& path) {
  if (path.rfind("/proc/", 0) != 0 && path.rfind("/sys/", 0) != 0) {
    return FileSystemWrapper::ReadFile(path);
  }
  auto it = files_.find(path);
  if (it == files_.end()) return Status::NotFound(path + ": no such file (faked /proc)");
  return it->second;
}

}  // namespace backstop::testing

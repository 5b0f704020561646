// Test seams: a fake clock, temporary directories and helpers to find the
// project's binaries. For unit tests only.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>

#include "base/env.h"

namespace backstop::testing {

// A clock that moves only when told to (or when something sleeps on it).
// Thread-safety: safe to read from several threads.
class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t start_micros = 1'000'000'000,
                     int64_t wall_start_micros = 1'790'000'000'000'000)
      : now_(start_micros), wall_offset_(wall_start_micros - start_micros) {}
  int64_t NowMicros() override { return now_.load(); }
  int64_t WallMicros() override { return now_.load() + wall_offset_; }
  void SleepForMicros(int64_t micros) override { AdvanceMicros(micros); }
  void AdvanceMicros(int64_t micros) { now_ += micros; }
  void AdvanceMs(int64_t ms) { AdvanceMicros(ms * 1000); }

 private:
  std::atomic<int64_t> now_;
  int64_t wall_offset_;
};

// A temporary directory removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Join(const std::string& name) const { return JoinPath(path_, name); }

 private:
  std::string path_;
};

// A file system whose /proc and /sys files are the ones a test sets (a file
// not set does not exist there); every other path is the wrapped one's.
// Thread-safety: Set before the code under test reads.
class FakeProcFileSystem : public FileSystemWrapper {
 public:
  explicit FakeProcFileSystem(FileSystem* target) : FileSystemWrapper(target) {}
  // An empty `content` removes the file.
  void Set(const std::string& path, const std::string& content);
  Result<std::string> ReadFile(const std::string& path) override;

 private:
  std::map<std::string, std::string> files_;
};

// An Env with the real file system and processes but the given clock.
Env MakeEnvWithClock(Clock* clock);

// Writes `content` to `path`, creating parent directories. Aborts the test on failure.
void WriteFileOrDie(const std::string& path, const std::string& content, uint32_t mode = 0644);

// `n` pseudo-random bytes, the same for the same `seed` (incompressible test content).
std::string RandomBytes(size_t n, uint64_t seed);

}  // namespace backstop::testing

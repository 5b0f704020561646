// FaultFileSystem: a FileSystem that fails on demand, for tests of what a
// full disk, a failing device or a crash in mid-write leaves behind.
//
// It forwards everything to a target file system (usually the real one on a
// temporary directory) except the calls its rules pick: a rule names a path
// pattern (fnmatch(3) without flags, so '*' also crosses '/':
// "*/tmp/*", "*.jsonl*") and a fault. Once a rule has fired it keeps failing
// every later matching call until Clear(), as a full disk stays full. The
// errors are the operating system's (ENOSPC, EIO) in Backstop's usual form,
// so code under test sees what it would see in production.
//
// Writes are counted per rule: every WritableFile::Append on a matching file
// is one write. The whole-file helpers (WriteFileAtomic, AppendFile) are
// built on NewWritableFile/Rename/SyncDir here, so the rules reach them too.
//
// Ownership: does not own the target. Thread-safety: rules may be added and
// calls made from any thread.
#pragma once

#include <cerrno>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/env.h"

namespace backstop::testing {

class FaultFileSystem : public FileSystemWrapper {
 public:
  explicit FaultFileSystem(FileSystem* target) : FileSystemWrapper(target) {}

  // The `nth` (1-based) write to a matching file fails with `error`
  // (ENOSPC unless told) and none of its bytes reach the file.
  void FailWriteNumber(const std::string& pattern, int nth, int error = ENOSPC);
  // Matching files take `bytes` bytes in all, then ENOSPC: the write that
  // crosses the limit lands up to it (a torn write), later ones not at all.
  void FailWritesAfterBytes(const std::string& pattern, uint64_t bytes);
  // The `nth` write to a matching file lands only its first `keep` bytes,
  // then fails with EIO (a write torn by a failing device).
  void TearWriteNumber(const std::string& pattern, int nth, size_t keep);
  // WritableFile::Sync on a matching file, and SyncDir of a matching folder,
  // fail with EIO (what was written stays written, but is not durable).
  void FailSyncs(const std::string& pattern);
  // Rename and RenameNoReplace fail with EIO when the source or the target
  // matches; nothing is renamed.
  void FailRenames(const std::string& pattern);
  // Forgets every rule.
  void Clear();
  // How many calls the rules have failed so far.
  int faults_injected();

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path, uint32_t mode,
                                                        WriteMode how) override;
  Status WriteFileAtomic(const std::string& path, std::string_view data, uint32_t mode) override {
    return FileSystem::WriteFileAtomic(path, data, mode);
  }
  Status AppendFile(const std::string& path, std::string_view data) override {
    return FileSystem::AppendFile(path, data);
  }
  Status Rename(const std::string& from, const std::string& to) override;
  Status RenameNoReplace(const std::string& from, const std::string& to) override;
  Status SyncDir(const std::string& dir) override;

  // For the files this returns: the fault to inject into a write of `size`
  // bytes to `path`. Returns OK to let it through whole; otherwise the error,
  // with `*landed` set to how many of its bytes reach the file first.
  Status OnWrite(const std::string& path, size_t size, size_t* landed);
  // The fault for an fsync of `path`, or OK.
  Status OnSync(const std::string& path);

 private:
  enum class Kind { kWriteNumber, kAfterBytes, kTear, kSync, kRename };
  struct Rule {
    Kind kind;
    std::string pattern;
    int nth = 0;          // kWriteNumber, kTear
    uint64_t limit = 0;   // kAfterBytes: bytes allowed; kTear: bytes kept
    int error = 0;        // kWriteNumber
    uint64_t writes = 0;  // matching writes seen
    uint64_t bytes = 0;   // matching bytes that landed
    bool fired = false;
  };
  void Add(Rule rule);
  Status OnRename(const std::string& from, const std::string& to);

  std::mutex mu_;
  std::vector<Rule> rules_;  // guarded by mu_
  int faults_ = 0;           // guarded by mu_
};

}  // namespace backstop::testing

// Env: the seams through which Backstop touches the operating system.
//
// Everything that reads the time, touches the file system or starts a process
// goes through an Env, so unit tests can substitute a fake clock (an hour of
// trigger samples in a millisecond), a file system that fails on demand, or a
// process runner that records what would have run.
//
// Ownership: Env::Default() returns a process-wide instance that is never
// deleted. An Env built from parts does not own them.
// Thread-safety: the real implementations are safe to call from any thread;
// fakes document their own rules.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace backstop {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time, for durations and deadlines.
  virtual int64_t NowMicros() = 0;
  // Wall-clock time in microseconds since the Unix epoch, for records and reports.
  virtual int64_t WallMicros() = 0;
  virtual void SleepForMicros(int64_t micros) = 0;
};

struct FileInfo {
  uint64_t size = 0;
  uint32_t mode = 0;  // permission bits only (07777)
  int64_t mtime_ns = 0;
  uint64_t inode = 0;
  uint32_t uid = 0;  // owner
  bool is_dir = false;
  bool is_symlink = false;  // lstat semantics: the link itself
  bool is_regular = false;
};

// A file being written, in order, from the start or from its end. Writes
// are buffered in user space until Flush (or a buffer fills); Sync makes
// what was flushed durable (fsync). Destroying an open file closes it
// without syncing, reporting nothing: call Close to learn of errors.
// Thread-safety: not thread-safe; one writer at a time.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(std::string_view data) = 0;
  // Hands the buffered bytes to the operating system (a crash of this
  // process no longer loses them; a crash of the machine may).
  virtual Status Flush() = 0;
  // Flushes, then fsyncs: what was appended survives a power loss.
  virtual Status Sync() = 0;
  // Flushes and closes (without syncing). Later calls are errors.
  virtual Status Close() = 0;
};

// A file being read from start to end.
// Thread-safety: not thread-safe.
class SequentialFile {
 public:
  virtual ~SequentialFile() = default;
  // Reads up to `n` bytes into `scratch` and returns them (a view into
  // `scratch`); fewer only at the end of the file, empty at its end.
  virtual Result<std::string_view> Read(size_t n, char* scratch) = 0;
  // Skips `n` bytes (stopping at the end of the file).
  virtual Status Skip(uint64_t n) = 0;
};

// How NewWritableFile opens a file.
enum class WriteMode {
  kTruncate,   // created, or emptied if it exists
  kCreateNew,  // created; FailedPrecondition if the path exists (even as a link)
  kAppend,     // created, or appended to; an existing file keeps its mode
};

// Modes: what Backstop creates is private unless a caller asks otherwise
// (the state dir holds database dumps): files 0600, directories 0700. The
// mode is set explicitly after creation, so the process umask neither widens
// nor narrows it. Callers that create things for others to read (a config
// file, a release tree) pass their mode.
class FileSystem {
 public:
  virtual ~FileSystem() = default;
  virtual Result<std::string> ReadFile(const std::string& path) = 0;
  // Like ReadFile, but refuses (FailedPrecondition, naming the link) when
  // `path` itself is a symbolic link, for files Backstop wrote itself
  // (manifests, records) where a link can only be a substitution.
  virtual Result<std::string> ReadFileNoFollow(const std::string& path);
  // Opens `path` for streaming writes. Never through a symbolic link
  // (FailedPrecondition); a file it creates gets exactly `mode` whatever the
  // umask (kTruncate also sets `mode` on a file that exists).
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path, uint32_t mode = 0600, WriteMode how = WriteMode::kTruncate) = 0;
  // Opens `path` for streaming reads. Never through a symbolic link:
  // FailedPrecondition when `path` is one; NotFound when it does not exist.
  virtual Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) = 0;
  // Crash-safe replace: writes `path.tmp-<pid>-<n>`, fsyncs it, renames it over
  // `path` and fsyncs the directory. Readers see the old or the new content, never a mix.
  // A symlink at `path` is replaced, never written through. Built on
  // NewWritableFile, Rename and SyncDir (a decorator that overrides those
  // changes this too).
  virtual Status WriteFileAtomic(const std::string& path, std::string_view data,
                                 uint32_t mode = 0600);
  // Appends and fsyncs (journals, logs that must survive a crash). A file it
  // creates gets mode 0600; it never appends through a symlink. Built on
  // NewWritableFile(kAppend).
  virtual Status AppendFile(const std::string& path, std::string_view data);
  // Creates `path` and its missing parents with exactly `mode`; directories
  // that exist are left as they are.
  virtual Status CreateDirs(const std::string& path, uint32_t mode = 0700) = 0;
  virtual bool Exists(const std::string& path) = 0;
  // lstat(): a symlink is reported as itself.
  virtual Result<FileInfo> Stat(const std::string& path) = 0;
  // Names in `dir`, without "." and "..", sorted.
  virtual Result<std::vector<std::string>> ListDir(const std::string& dir) = 0;
  // Removes a file or an empty directory. A missing path is OK.
  virtual Status Remove(const std::string& path) = 0;
  // Removes a tree. A missing path is OK.
  virtual Status RemoveAll(const std::string& path) = 0;
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // Like Rename, but never replaces: FailedPrecondition (naming `to`) when
  // `to` exists, which is then left unchanged; `from` stays in place.
  virtual Status RenameNoReplace(const std::string& from, const std::string& to) = 0;
  virtual Status SyncDir(const std::string& dir) = 0;
  virtual Result<std::string> ReadLink(const std::string& path) = 0;
  // Points `link` at `target` atomically (temp symlink + rename + dir fsync).
  virtual Status SymlinkAtomic(const std::string& target, const std::string& link) = 0;
  // Never through a symlink: FailedPrecondition when `path` is one.
  virtual Status Chmod(const std::string& path, uint32_t mode) = 0;
};

// A FileSystem that forwards every call to `target`, for decorators (a file
// system that fails on demand, one that counts calls) that override only
// what they change. Does not own `target`, which must outlive it.
// Thread-safety: that of `target`.
class FileSystemWrapper : public FileSystem {
 public:
  explicit FileSystemWrapper(FileSystem* target) : target_(target) {}
  FileSystem* target() const { return target_; }

  Result<std::string> ReadFile(const std::string& path) override { return target_->ReadFile(path); }
  Result<std::string> ReadFileNoFollow(const std::string& path) override {
    return target_->ReadFileNoFollow(path);
  }
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path, uint32_t mode,
                                                        WriteMode how) override {
    return target_->NewWritableFile(path, mode, how);
  }
  Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) override {
    return target_->NewSequentialFile(path);
  }
  Status WriteFileAtomic(const std::string& path, std::string_view data, uint32_t mode) override {
    return target_->WriteFileAtomic(path, data, mode);
  }
  Status AppendFile(const std::string& path, std::string_view data) override {
    return target_->AppendFile(path, data);
  }
  Status CreateDirs(const std::string& path, uint32_t mode) override {
    return target_->CreateDirs(path, mode);
  }
  bool Exists(const std::string& path) override { return target_->Exists(path); }
  Result<FileInfo> Stat(const std::string& path) override { return target_->Stat(path); }
  Result<std::vector<std::string>> ListDir(const std::string& dir) override {
    return target_->ListDir(dir);
  }
  Status Remove(const std::string& path) override { return target_->Remove(path); }
  Status RemoveAll(const std::string& path) override { return target_->RemoveAll(path); }
  Status Rename(const std::string& from, const std::string& to) override {
    return target_->Rename(from, to);
  }
  Status RenameNoReplace(const std::string& from, const std::string& to) override {
    return target_->RenameNoReplace(from, to);
  }
  Status SyncDir(const std::string& dir) override { return target_->SyncDir(dir); }
  Result<std::string> ReadLink(const std::string& path) override { return target_->ReadLink(path); }
  Status SymlinkAtomic(const std::string& target, const std::string& link) override {
    return target_->SymlinkAtomic(target, link);
  }
  Status Chmod(const std::string& path, uint32_t mode) override {
    return target_->Chmod(path, mode);
  }

 private:
  FileSystem* target_;
};

struct ProcessOptions {
  std::vector<std::string> argv;           // argv[0] is looked up in PATH when it has no '/'
  std::string cwd;                         // empty: inherit
  std::map<std::string, std::string> env;  // added to (or overriding) the inherited environment
  std::string stdin_data;
  std::string output_file;  // when set, stdout and stderr are appended to it instead of captured
  int64_t timeout_ms = 0;   // 0: no limit; on expiry the process group gets SIGKILL
  // SpawnDetached only: called with the pid of the new process while it is
  // held before exec, already the leader of its own session and process
  // group but running nothing of the command yet (so the caller can record it
  // first). The command runs only if this returns OK; if it fails, or the
  // caller dies before it returns, the held process exits without running it.
  std::function<Status(pid_t pid)> before_exec;
};

// A process as Backstop knows it: the pid and its start time, which together
// name one process even after the pid is recycled.
struct ProcessIdentity {
  pid_t pid = 0;
  uint64_t start_ticks = 0;
};

struct ProcessResult {
  int exit_code = -1;   // -1 when killed by a signal
  int term_signal = 0;  // the signal that ended it, if any
  bool timed_out = false;
  std::string out;  // captured stdout (unless output_file)
  std::string err;  // captured stderr (unless output_file)
  bool success() const { return exit_code == 0 && !timed_out; }
  // A one-line description: "exit 3: <last line of stderr>".
  std::string Describe() const;
};

class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  // Runs to completion (or timeout). A failure to start is an error Status;
  // a non-zero exit is reported in the ProcessResult.
  virtual Result<ProcessResult> Run(const ProcessOptions& options) = 0;
  // Starts a long-lived process in its own session, reparented away from the
  // caller so that it survives the caller's exit. Output goes to
  // options.output_file. Returns its pid, which is also its process group
  // and session id, once the command is executing (options.before_exec ran
  // in between). A command that cannot be executed is an error Status.
  virtual Result<pid_t> SpawnDetached(const ProcessOptions& options) = 0;
  // True if `pid` exists and is not a zombie.
  virtual bool IsAlive(pid_t pid) = 0;
  // Start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22),
  // used to tell a recorded pid from a recycled one. NotFound if gone.
  virtual Result<uint64_t> StartTicks(pid_t pid) = 0;
  virtual Status Signal(pid_t pid, int signal, bool whole_group) = 0;
  // Signals `who` (or its whole process group) only while its pid still
  // names the process started at who.start_ticks, so a recycled pid is never
  // signalled: NotFound when that process is gone.
  virtual Status SignalIfSame(const ProcessIdentity& who, int signal, bool whole_group) = 0;
  // The live processes (zombies excluded) whose environment at start held
  // every one of `entries` ("KEY=VALUE"): the processes a service was started
  // with, and their children, even when nothing recorded them. The caller
  // itself and processes whose environment this user cannot read are never
  // listed.
  virtual std::vector<ProcessIdentity> FindByEnvironment(
      const std::vector<std::string>& entries) = 0;
};

class Env {
 public:
  Env(Clock* clock, FileSystem* fs, ProcessRunner* processes)
      : clock_(clock), fs_(fs), processes_(processes) {}
  // The real operating system.
  static Env* Default();

  Clock* clock() const { return clock_; }
  FileSystem* fs() const { return fs_; }
  ProcessRunner* processes() const { return processes_; }

 private:
  Clock* clock_;
  FileSystem* fs_;
  ProcessRunner* processes_;
};

// Helpers shared by many modules.
// The rest of `file`, read to its end.
Result<std::string> ReadAll(SequentialFile& file);
std::string JoinPath(std::string_view a, std::string_view b);
std::string Dirname(std::string_view path);
std::string Basename(std::string_view path);
// Makes `path` absolute against `base` (when relative) and removes "." parts.
std::string AbsolutePath(std::string_view path, std::string_view base);
// Current working directory of this process.
std::string CurrentDir();

}  // namespace backstop

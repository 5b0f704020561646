// The real Env: POSIX file system, processes and clocks.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>  // renameat2
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "base/env.h"
#include "base/posix_file.h"
#include "base/proc_stat.h"

extern char** environ;

namespace backstop {
namespace {

class PosixClock : public Clock {
 public:
  int64_t NowMicros() override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  int64_t WallMicros() override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  void SleepForMicros(int64_t micros) override {
    if (micros > 0) std::this_thread::sleep_for(std::chrono::microseconds(micros));
  }
};

class PosixFileSystem : public FileSystem {
 public:
  static Result<std::string> ReadWhole(const std::string& path, bool follow_links) {
    BACKSTOP_ASSIGN_OR_RETURN(std::unique_ptr<SequentialFile> file,
                              NewPosixSequentialFile(path, follow_links));
    return ReadAll(*file);
  }

  Result<std::string> ReadFile(const std::string& path) override {
    return ReadWhole(path, /*follow_links=*/true);
  }

  Result<std::string> ReadFileNoFollow(const std::string& path) override {
    return ReadWhole(path, /*follow_links=*/false);
  }

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path, uint32_t mode,
                                                        WriteMode how) override {
    return NewPosixWritableFile(path, mode, how);
  }

  Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) override {
    return NewPosixSequentialFile(path, /*follow_links=*/false);
  }

  Status CreateDirs(const std::string& path, uint32_t mode) override {
    if (path.empty()) return Status::OK();
    struct stat sb;
    if (::stat(path.c_str(), &sb) == 0) {
      if (S_ISDIR(sb.st_mode)) return Status::OK();
      return Status::IOError(path + " exists and is not a directory");
    }
    std::string parent = Dirname(path);
    if (parent != path) BACKSTOP_RETURN_IF_ERROR(CreateDirs(parent, mode));
    if (::mkdir(path.c_str(), mode) != 0) {
      if (errno == EEXIST) return Status::OK();  // created meanwhile: not ours to change
      return Status::FromErrno("mkdir " + path, errno);
    }
    // mkdir's mode went through the umask; the caller's mode is what it gets.
    if (::chmod(path.c_str(), mode) != 0) return Status::FromErrno("chmod " + path, errno);
    return Status::OK();
  }

  bool Exists(const std::string& path) override {
    struct stat sb;
    return ::lstat(path.c_str(), &sb) == 0;
  }

  Result<FileInfo> Stat(const std::string& path) override {
    struct stat sb;
    if (::lstat(path.c_str(), &sb) != 0) {
      if (errno == ENOENT) return Status::NotFound(path + ": no such file");
      return Status::FromErrno("stat " + path, errno);
    }
    FileInfo info;
    info.size = static_cast<uint64_t>(sb.st_size);
    info.mode = sb.st_mode & 07777;
    info.mtime_ns = static_cast<int64_t>(sb.st_mtim.tv_sec) * 1000000000 + sb.st_mtim.tv_nsec;
    info.inode = sb.st_ino;
    info.uid = sb.st_uid;
    info.is_dir = S_ISDIR(sb.st_mode);
    info.is_symlink = S_ISLNK(sb.st_mode);
    info.is_regular = S_ISREG(sb.st_mode);
    return info;
  }

  Result<std::vector<std::string>> ListDir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
      if (errno == ENOENT) return Status::NotFound(dir + ": no such directory");
      return Status::FromErrno("opendir " + dir, errno);
    }
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(std::move(n));
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
  }

  Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) == 0 || errno == ENOENT) return Status::OK();
    if (errno == EISDIR || errno == EPERM) {
      if (::rmdir(path.c_str()) == 0 || errno == ENOENT) return Status::OK();
    }
    return Status::FromErrno("remove " + path, errno);
  }

  Status RemoveAll(const std::string& path) override {
    auto info = Stat(path);
    if (!info.ok()) return info.status().IsNotFound() ? Status::OK() : info.status();
    if (info->is_dir) {
      auto names = ListDir(path);
      if (!names.ok()) return names.status();
      for (const auto& n : *names) BACKSTOP_RETURN_IF_ERROR(RemoveAll(JoinPath(path, n)));
      if (::rmdir(path.c_str()) != 0 && errno != ENOENT) {
        return Status::FromErrno("rmdir " + path, errno);
      }
      return Status::OK();
    }
    return Remove(path);
  }

  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return Status::FromErrno("rename " + from + " to " + to, errno);
    }
    return Status::OK();
  }

  Status RenameNoReplace(const std::string& from, const std::string& to) override {
    int r = ::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE);
    bool linked = false;
    if (r != 0 && (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP)) {
      // File systems without RENAME_NOREPLACE: link() also refuses to replace.
      r = ::link(from.c_str(), to.c_str());
      linked = r == 0;
    }
    if (r != 0) {
      if (errno == EEXIST) {
        return Status::FailedPrecondition(to + " already exists; it was left unchanged");
      }
      return Status::FromErrno("rename " + from + " to " + to, errno);
    }
    if (linked && ::unlink(from.c_str()) != 0) {
      return Status::FromErrno("remove " + from + " (linked to " + to + ")", errno);
    }
    return Status::OK();
  }

  Status SyncDir(const std::string& dir) override {
    int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno("open directory " + dir, errno);
    Status st;
    if (::fsync(fd) != 0) st = Status::FromErrno("fsync directory " + dir, errno);
    ::close(fd);
    return st;
  }

  Result<std::string> ReadLink(const std::string& path) override {
    char buf[4096];
    ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
    if (n < 0) {
      if (errno == ENOENT) return Status::NotFound(path + ": no such link");
      return Status::FromErrno("readlink " + path, errno);
    }
    return std::string(buf, static_cast<size_t>(n));
  }

  Status SymlinkAtomic(const std::string& target, const std::string& link) override {
    std::string tmp = TempNameFor(link);
    if (::symlink(target.c_str(), tmp.c_str()) != 0) {
      return Status::FromErrno("symlink " + tmp, errno);
    }
    if (::rename(tmp.c_str(), link.c_str()) != 0) {
      int e = errno;
      ::unlink(tmp.c_str());
      return Status::FromErrno("rename " + tmp + " to " + link, e);
    }
    return SyncDir(Dirname(link));
  }

  Status Chmod(const std::string& path, uint32_t mode) override {
    if (::fchmodat(AT_FDCWD, path.c_str(), mode, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == EOPNOTSUPP) return SymlinkRefused(path);  // the path is a link
      return Status::FromErrno("chmod " + path, errno);
    }
    return Status::OK();
  }
};

// What systemd gives Backstop for its own readiness and watchdog messages
// (sd_notify): a child that inherited them could speak for Backstop, or
// make systemd discard the messages of a service it manages itself.
bool IsServiceManagerVariable(std::string_view key) {
  return key == "NOTIFY_SOCKET" || key == "WATCHDOG_USEC" || key == "WATCHDOG_PID";
}

// Builds the envp for a child: the inherited environment, without the
// service manager's variables, with `extra` applied.
std::vector<std::string> BuildEnvironment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    std::string key(kv.substr(0, eq));
    if (IsServiceManagerVariable(key)) continue;
    if (extra.count(key) == 0) out.emplace_back(kv);
  }
  for (const auto& [k, v] : extra) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Runs in the child after fork(): only async-signal-safe calls until exec.
// When `status_fd` >= 0 (a CLOEXEC pipe), a failure to change directory or to
// execute is also reported on it as the errno (an int), so the caller learns
// it without reading the log; a successful exec closes it with nothing written.
[[noreturn]] void ExecChild(std::vector<char*>& argv, std::vector<char*>& envp, const char* cwd,
                            int in_fd, int out_fd, int err_fd, int status_fd = -1) {
  if (in_fd >= 0) ::dup2(in_fd, 0);
  if (out_fd >= 0) ::dup2(out_fd, 1);
  if (err_fd >= 0) ::dup2(err_fd, 2);
  // Reset signal dispositions the parent may have changed.
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGCHLD, SIGHUP}) ::sigaction(s, &sa, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (cwd != nullptr && ::chdir(cwd) != 0) {
    int err = errno;
    if (status_fd >= 0) (void)!::write(status_fd, &err, sizeof err);
    const char msg[] = "backstop: cannot change to the working directory\n";
    (void)!::write(2, msg, sizeof msg - 1);
    _exit(127);
  }
  environ = envp.data();
  ::execvp(argv[0], argv.data());
  int err = errno;
  if (status_fd >= 0) (void)!::write(status_fd, &err, sizeof err);
  const char msg[] = "backstop: cannot execute the command: ";
  (void)!::write(2, msg, sizeof msg - 1);
  (void)!::write(2, argv[0], std::strlen(argv[0]));
  (void)!::write(2, "\n", 1);
  _exit(127);
}

// /proc/<pid>/stat of a live process; NotFound when it is gone.
Result<ProcStat> ReadStat(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return Status::NotFound("process " + std::to_string(pid));
  auto st = ParseProcStat(line);
  if (!st.ok()) return Status::NotFound("process " + std::to_string(pid));
  return st;
}

// Start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22).
Result<uint64_t> ReadStartTicks(pid_t pid) {
  BACKSTOP_ASSIGN_OR_RETURN(ProcStat st, ReadStat(pid));
  return st.start_ticks;
}

// True if /proc/<pid>/environ holds every one of `entries` as a whole entry.
bool EnvironHolds(pid_t pid, const std::vector<std::string>& entries) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  if (!f) return false;
  std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t found = 0;
  for (size_t at = 0; at < data.size();) {
    size_t end = data.find('\0', at);
    if (end == std::string::npos) end = data.size();
    std::string_view entry(data.data() + at, end - at);
    for (const auto& want : entries) {
      if (entry == want) ++found;
    }
    at = end + 1;
  }
  return found >= entries.size();
}

class PosixProcessRunner : public ProcessRunner {
 public:
  explicit PosixProcessRunner(Clock* clock) : clock_(clock) {}

  Result<ProcessResult> Run(const ProcessOptions& o) override {
    if (o.argv.empty()) return Status::InvalidArgument("empty command");
    std::vector<std::string> argv_s = o.argv;
    std::vector<std::string> env_s = BuildEnvironment(o.env);
    auto argv = CStrings(argv_s);
    auto envp = CStrings(env_s);

    int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    int log_fd = -1;
    auto close_all = [&] {
      for (int fd :
           {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], log_fd}) {
        if (fd >= 0) ::close(fd);
      }
    };
    if (::pipe2(in_pipe, O_CLOEXEC) != 0) return Status::FromErrno("pipe", errno);
    if (!o.output_file.empty()) {
      log_fd = ::open(o.output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (log_fd < 0) {
        int e = errno;
        close_all();
        return Status::FromErrno("open " + o.output_file, e);
      }
    } else if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
      int e = errno;
      close_all();
      return Status::FromErrno("pipe", e);
    }

    pid_t pid = ::fork();
    if (pid < 0) {
      int e = errno;
      close_all();
      return Status::FromErrno("fork", e);
    }
    if (pid == 0) {
      ::setpgid(0, 0);  // own group, so a timeout can kill the whole tree
      int out = log_fd >= 0 ? log_fd : out_pipe[1];
      int err = log_fd >= 0 ? log_fd : err_pipe[1];
      ExecChild(argv, envp, o.cwd.empty() ? nullptr : o.cwd.c_str(), in_pipe[0], out, err);
    }
    ::setpgid(pid, pid);
    ::close(in_pipe[0]);
    in_pipe[0] = -1;
    if (out_pipe[1] >= 0) ::close(out_pipe[1]), out_pipe[1] = -1;
    if (err_pipe[1] >= 0) ::close(err_pipe[1]), err_pipe[1] = -1;

    ProcessResult result;
    size_t in_off = 0;
    if (o.stdin_data.empty()) {
      ::close(in_pipe[1]);
      in_pipe[1] = -1;
    } else {
      ::fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
    }
    const int64_t deadline =
        o.timeout_ms > 0 ? clock_->NowMicros() + o.timeout_ms * 1000 : INT64_MAX;
    bool killed = false;
    while (out_pipe[0] >= 0 || err_pipe[0] >= 0 || in_pipe[1] >= 0) {
      struct pollfd fds[3];
      int n = 0;
      int idx_out = -1, idx_err = -1, idx_in = -1;
      if (out_pipe[0] >= 0) idx_out = n, fds[n++] = {out_pipe[0], POLLIN, 0};
      if (err_pipe[0] >= 0) idx_err = n, fds[n++] = {err_pipe[0], POLLIN, 0};
      if (in_pipe[1] >= 0) idx_in = n, fds[n++] = {in_pipe[1], POLLOUT, 0};
      int64_t now = clock_->NowMicros();
      if (now >= deadline && !killed) {
        ::kill(-pid, SIGKILL);
        killed = true;
        result.timed_out = true;
      }
      int wait_ms =
          deadline == INT64_MAX
              ? 1000
              : static_cast<int>(std::clamp<int64_t>((deadline - now) / 1000 + 1, 1, 1000));
      int r = ::poll(fds, n, wait_ms);
      if (r < 0) {
        if (errno == EINTR) continue;
        break;
      }
      auto drain = [&](int idx, int& fd, std::string& sink) {
        if (idx < 0 || !(fds[idx].revents & (POLLIN | POLLHUP | POLLERR))) return;
        char buf[1 << 14];
        ssize_t k = ::read(fd, buf, sizeof buf);
        if (k > 0) {
          sink.append(buf, static_cast<size_t>(k));
        } else if (k == 0 || (errno != EINTR && errno != EAGAIN)) {
          ::close(fd);
          fd = -1;
        }
      };
      drain(idx_out, out_pipe[0], result.out);
      drain(idx_err, err_pipe[0], result.err);
      if (idx_in >= 0 && (fds[idx_in].revents & (POLLOUT | POLLERR | POLLHUP))) {
        ssize_t k = ::write(in_pipe[1], o.stdin_data.data() + in_off, o.stdin_data.size() - in_off);
        if (k > 0) in_off += static_cast<size_t>(k);
        if (k < 0 && errno != EAGAIN && errno != EINTR) in_off = o.stdin_data.size();
        if (in_off >= o.stdin_data.size()) {
          ::close(in_pipe[1]);
          in_pipe[1] = -1;
        }
      }
      if (killed && r == 0) break;  // pipes held open by an escaped grandchild
    }
    int status = 0;
    for (;;) {
      pid_t w = ::waitpid(pid, &status, killed ? 0 : WNOHANG);
      if (w == pid) break;
      if (w < 0 && errno != EINTR) break;
      if (w == 0) {
        if (clock_->NowMicros() >= deadline && !killed) {
          ::kill(-pid, SIGKILL);
          killed = true;
          result.timed_out = true;
          continue;
        }
        clock_->SleepForMicros(2000);
      }
    }
    close_all();
    if (WIFEXITED(status)) {
      result.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      result.term_signal = WTERMSIG(status);
    }
    return result;
  }

  // Double fork: the intermediate child exits at once, so the service is
  // reparented away from Backstop. The grandchild makes itself a session
  // leader, reports its pid, and waits on the barrier pipe: only the byte
  // 'g' (written after options.before_exec succeeded) lets it exec; end of
  // file (the caller refused, or died) makes it exit having run nothing.
  Result<pid_t> SpawnDetached(const ProcessOptions& o) override {
    if (o.argv.empty()) return Status::InvalidArgument("empty command");
    std::vector<std::string> argv_s = o.argv;
    std::vector<std::string> env_s = BuildEnvironment(o.env);
    auto argv = CStrings(argv_s);
    auto envp = CStrings(env_s);
    int log_fd = -1;
    if (!o.output_file.empty()) {
      log_fd = ::open(o.output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (log_fd < 0) return Status::FromErrno("open " + o.output_file, errno);
    }
    int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    // report: grandchild -> caller, its pid once it leads its own session.
    // barrier: caller -> grandchild, the go-ahead to exec.
    // exec_status: grandchild -> caller, the errno of a failed exec; closed
    // empty by a successful one (CLOEXEC).
    int report[2] = {-1, -1}, barrier[2] = {-1, -1}, exec_status[2] = {-1, -1};
    auto close_fd = [](int& fd) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    };
    auto close_all = [&] {
      for (int* fd : {&report[0], &report[1], &barrier[0], &barrier[1], &exec_status[0],
                      &exec_status[1], &log_fd, &null_fd}) {
        close_fd(*fd);
      }
    };
    if (::pipe2(report, O_CLOEXEC) != 0 || ::pipe2(barrier, O_CLOEXEC) != 0 ||
        ::pipe2(exec_status, O_CLOEXEC) != 0) {
      int e = errno;
      close_all();
      return Status::FromErrno("pipe", e);
    }
    pid_t child = ::fork();
    if (child < 0) {
      int e = errno;
      close_all();
      return Status::FromErrno("fork", e);
    }
    if (child == 0) {
      pid_t grandchild = ::fork();
      if (grandchild != 0) _exit(grandchild < 0 ? 1 : 0);
      ::setsid();  // leader of a new session and process group: pid == pgid == sid
      ::close(report[0]);
      ::close(barrier[1]);
      ::close(exec_status[0]);
      int32_t self = ::getpid();
      (void)!::write(report[1], &self, sizeof self);
      ::close(report[1]);
      char go = 0;
      ssize_t n = 0;
      do {
        n = ::read(barrier[0], &go, 1);
      } while (n < 0 && errno == EINTR);
      if (n != 1 || go != 'g') _exit(0);  // not released: run nothing
      ::close(barrier[0]);
      int out = log_fd >= 0 ? log_fd : null_fd;
      ExecChild(argv, envp, o.cwd.empty() ? nullptr : o.cwd.c_str(), null_fd, out, out,
                exec_status[1]);
    }
    close_fd(report[1]);
    close_fd(barrier[0]);
    close_fd(exec_status[1]);
    close_fd(log_fd);
    close_fd(null_fd);
    int32_t p = -1;
    ssize_t got = 0;
    do {
      got = ::read(report[0], &p, sizeof p);
    } while (got < 0 && errno == EINTR);
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (got != sizeof p || p <= 0) {
      close_all();
      return Status::IOError("could not start " + o.argv[0]);
    }
    const pid_t pid = static_cast<pid_t>(p);
    Status held = o.before_exec ? o.before_exec(pid) : Status::OK();
    if (!held.ok()) {
      close_all();  // end of file on the barrier: the held process exits
      return held;
    }
    const char go = 'g';
    ssize_t wrote = 0;
    do {
      wrote = ::write(barrier[1], &go, 1);
    } while (wrote < 0 && errno == EINTR);
    close_fd(barrier[1]);
    int exec_errno = 0;
    do {
      got = ::read(exec_status[0], &exec_errno, sizeof exec_errno);
    } while (got < 0 && errno == EINTR);
    close_all();
    if (wrote != 1) return Status::IOError("could not release " + o.argv[0] + " to run");
    if (got == sizeof exec_errno) {
      return Status::FromErrno(
          "cannot execute " + o.argv[0] + (o.cwd.empty() ? "" : " in " + o.cwd), exec_errno);
    }
    return pid;
  }

  bool IsAlive(pid_t pid) override {
    if (pid <= 0) return false;
    if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
    auto st = ReadStat(pid);
    return st.ok() && st->state != 'Z' && st->state != 'X';
  }

  Result<uint64_t> StartTicks(pid_t pid) override { return ReadStartTicks(pid); }

  Status Signal(pid_t pid, int sig, bool whole_group) override {
    if (pid <= 0) return Status::InvalidArgument("bad pid");
    if (::kill(whole_group ? -pid : pid, sig) != 0) {
      if (errno == ESRCH) return Status::NotFound("process " + std::to_string(pid) + " is gone");
      return Status::FromErrno("kill " + std::to_string(pid), errno);
    }
    return Status::OK();
  }

  // A pidfd pins the process: once it is open, the start time read from /proc
  // either is that process's, or the pid was recycled before the open (then
  // the times differ). Signalling through the pidfd cannot reach another one.
  Status SignalIfSame(const ProcessIdentity& who, int sig, bool whole_group) override {
    if (who.pid <= 0) return Status::InvalidArgument("bad pid");
    const std::string name = "process " + std::to_string(who.pid);
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, who.pid, 0));
    if (pidfd < 0) {
      if (errno == ESRCH) return Status::NotFound(name + " is gone");
      return Status::FromErrno("pidfd_open " + std::to_string(who.pid), errno);
    }
    auto ticks = ReadStartTicks(who.pid);
    Status st;
    if (!ticks.ok() || *ticks != who.start_ticks) {
      st = Status::NotFound(name + " is gone (the pid now names another process)");
    } else if (whole_group && ::kill(-who.pid, sig) == 0) {
      // The leader is alive (pinned), so its group id cannot have been
      // recycled. A leader that left its group is signalled alone, below.
    } else if (::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) != 0) {
      st = errno == ESRCH ? Status::NotFound(name + " is gone")
                          : Status::FromErrno("kill " + std::to_string(who.pid), errno);
    }
    ::close(pidfd);
    return st;
  }

  std::vector<ProcessIdentity> FindByEnvironment(const std::vector<std::string>& entries) override {
    std::vector<ProcessIdentity> out;
    if (entries.empty()) return out;  // would name every process
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr) return out;
    const pid_t self = ::getpid();
    while (struct dirent* d = ::readdir(proc)) {
      char* end = nullptr;
      long pid = std::strtol(d->d_name, &end, 10);
      if (pid <= 0 || *end != '\0' || pid == self) continue;
      if (!EnvironHolds(static_cast<pid_t>(pid), entries)) continue;
      if (!IsAlive(static_cast<pid_t>(pid))) continue;
      auto ticks = ReadStartTicks(static_cast<pid_t>(pid));
      if (ticks.ok()) out.push_back({static_cast<pid_t>(pid), *ticks});
    }
    ::closedir(proc);
    std::sort(out.begin(), out.end(),
              [](const ProcessIdentity& a, const ProcessIdentity& b) { return a.pid < b.pid; });
    return out;
  }

 private:
  Clock* clock_;
};

}  // namespace

std::string ProcessResult::Describe() const {
  std::string what;
  if (timed_out) {
    what = "timed out";
  } else if (term_signal != 0) {
    what = std::string("killed by signal ") + strsignal(term_signal);
  } else {
    what = "exit " + std::to_string(exit_code);
  }
  std::string tail = err.empty() ? out : err;
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
  auto nl = tail.rfind('\n');
  if (nl != std::string::npos) tail = tail.substr(nl + 1);
  if (!tail.empty()) what += ": " + tail;
  return what;
}

Env* Env::Default() {
  static PosixClock clock;
  static PosixFileSystem fs;
  static PosixProcessRunner runner(&clock);
  static Env env(&clock, &fs, &runner);
  return &env;
}

std::string JoinPath(std::string_view a, std::string_view b) {
  if (a.empty()) return std::string(b);
  if (!b.empty() && b.front() == '/') return std::string(b);
  std::string out(a);
  if (out.back() != '/') out += '/';
  out += b;
  return out;
}

std::string Dirname(std::string_view path) {
  auto slash = path.rfind('/');
  if (slash == std::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

std::string Basename(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  auto slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string AbsolutePath(std::string_view path, std::string_view base) {
  std::string joined =
      (!path.empty() && path.front() == '/') ? std::string(path) : JoinPath(base, path);
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(joined);
  while (std::getline(in, part, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (const auto& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

std::string CurrentDir() {
  char buf[4096];
  if (::getcwd(buf, sizeof buf) == nullptr) return ".";
  return buf;
}

}  // namespace backstop

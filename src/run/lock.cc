#include "run/lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/units.h"
#include "run/state_db.h"

namespace backstop {
namespace {

std::string LockPath(const std::string& state_dir) { return JoinPath(state_dir, "lock"); }

std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  off_t off = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return out;
}

std::string DescribeHolder(const nlohmann::json& h) {
  if (!h.is_object()) return "another backstop process holds the lock";
  std::string who = h.value("run_id", "");
  std::string text = who.empty() ? "another backstop process" : "run " + who;
  std::string detail = "pid " + std::to_string(h.value("pid", 0));
  if (!h.value("command", "").empty()) detail += ", `" + h.value("command", "") + "`";
  if (!h.value("since", "").empty()) detail += ", since " + h.value("since", "");
  return text + " (" + detail + ") holds the lock";
}

}  // namespace

Result<std::unique_ptr<EnvironmentLock>> EnvironmentLock::Acquire(Env* env,
                                                                  const std::string& state_dir,
                                                                  nlohmann::json holder) {
  BACKSTOP_RETURN_IF_ERROR(env->fs()->CreateDirs(state_dir));
  std::string path = LockPath(state_dir);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Status::FromErrno("open lock file " + path, errno);
  // Private whatever the umask (the record names the command line); fchmod
  // also tightens a lock file left by an older version.
  if (::fchmod(fd, 0600) != 0) {
    int e = errno;
    ::close(fd);
    return Status::FromErrno("chmod lock file " + path, e);
  }
  // Contention: normally another run. A holder writes its record right after
  // locking, and `backstop status` takes a brief shared lock to look, so retry
  // for a moment before refusing.
  nlohmann::json current;
  bool locked = false;
  for (int attempt = 0; attempt < 50 && !locked; ++attempt) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      locked = true;
      break;
    }
    if (errno != EWOULDBLOCK) {
      int e = errno;
      ::close(fd);
      return Status::FromErrno("lock " + path, e);
    }
    current = nlohmann::json::parse(ReadAll(fd), nullptr, false);
    if (!current.is_discarded() && current.is_object() && current.contains("pid")) break;
    env->clock()->SleepForMicros(10'000);
  }
  if (!locked) {
    ::close(fd);
    return Status::Aborted(DescribeHolder(current) +
                           "; only one run at a time may act on an environment. Wait for it to "
                           "finish, or see `backstop status`");
  }
  auto lock = std::unique_ptr<EnvironmentLock>(new EnvironmentLock(fd, path));
  if (!holder.contains("pid")) holder["pid"] = static_cast<int>(::getpid());
  if (!holder.contains("since")) holder["since"] = FormatRfc3339(env->clock()->WallMicros());
  BACKSTOP_RETURN_IF_ERROR(lock->UpdateHolder(std::move(holder)));
  return lock;
}

EnvironmentLock::~EnvironmentLock() {
  if (fd_ >= 0) {
    (void)!::ftruncate(fd_, 0);
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
}

Status EnvironmentLock::UpdateHolder(nlohmann::json holder) {
  std::string text = holder.dump();
  // Written in place (not renamed): the flock belongs to this inode.
  if (::ftruncate(fd_, 0) != 0) return Status::FromErrno("truncate " + path_, errno);
  if (::pwrite(fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    return Status::FromErrno("write " + path_, errno);
  }
  return Status::OK();
}

nlohmann::json EnvironmentLock::CurrentHolder(const std::string& state_dir) {
  std::string path = LockPath(state_dir);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return nullptr;
  nlohmann::json out = nullptr;
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
    out = nlohmann::json::parse(ReadAll(fd), nullptr, false);
    if (out.is_discarded() || !out.is_object()) out = nlohmann::json::object();
  }
  ::close(fd);
  return out;
}

Result<std::unique_ptr<EnvironmentLock>> AcquireBetweenRuns(Env* env, const std::string& state_dir,
                                                            StateDb& db, nlohmann::json holder) {
  BACKSTOP_ASSIGN_OR_RETURN(auto lock, EnvironmentLock::Acquire(env, state_dir, std::move(holder)));
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<RunRecord> unfinished, db.UnfinishedRuns());
  if (!unfinished.empty()) {
    // The environment is between two states; the run's resume decides what comes next.
    return Status::Aborted("run " + unfinished.front().id + " is unfinished");
  }
  return lock;
}

}  // namespace backstop

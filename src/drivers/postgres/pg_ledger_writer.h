// The postgres driver's JSON-lines writer for ledgers and salvage exports: a
// private (0600) temporary file, never written through a symlink, fsynced
// and renamed into place on Commit(). An empty path writes nothing.
//
// Ownership: owns its FILE until Commit() or destruction (which removes an
// uncommitted temporary file).
// Thread-safety: none; one thread per object.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "base/env.h"
#include "base/status.h"

namespace backstop::postgres {

using json = nlohmann::json;

// Streams JSON lines to a temporary file, renamed into place on Commit().
class LedgerWriter {
 public:
  LedgerWriter(Env* env, std::string path) : env_(env), path_(std::move(path)) {}
  ~LedgerWriter() {
    if (f_) {
      std::fclose(f_);
      ::unlink(tmp_.c_str());
    }
  }
  Status Open() {
    if (path_.empty()) return Status::OK();
    BACKSTOP_RETURN_IF_ERROR(env_->fs()->CreateDirs(Dirname(path_)));
    tmp_ = path_ + ".tmp-" + std::to_string(::getpid());
    // Private (the rows' keys, or their values for a salvage), and never
    // written through a symlink left in its place.
    int fd = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return Status::FromErrno("create " + tmp_, errno);
    f_ = ::fdopen(fd, "w");
    if (!f_) {
      int e = errno;
      ::close(fd);
      return Status::FromErrno("create " + tmp_, e);
    }
    // A leftover of a killed run may have had another mode.
    if (::fchmod(fd, 0600) != 0) return Status::FromErrno("chmod " + tmp_, errno);
    return Status::OK();
  }
  Status Line(const json& j) {
    if (!f_) return Status::OK();
    std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
    s += '\n';
    if (std::fwrite(s.data(), 1, s.size(), f_) != s.size()) {
      return Status::FromErrno("write " + tmp_, errno);
    }
    return Status::OK();
  }
  Status Commit() {
    if (!f_) return Status::OK();
    bool ok = std::fflush(f_) == 0 && ::fsync(fileno(f_)) == 0;
    int e = errno;
    std::fclose(f_);
    f_ = nullptr;
    if (!ok) return Status::FromErrno("write " + tmp_, e);
    BACKSTOP_RETURN_IF_ERROR(env_->fs()->Rename(tmp_, path_));
    return env_->fs()->SyncDir(Dirname(path_));
  }
  const std::string& path() const { return path_; }

 private:
  Env* env_;
  std::string path_;
  std::string tmp_;
  FILE* f_ = nullptr;
};

}  // namespace backstop::postgres

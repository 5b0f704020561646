// The `nats` driver's JSON-lines ledger writer (data-loss ledgers, the
// discarded messages).
//
// Ownership: a LedgerWriter owns its temporary file until Commit renames it
// into place; destroyed uncommitted, it removes it.
// Thread-safety: one thread at a time.
#pragma once

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "base/env.h"
#include "base/status.h"

namespace backstop::nats {

// A JSONL file written through a temporary name and renamed into place when
// complete, so a crash never leaves a half-written ledger under the real name.
class LedgerWriter {
 public:
  static Result<std::unique_ptr<LedgerWriter>> Open(const std::string& path) {
    std::unique_ptr<LedgerWriter> w(new LedgerWriter());
    w->path_ = path;
    w->tmp_ = path + ".tmp-" + std::to_string(::getpid());
    // Private (ledgers name what was discarded), and never through a link
    // planted under the temporary name.
    int fd = ::open(w->tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return Status::FromErrno("open " + w->tmp_, errno);
    if (::fchmod(fd, 0600) != 0) {  // a leftover of a killed run may have had another mode
      int err = errno;
      ::close(fd);
      return Status::FromErrno("chmod " + w->tmp_, err);
    }
    w->f_ = ::fdopen(fd, "w");
    if (w->f_ == nullptr) {
      int err = errno;
      ::close(fd);
      return Status::FromErrno("open " + w->tmp_, err);
    }
    return w;
  }
  ~LedgerWriter() {
    if (f_ != nullptr) {
      ::fclose(f_);
      ::unlink(tmp_.c_str());
    }
  }
  Status Write(const nlohmann::json& line) {
    std::string text = line.dump() + "\n";
    if (::fwrite(text.data(), 1, text.size(), f_) != text.size()) {
      return Status::FromErrno("write " + tmp_, errno);
    }
    ++lines_;
    return Status::OK();
  }
  Status Commit(FileSystem* fs) {
    if (::fflush(f_) != 0 || ::fsync(::fileno(f_)) != 0) {
      return Status::FromErrno("flush " + tmp_, errno);
    }
    ::fclose(f_);
    f_ = nullptr;
    BACKSTOP_RETURN_IF_ERROR(fs->Rename(tmp_, path_));
    return fs->SyncDir(Dirname(path_));
  }
  uint64_t lines() const { return lines_; }

 private:
  LedgerWriter() = default;
  std::string path_, tmp_;
  FILE* f_ = nullptr;
  uint64_t lines_ = 0;
};

}  // namespace backstop::nats

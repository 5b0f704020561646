// RemoveOnExit: removes a file when it goes out of scope, unless dismissed —
// for partial writes (a temp file, a download, a decryption) that must not
// outlive a failure. Errors of the removal are ignored: it is cleanup.
//
// Ownership: borrows `fs`, which must outlive it. Thread-safety: one owner.
#pragma once

#include <string>
#include <utility>

#include "base/env.h"

namespace backstop {

class RemoveOnExit {
 public:
  RemoveOnExit(FileSystem* fs, std::string path) : fs_(fs), path_(std::move(path)) {}
  ~RemoveOnExit() {
    if (!path_.empty()) (void)fs_->Remove(path_);
  }
  RemoveOnExit(const RemoveOnExit&) = delete;
  RemoveOnExit& operator=(const RemoveOnExit&) = delete;
  // Keeps the file (it was renamed into place, or is the result).
  void Dismiss() { path_.clear(); }

 private:
  FileSystem* fs_;
  std::string path_;
};

}  // namespace backstop

// The state dir (<state_dir>, by default .backstop beside the spec): where
// Backstop keeps its journal database, the store, ledgers, manifests, pid
// records and service logs. It holds full database dumps, so it is private to
// the user Backstop runs as: folders 0700, files 0600 (blobs 0400).
//
// OpenStateDir is called once by every command that opens an environment,
// before anything else reads or writes there. It creates the folder 0700 and
// walks it once (and the store, when the spec puts it elsewhere), removing
// the group and other permission bits that an older Backstop or a loose umask
// left behind. Links met on the walk are neither followed nor changed.
//
// Thread-safety: call it before other threads use the state dir.
#pragma once

#include <cstdint>
#include <string>

#include "base/env.h"
#include "base/status.h"

namespace backstop {

struct StateDirReport {
  uint64_t tightened = 0;  // files and folders whose permissions were narrowed
  // "tightened permissions of 12 files under /srv/.backstop", or empty when
  // nothing had to change.
  std::string Message() const;
  std::string state_dir;
};

// Creates (0700) and tightens `state_dir`, and `store_path` when it lies
// outside it. FailedPrecondition when either is a symbolic link: Backstop
// does not keep its state behind a link it did not create.
Result<StateDirReport> OpenStateDir(Env* env, const std::string& state_dir,
                                    const std::string& store_path);

// The walk alone: removes the group and other bits of every file and folder
// under `root` (never widening anything); returns how many it changed. Links
// are skipped.
Result<uint64_t> TightenTree(FileSystem* fs, const std::string& root);

}  // namespace backstop

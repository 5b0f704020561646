// The release tree: what a `process` restore point holds of a release
// directory. Snapshot captures the directory into the store (every file as a
// blob, and a JSON blob listing every entry: path, type file/dir/symlink,
// mode, size, sha256 or symlink target); Restore makes the directory equal a
// stored tree again, rebuilding it next to its place and keeping the replaced
// one aside; VerifyRestored compares the live directory with the tree.
//
// Ownership: the functions borrow the FileSystem and the Store.
// Thread-safety: the functions are safe to call from any thread on
// different release directories.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/env.h"
#include "base/status.h"
#include "drivers/driver.h"
#include "drivers/process/process_settings.h"
#include "store/store.h"

namespace backstop::process {

struct TreeEntry {
  std::string path;  // relative to the release directory
  std::string type;  // file | dir | symlink
  uint32_t mode = 0;
  uint64_t size = 0;
  std::string sha256;  // files
  std::string target;  // symlinks
};

struct Tree {
  uint32_t root_mode = 0755;
  std::vector<TreeEntry> entries;  // sorted by path
};

// Scans `dir` recursively; `digest_of` gives the sha256 of a regular file
// (stored in the Store while snapshotting, only hashed while comparing).
// Entries that are no file, directory or symlink are skipped, told to `warn`.
Result<Tree> ScanTree(FileSystem* fs, const std::string& dir,
                      const std::function<Result<std::string>(const std::string&)>& digest_of,
                      const ProgressFn& warn);

// The tree blob's JSON text form, and back (Corruption for a bad one).
nlohmann::json TreeToJson(const std::string& release, const Tree& t);
Result<Tree> TreeFromJson(const std::string& text);

// The first difference between the live directory and the tree ("" if equal).
Result<std::string> DiffTree(FileSystem* fs, const std::string& dir, const Tree& want);

// Builds the tree into `dest` (which must not exist) from the store.
Status BuildTree(FileSystem* fs, Store* store, const Tree& t, const std::string& dest);

// The stored tree (its digest) `release` must be made equal to: the entry's
// own; for an entry that names only a release (`--to v1`, the history) whose
// directory is missing, the newest intact restore point holding this service
// at that release. nullopt: the directory is used as it is. NotFound when the
// directory is missing and nothing can rebuild it.
Result<std::optional<std::string>> TreeToRebuildFrom(const Settings& s, const nlohmann::json& entry,
                                                     const std::string& release,
                                                     DriverContext& ctx);

// FailedPrecondition naming the blobs of the tree that the store lacks.
Status CheckTreeBlobs(const Settings& s, const std::string& release, const std::string& tree_digest,
                      Store* store);

// Makes <releases>/<release> equal the stored tree, rebuilding it when it is
// missing or differs. The replaced directory is kept aside, never deleted.
// Idempotent.
Status RestoreReleaseDir(const Settings& s, const std::string& release,
                         const std::string& tree_digest, DriverContext& ctx);

}  // namespace backstop::process

// POSIX files for the real Env: WritableFile and SequentialFile over file
// descriptors, and the helpers every POSIX file operation of env_posix.cc
// shares. Only the base/ files that implement FileSystem include this.
//
// Thread-safety: the functions are safe from any thread; the files they
// return are not (see env.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/env.h"
#include "base/status.h"

namespace backstop {

// The error for a symbolic link where Backstop expects its own file.
Status SymlinkRefused(const std::string& path);

// A fresh sibling name for a temporary file: "<path>.tmp-<pid>-<n>".
std::string TempNameFor(const std::string& path);

// Opens `path` for writing as FileSystem::NewWritableFile describes.
Result<std::unique_ptr<WritableFile>> NewPosixWritableFile(const std::string& path, uint32_t mode,
                                                           WriteMode how);

// Opens `path` for reading. `follow_links`: whether a symbolic link at
// `path` itself is read through (FileSystem::ReadFile) or refused.
Result<std::unique_ptr<SequentialFile>> NewPosixSequentialFile(const std::string& path,
                                                               bool follow_links);

}  // namespace backstop

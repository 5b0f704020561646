// The files the `nats` driver keeps beside the store: its component
// directory (<state_dir>/components/<name>/), the work directory where
// stream snapshots pass on their way into and out of the store, temporary
// files removed on scope exit, and small JSON state files (the health state,
// the saved record of a run) written atomically.
//
// Thread-safety: the functions are safe to call from any thread; a TempFile
// is used by one thread.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "base/env.h"
#include "base/status.h"
#include "drivers/driver.h"

namespace backstop::nats {

// Removes a temporary file when it goes out of scope.
class TempFile {
 public:
  TempFile(FileSystem* fs, std::string path) : fs_(fs), path_(std::move(path)) {}
  ~TempFile() { (void)fs_->Remove(path_); }
  const std::string& path() const { return path_; }

 private:
  FileSystem* fs_;
  std::string path_;
};

std::string ComponentDir(const DriverContext& ctx, const std::string& component);

// A directory for snapshot files in transit (kept out of the run directory).
Result<std::string> WorkDir(const DriverContext& ctx, const std::string& component);

std::string TempName(const std::string& dir, const std::string& stream, const char* what);

// A JSONL file written through a temporary name and renamed into place when

// --- Health state -----------------------------------------------------------------

std::string HealthStatePath(const DriverContext& ctx, const std::string& component);

nlohmann::json LoadJsonFile(FileSystem* fs, const std::string& path);

Status SaveJsonFile(FileSystem* fs, const std::string& path, const nlohmann::json& j);

}  // namespace backstop::nats

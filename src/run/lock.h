// EnvironmentLock: one run at a time per environment.
//
// An exclusive flock() on <state_dir>/lock, held for the life of the object.
// The kernel releases it when the holder dies, even by kill -9, so a crashed
// run never leaves a stale lock; what it leaves is an unfinished run in the
// state database, which `backstop status` reports and `--resume` completes.
// The holder writes who it is (run id, pid, command, start time) into the lock
// file so a refused caller can say which run holds it.
//
// The descriptor is close-on-exec: services started by the holder do not
// inherit (and so never prolong) the lock.
// Thread-safety: not thread-safe; one object per process.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "base/env.h"
#include "base/status.h"

namespace backstop {

class StateDb;

class EnvironmentLock {
 public:
  // Takes the lock without waiting. On contention returns Aborted naming the
  // holder: "run run-… (pid 123, `backstop rollback --all`, since …) holds the lock".
  // `holder` is recorded for others to read: {"run_id", "command", "pid", "since"}.
  static Result<std::unique_ptr<EnvironmentLock>> Acquire(Env* env, const std::string& state_dir,
                                                          nlohmann::json holder);
  ~EnvironmentLock();
  EnvironmentLock(const EnvironmentLock&) = delete;
  EnvironmentLock& operator=(const EnvironmentLock&) = delete;

  // Updates the holder record (e.g. once the run id is known).
  Status UpdateHolder(nlohmann::json holder);

  // The current holder, if the lock is held by another process; null otherwise.
  static nlohmann::json CurrentHolder(const std::string& state_dir);

 private:
  EnvironmentLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
};

// The lock for the watch daemon's own upkeep (a scheduled restore point, a
// retired slot), which must never come between a run and its resume:
// Aborted when another process holds the lock or a run in `db` is
// unfinished (naming it); another error when `db` cannot be read.
Result<std::unique_ptr<EnvironmentLock>> AcquireBetweenRuns(Env* env, const std::string& state_dir,
                                                            StateDb& db, nlohmann::json holder);

}  // namespace backstop

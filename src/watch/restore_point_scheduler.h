// Scheduled restore points: `backstop watch` takes a restore point of the
// whole environment every `restore_points.every` of the spec (labelled
// "scheduled"), never while a run is active: one that falls due during a run
// is taken when the run ends. After each one the spec's retention
// (restore_points.keep) is applied to the restore points, as `backstop
// prune` would (what runs kept aside is left to prune). Each outcome is
// logged and appended to the event journal (restore_point.taken / failed).
//
// The schedule follows the wall clock from the newest scheduled restore point
// in the store, so that a daemon restarted more often than `every` still
// takes them; with none yet, the first is due at once.
//
// The snapshot runs on a thread of its own (a database dump takes a while;
// the daemon's control thread must keep judging samples), under the
// environment lock: a run started by someone else meanwhile waits for the
// lock to be free like any other.
//
// Ownership: borrows what its constructor is given (they must outlive it);
// owns its thread, joined by the destructor. Thread-safety: Tick and the
// destructor on one thread (the daemon's control thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "base/env.h"
#include "base/status.h"
#include "drivers/driver.h"
#include "spec/spec.h"
#include "watch/watch_logger.h"

namespace backstop {

// What one attempt came to.
struct ScheduledAttempt {
  enum class Result { kTaken, kFailed, kBusy };  // kBusy: a run holds the environment
  Result result = Result::kFailed;
  std::string restore_point;  // the id, when taken
  std::string detail;         // why it failed or waited
};

class RestorePointScheduler {
 public:
  using TakeFn = std::function<ScheduledAttempt()>;

  // `last_taken_wall_us`: when the newest scheduled restore point was taken (0: never).
  RestorePointScheduler(Env* env, int64_t every_ms, int64_t last_taken_wall_us, TakeFn take);
  ~RestorePointScheduler();
  RestorePointScheduler(const RestorePointScheduler&) = delete;
  RestorePointScheduler& operator=(const RestorePointScheduler&) = delete;

  // Called often by the daemon's loop: reaps a finished attempt; starts one
  // when due and no run is active. An attempt that found the environment
  // busy is retried on the next Tick; a taken or failed one sets the next due
  // time `every` later.
  void Tick(bool run_active);
  // Whether an attempt is running now.
  bool busy() const { return thread_.joinable(); }
  int64_t next_due_wall_us() const { return next_due_wall_us_; }
  // Blocks until a running attempt ends, then reaps it (tests, shutdown).
  void Wait();

 private:
  void Reap(bool block);

  Env* env_;
  int64_t every_us_;
  int64_t next_due_wall_us_;
  TakeFn take_;
  std::thread thread_;
  std::atomic<bool> done_{false};
  ScheduledAttempt attempt_;  // written by the thread before done_, read after
};

// The wall time of the newest restore point of kind "scheduled" in the
// environment's store (0 when none or the store cannot be read).
int64_t NewestScheduledRestorePoint(Env* env, const Spec& spec);

// The real attempt: opens the store and state database, takes the lock
// (busy when held or a run is unfinished), takes a restore point of every
// component (label and kind "scheduled"), journals it, applies the spec's
// retention, and logs each outcome.
ScheduledAttempt TakeScheduledRestorePoint(Env* env, const Spec& spec,
                                           const DriverRegistry& registry, WatchLogger* log);

}  // namespace backstop

// Retiring previous slots: a blue/green service (spec.h ServiceTrafficSpec)
// keeps the release it replaced running in its other slot for
// `keep_previous`, so that a rollback in that window is a switch back. Once
// the window has ended nothing will switch back to it (a rollback then starts
// the release afresh), and `backstop watch` stops it: the slot's process or
// container would otherwise run, unused, until the next deploy.
//
// The daemon checks every kSlotRetireCheckEveryMs, never while a run is
// active. A check that finds an expired slot takes the environment lock (a
// run started meanwhile waits for it, as for any run), re-reads the slot
// record under it, stops the slot through its driver, clears `previous` in
// the record, logs it and journals it (slot.retired). A check that finds the
// environment busy (the lock held, a run unfinished) is retried on the next
// tick; a failed stop is retried after kSlotRetireRetryAfterMs.
//
// The stop runs on a thread of its own (a slot's stop_timeout can be long;
// the daemon's control thread must keep judging samples).
//
// Ownership: borrows what its constructor is given (they must outlive it);
// owns its thread, joined by Wait and the destructor. Thread-safety: Tick,
// Wait, last and the destructor on one thread (the daemon's control thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "base/env.h"
#include "drivers/driver.h"
#include "spec/spec.h"
#include "watch/watch_logger.h"

namespace backstop {

inline constexpr int64_t kSlotRetireCheckEveryMs = 2000;
inline constexpr int64_t kSlotRetireRetryAfterMs = 60'000;

// What one check came to.
struct SlotRetireAttempt {
  enum class Result {
    kNothing,  // no previous slot past its keep_previous
    kRetired,  // every expired one was stopped
    kBusy,     // a run holds the environment: check again at once
    kFailed,   // the state could not be read or a stop failed
  };
  Result result = Result::kNothing;
  std::vector<std::string> retired;  // "<component> <slot>", in spec order
  std::string detail;                // why it failed or waited
};

class SlotRetirer {
 public:
  using RetireFn = std::function<SlotRetireAttempt()>;

  SlotRetirer(Env* env, RetireFn retire);
  ~SlotRetirer();
  SlotRetirer(const SlotRetirer&) = delete;
  SlotRetirer& operator=(const SlotRetirer&) = delete;

  // Called often by the daemon's loop: reaps a finished check; starts one
  // when due and no run is active.
  void Tick(bool run_active);
  // Blocks until a running check ends, then reaps it (tests, shutdown).
  void Wait();
  // The last check reaped.
  const SlotRetireAttempt& last() const { return last_; }

 private:
  void Reap(bool block);

  Env* env_;
  RetireFn retire_;
  int64_t next_due_us_ = 0;  // monotonic clock
  std::thread thread_;
  std::atomic<bool> done_{false};
  SlotRetireAttempt attempt_;  // written by the thread before done_, read after
  SlotRetireAttempt last_;
};

// Whether the spec has a blue/green service (the daemon needs no retirer otherwise).
bool HasBlueGreenServices(const Spec& spec);

// The real check: for each blue/green service whose previous slot is past
// its keep_previous, under the environment lock, stops it (registry's
// driver), clears it from the slot record, logs it and journals slot.retired.
SlotRetireAttempt RetireExpiredSlots(Env* env, const Spec& spec, const DriverRegistry& registry,
                                     WatchLogger* log);

}  // namespace backstop

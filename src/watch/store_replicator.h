// Background replication: `backstop watch` copies restore points to the
// spec's remote store (store.url or store.replicate_to; store/remote/remote_store.h)
// off the critical path. A snapshot returns once the local store has it; the
// daemon then notices restore points this host has not replicated (local
// markers: no request while there is nothing to do), uploads them on a
// thread of its own, and logs the progress and the outcome.
//
// Checks every kReplicateCheckEveryMs, never while a run is active (a
// rollback must not share the disk and the network with an upload). A
// failed upload is retried with exponential backoff (30 s doubling to 10
// min); what was uploaded before the failure is not sent again.
//
// Ownership: borrows what its constructor is given; owns its thread, joined
// by Wait and the destructor. Thread-safety: Tick, Wait, last and the
// destructor on one thread (the daemon's control thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "base/env.h"
#include "spec/spec.h"
#include "watch/watch_logger.h"

namespace backstop {

inline constexpr int64_t kReplicateCheckEveryMs = 10'000;
inline constexpr int64_t kReplicateFirstRetryMs = 30'000;
inline constexpr int64_t kReplicateMaxRetryMs = 600'000;

struct ReplicateAttempt {
  enum class Result { kNothing, kReplicated, kFailed };
  Result result = Result::kNothing;
  std::vector<std::string> uploaded;
  std::string detail;  // why it failed
};

class StoreReplicator {
 public:
  using ReplicateFn = std::function<ReplicateAttempt()>;

  StoreReplicator(Env* env, ReplicateFn replicate);
  ~StoreReplicator();
  StoreReplicator(const StoreReplicator&) = delete;
  StoreReplicator& operator=(const StoreReplicator&) = delete;

  void Tick(bool run_active);
  void Wait();
  const ReplicateAttempt& last() const { return last_; }
  // Failed attempts in a row (0 after a success).
  int failures() const { return failures_; }

 private:
  void Reap(bool block);

  Env* env_;
  ReplicateFn replicate_;
  int64_t next_due_us_ = 0;  // monotonic clock
  int failures_ = 0;
  std::thread thread_;
  std::atomic<bool> done_{false};
  ReplicateAttempt attempt_;  // written by the thread before done_, read after
  ReplicateAttempt last_;
};

// The real attempt: opens the local store, and when it holds restore points
// not yet replicated, the remote store; uploads them and logs each one.
ReplicateAttempt ReplicateRestorePoints(Env* env, const Spec& spec, WatchLogger* log);

}  // namespace backstop

// Mutex, MutexLock and CondVar: std::mutex and std::condition_variable_any
// with the capability annotations of base/thread_annotations.h, so that a
// clang build with -Wthread-safety checks every GUARDED_BY member.
//
// CondVar waits release and re-take the mutex; callers loop on their
// condition (`while (!ready_) cv_.Wait(&mu_);`) so that the analysis sees
// the guarded reads under the lock (it does not look into lambdas).
//
// Thread-safety: as std::mutex and std::condition_variable_any.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "base/thread_annotations.h"

namespace backstop {

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  // For the analysis only: states that the caller holds the mutex.
  void AssertHeld() ASSERT_CAPABILITY(this) {}

  // BasicLockable, for CondVar.
  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

// Holds `mu` for the scope.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

class CondVar {
 public:
  // REQUIRES: `mu` held; held again on return.
  void Wait(Mutex* mu) REQUIRES(mu) { cv_.wait(*mu); }
  // Returns false when `deadline` passed (spurious wake-ups return true).
  bool WaitUntil(Mutex* mu, std::chrono::steady_clock::time_point deadline) REQUIRES(mu) {
    return cv_.wait_until(*mu, deadline) == std::cv_status::no_timeout;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable_any cv_;
};

}  // namespace backstop

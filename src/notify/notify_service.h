// Where notifications are sent from: NotifyService, the deliverer thread of
// `backstop watch`, and DeliverRunNotifications, the short bounded attempt a
// command that ran a rollback makes at its end (what is left stays queued for
// the next `backstop watch` or command).
//
// Neither ever blocks, delays or fails a run or the watch loop: the service
// has its own thread and its own state database connection; a command's
// attempt starts only once its run is finished and recorded.
//
// Ownership: NotifyService borrows the Env and Spec (they must outlive it).
// Thread-safety: Start and Stop from one thread; Wake from any.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "base/env.h"
#include "base/mutex.h"
#include "base/status.h"
#include "notify/notifier.h"
#include "notify/transport.h"
#include "run/state_db.h"
#include "spec/spec.h"

namespace backstop {

class NotifyService {
 public:
  NotifyService(Env* env, const Spec& spec, NotifyLog log, NotifyOptions options = {});
  ~NotifyService();  // Stop()s
  NotifyService(const NotifyService&) = delete;
  NotifyService& operator=(const NotifyService&) = delete;

  // Opens its own state database connection and starts the thread, which
  // feeds and delivers at once, when woken and every `poll_ms`. Nothing to
  // do (and OK) when the spec has no notify targets. While it runs, it is the
  // process's deliverer: DeliverRunNotifications only wakes it.
  Status Start(int64_t poll_ms = 1000);
  // Stops the thread after the attempt in flight (bounded by its timeouts).
  void Stop();
  void Wake();

 private:
  void Loop(int64_t poll_ms);

  Env* env_;
  const Spec& spec_;
  NotifyLog log_;
  NotifyOptions options_;
  std::unique_ptr<CurlTransport> transport_;
  std::unique_ptr<StateDb> db_;  // the thread's
  std::thread thread_;
  Mutex mu_;
  CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  bool woken_ GUARDED_BY(mu_) = false;
};

// After a command's run: queues the journal's new events (from the run's
// first event, for targets seen for the first time) and tries to deliver what
// is due for at most `budget_ms`. When a NotifyService runs in this process,
// it only wakes it. Failures are logged, never returned.
void DeliverRunNotifications(Env* env, const Spec& spec, StateDb& db, const std::string& run_id,
                             const NotifyLog& log, int64_t budget_ms = 5'000);

// Sets the run engine's run-ended hook (run/run.h, AddRunEndedHook) so that
// every run this process ends is followed by DeliverRunNotifications, its
// lines written to stderr.
// REQUIRES: called at program start, before any run.
void InstallRunNotifier();

}  // namespace backstop

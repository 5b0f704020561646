// Where notifications are sent from: NotifyService, the deliverer threads of
// `backstop watch`, and DeliverRunNotifications, the short bounded attempt a
// command that ran a rollback makes at its end (what is left stays queued for
// the next `backstop watch` or command).
//
// Neither ever blocks, delays or fails a run or the watch loop: the service
// has its own threads, each with its own state database connection; a
// command's attempt starts only once its run is finished and recorded.
//
// The service's threads: one feeder that queues the journal's new events
// (Notifier::Feed), and one deliverer per notify target that makes the
// attempts due for that target only. A receiver that hangs holds up its own
// target's queue, never another's; each attempt is bounded by the
// transport's timeouts (NotifyOptions).
//
// Ownership: NotifyService borrows the Env and Spec (they must outlive it).
// Thread-safety: Start and Stop from one thread; Wake from any.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

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

  // Opens the threads' state database connections and starts them: the
  // feeder feeds when woken and every `poll_ms`, and wakes the deliverers,
  // which deliver what is due for their target then and every `poll_ms`.
  // Nothing to do (and OK) when the spec has no notify targets. While it
  // runs, it is the process's deliverer: DeliverRunNotifications only wakes it.
  // `transport` (for tests; null: each deliverer its own libcurl and command
  // runner) must outlive the service and take calls from several threads.
  Status Start(int64_t poll_ms = 1000, Transport* transport = nullptr);
  // Stops the threads after the attempts in flight (bounded by their timeouts).
  void Stop();
  void Wake();

 private:
  // One target's deliverer.
  struct Deliverer {
    std::string target;
    std::unique_ptr<StateDb> db;  // the thread's
    std::unique_ptr<CurlTransport> own_transport;
    Transport* transport = nullptr;
    std::thread thread;
  };
  void FeedLoop(int64_t poll_ms) EXCLUDES(mu_);
  void DeliverLoop(Deliverer* deliverer, int64_t poll_ms) EXCLUDES(mu_);

  Env* env_;
  const Spec& spec_;
  NotifyLog log_;
  NotifyOptions options_;
  std::unique_ptr<StateDb> db_;  // the feeder's
  std::thread feeder_;
  std::vector<std::unique_ptr<Deliverer>> deliverers_;
  Mutex mu_;
  CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  bool woken_ GUARDED_BY(mu_) = false;
  uint64_t fed_ GUARDED_BY(mu_) = 0;  // feeds done: a deliverer looks again after each
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

// Notifier: feeds the notification queue (the state database's `deliveries`
// table) from the event journal and sends what is due, once per attempt.
//
// Feeding: each notify target has a cursor in the journal (kv
// "notify.cursor.<target>"); events after it that the target wants are
// queued, then the cursor moves. Queueing is idempotent (an event is queued
// once per target), so a crash between the two only queues nothing twice. A
// target seen for the first time starts at `first_event_id` (the CLI: its
// run's first event), else at the journal's end: a new target is not told
// of the past.
//
// Delivery: every due row gets one attempt; its outcome (delivered, or the
// next attempt's time after exponential backoff with jitter, or given up
// after the last attempt) is written in one statement with the attempt, so a
// delivered notification is never sent again after a restart. Receivers see
// each event at least once; the event id header lets them drop the rare
// duplicate (a crash between a 2xx answer and that write).
//
// Secrets: URLs and signing keys are never logged; errors name the target.
// Ownership: borrows the Env, Spec and Transport (null for a Notifier that
// only feeds). Thread-safety: one thread;
// the StateDb passed in is that thread's connection.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/env.h"
#include "base/status.h"
#include "notify/retry.h"
#include "notify/transport.h"
#include "run/state_db.h"
#include "spec/spec.h"

namespace backstop {

// A line in Backstop's log: `level` is info | warn | error.
using NotifyLog = std::function<void(const std::string& level, const std::string& line)>;

struct NotifyOptions {
  RetryPolicy retry;
  int64_t connect_timeout_ms = 5'000;
  int64_t total_timeout_ms = 10'000;  // also a command's
  // In [0, 1): the jitter's random draw (tests fix it).
  std::function<double()> random01;
};

class Notifier {
 public:
  Notifier(Env* env, const Spec& spec, Transport* transport, NotifyLog log,
           NotifyOptions options = {});

  bool has_targets() const { return !spec_.notify.empty(); }

  // Queues the events journaled since the last Feed for every target that
  // wants them. `first_event_id` (> 0): where a target without a cursor starts.
  Status Feed(StateDb& db, int64_t first_event_id = 0);

  // One attempt for each due notification, oldest first; returns how many
  // attempts were made. With `deadline_us` (monotonic, > 0) no attempt starts
  // after it and none lasts beyond it by more than its timeouts allow. With
  // `target`, only that target's notifications (one deliverer per target:
  // a slow receiver holds up no other).
  Result<int> DeliverDue(StateDb& db, int64_t deadline_us = 0, const std::string& target = "");

 private:
  const NotifySpec* Target(const std::string& name) const;
  Status Send(const NotifySpec& target, const Event& event, int64_t deadline_us);

  Env* env_;
  const Spec& spec_;
  Transport* transport_;
  NotifyLog log_;
  NotifyOptions options_;
};

}  // namespace backstop

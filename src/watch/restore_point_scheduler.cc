#include "watch/restore_point_scheduler.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "base/output.h"
#include "run/event.h"
#include "run/lock.h"
#include "run/prune.h"
#include "run/retention.h"
#include "run/run.h"
#include "run/state_db.h"
#include "store/restore_point.h"
#include "store/store.h"

namespace backstop {

RestorePointScheduler::RestorePointScheduler(Env* env, int64_t every_ms, int64_t last_taken_wall_us,
                                             TakeFn take)
    : env_(env),
      every_us_(every_ms * 1000),
      next_due_wall_us_(last_taken_wall_us > 0 ? last_taken_wall_us + every_ms * 1000 : 0),
      take_(std::move(take)) {}

RestorePointScheduler::~RestorePointScheduler() {
  if (thread_.joinable()) thread_.join();
}

void RestorePointScheduler::Reap(bool block) {
  if (!thread_.joinable() || (!block && !done_.load())) return;
  thread_.join();
  done_ = false;
  // Busy: someone else's run holds the environment; try again next tick.
  if (attempt_.result != ScheduledAttempt::Result::kBusy) {
    next_due_wall_us_ = env_->clock()->WallMicros() + every_us_;
  }
}

void RestorePointScheduler::Wait() { Reap(/*block=*/true); }

void RestorePointScheduler::Tick(bool run_active) {
  Reap(/*block=*/false);
  if (thread_.joinable() || run_active) return;
  if (env_->clock()->WallMicros() < next_due_wall_us_) return;
  done_ = false;
  thread_ = std::thread([this] {
    attempt_ = take_();
    done_ = true;
  });
}

int64_t NewestScheduledRestorePoint(Env* env, const Spec& spec) {
  auto store = Store::Open(env, spec.store_path);
  if (!store.ok()) return 0;
  std::vector<std::string> errors;
  int64_t newest = 0;
  for (const auto& rp : ListRestorePoints(**store, &errors)) {
    if (rp.kind == RestorePointKind::kScheduled) newest = std::max(newest, rp.created_wall_us);
  }
  return newest;
}

ScheduledAttempt TakeScheduledRestorePoint(Env* env, const Spec& spec,
                                           const DriverRegistry& registry, WatchLogger* log) {
  ScheduledAttempt attempt;
  auto db = StateDb::Open(JoinPath(spec.state_dir, "state.db"));
  if (!db.ok()) {
    attempt.detail = db.status().message();
    log->Error("scheduled restore point failed", {{"why", attempt.detail}});
    return attempt;
  }
  auto journal = [&](EventKind kind, const std::string& message) {
    Event event;
    event.at_us = env->clock()->WallMicros();
    event.kind = kind;
    event.message = message;
    event.detail = {{"label", "scheduled"}};
    if (!attempt.restore_point.empty()) event.detail["restore_point"] = attempt.restore_point;
    (void)(*db)->AppendEvent(event);
  };
  auto fail = [&](const std::string& why) {
    attempt.result = ScheduledAttempt::Result::kFailed;
    attempt.detail = why;
    log->Error("scheduled restore point failed", {{"why", why}});
    journal(EventKind::kRestorePointFailed, "scheduled restore point failed: " + why);
    return attempt;
  };
  // An interrupted run must be resumed or abandoned first: the environment
  // is between two states, not worth a restore point.
  auto lock = AcquireBetweenRuns(env, spec.state_dir, **db, {{"command", "backstop watch"}});
  if (!lock.ok()) {
    if (lock.status().code() != Status::Code::kAborted) return fail(lock.status().message());
    attempt.result = ScheduledAttempt::Result::kBusy;
    attempt.detail = lock.status().message();
    return attempt;
  }
  auto store = Store::Open(env, spec.store_path);
  if (!store.ok()) return fail(store.status().message());
  // The engine's progress lines are not wanted in the daemon's log.
  FILE* devnull = std::fopen("/dev/null", "w");
  if (devnull == nullptr) return fail("cannot open /dev/null");
  Output output(false, devnull, devnull);
  Status outcome;
  {
    RunEngine engine(env, spec, **store, **db, registry, output);
    auto rp = TakeRestorePoint(engine, spec, **store, {}, "scheduled", RestorePointKind::kScheduled,
                               "", "");
    if (!rp.ok()) {
      std::fclose(devnull);
      return fail(rp.status().message());
    }
    (void)(*store)->FlushCache();
    attempt.result = ScheduledAttempt::Result::kTaken;
    attempt.restore_point = rp->id;
    log->Info("scheduled restore point taken", {{"restore_point", rp->id}});
    journal(EventKind::kRestorePointTaken, "scheduled restore point " + rp->id + " taken");
    if (!spec.restore_points.keep.empty()) {
      PruneOptions options;
      options.keep = spec.restore_points.keep;
      options.restore_points_only = true;
      auto pruned = PruneEnvironment(engine, spec, **store, **db, options);
      if (!pruned.ok()) {
        log->Warn("retention not applied", {{"why", pruned.status().message()}});
      } else {
        for (const auto& a : pruned->actions) {
          log->Info("retention: " + a, {{"keep", DescribeKeepPolicy(options.keep)}});
        }
        for (const auto& e : pruned->errors) log->Warn("retention: " + e);
      }
    }
  }
  std::fclose(devnull);
  return attempt;
}

}  // namespace backstop

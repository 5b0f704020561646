#include "watch/slot_retirer.h"

#include <algorithm>

#include "base/units.h"
#include "drivers/slot.h"
#include "run/event.h"
#include "run/lock.h"
#include "run/slot_state.h"
#include "run/state_db.h"
#include "store/store.h"

namespace backstop {

SlotRetirer::SlotRetirer(Env* env, RetireFn retire) : env_(env), retire_(std::move(retire)) {}

SlotRetirer::~SlotRetirer() {
  if (thread_.joinable()) thread_.join();
}

void SlotRetirer::Reap(bool block) {
  if (!thread_.joinable() || (!block && !done_.load())) return;
  thread_.join();
  done_ = false;
  last_ = attempt_;
  const int64_t now = env_->clock()->NowMicros();
  switch (last_.result) {
    case SlotRetireAttempt::Result::kBusy:  // someone else's run: check again next tick
      next_due_us_ = now;
      break;
    case SlotRetireAttempt::Result::kFailed:  // not every two seconds in the log
      next_due_us_ = now + kSlotRetireRetryAfterMs * 1000;
      break;
    default:
      next_due_us_ = now + kSlotRetireCheckEveryMs * 1000;
  }
}

void SlotRetirer::Wait() { Reap(/*block=*/true); }

void SlotRetirer::Tick(bool run_active) {
  Reap(/*block=*/false);
  if (thread_.joinable() || run_active) return;
  if (env_->clock()->NowMicros() < next_due_us_) return;
  done_ = false;
  thread_ = std::thread([this] {
    attempt_ = retire_();
    done_ = true;
  });
}

bool HasBlueGreenServices(const Spec& spec) {
  return std::any_of(spec.components.begin(), spec.components.end(),
                     [](const auto& entry) { return entry.second.traffic.has_value(); });
}

namespace {

// The blue/green services whose previous slot is past keep_previous at `now_us`.
Result<std::vector<const ComponentSpec*>> ExpiredSlots(const Spec& spec, StateDb& db,
                                                       int64_t now_us) {
  std::vector<const ComponentSpec*> expired;
  for (const auto& name : spec.component_order) {
    const ComponentSpec* c = spec.Find(name);
    if (!c->traffic) continue;
    BACKSTOP_ASSIGN_OR_RETURN(SlotRecord record, ReadSlotRecord(db, name));
    if (record.previous && !record.PreviousKept(now_us)) expired.push_back(c);
  }
  return expired;
}

}  // namespace

SlotRetireAttempt RetireExpiredSlots(Env* env, const Spec& spec, const DriverRegistry& registry,
                                     WatchLogger* log) {
  SlotRetireAttempt attempt;
  auto fail = [&](const std::string& why) {
    attempt.result = SlotRetireAttempt::Result::kFailed;
    attempt.detail = why;
    log->Error("previous slot not retired", {{"why", why}});
    return attempt;
  };
  auto db = StateDb::Open(JoinPath(spec.state_dir, "state.db"));
  if (!db.ok()) return fail(db.status().message());
  // A first look without the lock: most checks find nothing to do, and must
  // not get in the way of a run starting.
  auto expired = ExpiredSlots(spec, **db, env->clock()->WallMicros());
  if (!expired.ok()) return fail(expired.status().message());
  if (expired->empty()) return attempt;

  // Not during an unfinished run either: its resume may switch back to the slot.
  auto lock = AcquireBetweenRuns(env, spec.state_dir, **db,
                                 {{"command", "backstop watch (keep_previous ended)"}});
  if (!lock.ok()) {
    if (lock.status().code() != Status::Code::kAborted) return fail(lock.status().message());
    attempt.result = SlotRetireAttempt::Result::kBusy;
    attempt.detail = lock.status().message();
    return attempt;
  }
  auto store = Store::Open(env, spec.store_path);
  if (!store.ok()) return fail(store.status().message());
  DriverContext ctx(*env);
  ctx.store = store->get();
  ctx.spec = &spec;
  ctx.state_dir = spec.state_dir;

  std::string failures;
  for (const ComponentSpec* c : *expired) {
    // Read again under the lock: a run may have switched since the first look.
    auto record = ReadSlotRecord(**db, c->name);
    if (!record.ok()) {
      failures += (failures.empty() ? "" : "; ") + record.status().message();
      continue;
    }
    const int64_t now_us = env->clock()->WallMicros();
    if (!record->previous || record->PreviousKept(now_us)) continue;
    const Slot slot = *record->previous;
    const std::string release = record->previous_release;
    const int port = SlotPort(*c, slot);
    // A previous slot that is also the live one (a record no switch writes,
    // but one never stops what serves traffic) only loses its mark, and
    // nothing is said to have stopped.
    const bool serving = record->live == slot;
    Status stopped = Status::OK();
    if (!serving) {
      auto driver = registry.Create(c->driver);
      stopped = driver.ok() ? (*driver)->StopSlot(*c, slot, ctx) : driver.status();
    }
    if (stopped.ok()) {
      record->previous.reset();
      record->previous_release.clear();
      record->keep_until_us = 0;
      stopped = WriteSlotRecord(**db, c->name, *record);
    }
    if (!stopped.ok()) {
      failures += (failures.empty() ? "" : "; ") + c->name + ": " + stopped.message();
      continue;
    }
    if (serving) continue;
    const std::string slot_name(Name(slot));
    attempt.retired.push_back(c->name + " " + slot_name);
    log->Info("previous slot retired",
              {{"component", c->name},
               {"slot", slot_name},
               {"release", release},
               {"port", port},
               {"keep_previous", FormatDurationSpec(c->traffic->keep_previous_ms)}});
    Event event;
    event.at_us = now_us;
    event.kind = EventKind::kSlotRetired;
    event.component = c->name;
    event.message = "stopped " + c->name + " release " + release + " in the " + slot_name +
                    " slot (port " + std::to_string(port) + "): keep_previous (" +
                    FormatDurationSpec(c->traffic->keep_previous_ms) + ") ended";
    event.detail = {{"slot", slot_name}, {"release", release}, {"port", port}};
    (void)(*db)->AppendEvent(event);
  }
  if (!failures.empty()) return fail(failures);
  attempt.result = attempt.retired.empty() ? SlotRetireAttempt::Result::kNothing
                                           : SlotRetireAttempt::Result::kRetired;
  return attempt;
}

}  // namespace backstop

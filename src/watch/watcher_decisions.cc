// The Watcher's decisions on firing triggers: the restore point to go back
// to, the decision matrix, the gates, and the triggers held until a gate
// opens. See watch.h.
#include <optional>

#include "base/units.h"
#include "store/restore_point.h"
#include "watch/watch.h"
#include "watch/watch_events.h"
#include "watch/watcher_internal.h"

namespace backstop {
namespace {

// The newest restore point holding `component`, safety ones skipped as
// "latest" skips them: a pre-deploy or post-rollback restore point holds only
// what its run touched, and must not hide an older one of the whole
// environment. With none, "latest" (whose error says what exists).
Result<RestorePoint> NewestRestorePointWith(Store& store, const std::string& component) {
  std::vector<std::string> errors;
  std::vector<RestorePoint> rps = ListRestorePoints(store, &errors);
  for (auto it = rps.rbegin(); it != rps.rend(); ++it) {
    if (it->kind == RestorePointKind::kSafety || !it->components.contains(component)) continue;
    return ResolveRestorePoint(store, it->id);  // refuses a modified manifest
  }
  return ResolveRestorePoint(store, "latest");
}
constexpr size_t kRecentDecisions = 50;

bool IsFallback(const RollbackDecision& d) { return d.act && d.scope == MatrixScope::kFallback; }

}  // namespace

DecisionContext Watcher::BuildDecisionContext(std::vector<TriggerStatus> trigger_states) {
  DecisionContext ctx;
  ctx.trigger_states = std::move(trigger_states);
  AddPresentReleases(
      spec_,
      [&](const ComponentSpec& c) -> Result<nlohmann::json> {
        auto driver = registry_.Create(c.driver);
        if (!driver.ok()) return driver.status();
        DriverContext dctx = DaemonDriverContext();
        return (*driver)->Describe(c, dctx);
      },
      &ctx);
  MutexLock lock(&mu_);
  for (const auto& [name, v] : views_) {
    if (v->has_result && v->reachability_known) ctx.reachable[name] = v->reachable;
  }
  return ctx;
}

void Watcher::HandleFiring(const TriggerEvent& e, bool may_act) {
  DecisionRequest request{e, engine_->States()};
  {
    MutexLock lock(&mu_);
    gate_.Forget(e.trigger, e.component);  // held again when decided, if a gate holds it
    if (may_act) {
      to_decide_.push_back(std::move(request));
      cv_.SignalAll();
      return;
    }
  }
  // --once: decided at once, nothing else waits meanwhile.
  ActOnDecision(PrepareDecision(request, nullptr), /*may_act=*/false);
}

Watcher::PreparedDecision Watcher::PrepareDecision(const DecisionRequest& request,
                                                   StateDb* pause_db) {
  PreparedDecision prepared;
  prepared.event = request.event;
  auto rp = NewestRestorePointWith(*store_, request.event.component);
  if (rp.ok()) {
    prepared.restore_point = std::move(*rp);
  } else {
    prepared.no_restore_point = rp.status().message();
    // A fallback to the spec's standby needs no restore point: decide
    // without one, and keep the decision only if it is that fallback.
    if (!spec_.fallback) return prepared;
  }
  prepared.decision = Decide(request.event, spec_, prepared.restore_point.value_or(RestorePoint{}),
                             BuildDecisionContext(request.trigger_states));
  if (!prepared.restore_point && !IsFallback(prepared.decision)) {
    prepared.decision = RollbackDecision{};
    return prepared;
  }
  // Paused by `backstop watch pause` a moment ago: seen before acting.
  if (prepared.decision.act && pause_db != nullptr) {
    if (auto state = ReadPauseState(*pause_db); state.ok()) TakePauseState(*state);
  }
  return prepared;
}

void Watcher::DeciderLoop(StateDb* pause_db) {
  for (;;) {
    DecisionRequest request;
    {
      MutexLock lock(&mu_);
      while (!decider_stop_ && to_decide_.empty()) cv_.Wait(&mu_);
      if (decider_stop_) return;
      request = std::move(to_decide_.front());
      to_decide_.pop_front();
    }
    PreparedDecision prepared = PrepareDecision(request, pause_db);
    MutexLock lock(&mu_);
    decided_.push_back(std::move(prepared));
    cv_.SignalAll();
  }
}

void Watcher::ActOnDecisions() {
  std::deque<PreparedDecision> decided;
  {
    MutexLock lock(&mu_);
    decided.swap(decided_);
  }
  for (const auto& prepared : decided) ActOnDecision(prepared, /*may_act=*/true);
}

void Watcher::TakePauseState(const PauseState& state) {
  bool changed;
  {
    MutexLock lock(&mu_);
    changed = paused_.paused != state.paused;
    paused_ = state;
  }
  if (changed) {
    log_->Warn(state.paused ? "automatic actions paused" : "automatic actions resumed",
               {{"by", state.by}, {"reason", state.reason}});
  }
}

void Watcher::ActOnDecision(const PreparedDecision& prepared, bool may_act) {
  const TriggerEvent& e = prepared.event;
  const int64_t wall = env_->clock()->WallMicros();
  nlohmann::json record = {{"at", FormatRfc3339(wall, true)},
                           {"trigger", e.trigger},
                           {"component", e.component},
                           {"reason", e.reason}};
  std::string outcome, why;
  const std::optional<RestorePoint>& rp = prepared.restore_point;
  // The rules went on while the decider worked: act only on a trigger that
  // still fires.
  bool still_firing = true;
  if (may_act) {
    auto state = engine_->State(e.trigger, e.component);
    still_firing = state.ok() && state->state == TriggerState::kFiring;
  }
  if (!rp && !IsFallback(prepared.decision)) {
    outcome = "held";
    why = "no restore point to roll back to (" + prepared.no_restore_point +
          "); take one with `backstop snapshot`";
  } else {
    const RollbackDecision& d = prepared.decision;
    record["decision"] = d.ToJson();
    if (!d.act) {
      outcome = e.action == TriggerAction::kAlert ? "alert" : "held";
      why = d.reason;
    } else if (!may_act) {
      outcome = "dry_run";
      why = "--once decides but never acts: " + d.reason;
    } else if (options_.dry_run) {
      outcome = "dry_run";
      why = "dry run, not acting: " + d.reason;
    } else if (!still_firing) {
      outcome = "held";
      why = "the trigger stopped firing while it was decided on: " + d.reason;
    } else {
      const GateInputs inputs = ReadGateInputs();
      GateVerdict verdict;
      {
        MutexLock lock(&mu_);
        verdict = gate_.MayAct(d.components, inputs);
      }
      outcome = "held";
      std::optional<Gate> gate = verdict.gate;
      why = verdict.why;
      if (!verdict.go) {
        // held: `gate` says by what
      } else if (d.components.empty()) {
        why = "the decision names no component to roll back";
      } else {
        RunJob job;
        if (d.scope == MatrixScope::kFallback) {
          job.fallback = true;  // d.components: the traffic component
        } else if (d.scope == MatrixScope::kAll) {
          RollbackRequest r;
          r.all = true;
          r.to = rp->id;
          job.requests.push_back(r);
        } else {
          for (const auto& name : d.components) {
            RollbackRequest r;
            r.component = name;
            // Services go back to their previous release, data to the very
            // restore point the decision was judged against.
            const ComponentSpec* c = spec_.Find(name);
            r.to = c != nullptr && c->kind == ComponentKind::kService ? "" : rp->id;
            job.requests.push_back(r);
          }
        }
        job.components = d.components;
        job.triggered_by = "trigger:" + e.trigger;
        job.detail = {{"event", e.ToJson()}, {"decision", d.ToJson()}};
        job.command =
            "backstop watch (automatic: trigger " + e.trigger + " on " + e.component + ")";
        job.description = std::string(job.fallback ? "fallback of " : "rollback of ") +
                          [&] {
                            std::string s;
                            for (const auto& n : d.components) s += (s.empty() ? "" : ", ") + n;
                            return s;
                          }() +
                          " (trigger:" + e.trigger + ")";
        job.automatic = true;
        job.trigger = e.trigger;
        std::string refusal;
        if (StartJob(std::move(job), nullptr, &refusal)) {
          outcome = "acted";
          why = d.reason;
          {
            MutexLock lock(&mu_);
            gate_.RecordAction(d.components, e.trigger, true);
          }
          SaveActions();
        } else {
          gate = Gate::kRunActive;
          why = refusal;
        }
      }
      if (gate) {
        {
          MutexLock lock(&mu_);
          gate_.Hold(e, *gate);
        }
        why += " (decided again when that changes, while the trigger still fires)";
      }
    }
  }
  record["outcome"] = outcome;
  record["why"] = why;
  if (may_act) {
    writer_->Append(
        DecisionJournalEvent(e, outcome, why, record.value("decision", nlohmann::json()), wall));
  }
  log_->Log(outcome == "acted"     ? "warn"
            : outcome == "dry_run" ? "info"
                                   : "warn",
            "decision: " + (outcome == "acted" && prepared.decision.scope == MatrixScope::kFallback
                                ? std::string("falling back to the standby")
                            : outcome == "acted"   ? std::string("rolling back")
                            : outcome == "dry_run" ? std::string("would roll back")
                            : outcome == "alert"   ? std::string("alert only")
                                                   : std::string("hold")),
            record);
  MutexLock lock(&mu_);
  decisions_.push_back(record);
  while (decisions_.size() > kRecentDecisions) decisions_.pop_front();
  ++metrics_.decisions_total[outcome];
}

void Watcher::RetryHeld() {
  {
    MutexLock lock(&mu_);
    if (!gate_.HasHeld()) return;
  }
  const GateInputs inputs = ReadGateInputs();
  std::vector<TriggerEvent> again;
  {
    MutexLock lock(&mu_);
    again = gate_.TakeReopened(
        inputs,
        [&](const std::string& trigger,
            const std::string& component) -> std::optional<std::string> {
          auto state = engine_->State(trigger, component);
          if (!state.ok() || state->state != TriggerState::kFiring) return std::nullopt;
          return state->reason;
        },
        [&](const std::string& component) NO_THREAD_SAFETY_ANALYSIS {
          // Called by TakeReopened, under mu_.
          auto v = views_.find(component);
          return v != views_.end() && v->second->has_result;
        });
  }
  for (const auto& e : again) {
    log_->Info("deciding again on a trigger that still fires",
               {{"trigger", e.trigger}, {"component", e.component}});
    HandleFiring(e, /*may_act=*/true);
  }
}

}  // namespace backstop

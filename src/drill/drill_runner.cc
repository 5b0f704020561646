#include "drill/drill_runner.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <map>
#include <random>

#include "base/strings.h"
#include "base/units.h"
#include "drill/drill_faults.h"
#include "drill/full_system.h"
#include "run/event.h"
#include "run/lock.h"
#include "run/plan.h"
#include "store/restore_point.h"
#include "watch/decision.h"
#include "watch/deploy_guard.h"
#include "watch/rules.h"
#include "watch/signals.h"
#include "watch/watch_events.h"

namespace backstop {
namespace {

constexpr int64_t kDefaultTimeoutMs = 10 * 60 * 1000;
// Where `backstop watch` saves its rule state (watch.cc).
constexpr const char* kWatchRulesKey = "watch.rules";

std::string NewDrillId(Env* env) {
  std::random_device rd;
  char hex[8];
  snprintf(hex, sizeof(hex), "%04x", static_cast<unsigned>(rd() & 0xffff));
  return FormatCompactUtc(env->clock()->WallMicros()) + "-" + hex;
}

// The pid of a `backstop watch` running on this state dir (its watch.json,
// removed when it stops), or 0.
int RunningWatchDaemon(Env* env, const std::string& state_dir) {
  auto text = env->fs()->ReadFile(JoinPath(state_dir, "watch.json"));
  if (!text.ok()) return 0;
  auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("pid") || !j["pid"].is_number_integer()) return 0;
  const int pid = j["pid"].get<int>();
  // A daemon killed by -9 leaves its watch.json behind: only a live pid counts.
  return pid > 0 && env->processes()->IsAlive(pid) ? pid : 0;
}

// The triggers firing in the daemon's persisted rule state, as "name on component".
Result<std::vector<std::string>> PersistedFiringTriggers(Env* env, const Spec& spec,
                                                         StateDb& state) {
  BACKSTOP_ASSIGN_OR_RETURN(auto saved, state.Get(kWatchRulesKey));
  std::vector<std::string> out;
  if (!saved) return out;
  auto j = nlohmann::json::parse(*saved, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return out;
  std::map<std::string, ComponentKind> kinds;
  for (const auto& [name, c] : spec.components) kinds[name] = c.kind;
  RuleEngine rules(spec.triggers, kinds);
  if (!rules.LoadState(j, env->clock()->NowMicros()).ok()) return out;
  for (const auto& s : rules.States()) {
    if (s.state == TriggerState::kFiring) out.push_back(s.trigger + " on " + s.component);
  }
  return out;
}

bool IsDrillRun(const RunRecord& run) { return run.triggered_by.rfind("drill:", 0) == 0; }

void Journal(StateDb& state, Env* env, EventKind kind, const std::string& run_id,
             const std::string& component, const std::string& message, nlohmann::json detail) {
  Event e;
  e.at_us = env->clock()->WallMicros();
  e.kind = kind;
  e.run_id = run_id;
  e.component = component;
  e.message = message;
  e.detail = std::move(detail);
  (void)state.AppendEvent(e);
}

// Whether every component of `rp` is back where the restore point has it:
// healthy, services on its release, data passing its invariants. One line
// per component into `lines`.
bool VerifyOnRestorePoint(const Spec& spec, RunEngine& engine, const RestorePoint& rp,
                          std::vector<std::string>* lines) {
  bool all_ok = true;
  for (const auto& name : DependencyOrder(spec)) {
    if (!rp.components.contains(name)) continue;
    const ComponentSpec& c = *spec.Find(name);
    const nlohmann::json& entry = rp.components[name];
    auto driver = engine.DriverFor(c);
    if (!driver.ok()) {
      lines->push_back(name + ": " + driver.status().message());
      all_ok = false;
      continue;
    }
    DriverContext ctx = engine.Context();
    HealthResult h = (*driver)->Health(c, ctx);
    std::string problem;
    if (!HealthAcceptable(c, h)) problem = "unhealthy: " + h.detail;
    if (problem.empty() && entry.contains("release") && entry["release"].is_string()) {
      auto now = (*driver)->Describe(c, ctx);
      const std::string want = entry["release"].get<std::string>();
      const std::string have = now.ok() && now->contains("release") && (*now)["release"].is_string()
                                   ? (*now)["release"].get<std::string>()
                                   : "";
      if (have != want) {
        problem = "on release " + (have.empty() ? std::string("(none)") : have) + ", not " + want;
      }
    }
    if (problem.empty() && HoldsData(c.kind)) {
      HealthResult integrity = IntegrityHealth((*driver)->CheckInvariants(c, entry, ctx));
      if (!integrity.pass()) problem = integrity.detail;
    }
    all_ok = all_ok && problem.empty();
    lines->push_back(name + ": " + (problem.empty() ? "as in " + rp.id : problem));
  }
  return all_ok;
}

// The drill's rollback of `components` to its restore point, one run each
// (or one of everything for scope all); services already on the restore
// point's release are restarted by a data restore, not rolled back.
// Returns the last run's outcome (or the first failure).
Result<RunOutcome> RollBackTo(const Spec& spec, Store& store, StateDb& state, RunEngine& engine,
                              const RestorePoint& rp, const std::vector<std::string>& components,
                              bool all, const RunOptions& options) {
  std::vector<RollbackRequest> requests;
  if (all) {
    RollbackRequest r;
    r.all = true;
    r.to = rp.id;
    requests.push_back(r);
  } else {
    for (const auto& name : components) {
      const ComponentSpec* c = spec.Find(name);
      if (c == nullptr || !rp.components.contains(name)) continue;
      if (c->kind == ComponentKind::kService && components.size() > 1) {
        auto driver = engine.DriverFor(*c);
        DriverContext ctx = engine.Context();
        auto now =
            driver.ok() ? (*driver)->Describe(*c, ctx) : Result<nlohmann::json>(driver.status());
        const std::string release = now.ok() ? now->value("release", nlohmann::json()).is_string()
                                                   ? (*now)["release"].get<std::string>()
                                                   : ""
                                             : "";
        if (AlreadyOnRestorePoint(rp.components[name], release)) continue;
      }
      RollbackRequest r;
      r.component = name;
      r.to = rp.id;
      requests.push_back(r);
    }
  }
  if (requests.empty()) return Status::FailedPrecondition("nothing to roll back");
  Result<RunOutcome> last = Status::FailedPrecondition("nothing to roll back");
  for (const auto& r : requests) {
    DriverContext ctx = engine.Context();
    auto plan = PlanRollback(spec, r, store, state, DriverRegistry::Global(), ctx);
    if (!plan.ok()) return plan.status();
    last = engine.Start(*plan, options);
    if (!last.ok() || !last->succeeded()) return last;
  }
  return last;
}

// With a `backstop watch` daemon running: the daemon detects, decides and
// rolls back; the drill follows it through the event journal (events after
// `after_id`) until the daemon's rollback run has ended or `deadline_mono_us`
// passes. Fills the outcome's trigger, decision, run and times; returns why
// the drill failed, or "" when the daemon's rollback succeeded (or, when
// `hold_expected`, the daemon held).
std::string FollowDaemon(Env* env, StateDb& state, const std::string& component, int64_t after_id,
                         int64_t deadline_mono_us, bool hold_expected, DrillOutcome* o,
                         Output& out) {
  Clock* clock = env->clock();
  DrillRecord& r = o->record;
  bool fired = false, acted = false;
  std::string held, started_after_firing;
  while (true) {
    auto events = state.ListEvents({after_id, "", 0});
    if (!events.ok()) return "cannot read the event journal: " + events.status().message();
    for (const Event& e : *events) {
      after_id = e.id;
      if (e.kind == EventKind::kTriggerFiring && !fired) {
        fired = true;
        o->detected_us = e.at_us;
        r.detection_ms = (e.at_us - o->injected_us) / 1000;
        o->trigger = e.trigger;
        o->trigger_component = e.component;
        o->trigger_reason = e.detail.value("reason", e.message);
        out.Line("  detected by the daemon in " + FormatDurationMs(r.detection_ms) + ": " +
                 e.message);
      } else if (e.kind == EventKind::kDecision && fired && !acted) {
        const nlohmann::json d = e.detail.value("decision", nlohmann::json::object());
        o->decision_scenario = d.value("scenario", "");
        o->decision_reason = e.detail.value("why", e.message);
        o->target_min_ms = d.value("recovery_min_ms", int64_t{0});
        r.target_ms = d.value("recovery_max_ms", int64_t{0});
        acted = e.detail.value("outcome", "") == "acted";
        o->decision_acted = acted;
        if (acted && r.run_id.empty()) r.run_id = started_after_firing;
        if (!acted) held = e.message;  // it may act later, once its gate opens
        if (!acted && hold_expected) {
          out.Line("  the daemon held, as it should for an outage: " + o->decision_reason);
          return "";
        }
        const auto chosen = d.value("components", std::vector<std::string>{});
        if (acted && std::find(chosen.begin(), chosen.end(), component) == chosen.end()) {
          return "the daemon's decision (" + o->decision_scenario + ") does not roll back " +
                 component;
        }
      } else if (e.kind == EventKind::kRunStarted && fired) {
        // The daemon's job may journal its run before the decision that started it.
        started_after_firing = e.run_id;
        if (acted && r.run_id.empty()) r.run_id = e.run_id;
      } else if ((e.kind == EventKind::kRunFinished || e.kind == EventKind::kRunFailed) &&
                 !r.run_id.empty() && e.run_id == r.run_id) {
        if (e.kind == EventKind::kRunFailed) {
          return "the daemon's rollback " + r.run_id + " failed: " + e.message;
        }
        o->recovered_us = e.at_us;
        r.recovery_ms = (e.at_us - o->injected_us) / 1000;
        return "";
      }
    }
    if (clock->NowMicros() >= deadline_mono_us) break;
    clock->SleepForMicros(200'000);
  }
  if (!fired) return "not detected: the daemon saw no trigger fire in time";
  if (!acted) return "the daemon held: " + held;
  return "the daemon's rollback did not finish in time";
}

}  // namespace

Status CheckDrillAllowed(Env* env, const Spec& spec, StateDb& state, bool confirm) {
  nlohmann::json holder = EnvironmentLock::CurrentHolder(spec.state_dir);
  if (!holder.is_null()) {
    return Status::Aborted("a run is in progress (" + holder.dump() + "): no drill now");
  }
  BACKSTOP_ASSIGN_OR_RETURN(auto unfinished, state.UnfinishedRuns());
  if (!unfinished.empty()) {
    return Status::Aborted("run " + unfinished.front().id +
                           " is unfinished: resume or abandon it (backstop rollback --resume / "
                           "--abandon) before a drill");
  }
  BACKSTOP_ASSIGN_OR_RETURN(auto firing, PersistedFiringTriggers(env, spec, state));
  if (!firing.empty()) {
    return Status::Aborted("an incident is open: trigger " + Join(firing) +
                           " is firing (backstop watch's rule state); no drill until it resolves");
  }
  BACKSTOP_ASSIGN_OR_RETURN(auto runs, state.ListRuns(20));
  for (const auto& run : runs) {
    if (IsDrillRun(run) && run.kind == RunKind::kDeploy) continue;  // a drill's fault, by design
    if (run.status == RunStatus::kFailed || run.status == RunStatus::kAbandoned) {
      return Status::Aborted(
          "an incident is open: the newest run, " + run.id + ", " + std::string(Name(run.status)) +
          (run.error.empty() ? "" : " (" + run.error.substr(0, run.error.find('\n')) + ")") +
          "; a run that succeeds (a rollback or deploy) closes it");
    }
    break;
  }
  if (spec.requires_confirm && !confirm) {
    return Status::Aborted("environment '" + spec.environment +
                           "' is protected: a drill injects a real fault into it; rerun with "
                           "--confirm");
  }
  return Status::OK();
}

Result<DrillOutcome> RunDrill(Env* env, const Spec& spec, Store& store, StateDb& state,
                              RunEngine& engine, const DrillRequest& request, Output& out) {
  const std::string component =
      request.component.empty() ? DefaultFaultComponent(spec, request.scenario) : request.component;
  BACKSTOP_RETURN_IF_ERROR(CheckFault(spec, request.scenario, component));
  const bool slow_release = request.scenario == "performance_degradation";
  if (slow_release == request.release.empty()) {
    return Status::InvalidArgument(
        slow_release ? "performance_degradation deploys a release that answers slowly, which "
                       "Backstop cannot make for you: name one with --release"
                     : "--release is for performance_degradation only");
  }
  BACKSTOP_RETURN_IF_ERROR(CheckDrillAllowed(env, spec, state, request.confirm));
  const bool full_system = request.scenario == "full_system";
  const bool ends_outage = DrillEndsOutage(request.scenario);
  if (full_system && RunningWatchDaemon(env, spec.state_dir) > 0) {
    return Status::FailedPrecondition(
        "a full_system drill rehearses the decision matrix's scope-all rollback, which a running "
        "backstop watch would not take (it rolls each service back on its own row): stop the "
        "daemon for the drill, or drill service_failure with it");
  }
  Clock* clock = env->clock();
  DrillOutcome o;
  DrillRecord& r = o.record;
  r.id = NewDrillId(env);
  r.name = request.name;
  r.scenario = request.scenario;
  r.component = component;
  r.environment = spec.environment;
  r.started_us = clock->WallMicros();
  o.detector = "in-process (the spec's triggers and decision matrix, as backstop watch)";
  const std::string triggered_by = "drill:" + (r.name.empty() ? r.id : r.name);
  const nlohmann::json about = {{"drill", r.id}, {"name", r.name}, {"scenario", r.scenario}};

  // The starting restore point, under the lock, before anything is touched.
  out.Line("Drill " + r.id + ": " + r.scenario + " of " + component + " in " + spec.environment);
  Result<RestorePoint> rp = Status::Internal("no restore point yet");
  {
    auto lock = EnvironmentLock::Acquire(env, spec.state_dir, {{"command", "backstop drill"}});
    if (!lock.ok()) return lock.status();
    rp = TakeRestorePoint(engine, spec, store, {}, "drill-" + r.id, RestorePointKind::kDrill, "",
                          "");
    if (!rp.ok()) return rp.status();
    (void)store.FlushCache();
  }
  r.restore_point = rp->id;
  out.Line(std::string("  ") + Output::Ok() + " restore point " + rp->id + " (drill-" + r.id + ")");
  BACKSTOP_RETURN_IF_ERROR(state.RecordDrill(r));
  Journal(state, env, EventKind::kDrillStarted, "", component,
          "drill " + r.id + " started: " + r.scenario + " of " + component, about);

  // Inject, then watch: the running daemon, or the same machinery in-process.
  const int daemon_pid = RunningWatchDaemon(env, spec.state_dir);
  auto last_event = state.ListEvents({0, "", 0});
  const int64_t after_id = last_event.ok() && !last_event->empty() ? last_event->back().id : 0;
  const int64_t timeout_ms = request.timeout_ms > 0 ? request.timeout_ms : kDefaultTimeoutMs;
  if (daemon_pid > 0) o.detector = "backstop watch (pid " + std::to_string(daemon_pid) + ")";
  const int64_t injected_mono = clock->NowMicros();
  o.injected_us = clock->WallMicros();
  InjectedFault fault;
  Status injected = InjectFault(env, spec, engine, *rp, r.scenario, component, r.id,
                                request.release, triggered_by, &fault);
  std::string failure;
  if (!injected.ok()) {
    failure = "the fault could not be injected: " + injected.message();
  } else if (daemon_pid > 0) {
    o.fault = fault.description;
    out.Line("  fault: " + o.fault + "; following backstop watch (pid " +
             std::to_string(daemon_pid) + ")");
    failure = FollowDaemon(env, state, component, after_id, injected_mono + timeout_ms * 1000,
                           ends_outage, &o, out);
  } else {
    o.fault = fault.description;
    out.Line("  fault: " + o.fault);
    DeployGuardOptions guard;
    guard.watch_for_ms = timeout_ms;
    guard.on_event = [&](const TriggerEvent& e) {
      (void)state.AppendEvent(TriggerJournalEvent(e, clock->WallMicros(), clock->NowMicros()));
    };
    auto probe_with = [&](bool integrity) {
      return [&, integrity](const ComponentSpec& c) {
        auto driver = engine.DriverFor(c);
        if (!driver.ok()) {
          return HealthResult::Make(HealthResult::State::kUnknown, 0, driver.status().message());
        }
        DriverContext ctx = engine.Context();
        if (!integrity) return (*driver)->Health(c, ctx);
        nlohmann::json entry =
            rp->components.contains(c.name) ? rp->components[c.name] : nlohmann::json();
        return IntegrityHealth((*driver)->CheckInvariants(c, entry, ctx));
      };
    };
    guard.integrity = probe_with(true);
    auto fired = WatchAfterDeploy(env, spec, DependencyOrder(spec), guard, probe_with(false));
    if (!fired.ok()) {
      failure = "the triggers could not be evaluated: " + fired.status().message();
    } else if (!fired->has_value()) {
      failure = "not detected: no trigger fired within " + FormatDurationMs(guard.watch_for_ms);
    } else {
      const TriggerEvent& e = **fired;
      o.detected_us = clock->WallMicros() - (clock->NowMicros() - e.t_us);
      r.detection_ms = (e.t_us - injected_mono) / 1000;
      o.trigger = e.trigger;
      o.trigger_component = e.component;
      o.trigger_reason = e.reason;
      out.Line("  detected in " + FormatDurationMs(r.detection_ms) + ": " + DescribeFiring(e));
    }
    if (fired.ok() && fired->has_value() && slow_release && (**fired).signal != Signal::kLatency) {
      // Rolled back by the drill itself below: what was rehearsed is not a slow release.
      failure = "detected by trigger " + (**fired).trigger + " (signal " +
                std::string(Name((**fired).signal)) + "), not by a latency trigger: release " +
                request.release + " did not answer slowly within its probe's timeout, it failed";
    } else if (fired.ok() && fired->has_value()) {
      const TriggerEvent& e = **fired;
      DecisionContext context;  // as the daemon's: the services' present releases
      AddPresentReleases(
          spec,
          [&](const ComponentSpec& c) -> Result<nlohmann::json> {
            BACKSTOP_ASSIGN_OR_RETURN(auto driver, engine.DriverFor(c));
            DriverContext ctx = engine.Context();
            return driver->Describe(c, ctx);
          },
          &context);
      RollbackDecision d =
          full_system ? FullSystemDecision(e, spec, *rp) : Decide(e, spec, *rp, context);
      o.decision_scenario = d.scenario;
      o.decision_reason = d.reason;
      o.decision_acted = d.act;
      o.target_min_ms = d.recovery_min_ms;
      r.target_ms = d.recovery_max_ms;
      (void)state.AppendEvent(DecisionJournalEvent(e, d.act ? "acted" : "held", d.reason,
                                                   d.ToJson(), clock->WallMicros()));
      if (!d.act && ends_outage) {
        out.Line("  decision: " + d.scenario + ": held, as it should for an outage: " + d.reason);
      } else if (!d.act) {
        failure = "the decision matrix held: " + d.reason;
      } else if (!full_system && !ends_outage &&
                 std::find(d.components.begin(), d.components.end(), component) ==
                     d.components.end()) {
        failure = "the decision (" + d.scenario + ") does not roll back " + component;
      } else {
        out.Line("  decision: " + d.scenario + ": " + d.reason);
        RunOptions options;
        options.command =
            "backstop drill " + r.scenario + " (rollback on trigger " + e.trigger + ")";
        options.triggered_by = "trigger:" + e.trigger;
        options.trigger_detail = {{"event", e.ToJson()}, {"decision", d.ToJson()}, {"drill", r.id}};
        auto run = RollBackTo(spec, store, state, engine, *rp, d.components,
                              d.scope == MatrixScope::kAll, options);
        if (!run.ok()) {
          failure = "the rollback was refused: " + run.status().message();
        } else {
          r.run_id = run->run_id;
          if (run->succeeded()) {
            o.recovered_us = clock->WallMicros();
            r.recovery_ms = (clock->NowMicros() - injected_mono) / 1000;
          } else {
            failure = "the rollback " + run->run_id + " failed: " + run->error;
          }
        }
      }
    }
  }

  // The end: the outage the fault holds ended, verified back on the starting
  // restore point, or made so by the drill's own rollback, or said loudly.
  Status ended = EndOutage(env, &fault);
  if (!ended.ok()) out.Error("drill " + r.id + ": " + ended.message());
  o.verified_back = VerifyOnRestorePoint(spec, engine, *rp, &o.end_state);
  if (!o.verified_back) {
    out.Error("drill " + r.id + ": the environment is not on restore point " + rp->id +
              "; rolling " + component + " back to it");
    RunOptions options;
    options.command = "backstop drill " + r.scenario + " (the drill's own rollback)";
    options.triggered_by = triggered_by;
    auto cleanup = RollBackTo(spec, store, state, engine, *rp, {component}, full_system, options);
    if (cleanup.ok()) o.cleanup_run_id = cleanup->run_id;
    o.end_state.clear();
    o.verified_back = VerifyOnRestorePoint(spec, engine, *rp, &o.end_state);
  }
  if (!ended.ok()) o.end_state.push_back("outage not ended: " + ended.message());
  if (ends_outage && failure.empty() && o.verified_back && r.run_id.empty() &&
      o.cleanup_run_id.empty()) {
    // Held, as it should; recovered when the outage ended and the check passed.
    o.recovered_us = clock->WallMicros();
    r.recovery_ms = (clock->NowMicros() - injected_mono) / 1000;
  }
  Status removed = RemoveFault(env, fault);
  if (!removed.ok()) o.end_state.push_back("fault release left behind: " + removed.message());

  r.ended_us = clock->WallMicros();
  const bool target_met = r.target_ms <= 0 || (r.recovery_ms >= 0 && r.recovery_ms <= r.target_ms);
  if (failure.empty() && !o.verified_back) failure = "the rollback did not bring it back";
  if (failure.empty() && !target_met) {
    failure = "recovery took " + FormatDurationMs(r.recovery_ms) + ", over the target " +
              FormatDurationMs(r.target_ms) + " (" + o.decision_scenario + ")";
  }
  if (!o.verified_back) {
    failure += std::string(failure.empty() ? "" : "; ") +
               "THE ENVIRONMENT IS NOT BACK ON RESTORE POINT " + rp->id +
               ": check it (backstop status, backstop verify) and roll back by hand";
  }
  r.status = failure.empty() ? DrillStatus::kPassed : DrillStatus::kFailed;
  r.reason = failure.empty()
                 ? "detected in " + FormatDurationMs(r.detection_ms) + ", recovered in " +
                       FormatDurationMs(r.recovery_ms) +
                       (r.target_ms > 0 ? " (target " + FormatDurationMs(r.target_ms) + ")" : "") +
                       ", verified back on " + rp->id
                 : failure;
  BACKSTOP_RETURN_IF_ERROR(state.RecordDrill(r));
  Status written = WriteDrillReport(env, spec.state_dir, o);
  if (!written.ok()) out.Error("cannot write the drill report: " + written.message());
  nlohmann::json detail = o.ToJson();
  Journal(state, env, EventKind::kDrillFinished, r.run_id, component,
          "drill " + r.id + " " + std::string(Name(r.status)) + ": " + r.reason, detail);
  return o;
}

}  // namespace backstop

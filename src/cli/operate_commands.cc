// Commands that change an environment through the run engine: `plan
// rollback` prints the steps, `rollback` runs them (or resumes or abandons an
// interrupted run), `deploy` switches a service's release (after a pre-deploy
// restore point; with --atomic it rolls itself back); `start` and `stop`
// act on services directly, under the lock.
#include "cli/command_group.h"

#include <algorithm>
#include <set>
#include <vector>

#include "base/env.h"
#include "base/exit_code.h"
#include "base/units.h"
#include "run/event.h"
#include "run/lock.h"
#include "run/plan.h"
#include "watch/deploy_guard.h"

namespace backstop {
namespace {

void PrintOutcome(Output& out, const RunOutcome& o) {
  out.Text("");
  std::string head = o.succeeded() ? std::string(Output::Ok()) + " Run " + o.run_id +
                                         " succeeded in " + FormatDurationMs(o.duration_ms)
                                   : std::string(Output::Fail()) + " Run " + o.run_id +
                                         " FAILED after " + FormatDurationMs(o.duration_ms);
  out.Text(head);
  const nlohmann::json& s = o.summary;
  out.Text("  Target:    " + s.value("target", std::string()));
  std::string affected;
  for (const auto& a : s.value("affected", std::vector<std::string>{})) {
    affected += (affected.empty() ? "" : ", ") + a;
  }
  out.Text("  Affected:  " + affected);
  out.Text("  " + s.value("data_loss_summary", std::string("Data loss: none")));
  for (const auto& f : s.value("data_loss", nlohmann::json::object())
                           .value("ledger_files", std::vector<std::string>{})) {
    out.Text("             ledger: " + f);
  }
  if (s.contains("health") && s["health"].is_object()) {
    for (const auto& [name, h] : s["health"].items()) {
      out.Text("  Verified:  " + Pad(name, 14) + h.get<std::string>());
    }
  }
  // After a failure that changed something: where each component is now.
  if (s.contains("components") && s["components"].is_object()) {
    for (const auto& [name, where] : s["components"].items()) {
      std::string line;
      if (where.contains("release")) {
        line = where["release"].is_string() ? "release " + where["release"].get<std::string>()
                                            : "no release";
      }
      if (where.contains("running")) {
        line += std::string(line.empty() ? "" : ", ") +
                (where.value("running", false) ? "running" : "STOPPED");
      }
      line += (line.empty() ? "" : ", ") + where.value("health", std::string("unknown"));
      out.Text("  Now:       " + Pad(name, 14) + line);
    }
  }
  std::string safety = s.value("safety_restore_point", "");
  if (!safety.empty()) {
    out.Text("  Undo:      backstop rollback --all --to " + safety + " (safety restore point)");
  }
  if (!o.succeeded()) out.Error(o.error);
  out.Json({{"ok", o.succeeded()}, {"run", o.run_id}, {"summary", s}});
}

int CmdPlan(const GlobalOptions& g, Output& out, const RollbackRequest& req) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  if (req.all || !req.to.empty()) FetchFromRemoteIfMissing(e, req.to, out);
  DriverContext ctx = e.engine->Context();
  auto plan = PlanRollback(e.spec, req, *e.store, *e.state, DriverRegistry::Global(), ctx);
  if (!plan.ok()) return Fail(out, plan.status());
  out.Text(plan->Describe());
  out.Json({{"ok", true}, {"plan", plan->ToJson()}});
  return kExitOk;
}

struct RollbackFlags {
  RollbackRequest request;
  std::string env;
  bool confirm = false;
  bool dry_run = false;
  bool accept_data_loss = false;
  bool force = false;
  std::string resume;
  std::string abandon;
};

int CmdRollback(const GlobalOptions& g, Output& out, const RollbackFlags& f,
                const std::string& command) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  if (!f.env.empty() && f.env != e.spec.environment) {
    return Fail(out, Status::InvalidArgument("--env " + f.env + " does not match the spec's " +
                                             "environment '" + e.spec.environment + "' (" +
                                             e.spec.path + ")"));
  }
  RunOptions options;
  options.command = command;
  options.accept_data_loss = f.accept_data_loss;
  if (!f.abandon.empty()) {
    Status st = e.engine->Abandon(f.abandon);
    if (!st.ok()) return Fail(out, st);
    out.Line("run " + f.abandon + " abandoned; check the components with `backstop status`");
    out.Json({{"ok", true}});
    return kExitOk;
  }
  if (!f.resume.empty()) {
    auto outcome = e.engine->Resume(f.resume, options);
    if (!outcome.ok()) return Fail(out, outcome.status());
    PrintOutcome(out, *outcome);
    return outcome->succeeded() ? kExitOk : kExitFailed;
  }
  if (f.request.all || !f.request.to.empty()) FetchFromRemoteIfMissing(e, f.request.to, out);
  DriverContext ctx = e.engine->Context();
  auto plan = PlanRollback(e.spec, f.request, *e.store, *e.state, DriverRegistry::Global(), ctx);
  if (!plan.ok()) return Fail(out, plan.status());
  if (f.dry_run) {
    out.Line(plan->Describe());
    out.Line("(dry run: nothing was changed)");
    out.Json({{"ok", true}, {"dry_run", true}, {"plan", plan->ToJson()}});
    return kExitOk;
  }
  if (!f.force) {
    Status unhealthy = RefuseUnhealthyTargets(*plan);
    if (!unhealthy.ok()) return Fail(out, unhealthy);
  }
  if (e.spec.requires_confirm && !f.confirm) {
    out.Line(plan->Describe());
    return Fail(out, Status::Aborted("environment '" + e.spec.environment +
                                     "' is protected: this would roll back " +
                                     std::to_string(plan->affected.size()) +
                                     " component(s). Review the plan above and rerun with "
                                     "--confirm"));
  }
  auto outcome = e.engine->Start(*plan, options);
  if (!outcome.ok()) return Fail(out, outcome.status());
  PrintOutcome(out, *outcome);
  if (outcome->succeeded()) return kExitOk;
  // A refusal before anything was touched (data loss over the limit, a damaged
  // restore point) is a refusal, not a failure.
  bool refused = !outcome->changed_anything && (outcome->failure == Status::Code::kDataLoss ||
                                                outcome->failure == Status::Code::kCorruption ||
                                                outcome->failure == Status::Code::kAborted);
  return refused ? kExitRefused : kExitFailed;
}

struct DeployFlags {
  std::string component;
  std::string release;
  bool no_snapshot = false;
  bool atomic = false;
  std::string watch_for;  // a duration; with --atomic
};

// What a deploy may change: the service, and the data and config components
// it depends on (directly or through them), which a new release may migrate.
// Other services keep their releases. In dependency order.
std::vector<std::string> DeployFootprint(const Spec& spec, const std::string& service) {
  std::set<std::string> found{service};
  std::vector<std::string> queue{service};
  while (!queue.empty()) {
    const ComponentSpec* c = spec.Find(queue.back());
    queue.pop_back();
    if (c == nullptr) continue;
    for (const auto& d : c->depends_on) {
      const ComponentSpec* dep = spec.Find(d);
      if (dep == nullptr || dep->kind == ComponentKind::kService || !found.insert(d).second)
        continue;
      queue.push_back(d);
    }
  }
  std::vector<std::string> out;
  for (const auto& n : DependencyOrder(spec)) {
    if (found.count(n)) out.push_back(n);
  }
  return out;
}

// The pre-deploy restore point: what the deploy may change, before any step
// acts, under the environment lock (released before the run takes it).
Result<RestorePoint> TakePreDeployRestorePoint(Environment& e, Output& out,
                                               const std::string& service,
                                               const std::string& command) {
  auto lock = EnvironmentLock::Acquire(Env::Default(), e.spec.state_dir, {{"command", command}});
  if (!lock.ok()) return lock.status();
  std::vector<std::string> components = DeployFootprint(e.spec, service);
  std::string list;
  for (const auto& c : components) list += (list.empty() ? "" : ", ") + c;
  out.Line("Taking a pre-deploy restore point of " + list);
  Event event;
  event.component = service;
  event.detail = {{"label", "pre-deploy"}, {"components", components}};
  auto rp = TakeRestorePoint(*e.engine, e.spec, *e.store, components, "pre-deploy",
                             RestorePointKind::kPreDeploy, "", "");
  event.at_us = Env::Default()->clock()->WallMicros();
  if (rp.ok()) {
    (void)e.store->FlushCache();
    event.kind = EventKind::kRestorePointTaken;
    event.detail["restore_point"] = rp->id;
    event.message = "pre-deploy restore point " + rp->id + " taken";
    out.Line(std::string("  ") + Output::Ok() + " restore point " + rp->id + " (pre-deploy)");
  } else {
    event.kind = EventKind::kRestorePointFailed;
    event.message = "pre-deploy restore point failed: " + rp.status().message();
  }
  (void)e.state->AppendEvent(event);
  return rp;
}

// --atomic: rolls the deploy back to its pre-deploy restore point (or, with
// --no-snapshot, to the service's previous release) and says why.
int RollBackDeploy(Environment& e, Output& out, const DeployFlags& f, const std::string& deploy_run,
                   const std::string& restore_point, const std::string& why,
                   const std::string& triggered_by, nlohmann::json detail,
                   const std::string& command) {
  out.Error("deploy " + deploy_run + " is rolled back (--atomic): " + why);
  RollbackRequest request;
  request.component = f.component;
  request.to = restore_point;  // empty: the release before this one
  DriverContext ctx = e.engine->Context();
  auto plan = PlanRollback(e.spec, request, *e.store, *e.state, DriverRegistry::Global(), ctx);
  if (!plan.ok()) {
    out.Error("the rollback of deploy " + deploy_run +
              " could not be planned: " + plan.status().message());
    return kExitFailed;
  }
  RunOptions options;
  options.command = command;
  options.triggered_by = triggered_by;
  detail["atomic_deploy"] = deploy_run;
  detail["reason"] = why;
  options.trigger_detail = detail;
  auto outcome = e.engine->Start(*plan, options);
  if (!outcome.ok()) {
    out.Error("the rollback of deploy " + deploy_run +
              " was refused: " + outcome.status().message());
    return kExitFailed;
  }
  PrintOutcome(out, *outcome);
  out.Error(std::string(outcome->succeeded() ? "deploy rolled back" : "rollback FAILED") +
            ": release " + f.release + " of " + f.component + ": " + why);
  return kExitFailed;
}

int CmdDeploy(const GlobalOptions& g, Output& out, const DeployFlags& f,
              const std::string& command) {
  int64_t watch_for_ms = 0;
  if (!f.watch_for.empty()) {
    auto ms = ParseDurationMs(f.watch_for);
    if (!ms || *ms <= 0) {
      return Fail(out, Status::InvalidArgument("--watch-for: bad duration '" + f.watch_for +
                                               "'; expected a duration such as 30s or 5m"));
    }
    watch_for_ms = *ms;
  }
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  DriverContext ctx = e.engine->Context();
  auto plan =
      PlanDeploy(e.spec, f.component, f.release, DriverRegistry::Global(), ctx, e.state.get());
  if (!plan.ok()) return Fail(out, plan.status());
  if (!f.no_snapshot) {
    auto rp = TakePreDeployRestorePoint(e, out, f.component, command);
    if (!rp.ok()) {
      out.Error("deploy stopped before changing anything: the pre-deploy restore point failed: " +
                rp.status().message() +
                "\nFix the cause, or deploy without one with --no-snapshot");
      out.Json({{"ok", false}, {"error", rp.status().message()}});
      return kExitFailed;
    }
    // Recorded in the run: `backstop rollback` right after this deploy targets it.
    plan->restore_point_id = rp->id;
  }
  RunOptions options;
  options.command = command;
  auto outcome = e.engine->Start(*plan, options);
  if (!outcome.ok()) return Fail(out, outcome.status());
  PrintOutcome(out, *outcome);
  if (!f.atomic) return outcome->succeeded() ? kExitOk : kExitFailed;
  if (!outcome->succeeded() && !outcome->changed_anything) return kExitFailed;  // nothing to undo
  if (!outcome->succeeded()) {
    std::string error = outcome->error.substr(0, outcome->error.find('\n'));
    return RollBackDeploy(e, out, f, outcome->run_id, plan->restore_point_id,
                          "failed its health gate: " + error, "manual", nlohmann::json::object(),
                          command);
  }
  if (watch_for_ms == 0) return kExitOk;
  out.Line("Watching " + f.component + " for " + FormatDurationMs(watch_for_ms) +
           " with the spec's triggers (--atomic)");
  DeployGuardOptions guard;
  guard.watch_for_ms = watch_for_ms;
  auto fired =
      WatchAfterDeploy(Env::Default(), e.spec, {f.component}, guard, [&](const ComponentSpec& c) {
        auto driver = e.engine->DriverFor(c);
        if (!driver.ok()) {
          return HealthResult::Make(HealthResult::State::kUnknown, 0, driver.status().message());
        }
        DriverContext hctx = e.engine->Context();
        return (*driver)->Health(c, hctx);
      });
  if (!fired.ok()) return Fail(out, fired.status());
  if (!fired->has_value()) {
    out.Line(std::string(Output::Ok()) + " no trigger fired within " +
             FormatDurationMs(watch_for_ms) + ": release " + f.release + " of " + f.component +
             " stays");
    out.Json({{"ok", true}, {"run", outcome->run_id}, {"watched_ms", watch_for_ms}});
    return kExitOk;
  }
  const TriggerEvent& event = **fired;
  return RollBackDeploy(e, out, f, outcome->run_id, plan->restore_point_id,
                        "within --watch-for " + f.watch_for + ", " + DescribeFiring(event),
                        "trigger:" + event.trigger, event.ToJson(), command);
}

// Starts or stops services directly (operator convenience, outside any run):
// in dependency order to start, reverse order to stop; under the lock.
int CmdStartStop(const GlobalOptions& g, Output& out, bool start,
                 const std::vector<std::string>& only, const std::string& command) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  auto lock = EnvironmentLock::Acquire(Env::Default(), e.spec.state_dir, {{"command", command}});
  if (!lock.ok()) return Fail(out, lock.status());
  std::vector<std::string> order = DependencyOrder(e.spec);
  if (!start) std::reverse(order.begin(), order.end());
  for (const auto& name : only) {
    if (e.spec.Find(name) == nullptr) {
      return Fail(out, Status::InvalidArgument("no component named '" + name + "'"));
    }
  }
  bool all_ok = true;
  for (const auto& name : order) {
    const ComponentSpec* c = e.spec.Find(name);
    if (c->kind != ComponentKind::kService) continue;
    if (!only.empty() && std::find(only.begin(), only.end(), name) == only.end()) continue;
    auto driver = e.engine->DriverFor(*c);
    if (!driver.ok()) return Fail(out, driver.status());
    DriverContext ctx = e.engine->Context();
    Status st = start ? (*driver)->Start(*c, ctx) : (*driver)->Stop(*c, ctx);
    if (st.ok() && start) {
      int attempts = 0;
      HealthResult h = e.engine->WaitUntilHealthy(*c, ctx, &attempts);
      if (!HealthAcceptable(*c, h)) {
        st = Status::Unavailable("started but unhealthy: " + h.detail);
      }
    }
    out.Line(std::string(st.ok() ? Output::Ok() : Output::Fail()) + " " +
             (start ? "start " : "stop ") + name + (st.ok() ? "" : ": " + st.message()));
    all_ok = all_ok && st.ok();
  }
  out.Json({{"ok", all_ok}});
  return all_ok ? kExitOk : kExitFailed;
}

void AddTargetOptions(CLI::App* cmd, RollbackRequest& req) {
  auto* all = cmd->add_flag("--all", req.all, "Every component");
  auto* comp = cmd->add_option("--component,-c", req.component, "One component");
  all->excludes(comp);
  cmd->add_option("--to", req.to,
                  "previous | latest | a restore point (id or label) | a release (services)");
  cmd->add_option("--to-time", req.to_time,
                  "With --component: a database back to this moment (2026-11-30T14:03:12Z) "
                  "after its restore point, by undoing only what committed after it "
                  "(flashback, docs/flashback.md)")
      ->needs(comp)
      ->excludes(all);
}

class OperateCommands : public CommandGroup {
 public:
  void Register(CLI::App& app) override {
    deploy_ = app.add_subcommand(
        "deploy",
        "Switch a service to a release (recorded in its history), after a pre-deploy restore "
        "point");
    deploy_->add_option("SERVICE", deploy_flags_.component)->required();
    deploy_->add_option("RELEASE", deploy_flags_.release)->required();
    deploy_->add_flag("--no-snapshot", deploy_flags_.no_snapshot,
                      "Do not take the pre-deploy restore point first");
    auto* atomic = deploy_->add_flag(
        "--atomic", deploy_flags_.atomic,
        "Roll the deploy back by itself (to the pre-deploy restore point) when the release fails "
        "its health gate or a trigger fires within --watch-for; exit 1 naming why");
    deploy_
        ->add_option("--watch-for", deploy_flags_.watch_for,
                     "With --atomic: how long to evaluate the spec's triggers after the deploy")
        ->needs(atomic);

    plan_ = app.add_subcommand("plan", "Print the steps of an operation without acting");
    plan_->require_subcommand(1);
    auto* plan_rollback = plan_->add_subcommand("rollback", "The steps of a rollback");
    AddTargetOptions(plan_rollback, plan_req_);

    RollbackFlags& rb = rollback_flags_;
    rollback_ = app.add_subcommand("rollback", "Roll back the environment or one component");
    AddTargetOptions(rollback_, rb.request);
    rollback_->add_option("--env", rb.env, "Must match the spec's environment (a guard)");
    rollback_->add_flag("--confirm", rb.confirm,
                        "Required for a protected (production) environment");
    rollback_->add_flag("--dry-run", rb.dry_run, "Print the plan; change nothing");
    rollback_->add_flag(
        "--accept-data-loss", rb.accept_data_loss,
        "Proceed even when the rollback discards more than the spec's data_loss limit");
    rollback_->add_flag("--force", rb.force,
                        "Roll back even to a target whose recorded baseline was unhealthy");
    rollback_->add_option("--resume", rb.resume, "Complete an interrupted run");
    rollback_->add_option("--abandon", rb.abandon,
                          "Give up an interrupted run (take over by hand)");

    start_ = app.add_subcommand("start", "Start services (dependency order), gated on health");
    start_->add_option("--component,-c", start_components_, "Only these services");
    start_->add_flag("--all", start_all_, "Every service");
    stop_ = app.add_subcommand("stop", "Stop services (reverse dependency order)");
    stop_->add_option("--component,-c", stop_components_, "Only these services");
    stop_->add_flag("--all", stop_all_, "Every service");
  }

  std::optional<int> Run(const Invocation& inv) override {
    const GlobalOptions& g = inv.global;
    Output& out = inv.out;
    if (*deploy_) return CmdDeploy(g, out, deploy_flags_, inv.command);
    if (*plan_) {
      if (!plan_req_.all && plan_req_.component.empty()) {
        out.Error("backstop plan rollback: say what to roll back: --all or --component NAME");
        return kExitInvalid;
      }
      return CmdPlan(g, out, plan_req_);
    }
    if (*rollback_) {
      const RollbackFlags& rb = rollback_flags_;
      if (rb.resume.empty() && rb.abandon.empty() && !rb.request.all &&
          rb.request.component.empty()) {
        out.Error(
            "backstop rollback: say what to roll back: --all, --component NAME, "
            "--resume RUN or --abandon RUN");
        return kExitInvalid;
      }
      return CmdRollback(g, out, rb, inv.command);
    }
    if (*start_ || *stop_) {
      bool is_start = static_cast<bool>(*start_);
      const auto& only = is_start ? start_components_ : stop_components_;
      if (only.empty() && !(is_start ? start_all_ : stop_all_)) {
        out.Error(std::string("backstop ") + (is_start ? "start" : "stop") +
                  ": say which: --all or --component NAME");
        return kExitInvalid;
      }
      return CmdStartStop(g, out, is_start, only, inv.command);
    }
    return std::nullopt;
  }

 private:
  CLI::App* deploy_ = nullptr;
  DeployFlags deploy_flags_;
  CLI::App* plan_ = nullptr;
  RollbackRequest plan_req_;
  CLI::App* rollback_ = nullptr;
  RollbackFlags rollback_flags_;
  CLI::App* start_ = nullptr;
  CLI::App* stop_ = nullptr;
  std::vector<std::string> start_components_, stop_components_;
  bool start_all_ = false, stop_all_ = false;
};

}  // namespace

std::unique_ptr<CommandGroup> NewOperateCommands() { return std::make_unique<OperateCommands>(); }

}  // namespace backstop

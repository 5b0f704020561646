// Commands that change an environment through the run engine: `plan
// rollback` prints the steps, `rollback` runs them (or resumes or abandons an
// interrupted run), `deploy` switches a service's release; `start` and `stop`
// act on services directly, under the lock.
#include "cli/command_group.h"

#include <algorithm>
#include <vector>

#include "base/env.h"
#include "base/exit_code.h"
#include "base/units.h"
#include "run/lock.h"
#include "run/plan.h"

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

int CmdDeploy(const GlobalOptions& g, Output& out, const std::string& component,
              const std::string& release, const std::string& command) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  DriverContext ctx = e.engine->Context();
  auto plan = PlanDeploy(e.spec, component, release, DriverRegistry::Global(), ctx);
  if (!plan.ok()) return Fail(out, plan.status());
  RunOptions options;
  options.command = command;
  auto outcome = e.engine->Start(*plan, options);
  if (!outcome.ok()) return Fail(out, outcome.status());
  PrintOutcome(out, *outcome);
  return outcome->succeeded() ? kExitOk : kExitFailed;
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
}

class OperateCommands : public CommandGroup {
 public:
  void Register(CLI::App& app) override {
    deploy_ =
        app.add_subcommand("deploy", "Switch a service to a release (recorded in its history)");
    deploy_->add_option("SERVICE", deploy_component_)->required();
    deploy_->add_option("RELEASE", deploy_release_)->required();

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
    if (*deploy_) return CmdDeploy(g, out, deploy_component_, deploy_release_, inv.command);
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
  std::string deploy_component_, deploy_release_;
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

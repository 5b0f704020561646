// Drills (drill/): `drill SCENARIO [--component C] [--release R] [--env ENV] [--confirm]`
// rehearses a rollback on the environment, `drill --due` runs the spec's
// drills whose schedule is due, `drill history` lists past drills with their
// times against the target and the trend.
#include <cstdio>
#include <vector>

#include "base/env.h"
#include "base/exit_code.h"
#include "base/units.h"
#include "cli/command_group.h"
#include "drill/drill_faults.h"
#include "drill/drill_runner.h"
#include "drill/drill_schedule.h"
#include "notify/notify_service.h"

namespace backstop {
namespace {

struct DrillFlags {
  std::string scenario;
  std::string component;
  std::string release;
  std::string env;
  std::string timeout;
  bool confirm = false;
  bool due = false;
  int history_limit = 20;
};

std::string MsOrDash(int64_t ms) { return ms >= 0 ? FormatDurationMs(ms) : "-"; }

// Prints one drill's outcome; its exit code (0 passed, 1 failed).
int PrintOutcome(Output& out, const std::string& state_dir, const DrillOutcome& o) {
  const DrillRecord& r = o.record;
  out.Text("");
  if (o.passed()) {
    out.Text(std::string(Output::Ok()) + " Drill " + r.id + " PASSED: " + r.reason);
  } else {
    out.Error("drill " + r.id + " FAILED: " + r.reason);
  }
  out.Text("  Detection: " + MsOrDash(r.detection_ms));
  out.Text("  Recovery:  " + MsOrDash(r.recovery_ms) +
           (r.target_ms > 0 ? " (target " + FormatDurationMs(r.target_ms) + ")" : ""));
  if (!r.run_id.empty()) out.Text("  Run:       " + r.run_id);
  for (const auto& line : o.end_state) out.Text("  End:       " + line);
  out.Text("  Report:    " + JoinPath(DrillDir(state_dir, r.id), "drill.md"));
  return o.passed() ? kExitOk : kExitFailed;
}

// drill.finished was journaled after the drill's last run ended (whose end
// delivered the events until then): deliver it now, like a run's end does.
void DeliverDrillNotifications(Environment& e, const DrillOutcome& o) {
  DeliverRunNotifications(Env::Default(), e.spec, *e.state, o.record.run_id,
                          [](const std::string& level, const std::string& line) {
                            std::fprintf(stderr, "backstop: %s: %s\n", level.c_str(), line.c_str());
                          });
}

int ExitFor(const Status& st) {
  return st.code() == Status::Code::kInvalidArgument ? kExitInvalid : kExitRefused;
}

int CmdDrill(const GlobalOptions& g, Output& out, const DrillFlags& f) {
  DrillRequest request;
  request.scenario = CanonicalScenario(f.scenario);
  request.component = f.component;
  request.release = f.release;
  request.confirm = f.confirm;
  if (!f.timeout.empty()) {
    auto ms = ParseDurationMs(f.timeout);
    if (!ms || *ms <= 0) {
      return Fail(out, Status::InvalidArgument("--timeout: bad duration '" + f.timeout +
                                               "'; expected a duration such as 90s or 5m"));
    }
    request.timeout_ms = *ms;
  }
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  if (!f.env.empty() && f.env != e.spec.environment) {
    return Fail(out, Status::InvalidArgument("--env " + f.env + " does not match the spec's " +
                                             "environment '" + e.spec.environment + "'"));
  }
  auto outcome = RunDrill(Env::Default(), e.spec, *e.store, *e.state, *e.engine, request, out);
  if (!outcome.ok()) {
    Fail(out, outcome.status());
    return ExitFor(outcome.status());
  }
  DeliverDrillNotifications(e, *outcome);
  out.Json({{"ok", outcome->passed()}, {"drill", outcome->ToJson()}});
  return PrintOutcome(out, e.spec.state_dir, *outcome);
}

int CmdDue(const GlobalOptions& g, Output& out, const DrillFlags& f) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  auto history = e.state->ListDrills(0);
  if (!history.ok()) return Fail(out, history.status());
  const int64_t now = Env::Default()->clock()->WallMicros();
  int code = kExitOk;
  nlohmann::json ran = nlohmann::json::array();
  for (const DrillSpec& d : e.spec.drills) {
    if (!d.environment.empty() && d.environment != e.spec.environment) {
      out.Text("- " + d.name + ": for environment " + d.environment + ", not " +
               e.spec.environment);
      continue;
    }
    std::string why;
    if (!DrillDue(d, *history, now, &why)) {
      out.Text("- " + d.name + ": not due (" + why + ")");
      continue;
    }
    DrillRequest request;
    request.name = d.name;
    request.scenario = CanonicalScenario(d.scenario);
    request.component = NextRotatingComponent(e.spec, d, *history);
    request.confirm = f.confirm;
    out.Text("- " + d.name + ": due (" + why + ")");
    auto outcome = RunDrill(Env::Default(), e.spec, *e.store, *e.state, *e.engine, request, out);
    if (!outcome.ok()) {
      out.Error("drill " + d.name + " refused: " + outcome.status().message());
      ran.push_back({{"name", d.name}, {"refused", outcome.status().message()}});
      if (code == kExitOk) code = ExitFor(outcome.status());
      continue;
    }
    DeliverDrillNotifications(e, *outcome);
    ran.push_back(outcome->ToJson());
    if (PrintOutcome(out, e.spec.state_dir, *outcome) != kExitOk) code = kExitFailed;
    auto refreshed = e.state->ListDrills(0);
    if (refreshed.ok()) *history = *refreshed;
  }
  out.Json({{"ok", code == kExitOk}, {"drills", ran}});
  return code;
}

int CmdHistory(const GlobalOptions& g, Output& out, int limit) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  auto drills = e.state->ListDrills(limit);
  if (!drills.ok()) return Fail(out, drills.status());
  out.Text(Pad("DRILL", 24) + Pad("SCENARIO", 22) + Pad("COMPONENT", 14) + Pad("STATUS", 9) +
           Pad("DETECTION", 11) + Pad("RECOVERY", 11) + "TARGET");
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& d : *drills) {
    out.Text(Pad(d.id, 24) + Pad(d.scenario, 22) + Pad(d.component, 14) +
             Pad(std::string(Name(d.status)), 9) + Pad(MsOrDash(d.detection_ms), 11) +
             Pad(MsOrDash(d.recovery_ms), 11) +
             (d.target_ms > 0 ? FormatDurationMs(d.target_ms) : "-"));
    rows.push_back({{"id", d.id},
                    {"name", d.name},
                    {"scenario", d.scenario},
                    {"component", d.component},
                    {"status", d.status},
                    {"reason", d.reason},
                    {"run_id", d.run_id},
                    {"started", FormatRfc3339(d.started_us)},
                    {"detection_ms", d.detection_ms},
                    {"recovery_ms", d.recovery_ms},
                    {"target_ms", d.target_ms}});
  }
  DrillTrend trend = ComputeTrend(*drills, limit);
  out.Text("Trend: " + trend.Describe());
  out.Json({{"ok", true},
            {"drills", rows},
            {"trend",
             {{"drills", trend.drills},
              {"passed", trend.passed},
              {"targets_met", trend.targets_met},
              {"with_target", trend.with_target},
              {"avg_detection_ms", trend.avg_detection_ms},
              {"avg_recovery_ms", trend.avg_recovery_ms},
              {"direction", trend.direction},
              {"summary", trend.Describe()}}}});
  return kExitOk;
}

class DrillCommands : public CommandGroup {
 public:
  void Register(CLI::App& app) override {
    drill_ = app.add_subcommand(
        "drill",
        "Rehearse a rollback: take a restore point, inject a fault, let the triggers detect it "
        "and the decision matrix roll back, and verify the environment is back");
    drill_->add_option("SCENARIO", flags_.scenario,
                       "service_failure | database_corruption | nats_outage | "
                       "performance_degradation | full_system");
    drill_->add_option("--component,-c", flags_.component, "The component to inject into");
    drill_->add_option("--release", flags_.release,
                       "performance_degradation: the service's release that answers slowly");
    drill_->add_option("--env", flags_.env, "Must match the spec's environment (a guard)");
    drill_->add_flag("--confirm", flags_.confirm,
                     "Required for a protected (production) environment");
    drill_->add_option("--timeout", flags_.timeout,
                       "How long detection and rollback may take (default 10m)");
    drill_->add_flag("--due", flags_.due, "Run the spec's drills whose schedule is due now");
    history_ = drill_->add_subcommand("history", "Past drills, their times and the trend");
    history_->add_option("--limit,-n", flags_.history_limit, "At most this many (default 20)");
  }

  std::optional<int> Run(const Invocation& inv) override {
    if (drill_ == nullptr || !*drill_) return std::nullopt;
    if (*history_) return CmdHistory(inv.global, inv.out, flags_.history_limit);
    if (flags_.due) {
      if (!flags_.scenario.empty()) {
        inv.out.Error("backstop drill: --due runs the spec's drills; give no SCENARIO with it");
        return kExitInvalid;
      }
      return CmdDue(inv.global, inv.out, flags_);
    }
    if (flags_.scenario.empty()) {
      inv.out.Error("backstop drill: say which: a SCENARIO, --due, or history");
      return kExitInvalid;
    }
    return CmdDrill(inv.global, inv.out, flags_);
  }

 private:
  CLI::App* drill_ = nullptr;
  CLI::App* history_ = nullptr;
  DrillFlags flags_;
};

}  // namespace

std::unique_ptr<CommandGroup> NewDrillCommands() { return std::make_unique<DrillCommands>(); }

}  // namespace backstop

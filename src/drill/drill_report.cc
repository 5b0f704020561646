#include "drill/drill_report.h"

#include "base/units.h"

namespace backstop {
namespace {

nlohmann::json TimeOrNull(int64_t wall_us) {
  return wall_us > 0 ? nlohmann::json(FormatRfc3339(wall_us, true)) : nlohmann::json(nullptr);
}

nlohmann::json MsOrNull(int64_t ms) {
  return ms >= 0 ? nlohmann::json(ms) : nlohmann::json(nullptr);
}

std::string MsOrDash(int64_t ms) { return ms >= 0 ? FormatDurationMs(ms) : "-"; }

// "met", "MISSED" or "no target" for a measured time against a target.
std::string Verdict(int64_t ms, int64_t target_ms) {
  if (target_ms <= 0) return "no target";
  if (ms < 0) return "not measured";
  return ms <= target_ms ? "met" : "MISSED";
}

}  // namespace

nlohmann::json DrillOutcome::ToJson() const {
  const DrillRecord& r = record;
  nlohmann::json j = {
      {"id", r.id},
      {"name", r.name},
      {"scenario", r.scenario},
      {"component", r.component},
      {"environment", r.environment},
      {"passed", passed()},
      {"status", r.status},
      {"reason", r.reason},
      {"fault", fault},
      {"detector", detector},
      {"restore_point", r.restore_point},
      {"run_id", r.run_id},
      {"started", TimeOrNull(r.started_us)},
      {"injected", TimeOrNull(injected_us)},
      {"detected", TimeOrNull(detected_us)},
      {"recovered", TimeOrNull(recovered_us)},
      {"ended", TimeOrNull(r.ended_us)},
      {"trigger",
       {{"name", trigger}, {"component", trigger_component}, {"reason", trigger_reason}}},
      {"decision",
       {{"scenario", decision_scenario}, {"acted", decision_acted}, {"reason", decision_reason}}},
      {"detection_ms", MsOrNull(r.detection_ms)},
      {"recovery_ms", MsOrNull(r.recovery_ms)},
      {"target",
       {{"recovery_min_ms", target_min_ms},
        {"recovery_max_ms", r.target_ms},
        {"met", r.target_ms > 0 && r.recovery_ms >= 0 ? nlohmann::json(r.recovery_ms <= r.target_ms)
                                                      : nlohmann::json(nullptr)}}},
      {"verified_back", verified_back},
      {"end_state", end_state},
  };
  if (!cleanup_run_id.empty()) j["cleanup_run_id"] = cleanup_run_id;
  return j;
}

std::string DrillDir(const std::string& state_dir, const std::string& id) {
  return JoinPath(JoinPath(state_dir, "drills"), id);
}

std::string RenderDrillReport(const DrillOutcome& o) {
  const DrillRecord& r = o.record;
  std::string md = "# Drill " + r.id + ": " + r.scenario + " of " + r.component + "\n\n";
  md += std::string("**") + (o.passed() ? "PASSED" : "FAILED") + "**: " + r.reason + "\n\n";
  md += "| | |\n|---|---|\n";
  md += "| Drill | " + (r.name.empty() ? std::string("(by hand)") : r.name) + " |\n";
  md += "| Environment | " + r.environment + " |\n";
  md += "| Started | " + (r.started_us > 0 ? FormatRfc3339(r.started_us) : "-") + " |\n";
  md += "| Fault injected | " + o.fault + " |\n";
  md += "| Detected by | " + o.detector + " |\n";
  md += "| Starting restore point | " + r.restore_point + " |\n";
  md += "| Trigger | " +
        (o.trigger.empty() ? std::string("none fired")
                           : o.trigger + " on " + o.trigger_component + ": " + o.trigger_reason) +
        " |\n";
  md += "| Decision | " +
        (o.decision_scenario.empty()
             ? std::string("-")
             : o.decision_scenario + (o.decision_acted ? " (acted)" : " (held)") + ": " +
                   o.decision_reason) +
        " |\n";
  md += "| Rollback run | " + (r.run_id.empty() ? std::string("-") : r.run_id) + " |\n";
  if (!o.cleanup_run_id.empty()) md += "| Drill's own rollback | " + o.cleanup_run_id + " |\n";
  md += "\n## Times\n\n| | measured | target | |\n|---|---|---|---|\n";
  md += "| Detection (injection to trigger firing) | " + MsOrDash(r.detection_ms) + " | | |\n";
  md += "| Recovery (injection to rollback verified) | " + MsOrDash(r.recovery_ms) + " | " +
        (r.target_ms > 0 ? FormatDurationMs(r.target_ms) : "-") + " | " +
        Verdict(r.recovery_ms, r.target_ms) + " |\n";
  md += "\n## End state\n\n";
  md += std::string(o.verified_back ? "Verified back on restore point "
                                    : "NOT verified back on restore point ") +
        r.restore_point + ".\n\n";
  for (const auto& line : o.end_state) md += "- " + line + "\n";
  return md;
}

Status WriteDrillReport(Env* env, const std::string& state_dir, const DrillOutcome& outcome) {
  const std::string dir = DrillDir(state_dir, outcome.record.id);
  BACKSTOP_RETURN_IF_ERROR(env->fs()->CreateDirs(dir));
  BACKSTOP_RETURN_IF_ERROR(env->fs()->WriteFileAtomic(JoinPath(dir, "drill.json"),
                                                      outcome.ToJson().dump(2) + "\n", 0600));
  return env->fs()->WriteFileAtomic(JoinPath(dir, "drill.md"), RenderDrillReport(outcome), 0600);
}

}  // namespace backstop

#include "drill/drill_faults.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "base/strings.h"
#include "drill/full_system.h"
#include "drill/nats_outage.h"
#include "drill/performance_degradation.h"
#include "drivers/postgres/pg_component.h"
#include "drivers/process/process_settings.h"
#include "run/plan.h"
#include "run/run.h"
#include "run/slot_state.h"
#include "watch/rules.h"

namespace backstop {
namespace {

// A release whose command starts and never answers: the health check fails
// for as long as it runs, as a release with a broken listener would.
Status WriteFaultRelease(Env* env, const process::Settings& s, const std::string& dir) {
  const std::string program = JoinPath(dir, s.command.front());
  BACKSTOP_RETURN_IF_ERROR(env->fs()->CreateDirs(Dirname(program), 0755));
  return env->fs()->WriteFileAtomic(
      program,
      "#!/bin/sh\n"
      "# A release made by `backstop drill`: it runs and never\n"
      "# answers its health check. Removed when the drill ends.\n"
      "echo 'backstop drill: this release never answers its health check' >&2\n"
      "exec sleep 86400\n",
      0755);
}

// The file whose appearance makes a breaking release stop answering.
constexpr char kBreakMarker[] = ".backstop-drill-break";

// A release for a blue/green service: it serves as `live_dir`'s release (the
// live release's program, run from its folder with the same arguments and
// environment, so on the slot's port) until `kBreakMarker` appears in its own
// folder, then stops answering. A release that failed from the start would
// fail its health gate and never be switched to, and the drill would have
// nothing to detect: it has to pass the gate and the switch first.
Status WriteBreakingRelease(Env* env, const process::Settings& s, const std::string& dir,
                            const std::string& live_dir) {
  const std::string program = JoinPath(dir, s.command.front());
  BACKSTOP_RETURN_IF_ERROR(env->fs()->CreateDirs(Dirname(program), 0755));
  std::string script =
      "#!/bin/sh\n"
      "# A release made by `backstop drill`: it serves as the live release until\n"
      "# the drill writes its marker, then stops answering its health check.\n"
      "# Removed when the drill ends.\n";
  script += "cd " + ShellQuote(live_dir) + " || exit 1\n";
  script += ShellQuote(JoinPath(live_dir, s.command.front())) + " \"$@\" &\n";
  script +=
      "child=$!\n"
      "trap 'kill $child 2>/dev/null; exit 0' TERM INT\n";
  script += "while [ ! -e " + ShellQuote(JoinPath(dir, kBreakMarker)) + " ]; do\n";
  script +=
      "  kill -0 $child 2>/dev/null || exit 1\n"
      "  sleep 0.2\n"
      "done\n"
      "kill $child 2>/dev/null\n"
      "echo 'backstop drill: this release stopped answering its health check' >&2\n"
      "exec sleep 86400\n";
  return env->fs()->WriteFileAtomic(program, script, 0755);
}

}  // namespace

bool WatchedBy(const Spec& spec, const std::string& component, Signal signal) {
  const ComponentSpec* c = spec.Find(component);
  if (c == nullptr) return false;
  return std::any_of(spec.triggers.begin(), spec.triggers.end(), [&](const TriggerSpec& t) {
    return t.signal == signal && TriggerAppliesTo(t, component, c->kind);
  });
}

const std::vector<std::string>& DrillScenarios() {
  static const std::vector<std::string> kScenarios = {"service_failure", "database_corruption",
                                                      "nats_outage", "performance_degradation",
                                                      "full_system"};
  return kScenarios;
}

std::string CanonicalScenario(const std::string& name) {
  std::string key;
  for (char ch : name) {
    if (ch == ' ' || ch == '_' || ch == '-') continue;
    key += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  static const std::map<std::string, std::string> kAliases = {
      {"servicefailure", "service_failure"},
      {"singleservicefailure", "service_failure"},
      {"baddeploy", "service_failure"},
      {"databasecorruption", "database_corruption"},
      {"natsoutage", "nats_outage"},
      {"streamloss", "nats_outage"},
      {"performancedegradation", "performance_degradation"},
      {"fullsystem", "full_system"},
      {"completefailure", "full_system"},
      {"partialmigrationfailure", "full_system"},
  };
  auto it = kAliases.find(key);
  return it == kAliases.end() ? name : it->second;
}

Status CheckFault(const Spec& spec, const std::string& scenario, const std::string& component) {
  const auto& known = DrillScenarios();
  if (std::find(known.begin(), known.end(), scenario) == known.end()) {
    return Status::InvalidArgument("unknown drill scenario '" + scenario + "'; expected one of " +
                                   Join(known));
  }
  if (scenario == "full_system") return CheckFullSystemFault(spec, component);
  if (scenario == "nats_outage") return CheckNatsOutageFault(spec, component);
  if (scenario == "performance_degradation") {
    return CheckPerformanceDegradationFault(spec, component);
  }
  const ComponentSpec* c = spec.Find(component);
  if (c == nullptr) {
    return Status::InvalidArgument(component.empty()
                                       ? "the spec has no component this drill can take"
                                       : "no component named '" + component + "'");
  }
  if (scenario == "service_failure") return CheckFaultReleaseTarget(spec, scenario, component);
  // database_corruption
  if (c->kind != ComponentKind::kDatabase || c->driver != "postgres") {
    return Status::InvalidArgument(
        "database_corruption drills a database of the postgres "
        "driver; " +
        component + " is a " + c->driver + " " + std::string(Name(c->kind)));
  }
  if (!WatchedBy(spec, component, Signal::kIntegrity)) {
    return Status::FailedPrecondition(
        "no trigger watches the integrity of " + component +
        " (a trigger with signal: integrity): nothing could detect the corruption");
  }
  return Status::OK();
}

ComponentKind FaultComponentKind(const std::string& scenario) {
  if (scenario == "database_corruption") return ComponentKind::kDatabase;
  if (scenario == "nats_outage") return ComponentKind::kStream;
  return ComponentKind::kService;
}

std::string DefaultFaultComponent(const Spec& spec, const std::string& scenario) {
  if (scenario == "full_system") return kAllServices;
  const ComponentKind kind = FaultComponentKind(scenario);
  for (const auto& name : spec.component_order) {
    const ComponentSpec* c = spec.Find(name);
    if (c->kind == kind && (kind != ComponentKind::kStream || c->driver == "nats")) return name;
  }
  return "";
}

Status InjectFault(Env* env, const Spec& spec, RunEngine& engine, const RestorePoint& rp,
                   const std::string& scenario, const std::string& component,
                   const std::string& drill_id, const std::string& fault_release,
                   const std::string& triggered_by, InjectedFault* fault) {
  if (scenario == "performance_degradation") {
    return InjectSlowRelease(spec, engine, component, fault_release, triggered_by, fault);
  }
  if (scenario == "service_failure") {
    return DeployFaultRelease(env, spec, engine, scenario, component, drill_id, triggered_by,
                              fault);
  }
  if (scenario == "full_system") {
    return InjectFullSystemFault(env, spec, engine, drill_id, triggered_by, fault);
  }
  if (scenario == "nats_outage") return InjectNatsOutage(env, spec, component, fault);
  // database_corruption: drop the first foreign key the restore point recorded.
  const ComponentSpec& c = *spec.Find(component);
  const nlohmann::json entry =
      rp.components.contains(component) ? rp.components[component] : nlohmann::json();
  if (!entry.contains("foreign_keys") || !entry["foreign_keys"].is_array() ||
      entry["foreign_keys"].empty()) {
    return Status::FailedPrecondition(
        "database_corruption drops a foreign key that the integrity checks watch; " + component +
        " has none in restore point " + rp.id);
  }
  postgres::ForeignKey fk = postgres::ForeignKey::FromJson(entry["foreign_keys"][0]);
  BACKSTOP_ASSIGN_OR_RETURN(postgres::Loaded l, postgres::Load(c));
  BACKSTOP_ASSIGN_OR_RETURN(auto conn, postgres::ConnectTo(l, l.db()));
  BACKSTOP_RETURN_IF_ERROR(conn->Run("ALTER TABLE " +
                                     postgres::QuoteQualified(fk.schema, fk.table) +
                                     " DROP CONSTRAINT " + postgres::QuoteIdent(fk.name)));
  fault->description =
      "dropped foreign key " + fk.name + " (" + fk.Describe() + ") of " + component;
  return Status::OK();
}

bool DrillEndsOutage(const std::string& scenario) { return scenario == "nats_outage"; }

Status EndOutage(Env* env, InjectedFault* fault) { return ResumeNatsServer(env, fault); }

Status RemoveFault(Env* env, const InjectedFault& fault) {
  Status first = Status::OK();
  for (const auto& dir : fault.release_dirs) {
    Status removed = env->fs()->RemoveAll(dir);
    if (first.ok() && !removed.ok()) first = removed;
  }
  return first;
}

Status CheckFaultReleaseTarget(const Spec& spec, const std::string& scenario,
                               const std::string& component) {
  const ComponentSpec* c = spec.Find(component);
  if (c == nullptr) return Status::InvalidArgument("no component named '" + component + "'");
  if (c->kind != ComponentKind::kService || c->driver != "process") {
    return Status::InvalidArgument(scenario + " drills a service of the process driver; " +
                                   component + " is a " + c->driver + " " +
                                   std::string(Name(c->kind)));
  }
  auto settings = process::LoadSettings(*c, "");
  if (!settings.ok()) return settings.status();
  if (settings->command.empty() || settings->command.front().empty() ||
      settings->command.front()[0] == '/') {
    return Status::InvalidArgument(
        scenario +
        " deploys a release that fails its health check, which needs a command relative to "
        "the release folder; " +
        component + "'s is not");
  }
  if (!WatchedBy(spec, component, Signal::kHealth) &&
      !WatchedBy(spec, component, Signal::kUnreachable)) {
    return Status::FailedPrecondition("no trigger watches the health of " + component +
                                      ": nothing could detect a service failure");
  }
  return Status::OK();
}

Status DeployFaultRelease(Env* env, const Spec& spec, RunEngine& engine,
                          const std::string& scenario, const std::string& component,
                          const std::string& drill_id, const std::string& triggered_by,
                          InjectedFault* fault) {
  const ComponentSpec& c = *spec.Find(component);
  BACKSTOP_ASSIGN_OR_RETURN(process::Settings s, process::LoadSettings(c, ""));
  const std::string release = "drill-" + drill_id;
  const std::string dir = JoinPath(s.releases, release);
  // A blue/green service keeps its live slot until the new one passes its
  // health gate: the fault must pass it too (WriteBreakingRelease).
  std::string live_release;
  if (c.traffic) {
    BACKSTOP_ASSIGN_OR_RETURN(SlotRecord slots, ReadSlotRecord(engine.state(), component));
    if (!slots.live || slots.live_release.empty()) {
      return Status::FailedPrecondition(
          scenario + " on the blue/green service " + component +
          " breaks a copy of its live release, and it has none yet: deploy a release first");
    }
    live_release = slots.live_release;
  }
  fault->release_dirs.push_back(dir);
  BACKSTOP_RETURN_IF_ERROR(
      c.traffic ? WriteBreakingRelease(env, s, dir, JoinPath(s.releases, live_release))
                : WriteFaultRelease(env, s, dir));
  DriverContext ctx = engine.Context();
  BACKSTOP_ASSIGN_OR_RETURN(Plan plan, PlanDeploy(spec, component, release,
                                                  DriverRegistry::Global(), ctx, &engine.state()));
  RunOptions options;
  options.command = "backstop drill " + scenario + " (fault: deploy " + release + ")";
  options.triggered_by = triggered_by;
  BACKSTOP_ASSIGN_OR_RETURN(RunOutcome deployed, engine.Start(plan, options));
  fault->deploy_run_ids.push_back(deployed.run_id);
  std::string what = ", which never answers its health check";
  if (c.traffic) {
    // Switched to: now it breaks. Not switched to (its gate failed anyway):
    // the live slot still serves, and the drill finds nothing to detect.
    const bool switched = deployed.succeeded();
    if (switched) {
      BACKSTOP_RETURN_IF_ERROR(env->fs()->WriteFileAtomic(JoinPath(dir, kBreakMarker), "", 0600));
    }
    what = switched ? " (blue/green), which served as " + live_release +
                          " through its health gate and the switch, then stopped answering its "
                          "health check"
                    : " (blue/green), serving as " + live_release +
                          ", which the deploy did not switch to";
  }
  fault->description += std::string(fault->description.empty() ? "" : "; ") + "deployed release " +
                        release + " of " + component + what + " (run " + deployed.run_id + ", " +
                        std::string(Name(deployed.status)) + ")";
  return Status::OK();
}

}  // namespace backstop

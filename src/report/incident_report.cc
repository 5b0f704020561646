#include "report/incident_report.h"

#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>

#include "base/units.h"
#include "drivers/driver.h"
#include "run/event.h"
#include "run/run.h"

namespace backstop {
namespace {

constexpr const char* kNotRecorded = "not recorded";

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

std::string After(const std::string& s, const std::string& prefix) {
  return StartsWith(s, prefix) ? s.substr(prefix.size()) : "";
}

nlohmann::json At(int64_t wall_us) {
  return wall_us > 0 ? nlohmann::json(FormatRfc3339(wall_us)) : nlohmann::json(nullptr);
}

// One line of the timeline. `at_us` 0: the journal does not hold this moment.
// Only the detail's first line: a step's full error is in the report's "error".
nlohmann::json Moment(const std::string& what, int64_t at_us, const std::string& detail_text) {
  const std::string detail = detail_text.substr(0, detail_text.find('\n'));
  nlohmann::json m = {{"what", what},
                      {"at", at_us > 0 ? nlohmann::json(FormatRfc3339(at_us, /*millis=*/true))
                                       : nlohmann::json(nullptr)},
                      {"at_us", at_us}};
  m["detail"] = at_us > 0 ? detail : (detail.empty() ? kNotRecorded : detail);
  m["recorded"] = at_us > 0;
  return m;
}

// The events around a triggered run: those of the run itself, and those of
// its trigger from the episode that led to it (after the trigger last went
// back to ok, up to the run's end).
std::vector<Event> EventsOfRun(StateDb& state, const RunRecord& run, const std::string& trigger,
                               Status* error) {
  std::vector<Event> out;
  auto all = state.ListEvents(EventQuery{});
  if (!all.ok()) {
    *error = all.status();
    return out;
  }
  const int64_t end_us = run.ended_us > 0 ? run.ended_us : INT64_MAX;
  size_t episode_start = 0;
  for (size_t i = 0; i < all->size(); ++i) {
    const Event& e = (*all)[i];
    if (e.at_us > run.started_us) break;
    if (!trigger.empty() && e.trigger == trigger && e.kind == EventKind::kTriggerResolved) {
      episode_start = i + 1;
    }
  }
  for (size_t i = 0; i < all->size(); ++i) {
    const Event& e = (*all)[i];
    if (e.run_id == run.id) {
      out.push_back(e);
    } else if (i >= episode_start && !trigger.empty() && e.trigger == trigger && e.run_id.empty() &&
               e.at_us <= end_us && e.kind != EventKind::kTriggerResolved) {
      out.push_back(e);
    }
  }
  return out;
}

const Event* First(const std::vector<Event>& events, EventKind kind) {
  for (const auto& e : events) {
    if (e.kind == kind) return &e;
  }
  return nullptr;
}

// Ledger files in the run's folder: ledger-<component>.jsonl, one line per
// row or message discarded.
nlohmann::json LedgerFiles(FileSystem* fs, const std::string& run_dir) {
  nlohmann::json files = nlohmann::json::array();
  auto names = fs->ListDir(run_dir);
  if (!names.ok()) return files;
  std::vector<std::string> sorted = *names;
  std::sort(sorted.begin(), sorted.end());
  for (const auto& name : sorted) {
    if (!StartsWith(name, "ledger-") || name.size() < 13 ||
        name.compare(name.size() - 6, 6, ".jsonl") != 0) {
      continue;
    }
    const std::string path = JoinPath(run_dir, name);
    auto lines = ReadJsonLines(fs, path);
    files.push_back({{"path", path}, {"lines", lines.ok() ? lines->size() : 0}});
  }
  return files;
}

std::string Ms(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? FormatDurationMs(j[key].get<int64_t>())
                                               : kNotRecorded;
}

std::string Text(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return kNotRecorded;
  return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
}

}  // namespace

std::string RunDir(const Spec& spec, const std::string& run_id) {
  return JoinPath(JoinPath(spec.state_dir, "runs"), run_id);
}

const DecisionRule* DecisionRuleForRun(const Spec& spec, const RunRecord& run) {
  auto by_scenario = [&](const std::string& scenario) -> const DecisionRule* {
    for (const auto& r : spec.decision_matrix) {
      if (!scenario.empty() && r.scenario == scenario) return &r;
    }
    return nullptr;
  };
  if (run.trigger_detail.is_object() && run.trigger_detail.contains("decision")) {
    const auto& d = run.trigger_detail["decision"];
    if (const DecisionRule* r = by_scenario(d.value("scenario", ""))) return r;
  }
  if (std::string trigger = After(run.triggered_by, "trigger:"); !trigger.empty()) {
    for (const auto& r : spec.decision_matrix) {
      if (std::find(r.triggers.begin(), r.triggers.end(), trigger) != r.triggers.end()) return &r;
    }
    return nullptr;
  }
  if (std::string drill = After(run.triggered_by, "drill:"); !drill.empty()) {
    for (const auto& d : spec.drills) {
      if (d.name == drill) return by_scenario(d.scenario);
    }
    return nullptr;
  }
  // A manual run: the row of the scope the operator chose (a plan's scope,
  // all or component, is spelt as the matrix's).
  const std::optional<MatrixScope> scope = ParseMatrixScope(run.plan.value("scope", ""));
  for (const auto& r : spec.decision_matrix) {
    if (scope && r.scope == *scope) return &r;
  }
  return nullptr;
}

Result<nlohmann::json> BuildIncidentReport(const Spec& spec, StateDb& state, FileSystem* fs,
                                           const std::string& run_id) {
  BACKSTOP_ASSIGN_OR_RETURN(RunRecord run, state.GetRun(run_id));
  BACKSTOP_ASSIGN_OR_RETURN(auto steps, state.GetSteps(run_id));
  BACKSTOP_ASSIGN_OR_RETURN(auto acks, state.ChecklistAcks(run_id));
  const std::string trigger = After(run.triggered_by, "trigger:");
  Status events_error;
  std::vector<Event> events = EventsOfRun(state, run, trigger, &events_error);
  BACKSTOP_RETURN_IF_ERROR(events_error);
  const nlohmann::json& summary = run.summary;
  const nlohmann::json& detail =
      run.trigger_detail.is_object() ? run.trigger_detail : nlohmann::json::object();
  const Event* started = First(events, EventKind::kRunStarted);
  const Event* pending = First(events, EventKind::kTriggerPending);
  const Event* firing = First(events, EventKind::kTriggerFiring);
  const Event* decision = First(events, EventKind::kDecision);

  nlohmann::json r;
  r["format"] = "backstop.incident-report/1";
  r["run_id"] = run.id;
  r["kind"] = run.kind;
  r["status"] = run.status;
  r["environment"] = spec.environment;
  r["date"] = At(run.started_us);
  r["started_us"] = run.started_us;
  r["ended"] = At(run.ended_us);

  // Who or what: the operator's command line, or the rule and the samples that fired it.
  nlohmann::json who = {
      {"type", trigger.empty() ? (StartsWith(run.triggered_by, "drill:") ? "drill" : "manual")
                               : "automatic"},
      {"triggered_by", run.triggered_by},
      {"command", run.command}};
  who["user"] = started != nullptr && started->detail.contains("user")
                    ? started->detail["user"]
                    : nlohmann::json(kNotRecorded);
  if (!trigger.empty()) {
    who["rule"] = trigger;
    if (firing != nullptr && firing->detail.contains("samples")) {
      who["samples"] = firing->detail["samples"];
    } else if (detail.contains("event") && detail["event"].contains("reason")) {
      who["samples"] = detail["event"]["reason"];
    } else {
      who["samples"] = kNotRecorded;
    }
  }
  r["triggered_by"] = who;

  // Reason: the decision's, or for a manual run the command the operator typed.
  if (decision != nullptr && !decision->message.empty()) {
    r["reason"] = decision->message;
  } else if (detail.contains("decision") && detail["decision"].contains("reason")) {
    r["reason"] = detail["decision"]["reason"];
  } else if (trigger.empty()) {
    r["reason"] = "manual " + std::string(Name(run.kind)) + ": " + run.command;
  } else {
    r["reason"] = kNotRecorded;
  }
  r["target"] = summary.value("target", run.plan.value("target", ""));
  r["restore_point"] = run.restore_point;
  r["components_affected"] = summary.contains("affected")
                                 ? summary["affected"]
                                 : run.plan.value("affected", nlohmann::json::array());

  // Steps and their durations; the total is the run's, start to end.
  nlohmann::json step_list = nlohmann::json::array();
  for (const auto& s : steps) {
    nlohmann::json j = {
        {"index", s.index + 1},         {"action", s.action},      {"component", s.component},
        {"description", s.description}, {"status", s.status},      {"attempts", s.attempts},
        {"started", At(s.started_us)},  {"ended", At(s.ended_us)}, {"detail", s.detail}};
    j["duration_ms"] = s.started_us > 0 && s.ended_us >= s.started_us
                           ? nlohmann::json((s.ended_us - s.started_us) / 1000)
                           : nlohmann::json(nullptr);
    step_list.push_back(j);
  }
  r["steps"] = step_list;
  r["duration_ms"] = run.ended_us > 0 ? nlohmann::json((run.ended_us - run.started_us) / 1000)
                                      : nlohmann::json(nullptr);

  // Data loss, from the run's summary (the ledger's counts) and its ledger files.
  DataLossReport loss = DataLossReport::FromJson(summary.value("data_loss", nlohmann::json()));
  nlohmann::json per_object = nlohmann::json::array();
  for (const auto& item : loss.items) {
    per_object.push_back({{"component", item.component},
                          {"object", item.object},
                          {"unit", item.unit},
                          {"inserted", item.inserted},
                          {"deleted", item.deleted},
                          {"changed", item.changed},
                          {"total", item.total()}});
  }
  r["data_loss"] = {
      {"any", loss.TotalRows() + loss.TotalMessages() > 0},
      {"rows", loss.TotalRows()},
      {"messages", loss.TotalMessages()},
      {"summary", loss.Summary()},
      {"objects", per_object},
      {"positions_moved_back", loss.ToJson().value("rewinds", nlohmann::json::array())},
      {"ledger_files", LedgerFiles(fs, RunDir(spec, run.id))}};

  // The timeline, oldest first.
  nlohmann::json timeline = nlohmann::json::array();
  if (!trigger.empty()) {
    const Event* first = pending != nullptr ? pending : firing;
    timeline.push_back(
        Moment("fault first seen", first ? first->at_us : 0, first ? first->message : ""));
    timeline.push_back(
        Moment("trigger pending", pending ? pending->at_us : 0, pending ? pending->message : ""));
    timeline.push_back(
        Moment("trigger firing", firing ? firing->at_us : 0, firing ? firing->message : ""));
    timeline.push_back(
        Moment("decision", decision ? decision->at_us : 0,
               decision ? decision->message
                        : Text(detail.value("decision", nlohmann::json::object()), "reason")));
  }
  timeline.push_back(Moment(std::string(Name(run.kind)) + " started",
                            started ? started->at_us : run.started_us, run.command));
  int64_t verified_us = 0;
  for (const auto& s : steps) {
    if (s.started_us == 0) continue;
    timeline.push_back(
        Moment("step " + std::to_string(s.index + 1) + ": " + s.description, s.started_us,
               std::string(Name(s.status)) + (s.detail.empty() ? "" : ": " + s.detail)));
    if (s.action == StepAction::kVerify && s.status == StepStatus::kDone) {
      verified_us = std::max(verified_us, s.ended_us);
    }
  }
  const bool has_verify = std::any_of(steps.begin(), steps.end(), [](const StepRecord& s) {
    return s.action == StepAction::kVerify;
  });
  if (run.status == RunStatus::kSucceeded) {
    if (!has_verify) verified_us = run.ended_us;
    timeline.push_back(Moment("verified", verified_us, "every verify step passed"));
  }
  timeline.push_back(Moment("run " + std::string(Name(run.status)), run.ended_us, run.error));
  // The post-rollback restore point is taken once the run is verified and recorded.
  for (const auto& e : events) {
    if (e.kind == EventKind::kRestorePointTaken || e.kind == EventKind::kRestorePointFailed) {
      timeline.push_back(Moment(std::string(EventKindName(e.kind)), e.at_us, e.message));
    }
  }
  r["timeline"] = timeline;

  // Recovery time: from detection (the trigger firing; a manual run's start)
  // to verified, against the decision matrix's target for the scenario.
  nlohmann::json recovery = nlohmann::json::object();
  const DecisionRule* rule = run.kind == RunKind::kDeploy ? nullptr : DecisionRuleForRun(spec, run);
  int64_t from_us = trigger.empty() ? run.started_us : (firing ? firing->at_us : 0);
  recovery["measured_from"] =
      trigger.empty() ? std::string(Name(run.kind)) + " started" : "trigger firing";
  recovery["measured_to"] = "verified";
  recovery["measured_ms"] = from_us > 0 && verified_us >= from_us
                                ? nlohmann::json((verified_us - from_us) / 1000)
                                : nlohmann::json(nullptr);
  if (rule != nullptr) {
    recovery["scenario"] = rule->scenario;
    recovery["target_min_ms"] = rule->recovery_min_ms;
    recovery["target_max_ms"] = rule->recovery_max_ms;
  } else {
    recovery["scenario"] = nullptr;
  }
  if (run.kind == RunKind::kDeploy) {
    recovery["met"] = nullptr;
    recovery["verdict"] = "not applicable: a deploy is not a recovery";
  } else if (run.status != RunStatus::kSucceeded) {
    recovery["met"] = false;
    recovery["verdict"] =
        "missed: the run did not end verified (" + std::string(Name(run.status)) + ")";
  } else if (recovery["measured_ms"].is_null()) {
    recovery["met"] = nullptr;
    recovery["verdict"] = "not measured: the trigger's firing is not recorded";
  } else if (rule == nullptr) {
    recovery["met"] = nullptr;
    recovery["verdict"] = "no target: no row of the decision matrix matches this run";
  } else {
    const bool met = recovery["measured_ms"].get<int64_t>() <= rule->recovery_max_ms;
    recovery["met"] = met;
    recovery["verdict"] = std::string(met ? "met" : "missed") + ": " +
                          FormatDurationMs(recovery["measured_ms"].get<int64_t>()) +
                          " against a target of " + FormatDurationMs(rule->recovery_max_ms) + " (" +
                          rule->scenario + ")";
  }
  r["recovery"] = recovery;

  r["post_restore_point"] = summary.contains("post_restore_point") ? summary["post_restore_point"]
                                                                   : nlohmann::json(nullptr);
  // The rollback's last verification (run/run_performance.cc): its one-line verdict.
  r["performance"] = summary.contains("performance") && summary["performance"].is_object()
                         ? nlohmann::json(summary["performance"].value("summary", ""))
                         : nlohmann::json(nullptr);
  r["error"] = run.error;
  nlohmann::json ack_list = nlohmann::json::array();
  for (const auto& a : acks) {
    ack_list.push_back({{"item", a.item}, {"by", a.by}, {"note", a.note}, {"at", At(a.at_us)}});
  }
  r["checklist_acks"] = ack_list;
  return r;
}

std::string RenderIncidentReport(const nlohmann::json& r) {
  std::string md;
  auto line = [&](const std::string& s) { md += s + "\n"; };
  const nlohmann::json& who = r["triggered_by"];
  std::string triggered = who.value("type", "");
  if (who.contains("rule")) {
    triggered +=
        " (rule " + who["rule"].get<std::string>() + "; samples: " + Text(who, "samples") + ")";
  } else {
    triggered += " (user " + Text(who, "user") + ": `" + who.value("command", "") + "`)";
  }
  std::string components;
  for (const auto& c : r["components_affected"]) {
    components += (components.empty() ? "" : ", ") + c.get<std::string>();
  }
  const nlohmann::json& loss = r["data_loss"];
  line("# Rollback Incident Report");
  line("");
  line("**Run:** " + r.value("run_id", "") + " (" + r.value("kind", "") + ", " +
       r.value("status", "") + ")");
  line("**Date/Time:** " + Text(r, "date"));
  line("**Triggered By:** " + triggered);
  line("**Reason:** " + Text(r, "reason"));
  line("**Components Affected:** " + (components.empty() ? "none" : components));
  line("**Rollback Duration:** " + Ms(r, "duration_ms"));
  line("**Data Loss:** " + loss.value("summary", ""));
  line("**Performance:** " + Text(r, "performance"));
  line("**Recovery Time:** " + r["recovery"].value("verdict", ""));
  line("**Post-rollback Restore Point:** " + Text(r, "post_restore_point"));
  line("");
  line("## Root Cause Analysis");
  line("");
  line("_For people to write._");
  line("");
  line("## Actions Taken");
  line("");
  for (const auto& s : r["steps"]) {
    line(std::to_string(s.value("index", 0)) + ". " + s.value("description", "") + " — " +
         s.value("status", "") + ", " + Ms(s, "duration_ms") +
         (s.value("detail", "").empty() ? "" : " (" + s.value("detail", "") + ")"));
  }
  line("");
  line("Total: " + Ms(r, "duration_ms") + ".");
  if (!r.value("error", "").empty()) line("\nError: " + r.value("error", ""));
  line("");
  line("## Timeline");
  line("");
  for (const auto& m : r["timeline"]) {
    line("- " + (m["at"].is_null() ? std::string(kNotRecorded) : m["at"].get<std::string>()) +
         " — " + m.value("what", "") +
         (m.value("detail", "").empty() ? "" : ": " + m.value("detail", "")));
  }
  line("");
  line("## Data Loss");
  line("");
  line(loss.value("summary", ""));
  for (const auto& o : loss["objects"]) {
    line("- " + o.value("component", "") + " " + o.value("object", "") + ": " +
         std::to_string(o.value("inserted", 0)) + " inserted, " +
         std::to_string(o.value("changed", 0)) + " changed, " +
         std::to_string(o.value("deleted", 0)) + " deleted " + o.value("unit", ""));
  }
  for (const auto& f : loss["ledger_files"]) {
    line("- ledger: " + f.value("path", "") + " (" + std::to_string(f.value("lines", 0)) +
         " lines)");
  }
  line("");
  line("## Recovery Time");
  line("");
  const nlohmann::json& rec = r["recovery"];
  line("Scenario: " + Text(rec, "scenario") + "; target " + Ms(rec, "target_min_ms") + " to " +
       Ms(rec, "target_max_ms") + "; measured from " + rec.value("measured_from", "") + " to " +
       rec.value("measured_to", "") + ": " + Ms(rec, "measured_ms") + ".");
  line("Verdict: " + rec.value("verdict", ""));
  line("");
  line("## Recovery Checklist Acknowledgements");
  line("");
  if (r["checklist_acks"].empty())
    line("None yet (`backstop checklist " + r.value("run_id", "") + "`).");
  for (const auto& a : r["checklist_acks"]) {
    line("- " + a.value("item", "") + ": " + a.value("by", "") + ", " + Text(a, "at") +
         (a.value("note", "").empty() ? "" : " — " + a.value("note", "")));
  }
  line("");
  line("## Lessons Learned");
  line("");
  line("- What went wrong:");
  line("- How to prevent it in future:");
  line("");
  line("## Follow-up Actions");
  line("");
  line("- [ ] Update runbooks");
  line("- [ ] Modify monitoring thresholds");
  line("- [ ] Schedule post-mortem meeting");
  return md;
}

Status WriteIncidentReport(Env* env, const Spec& spec, StateDb& state, const std::string& run_id) {
  BACKSTOP_ASSIGN_OR_RETURN(nlohmann::json report,
                            BuildIncidentReport(spec, state, env->fs(), run_id));
  const std::string dir = RunDir(spec, run_id);
  BACKSTOP_RETURN_IF_ERROR(env->fs()->CreateDirs(dir));
  BACKSTOP_RETURN_IF_ERROR(
      env->fs()->WriteFileAtomic(JoinPath(dir, "report.json"), report.dump(2) + "\n", 0600));
  return env->fs()->WriteFileAtomic(JoinPath(dir, "report.md"), RenderIncidentReport(report), 0600);
}

void InstallIncidentReportWriter() {
  SetRunEndedHook([](const RunEnded& ended) {
    Status st = WriteIncidentReport(ended.env, ended.spec, ended.state, ended.run_id);
    if (!st.ok()) {
      std::fprintf(stderr, "warning: the incident report of %s was not written: %s\n",
                   ended.run_id.c_str(), st.message().c_str());
    }
  });
}

}  // namespace backstop

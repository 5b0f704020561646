// Commands for after a run: `report RUN [-o json|md]` prints its incident
// report (report/incident_report.h), `checklist RUN` its recovery checklist
// and `checklist ack RUN ITEM --by NAME [--note TEXT]` records that a person
// confirmed an item (report/checklist.h).
#include <cstdio>

#include "base/env.h"
#include "base/exit_code.h"
#include "base/units.h"
#include "cli/command_group.h"
#include "report/checklist.h"
#include "report/incident_report.h"

namespace backstop {
namespace {

void PrintToStdout(const std::string& text) {
  std::fputs(text.c_str(), stdout);
  if (!text.empty() && text.back() != '\n') std::fputc('\n', stdout);
  std::fflush(stdout);
}

// `format`: "json" or "md". The file the run's end wrote, or (when it is
// missing: an older run, or a write that failed) the report built afresh
// from the journal.
int CmdReport(const GlobalOptions& g, Output& out, const std::string& selector,
              const std::string& format) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  auto run_id = e.state->ResolveRunId(selector);
  if (!run_id.ok()) return Fail(out, run_id.status());
  FileSystem* fs = Env::Default()->fs();
  const std::string path =
      JoinPath(RunDir(e.spec, *run_id), format == "json" ? "report.json" : "report.md");
  std::string text;
  if (fs->Exists(path)) {
    auto stored = fs->ReadFileNoFollow(path);
    if (!stored.ok()) return Fail(out, stored.status().WithContext("report of " + *run_id));
    text = *stored;
  } else {
    auto built = BuildIncidentReport(e.spec, *e.state, fs, *run_id);
    if (!built.ok()) return Fail(out, built.status().WithContext("report of " + *run_id));
    text = format == "json" ? built->dump(2) : RenderIncidentReport(*built);
  }
  PrintToStdout(text);
  return kExitOk;
}

int CmdChecklist(const GlobalOptions& g, Output& out, const std::string& selector) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  auto run_id = e.state->ResolveRunId(selector);
  if (!run_id.ok()) return Fail(out, run_id.status());
  auto checklist = BuildChecklist(*e.engine, e.spec, *e.store, *e.state, *run_id);
  if (!checklist.ok()) return Fail(out, checklist.status().WithContext("checklist"));
  out.Text(RenderChecklist(*checklist));
  out.Json(checklist->ToJson());
  return checklist->ok() ? kExitOk : kExitFailed;
}

int CmdChecklistAck(const GlobalOptions& g, Output& out, const std::string& selector,
                    const std::string& item_selector, const std::string& by,
                    const std::string& note) {
  auto item = AcknowledgeableItem(item_selector);
  if (!item.ok()) return Fail(out, item.status());
  if (by.empty()) return Fail(out, Status::InvalidArgument("--by names who confirmed the item"));
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  auto run_id = e.state->ResolveRunId(selector);
  if (!run_id.ok()) return Fail(out, run_id.status());
  Env* env = Env::Default();
  ChecklistAck ack{*run_id, (*item)->id, by, note, env->clock()->WallMicros()};
  Status st = e.state->AckChecklistItem(ack);
  if (!st.ok()) return Fail(out, st);
  // The report shows the acknowledgements: keep the one in the run's folder current.
  if (env->fs()->Exists(JoinPath(RunDir(e.spec, *run_id), "report.json"))) {
    Status written = WriteIncidentReport(env, e.spec, *e.state, *run_id);
    if (!written.ok()) out.Error("warning: the report was not rewritten: " + written.message());
  }
  out.Text(std::string(Output::Ok()) + " " + (*item)->title + " [" + ack.item +
           "] acknowledged by " + by + " for " + *run_id);
  out.Json({{"ok", true},
            {"run_id", *run_id},
            {"item", ack.item},
            {"by", by},
            {"note", note},
            {"at", FormatRfc3339(ack.at_us)}});
  return kExitOk;
}

class ReportCommands : public CommandGroup {
 public:
  void Register(CLI::App& app) override {
    report_ = app.add_subcommand("report", "Print a run's incident report");
    report_->add_option("RUN", report_run_, "A run id, a unique prefix of one, or latest")
        ->required();
    report_->add_option("--output,-o", report_format_, "md (default) or json")
        ->check(CLI::IsMember({"md", "json", "text"}));

    checklist_ =
        app.add_subcommand("checklist", "A run's recovery checklist, or acknowledge an item");
    checklist_->add_option("RUN", checklist_run_, "A run id, a unique prefix of one, or latest");
    ack_ = checklist_->add_subcommand("ack", "Record that a person confirmed a checklist item");
    ack_->add_option("RUN", ack_run_, "A run id, a unique prefix of one, or latest")->required();
    ack_->add_option("ITEM", ack_item_,
                     "user-access, documentation-updated, team-notified (or 6, 9, 10)")
        ->required();
    ack_->add_option("--by", ack_by_, "Who confirmed it")->required();
    ack_->add_option("--note", ack_note_, "What was checked");
  }

  std::optional<int> Run(const Invocation& inv) override {
    if (*report_) {
      std::string format = report_format_.empty() ? inv.global.output : report_format_;
      return CmdReport(inv.global, inv.out, report_run_, format == "json" ? "json" : "md");
    }
    if (*checklist_) {
      if (*ack_) {
        return CmdChecklistAck(inv.global, inv.out, ack_run_, ack_item_, ack_by_, ack_note_);
      }
      if (checklist_run_.empty()) {
        return Fail(inv.out, Status::InvalidArgument(
                                 "checklist needs a RUN (an id, a unique prefix, or latest)"));
      }
      return CmdChecklist(inv.global, inv.out, checklist_run_);
    }
    return std::nullopt;
  }

 private:
  CLI::App* report_ = nullptr;
  std::string report_run_, report_format_;
  CLI::App* checklist_ = nullptr;
  std::string checklist_run_;
  CLI::App* ack_ = nullptr;
  std::string ack_run_, ack_item_, ack_by_, ack_note_;
};

}  // namespace

std::unique_ptr<CommandGroup> NewReportCommands() { return std::make_unique<ReportCommands>(); }

}  // namespace backstop

// The Watcher's answer to GET /api/v1/runs/{id}/report (api.h): the incident
// report and the recovery checklist of a run, for the dashboard's run page.
#include <cstdio>

#include "base/output.h"
#include "report/checklist.h"
#include "report/incident_report.h"
#include "run/run.h"
#include "run/state_db.h"
#include "store/store.h"
#include "watch/watch.h"

namespace backstop {

ApiReply Watcher::GetRunReport(const std::string& id) {
  // Its own connections, as GetComponents: this runs on an API thread, and the
  // checklist's machine items ask the drivers.
  auto db = StateDb::Open(JoinPath(spec_.state_dir, "state.db"));
  if (!db.ok()) return {503, {{"error", db.status().message()}, {"code", "unavailable"}}};
  auto run_id = (*db)->ResolveRunId(id);
  if (!run_id.ok()) return {404, {{"error", run_id.status().message()}, {"code", "not_found"}}};
  // A run that changed something writes its report when it ends
  // (InstallIncidentReportWriter); the others have neither report nor checklist.
  if (!env_->fs()->Exists(JoinPath(RunDir(spec_, *run_id), "report.json"))) {
    return {200,
            {{"report", nullptr},
             {"checklist", nullptr},
             {"why", "no incident report: this run has not ended or changed nothing"}}};
  }
  // Built again rather than read back, so that later acknowledgements show.
  auto report = BuildIncidentReport(spec_, **db, env_->fs(), *run_id);
  if (!report.ok()) {
    return {500, {{"error", report.status().message()}, {"code", "internal"}}};
  }
  nlohmann::json reply = {{"report", *report}, {"checklist", nullptr}};
  auto store = Store::Open(env_, spec_.store_path);
  if (!store.ok()) {
    reply["why"] = "no checklist: " + store.status().message();
    return {200, reply};
  }
  std::FILE* devnull = std::fopen("/dev/null", "w");
  if (devnull == nullptr) return {500, {{"error", "cannot open /dev/null"}, {"code", "internal"}}};
  {
    Output quiet(false, devnull, devnull);
    RunEngine engine(env_, spec_, **store, **db, registry_, quiet);
    auto checklist = BuildChecklist(engine, spec_, **store, **db, *run_id);
    if (checklist.ok()) {
      reply["checklist"] = checklist->ToJson();
    } else {
      reply["why"] = "no checklist: " + checklist.status().message();
    }
  }
  std::fclose(devnull);
  return {200, reply};
}

}  // namespace backstop

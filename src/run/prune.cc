#include "run/prune.h"

#include <algorithm>
#include <map>
#include <regex>
#include <set>

#include "base/units.h"
#include "run/retention.h"
#include "store/restore_point.h"

namespace backstop {
namespace {

// A name a user gave (`backstop snapshot --label`), not one Backstop gives
// its own restore points (safety, pre-deploy, scheduled, post-rollback, drill).
bool IsUserLabelled(const RestorePoint& rp) {
  return !rp.label.empty() && rp.kind == RestorePointKind::kManual;
}

// Blob digests mentioned in a kept run's artifacts (e.g. saved stream content).
void CollectDigests(FileSystem* fs, const std::string& dir, std::set<std::string>* out) {
  auto names = fs->ListDir(dir);
  if (!names.ok()) return;
  static const std::regex kDigest("[0-9a-f]{64}");
  for (const auto& n : *names) {
    std::string path = JoinPath(dir, n);
    auto info = fs->Stat(path);
    if (!info.ok()) continue;
    if (info->is_dir) {
      CollectDigests(fs, path, out);
      continue;
    }
    if (n.size() < 5 || n.substr(n.size() - 5) != ".json") continue;
    auto text = fs->ReadFile(path);
    if (!text.ok()) continue;
    for (std::sregex_iterator it(text->begin(), text->end(), kDigest), end; it != end; ++it) {
      out->insert(it->str());
    }
  }
}

}  // namespace

Result<PruneReport> PruneEnvironment(RunEngine& engine, const Spec& spec, Store& store,
                                     StateDb& state, const PruneOptions& options) {
  PruneReport report;
  FileSystem* fs = store.env()->fs();
  BACKSTOP_ASSIGN_OR_RETURN(auto unfinished, state.UnfinishedRuns());
  if (!unfinished.empty()) {
    return Status::FailedPrecondition("run " + unfinished.front().id +
                                      " is unfinished and may need what prune would release; "
                                      "resume or abandon it first");
  }

  // 1. What finished runs set aside, except the newest few.
  BACKSTOP_ASSIGN_OR_RETURN(auto runs, state.ListRuns(0));  // newest first
  std::set<std::string> kept_runs;
  // Runs whose kept-aside data is released (now or by an earlier prune): a
  // safety restore point of such a run refers to what is gone (a retained
  // database), so it goes with it.
  std::set<std::string> released_runs;
  // Restore points a kept run names as its own (a deploy's pre-deploy point:
  // a rollback of that deploy targets it).
  std::map<std::string, std::string> needed_by_runs;
  int seen = 0;
  for (const auto& run : runs) {
    if (seen++ < options.keep_runs) {
      kept_runs.insert(run.id);
      if (run.kind == RunKind::kDeploy && !run.restore_point.empty()) {
        needed_by_runs[run.restore_point] = run.id;
      }
      continue;
    }
    BACKSTOP_ASSIGN_OR_RETURN(auto pruned, state.Get("pruned:" + run.id));
    if (pruned.has_value()) {
      released_runs.insert(run.id);
      continue;
    }
    if (options.restore_points_only) continue;
    auto plan = Plan::FromJson(run.plan);
    if (!plan.ok()) continue;
    bool all_ok = true;
    for (const auto& name : plan->affected) {
      const ComponentSpec* c = spec.Find(name);
      if (c == nullptr) continue;
      auto driver = engine.DriverFor(*c);
      if (!driver.ok()) continue;
      report.actions.push_back("release what run " + run.id + " kept aside for " + name);
      if (options.dry_run) continue;
      DriverContext ctx = engine.Context(run.id);
      Status st = (*driver)->Prune(*c, run.id, ctx);
      if (!st.ok()) {
        all_ok = false;
        report.errors.push_back(name + " (run " + run.id + "): " + st.message());
      }
    }
    if (!options.dry_run && all_ok) BACKSTOP_RETURN_IF_ERROR(state.Put("pruned:" + run.id, "1"));
    if (all_ok) released_runs.insert(run.id);
  }

  // 1b. What killed runs left behind (a half-built shadow database, scratch
  // files): no run is unfinished (checked above), so none of it can be
  // resumed. Data drivers release it when Prune is given no run id
  // (services keep nothing of a run outside its run directory).
  for (const auto& [name, c] : spec.components) {
    if (options.restore_points_only) break;
    if (!HoldsData(c.kind)) continue;
    auto driver = engine.DriverFor(c);
    if (!driver.ok()) continue;
    DriverContext ctx = engine.Context();
    ctx.dry_run = options.dry_run;
    Status st = (*driver)->Prune(c, "", ctx);
    if (!st.ok()) report.errors.push_back(name + " (leftovers of killed runs): " + st.message());
  }

  // 2. Restore points the retention policy does not keep.
  std::vector<std::string> list_errors;
  std::vector<RestorePoint> rps = ListRestorePoints(store, &list_errors);
  std::reverse(rps.begin(), rps.end());  // newest first
  KeepPolicy policy = options.keep;
  if (policy.empty()) policy.last = options.keep_restore_points;
  std::vector<RestorePoint> candidates;
  for (const auto& rp : rps) {
    if (!(rp.kind == RestorePointKind::kSafety && released_runs.count(rp.run_id) > 0))
      candidates.push_back(rp);
  }
  std::map<std::string, std::vector<std::string>> reasons = KeptByPolicy(candidates, policy);
  // The checklist's evidence of the last recovery ("a fresh restore point
  // taken after the rollback") stays whatever its age.
  for (const auto& rp : candidates) {
    if (rp.kind != RestorePointKind::kPostRollback) continue;
    reasons[rp.id].push_back("the newest post-rollback restore point");
    break;
  }
  std::vector<RestorePoint> remaining;
  for (const auto& rp : rps) {
    const bool released =
        rp.kind == RestorePointKind::kSafety && released_runs.count(rp.run_id) > 0;
    std::vector<std::string> why = released ? std::vector<std::string>{} : reasons[rp.id];
    if (!released) {
      if (options.keep_labelled && IsUserLabelled(rp)) why.push_back("labelled " + rp.label);
      if (!rp.run_id.empty() && kept_runs.count(rp.run_id)) {
        why.push_back("belongs to kept run " + rp.run_id);
      }
      auto needed = needed_by_runs.find(rp.id);
      if (needed != needed_by_runs.end()) why.push_back("target of run " + needed->second);
    }
    if (!why.empty()) {
      remaining.push_back(rp);
      std::string line = "keep restore point " + rp.id +
                         (rp.label.empty() ? "" : " (" + rp.label + ")") + " of " +
                         FormatRfc3339(rp.created_wall_us) + ": ";
      for (size_t i = 0; i < why.size(); ++i) line += (i ? ", " : "") + why[i];
      report.kept.push_back(line);
      continue;
    }
    report.actions.push_back(
        "delete restore point " + rp.id + (rp.label.empty() ? "" : " (" + rp.label + ")") + " of " +
        FormatRfc3339(rp.created_wall_us) +
        (released ? " (what it restores was released with run " + rp.run_id + ")" : ""));
    if (options.dry_run) continue;
    for (const auto& [name, entry] : rp.components.items()) {
      const ComponentSpec* c = spec.Find(name);
      if (c == nullptr) continue;
      auto driver = engine.DriverFor(*c);
      if (!driver.ok()) continue;
      DriverContext ctx = engine.Context();
      Status st = (*driver)->DiscardSnapshot(*c, entry, ctx);
      if (!st.ok()) report.errors.push_back(name + " (" + rp.id + "): " + st.message());
    }
    Status st = DeleteRestorePoint(store, rp.id);
    if (!st.ok()) report.errors.push_back(rp.id + ": " + st.message());
  }

  // 3. Blobs nothing refers to any more.
  std::set<std::string> referenced;
  for (const auto& rp : remaining) {
    for (const auto& d : rp.AllBlobs()) referenced.insert(d);
  }
  for (const auto& id : kept_runs) {
    CollectDigests(fs, JoinPath(JoinPath(spec.state_dir, "runs"), id), &referenced);
  }
  if (!list_errors.empty()) {
    // A manifest that cannot be read may still name blobs: deleting any would be a guess.
    for (const auto& e : list_errors) report.errors.push_back(e);
    report.errors.push_back("unreadable restore points: blobs were not garbage-collected");
    return report;
  }
  BACKSTOP_ASSIGN_OR_RETURN(auto blobs, store.ListBlobs());
  for (const auto& digest : blobs) {
    if (referenced.count(digest)) continue;
    auto info = fs->Stat(store.BlobPath(digest));
    ++report.blobs_deleted;
    if (info.ok()) report.bytes_freed += info->size;
    if (options.dry_run) continue;
    Status st = store.RemoveBlob(digest);
    if (!st.ok()) report.errors.push_back("blob " + digest + ": " + st.message());
  }
  if (report.blobs_deleted > 0) {
    report.actions.push_back("delete " + FormatThousands(report.blobs_deleted) +
                             " unreferenced blobs (" + FormatThousands(report.bytes_freed / 1024) +
                             " kB)");
  }
  return report;
}

}  // namespace backstop

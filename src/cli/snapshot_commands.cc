// Commands on restore points: `snapshot` takes one, `snapshots` lists them
// (`snapshots verify` re-hashes one), `prune` releases old ones (by the
// retention policy) and what old rollbacks kept aside.
#include "cli/command_group.h"

#include <optional>
#include <set>
#include <vector>

#include "base/env.h"
#include "base/exit_code.h"
#include "base/units.h"
#include "run/lock.h"
#include "run/prune.h"
#include "run/retention.h"
#include "store/remote/remote_store_open.h"
#include "store/restore_point.h"
#include "store/restore_point_size.h"

namespace backstop {
namespace {

int CmdSnapshot(const GlobalOptions& g, Output& out, const std::string& label,
                const std::vector<std::string>& components, const std::string& command) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  Env* env = Env::Default();
  // A snapshot must not interleave with a rollback of the same environment.
  auto lock = EnvironmentLock::Acquire(env, e.spec.state_dir, {{"command", command}});
  if (!lock.ok()) return Fail(out, lock.status());
  int64_t t0 = env->clock()->NowMicros();
  auto rp = TakeRestorePoint(*e.engine, e.spec, *e.store, components, label,
                             RestorePointKind::kManual, "", "");
  if (!rp.ok()) return Fail(out, rp.status().WithContext("snapshot"));
  // Keep the stat cache even if this process is killed later.
  (void)e.store->FlushCache();
  int64_t ms = (env->clock()->NowMicros() - t0) / 1000;
  out.Line("restore point " + rp->id + (label.empty() ? "" : " (" + label + ")") + " taken in " +
           FormatDurationMs(ms));
  for (const auto& [name, entry] : rp->components.items()) {
    std::string what;
    if (entry.contains("release")) {
      what = entry["release"].is_string() ? "release " + entry["release"].get<std::string>()
                                          : "no release";
    }
    if (entry.contains("config_hash")) {
      what += (what.empty() ? "" : ", ") + entry["config_hash"].get<std::string>();
    }
    if (what.empty()) {
      what = std::to_string(entry.value("blobs", nlohmann::json::array()).size()) + " blobs";
    }
    out.Line("  " + Pad(name, 14) + what);
  }
  out.Line("checksum " + rp->checksum);
  out.Json({{"ok", true}, {"restore_point", rp->ToJson()}, {"duration_ms", ms}});
  return kExitOk;
}

int CmdSnapshots(const GlobalOptions& g, Output& out) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  std::vector<std::string> errors;
  std::vector<RestorePoint> rps = ListRestorePoints(*e.store, &errors);
  const std::vector<RestorePointSize> sizes = MeasureRestorePoints(*e.store, rps);
  // With a remote store: where each restore point is (local, remote, both).
  std::unique_ptr<RemoteStore> remote;
  std::set<std::string> remote_ids;
  bool remote_listed = false;
  if (e.spec.remote_store) {
    auto opened_remote = OpenRemoteStore(Env::Default(), e.spec, e.store.get());
    auto ids = opened_remote.ok() ? (*opened_remote)->ListIds()
                                  : Result<std::vector<std::string>>(opened_remote.status());
    if (ids.ok()) {
      remote = std::move(opened_remote).value();
      remote_ids.insert(ids->begin(), ids->end());
      remote_listed = true;
    } else {
      errors.push_back("the remote store cannot be listed: " + ids.status().message());
    }
  }
  const bool show_where = e.spec.remote_store.has_value();
  nlohmann::json doc = nlohmann::json::array();
  out.Text(Pad("ID", 38) + Pad("LABEL", 22) + Pad("KIND", 8) + Pad("TAKEN", 22) +
           Pad("SIZE (ADDED)", 24) + (show_where ? Pad("WHERE", 8) : "") + "COMPONENTS");
  auto where_of = [&](const std::string& id) -> std::string {
    if (!remote_listed) return "local?";
    return remote_ids.count(id) ? "both" : "local";
  };
  for (size_t i = 0; i < rps.size(); ++i) {
    const RestorePoint& rp = rps[i];
    const RestorePointSize& size = sizes[i];
    std::string comps;
    for (const auto& [name, entry] : rp.components.items()) {
      comps += (comps.empty() ? "" : ",") + name;
    }
    std::string size_text =
        FormatBytes(size.stored_bytes) + " (+" + FormatBytes(size.added_bytes) + ")";
    if (size.missing_blobs > 0) {
      size_text += " " + std::to_string(size.missing_blobs) + " blob(s) MISSING";
    }
    out.Text(Pad(rp.id, 38) + Pad(rp.label.empty() ? "-" : rp.label, 22) +
             Pad(std::string(Name(rp.kind)), 8) + Pad(FormatRfc3339(rp.created_wall_us), 22) +
             Pad(size_text, 24) + (show_where ? Pad(where_of(rp.id), 8) : "") + comps);
    nlohmann::json row = {{"id", rp.id},
                          {"label", rp.label},
                          {"kind", rp.kind},
                          {"timestamp", FormatRfc3339(rp.created_wall_us)},
                          {"components", rp.components.size()},
                          {"stored_bytes", size.stored_bytes},
                          {"added_bytes", size.added_bytes},
                          {"missing_blobs", size.missing_blobs}};
    if (show_where) row["where"] = where_of(rp.id);
    doc.push_back(row);
    remote_ids.erase(rp.id);
  }
  // Restore points only in the remote store (another host's, or pruned here).
  for (const auto& id : remote_ids) {
    auto rp = remote->Read(id);
    if (!rp.ok()) {
      errors.push_back("remote restore point " + id + ": " + rp.status().message());
      continue;
    }
    std::string comps;
    for (const auto& [name, entry] : rp->components.items()) {
      comps += (comps.empty() ? "" : ",") + name;
    }
    out.Text(Pad(rp->id, 38) + Pad(rp->label.empty() ? "-" : rp->label, 22) +
             Pad(std::string(Name(rp->kind)), 8) + Pad(FormatRfc3339(rp->created_wall_us), 22) +
             Pad("-", 24) + Pad("remote", 8) + comps);
    doc.push_back({{"id", rp->id},
                   {"label", rp->label},
                   {"kind", rp->kind},
                   {"timestamp", FormatRfc3339(rp->created_wall_us)},
                   {"components", rp->components.size()},
                   {"where", "remote"}});
  }
  for (const auto& err : errors) out.Error("warning: " + err);
  if (doc.empty()) out.Text("(no restore points yet: `backstop snapshot --label NAME` takes one)");
  out.Json({{"restore_points", doc}, {"errors", errors}});
  return kExitOk;
}

// `snapshots verify ID --remote`: every blob read back from the remote store.
int CmdSnapshotsVerifyRemote(const GlobalOptions& g, Output& out, const std::string& selector) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  auto remote = OpenRemoteStore(Env::Default(), e.spec, e.store.get());
  if (!remote.ok()) return Fail(out, remote.status());
  auto rp = (*remote)->Resolve(selector, /*include_safety=*/true);
  if (!rp.ok()) return Fail(out, rp.status());
  out.Line("re-reading every blob of " + rp->id + " from " + (*remote)->Describe());
  auto check = (*remote)->Verify(*rp);
  if (!check.ok()) return Fail(out, check.status());
  out.Text(
      std::string(check->manifest_ok ? Output::Ok() : Output::Fail()) + " remote manifest " +
      rp->id +
      (check->manifest_ok ? " decrypts and its checksum matches" : ": " + check->manifest_detail));
  nlohmann::json failures = nlohmann::json::array();
  for (const auto& b : check->Failures()) {
    out.Text(std::string(Output::Fail()) + " " + BlobCheck::StateName(b.state) + " blob " +
             b.digest + ": " + b.detail);
    failures.push_back(
        {{"digest", b.digest}, {"state", BlobCheck::StateName(b.state)}, {"detail", b.detail}});
  }
  const size_t intact = check->blobs.size() - check->Failures().size();
  out.Text(std::to_string(intact) + "/" + std::to_string(check->blobs.size()) +
           " blobs intact in the remote store");
  out.Json({{"ok", check->ok()},
            {"restore_point", rp->id},
            {"remote", (*remote)->Describe()},
            {"manifest_ok", check->manifest_ok},
            {"blobs", check->blobs.size()},
            {"failures", failures}});
  if (!check->ok()) {
    out.Error("the remote copy of " + rp->id + " is damaged; it cannot restore this host");
    return kExitFailed;
  }
  return kExitOk;
}

int CmdSnapshotsVerify(const GlobalOptions& g, Output& out, const std::string& selector) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  // Resolve without trusting the manifest's checksum: verification reports it.
  auto id = ResolveRestorePointId(*e.store, selector, /*include_safety=*/true);
  if (!id.ok()) return Fail(out, id.status());
  auto rp = ReadRestorePoint(*e.store, *id, /*check_checksum=*/false);
  if (!rp.ok()) return Fail(out, rp.status());
  RestorePointCheck check = VerifyRestorePoint(*e.store, *rp);
  nlohmann::json failures = nlohmann::json::array();
  out.Text(std::string(check.manifest_ok ? Output::Ok() : Output::Fail()) + " manifest " + rp->id +
           (check.manifest_ok ? " checksum matches" : ": " + check.manifest_detail));
  size_t ok_count = 0;
  for (const auto& b : check.blobs) {
    if (b.state == BlobCheck::State::kOk) {
      ++ok_count;
      continue;
    }
    out.Text(std::string(Output::Fail()) + " " + BlobCheck::StateName(b.state) + " blob " +
             b.digest + ": " + b.detail);
    failures.push_back(
        {{"digest", b.digest}, {"state", BlobCheck::StateName(b.state)}, {"detail", b.detail}});
  }
  out.Text(std::to_string(ok_count) + "/" + std::to_string(check.blobs.size()) + " blobs intact");
  // What the restore point needs outside the store (a staged or a retained
  // database) must be there too, or it cannot restore.
  nlohmann::json unrestorable = nlohmann::json::array();
  for (const auto& [name, entry] : rp->components.items()) {
    const ComponentSpec* c = e.spec.Find(name);
    if (c == nullptr) continue;
    auto driver = e.engine->DriverFor(*c);
    if (!driver.ok()) continue;
    DriverContext ctx = e.engine->Context();
    Status st = (*driver)->CheckRestorable(*c, entry, ctx);
    if (st.ok()) continue;
    out.Text(std::string(Output::Fail()) + " " + name + ": " + st.message());
    unrestorable.push_back({{"component", name}, {"detail", st.message()}});
  }
  const bool ok = check.ok() && unrestorable.empty();
  out.Json({{"ok", ok},
            {"restore_point", rp->id},
            {"manifest_ok", check.manifest_ok},
            {"manifest_detail", check.manifest_detail},
            {"blobs", check.blobs.size()},
            {"failures", failures},
            {"unrestorable", unrestorable}});
  if (!check.ok()) {
    out.Error("restore point " + rp->id + " is damaged; a rollback to it will be refused");
    return kExitFailed;
  }
  if (!unrestorable.empty()) {
    out.Error("restore point " + rp->id + " can no longer restore " +
              std::to_string(unrestorable.size()) + " component(s); a rollback to it will fail");
    return kExitFailed;
  }
  out.Text(std::to_string(rp->components.size()) + " components restorable");
  return kExitOk;
}

// --keep-* flags given on the command line; each overrides the spec's value.
struct KeepFlags {
  std::optional<int> last, hourly, daily, weekly, monthly, restore_points;
};

// The --keep-* flags that set one count of the KeepPolicy each, in the order
// `prune --help` lists them; registered and applied by the loops below.
struct KeepRuleFlag {
  const char* name;
  std::optional<int> KeepFlags::*given;
  int KeepPolicy::*count;
  const char* help;
};
constexpr KeepRuleFlag kKeepRuleFlags[] = {
    {"--keep-last", &KeepFlags::last, &KeepPolicy::last, "Keep the newest N restore points"},
    {"--keep-hourly", &KeepFlags::hourly, &KeepPolicy::hourly,
     "Keep the newest of each of the last N hours that have one"},
    {"--keep-daily", &KeepFlags::daily, &KeepPolicy::daily,
     "Keep the newest of each of the last N days that have one"},
    {"--keep-weekly", &KeepFlags::weekly, &KeepPolicy::weekly,
     "Keep the newest of each of the last N weeks that have one"},
    {"--keep-monthly", &KeepFlags::monthly, &KeepPolicy::monthly,
     "Keep the newest of each of the last N months that have one"},
};

int CmdPrune(const GlobalOptions& g, Output& out, PruneOptions options, const KeepFlags& flags,
             const std::string& command) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  KeepPolicy& keep = options.keep;
  keep = e.spec.restore_points.keep;
  for (const KeepRuleFlag& rule : kKeepRuleFlags) {
    if (const std::optional<int>& given = flags.*rule.given) keep.*rule.count = *given;
  }
  // The older count is --keep-last by another name.
  if (flags.restore_points && !flags.last) keep.last = *flags.restore_points;
  if (keep.empty()) keep.last = options.keep_restore_points;
  auto lock = EnvironmentLock::Acquire(Env::Default(), e.spec.state_dir, {{"command", command}});
  if (!lock.ok()) return Fail(out, lock.status());
  auto report = PruneEnvironment(*e.engine, e.spec, *e.store, *e.state, options);
  if (!report.ok()) return Fail(out, report.status());
  out.Text("retention: " + DescribeKeepPolicy(keep) + " (labelled restore points are kept)");
  if (options.dry_run) {
    for (const auto& k : report->kept) out.Text(k);
  }
  for (const auto& a : report->actions) out.Text((options.dry_run ? "would " : "") + a);
  for (const auto& err : report->errors) out.Error("warning: " + err);
  if (report->actions.empty()) out.Text("nothing to prune");
  out.Json({{"ok", report->errors.empty()},
            {"dry_run", options.dry_run},
            {"actions", report->actions},
            {"kept", report->kept},
            {"errors", report->errors},
            {"blobs_deleted", report->blobs_deleted},
            {"bytes_freed", report->bytes_freed}});
  return report->errors.empty() ? kExitOk : kExitFailed;
}

class SnapshotCommands : public CommandGroup {
 public:
  void Register(CLI::App& app) override {
    snapshot_ = app.add_subcommand("snapshot", "Take a restore point");
    snapshot_->add_option("--label,-l", snap_label_, "A name to select it by later");
    snapshot_->add_option("--component,-c", snap_components_,
                          "Only these components (default: all)");

    snapshots_ = app.add_subcommand("snapshots", "List restore points, or verify one");
    snapshots_verify_ =
        snapshots_->add_subcommand("verify", "Re-hash every blob of a restore point");
    snapshots_verify_
        ->add_option("RESTORE_POINT", verify_selector_, "latest, previous, an id or a label")
        ->required();
    snapshots_verify_->add_flag(
        "--remote", verify_remote_,
        "Re-read, decrypt and re-hash every blob from the remote store instead of the local one");

    prune_ = app.add_subcommand(
        "prune", "Release what old rollbacks kept aside, old restore points and unused blobs");
    prune_
        ->add_option("--keep-runs", prune_options_.keep_runs,
                     "Newest runs whose replaced databases/releases are kept")
        ->default_val(3)
        ->check(CLI::NonNegativeNumber);
    prune_
        ->add_option("--keep-restore-points", keep_flags_.restore_points,
                     "Newest restore points kept, when no other --keep-* rule is given nor "
                     "restore_points.keep in the spec (default 10; same as --keep-last)")
        ->check(CLI::NonNegativeNumber);
    for (const KeepRuleFlag& rule : kKeepRuleFlags) {
      prune_->add_option(rule.name, keep_flags_.*rule.given, rule.help)
          ->check(CLI::NonNegativeNumber);
    }
    prune_->add_flag("--dry-run", prune_options_.dry_run,
                     "Say what would be released, and why each kept restore point is kept");
  }

  std::optional<int> Run(const Invocation& inv) override {
    if (*snapshot_) {
      return CmdSnapshot(inv.global, inv.out, snap_label_, snap_components_, inv.command);
    }
    if (*snapshots_) {
      if (*snapshots_verify_) {
        if (verify_remote_) return CmdSnapshotsVerifyRemote(inv.global, inv.out, verify_selector_);
        return CmdSnapshotsVerify(inv.global, inv.out, verify_selector_);
      }
      return CmdSnapshots(inv.global, inv.out);
    }
    if (*prune_) return CmdPrune(inv.global, inv.out, prune_options_, keep_flags_, inv.command);
    return std::nullopt;
  }

 private:
  CLI::App* snapshot_ = nullptr;
  std::string snap_label_;
  std::vector<std::string> snap_components_;
  CLI::App* snapshots_ = nullptr;
  CLI::App* snapshots_verify_ = nullptr;
  std::string verify_selector_;
  bool verify_remote_ = false;
  CLI::App* prune_ = nullptr;
  PruneOptions prune_options_;
  KeepFlags keep_flags_;
};

}  // namespace

std::unique_ptr<CommandGroup> NewSnapshotCommands() { return std::make_unique<SnapshotCommands>(); }

}  // namespace backstop

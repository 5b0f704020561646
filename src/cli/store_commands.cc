// Commands on the remote store (docs/store.md): `store sync` uploads the
// restore points not yet off this host, `store fetch` brings one back,
// `store status` says what is where, `store key new` makes an encryption key.
#include <sys/stat.h>

#include "base/env.h"
#include "base/exit_code.h"
#include "base/units.h"
#include "cli/command_group.h"
#include "run/lock.h"
#include "store/remote/remote_store_open.h"
#include "store/remote/store_crypto.h"

namespace backstop {
namespace {

// One progress line per restore point and then every ~10% of its blobs.
ReplicationProgressFn ProgressPrinter(Output& out, const char* verb) {
  return
      [&out, verb, last = std::string(), step = size_t{0}](const ReplicationProgress& p) mutable {
        if (p.restore_point != last) {
          last = p.restore_point;
          step = std::max<size_t>(1, p.blobs_to_move / 10);
          out.Line(std::string(verb) + " " + p.restore_point + ": " +
                   std::to_string(p.blobs_to_move) + " blob(s) to move");
          return;
        }
        if (p.blobs_done == p.blobs_to_move || p.blobs_done % step == 0) {
          out.Line("  " + std::to_string(p.blobs_done) + "/" + std::to_string(p.blobs_to_move) +
                   " blobs, " + FormatBytes(p.bytes_moved) + " so far");
        }
      };
}

int CmdStoreSync(const GlobalOptions& g, Output& out, const std::vector<std::string>& only) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  Env* env = Env::Default();
  auto remote = OpenRemoteStore(env, e.spec, e.store.get());
  if (!remote.ok()) return Fail(out, remote.status());
  out.Line("syncing to " + (*remote)->Describe());
  int64_t t0 = env->clock()->NowMicros();
  std::vector<std::string> ids;
  for (const auto& selector : only) {
    auto rp = ResolveRestorePoint(*e.store, selector, /*include_safety=*/true);
    if (!rp.ok()) return Fail(out, rp.status());
    ids.push_back(rp->id);
  }
  auto summary = (*remote)->Sync(ProgressPrinter(out, "uploading"), only.empty() ? nullptr : &ids);
  if (!summary.ok()) return Fail(out, summary.status());
  int64_t ms = (env->clock()->NowMicros() - t0) / 1000;
  out.Text(std::to_string(summary->uploaded.size()) + " restore point(s) uploaded, " +
           std::to_string(summary->already_there) + " already there; " +
           std::to_string(summary->blobs_sent) + " blob(s) sent (" +
           FormatBytes(summary->bytes_sent) + "), " + std::to_string(summary->blobs_present) +
           " already in the bucket; " + FormatDurationMs(ms));
  for (const auto& f : summary->failed) out.Error("not uploaded: " + f);
  out.Json({{"ok", summary->failed.empty()},
            {"remote", (*remote)->Describe()},
            {"uploaded", summary->uploaded},
            {"already_there", summary->already_there},
            {"blobs_sent", summary->blobs_sent},
            {"blobs_present", summary->blobs_present},
            {"bytes_sent", summary->bytes_sent},
            {"failed", summary->failed},
            {"duration_ms", ms}});
  return summary->failed.empty() ? kExitOk : kExitFailed;
}

int CmdStoreFetch(const GlobalOptions& g, Output& out, const std::string& selector) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  auto remote = OpenRemoteStore(Env::Default(), e.spec, e.store.get());
  if (!remote.ok()) return Fail(out, remote.status());
  auto rp = (*remote)->Resolve(selector, /*include_safety=*/true);
  if (!rp.ok()) return Fail(out, rp.status());
  auto summary = (*remote)->Fetch(rp->id, ProgressPrinter(out, "fetching"));
  if (!summary.ok()) return Fail(out, summary.status());
  out.Text("restore point " + rp->id +
           " is in the local store: " + std::to_string(summary->blobs_fetched) +
           " blob(s) fetched (" + FormatBytes(summary->bytes_fetched) + "), " +
           std::to_string(summary->blobs_present) + " already here");
  out.Json({{"ok", true},
            {"restore_point", rp->id},
            {"blobs_fetched", summary->blobs_fetched},
            {"blobs_present", summary->blobs_present},
            {"bytes_fetched", summary->bytes_fetched}});
  return kExitOk;
}

int CmdStoreStatus(const GlobalOptions& g, Output& out) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  auto remote = OpenRemoteStore(Env::Default(), e.spec, e.store.get());
  if (!remote.ok()) return Fail(out, remote.status());
  auto remote_ids = (*remote)->ListIds();
  if (!remote_ids.ok()) return Fail(out, remote_ids.status());
  std::set<std::string> there(remote_ids->begin(), remote_ids->end());
  std::vector<RestorePoint> local = ListRestorePoints(*e.store, nullptr);
  std::set<std::string> here;
  nlohmann::json rows = nlohmann::json::array();
  size_t only_local = 0;
  out.Text("remote: " + (*remote)->Describe());
  out.Text(Pad("ID", 38) + Pad("LABEL", 22) + "WHERE");
  for (const auto& rp : local) {
    here.insert(rp.id);
    const char* where = there.count(rp.id) ? "both" : "local";
    if (!there.count(rp.id)) ++only_local;
    out.Text(Pad(rp.id, 38) + Pad(rp.label.empty() ? "-" : rp.label, 22) + where);
    rows.push_back({{"id", rp.id}, {"label", rp.label}, {"where", where}});
  }
  for (const auto& id : there) {
    if (here.count(id)) continue;
    out.Text(Pad(id, 38) + Pad("", 22) + "remote");
    rows.push_back({{"id", id}, {"where", "remote"}});
  }
  if (only_local > 0) {
    out.Text(std::to_string(only_local) +
             " restore point(s) only on this host: `backstop store sync` uploads them");
  }
  out.Json({{"remote", (*remote)->Describe()}, {"restore_points", rows}});
  return kExitOk;
}

int CmdStoreKeyNew(Output& out, const std::string& path) {
  auto key = StoreKey::Generate();
  if (!key.ok()) return Fail(out, key.status());
  FileSystem* fs = Env::Default()->fs();
  if (fs->Exists(path)) {
    return Fail(out, Status::FailedPrecondition(
                         path + " exists; a key is never overwritten (the restore points it "
                                "encrypts would be lost with it)"));
  }
  auto file = fs->NewWritableFile(path, 0600, WriteMode::kCreateNew);
  if (!file.ok()) return Fail(out, file.status());
  Status st = (*file)->Append(*key + "\n");
  if (st.ok()) st = (*file)->Sync();
  if (st.ok()) st = (*file)->Close();
  if (!st.ok()) return Fail(out, st);
  auto parsed = StoreKey::FromText(*key, path);
  out.Text("wrote a new store key to " + path + " (mode 0600, fingerprint " +
           parsed->fingerprint() + ")");
  out.Text("keep a copy of it OFF this host: without it, nothing in the remote store can be read");
  out.Json({{"ok", true}, {"path", path}, {"fingerprint", parsed->fingerprint()}});
  return kExitOk;
}

class StoreCommands : public CommandGroup {
 public:
  void Register(CLI::App& app) override {
    store_ = app.add_subcommand("store", "The remote store: sync, fetch, status, key new");
    store_->require_subcommand(1);
    sync_ = store_->add_subcommand(
        "sync", "Upload the restore points not yet in the remote store (blobs, then manifest)");
    sync_->add_option("RESTORE_POINT", sync_only_, "Only these (default: every one)");
    fetch_ = store_->add_subcommand(
        "fetch", "Copy a restore point from the remote store into the local one (verified)");
    fetch_->add_option("RESTORE_POINT", fetch_selector_, "latest, previous, an id or a label")
        ->required();
    status_ = store_->add_subcommand("status", "Which restore points are local, remote, both");
    key_ = store_->add_subcommand("key", "Encryption keys of the remote store");
    key_->require_subcommand(1);
    key_new_ = key_->add_subcommand("new", "Write a new random key (64 hex digits) to FILE, 0600");
    key_new_->add_option("FILE", key_path_, "Where to write it (never overwritten)")->required();
  }

  std::optional<int> Run(const Invocation& inv) override {
    if (!*store_) return std::nullopt;
    if (*sync_) return CmdStoreSync(inv.global, inv.out, sync_only_);
    if (*fetch_) return CmdStoreFetch(inv.global, inv.out, fetch_selector_);
    if (*status_) return CmdStoreStatus(inv.global, inv.out);
    if (*key_new_) return CmdStoreKeyNew(inv.out, key_path_);
    return std::nullopt;
  }

 private:
  CLI::App* store_ = nullptr;
  CLI::App* sync_ = nullptr;
  std::vector<std::string> sync_only_;
  CLI::App* fetch_ = nullptr;
  std::string fetch_selector_;
  CLI::App* status_ = nullptr;
  CLI::App* key_ = nullptr;
  CLI::App* key_new_ = nullptr;
  std::string key_path_;
};

}  // namespace

std::unique_ptr<CommandGroup> NewStoreCommands() { return std::make_unique<StoreCommands>(); }

}  // namespace backstop

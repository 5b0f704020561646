// The `files` driver. See files_driver.h for the contract.
#include "drivers/files/files_driver.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "base/crash_point.h"
#include "base/hash.h"
#include "base/strings.h"
#include "base/units.h"
#include "drivers/config_hash.h"
#include "drivers/driver_settings.h"
#include "store/restore_point.h"
#include "store/store.h"

namespace backstop::files {
namespace {

using nlohmann::json;

constexpr int kMaxSymlinkDepth = 40;
// Folders the driver creates for a restored file that lost its folder: the
// files are read by the services, so their folders are not private.
constexpr uint32_t kConfigDirMode = 0755;
constexpr uint32_t kWritableByOthers = 0022;
constexpr uint32_t kSticky = 01000;
// A replacement is staged beside its target as "<name><suffix>-<run>".
constexpr char kStagedSuffix[] = ".backstop-restore";

struct Settings {
  std::string name;
  std::vector<std::string> files;  // absolute
  std::set<std::string> follow;    // absolute; files whose links are followed
  std::vector<std::string> reload;
  int64_t reload_timeout_ms = 30'000;
  std::string component_dir;   // <state_dir>/components/<name>; empty without a state dir
  std::string marker_path;     // reload pending; empty without a state dir
  std::string reference_path;  // the state last restored (drift reference)
};

std::vector<std::string> StringList(const json& v) {
  if (v.is_string()) return {v.get<std::string>()};
  return v.get<std::vector<std::string>>();
}

Result<Settings> LoadSettings(const ComponentSpec& c, const std::string& state_dir) {
  Settings s;
  s.name = c.name;
  const json& j = c.settings;
  try {
    if (!j.contains("files") || j["files"].is_null()) {
      return Status::InvalidArgument("component " + c.name +
                                     ": setting 'files' (the list of config files) is required");
    }
    std::set<std::string> seen;
    for (const auto& f : StringList(j["files"])) {
      if (f.empty()) return Status::InvalidArgument("component " + c.name + ": empty file name");
      std::string path = AbsolutePath(f, CurrentDir());
      if (seen.insert(path).second) s.files.push_back(path);
    }
    if (j.contains("follow_symlinks") && !j["follow_symlinks"].is_null()) {
      for (const auto& f : StringList(j["follow_symlinks"])) {
        std::string path = AbsolutePath(f, CurrentDir());
        if (seen.count(path) == 0) {
          return Status::InvalidArgument("component " + c.name + ": follow_symlinks names " + path +
                                         ", which is not one of its files");
        }
        s.follow.insert(path);
      }
    }
    if (j.contains("reload") && !j["reload"].is_null()) s.reload = StringList(j["reload"]);
    BACKSTOP_ASSIGN_OR_RETURN(s.reload_timeout_ms, DurationSettingMs(j, "reload_timeout", 30'000));
  } catch (const std::exception& e) {
    return Status::InvalidArgument("component " + c.name + ": bad files settings: " + e.what());
  }
  if (!state_dir.empty()) {
    s.component_dir = JoinPath(JoinPath(state_dir, "components"), c.name);
    s.marker_path = JoinPath(s.component_dir, "reload-pending");
    s.reference_path = JoinPath(s.component_dir, "restored.json");
  }
  return s;
}

// A symbolic link among the folders of `path` redirects every read and write
// of it. It is accepted only where no one but root or Backstop's own user
// could have placed it (e.g. /var/run -> /run): the link is owned by one of
// them and sits in a folder no one else may write to, or in a sticky folder
// such as /tmp, where only its owner may replace it. Other links are refused
// unless the spec lists the file under follow_symlinks.
Status CheckFolders(FileSystem* fs, const std::string& path, bool follow) {
  if (follow) return Status::OK();
  const std::string dir = Dirname(path);
  std::string prefix;
  size_t pos = 1;
  while (pos <= dir.size() && dir != "/") {
    size_t slash = dir.find('/', pos);
    if (slash == std::string::npos) slash = dir.size();
    prefix = dir.substr(0, slash);
    pos = slash + 1;
    auto info = fs->Stat(prefix);
    if (!info.ok()) {
      if (info.status().IsNotFound()) return Status::OK();  // created on restore
      return info.status();
    }
    if (!info->is_symlink) continue;
    // "<folder>/." is the folder itself even when the folder is reached through a link.
    auto parent = fs->Stat(JoinPath(Dirname(prefix), "."));
    const bool owner_trusted = info->uid == 0 || info->uid == ::geteuid();
    const bool folder_guarded =
        parent.ok() && (parent->uid == 0 || parent->uid == ::geteuid()) &&
        ((parent->mode & kWritableByOthers) == 0 || (parent->mode & kSticky) != 0);
    if (owner_trusted && folder_guarded) continue;
    auto target = fs->ReadLink(prefix);
    return Status::FailedPrecondition(
        path + ": its folder " + prefix + " is a symbolic link" +
        (target.ok() ? " to " + *target : std::string()) +
        " that another user could have placed; Backstop does not read or write through it "
        "(replace the link with the folder, or list the file under follow_symlinks)");
  }
  return Status::OK();
}

// Follows symlinks (lexically, one level at a time) to the file that holds
// the content, so a restore rewrites the target and keeps the link.
Result<std::string> ResolveLinks(FileSystem* fs, std::string path) {
  for (int depth = 0; depth < kMaxSymlinkDepth; ++depth) {
    auto info = fs->Stat(path);
    if (!info.ok() || !info->is_symlink) return path;  // a missing path is its own target
    BACKSTOP_ASSIGN_OR_RETURN(std::string target, fs->ReadLink(path));
    path = AbsolutePath(target, Dirname(path));
  }
  return Status::FailedPrecondition(path + ": too many levels of symbolic links");
}

// What a path holds now: nothing, a regular file, or (unless followed) a
// symbolic link, recorded as its target text and never read through.
struct LiveFile {
  std::string path;      // as configured
  std::string resolved;  // the file that holds the content: `path` unless followed
  bool exists = false;
  bool is_link = false;     // exists as a link (not followed)
  std::string link_target;  // is_link: the link's text
  uint32_t mode = 0;
  uint64_t size = 0;
  std::string sha256;  // filled by Hash()
};

Result<LiveFile> Inspect(FileSystem* fs, const std::string& path, bool follow) {
  LiveFile f;
  f.path = path;
  f.resolved = path;
  BACKSTOP_RETURN_IF_ERROR(CheckFolders(fs, path, follow));
  if (follow) {
    BACKSTOP_ASSIGN_OR_RETURN(f.resolved, ResolveLinks(fs, path));
  }
  auto info = fs->Stat(f.resolved);
  if (!info.ok()) {
    if (info.status().IsNotFound()) return f;
    return info.status();
  }
  if (info->is_symlink) {  // not followed: the link is the state
    BACKSTOP_ASSIGN_OR_RETURN(f.link_target, fs->ReadLink(path));
    f.exists = true;
    f.is_link = true;
    return f;
  }
  if (!info->is_regular) {
    return Status::FailedPrecondition(path +
                                      " is not a regular file; the files driver manages "
                                      "regular files (list the files of a directory one by one)");
  }
  f.exists = true;
  f.mode = info->mode;
  f.size = info->size;
  return f;
}

Status Hash(LiveFile* f) {
  if (!f->exists || f->is_link) return Status::OK();
  BACKSTOP_ASSIGN_OR_RETURN(f->sha256, Sha256File(f->resolved));
  return Status::OK();
}

json FileJson(const LiveFile& f) {
  if (!f.exists) return {{"path", f.path}, {"absent", true}};
  if (f.is_link) return {{"path", f.path}, {"symlink", f.link_target}};
  return {{"path", f.path}, {"sha256", f.sha256}, {"mode", f.mode}, {"size", f.size}};
}

// What ConfigHash hashes for a file: its digest, "" when absent, the link text
// for a link (so that retargeting a link changes the config_hash).
std::string HashedDigest(const LiveFile& f) {
  return f.is_link ? "symlink:" + f.link_target : f.sha256;
}

struct WantedFile {
  std::string path;
  bool absent = false;
  bool is_link = false;
  std::string link_target;
  std::string sha256;
  uint32_t mode = 0644;
};

Result<std::vector<WantedFile>> ParseEntry(const json& entry, const std::string& name) {
  std::vector<WantedFile> out;
  try {
    if (!entry.is_object() || !entry.contains("files") || !entry["files"].is_array()) {
      return Status::InvalidArgument("files entry for " + name + " has no \"files\" list");
    }
    for (const auto& j : entry["files"]) {
      WantedFile w;
      w.path = j.at("path").get<std::string>();
      w.absent = j.value("absent", false);
      if (j.contains("symlink")) {
        w.is_link = true;
        w.link_target = j.at("symlink").get<std::string>();
        if (w.link_target.empty()) {
          return Status::Corruption("files entry for " + name + ": empty link for " + w.path);
        }
      } else if (!w.absent) {
        w.sha256 = j.at("sha256").get<std::string>();
        w.mode = j.at("mode").get<uint32_t>() & 07777;
        if (!IsSha256Hex(w.sha256)) {
          return Status::Corruption("files entry for " + name + ": bad digest for " + w.path);
        }
      }
      if (w.path.empty() || w.path[0] != '/') {
        return Status::Corruption("files entry for " + name + ": path '" + w.path +
                                  "' is not absolute");
      }
      out.push_back(std::move(w));
    }
  } catch (const std::exception& e) {
    return Status::InvalidArgument("files entry for " + name + " is malformed: " + e.what());
  }
  return out;
}

std::string ModeText(uint32_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", mode);
  return buf;
}

enum class Action { kNone, kReplace, kChmod, kRemove, kLink };

struct Step {
  WantedFile want;
  LiveFile live;
  Action action = Action::kNone;
  std::string staged;  // temporary file next to the target (kReplace)
};

// What would change to make the live files equal `wanted`.
Result<std::vector<Step>> PlanSteps(FileSystem* fs, const Settings& s,
                                    const std::vector<WantedFile>& wanted) {
  std::vector<Step> steps;
  for (const auto& w : wanted) {
    Step st;
    st.want = w;
    BACKSTOP_ASSIGN_OR_RETURN(st.live, Inspect(fs, w.path, s.follow.count(w.path) != 0));
    if (w.absent) {
      st.action = st.live.exists ? Action::kRemove : Action::kNone;
    } else if (w.is_link) {
      const bool same = st.live.is_link && st.live.link_target == w.link_target;
      st.action = same ? Action::kNone : Action::kLink;
    } else if (!st.live.exists || st.live.is_link) {
      st.action = Action::kReplace;
    } else {
      BACKSTOP_RETURN_IF_ERROR(Hash(&st.live));
      if (st.live.sha256 != w.sha256) {
        st.action = Action::kReplace;
      } else if (st.live.mode != w.mode) {
        st.action = Action::kChmod;
      }
    }
    steps.push_back(std::move(st));
  }
  return steps;
}

// One line per difference between the live files and `steps`' wanted state,
// e.g. "/etc/nginx/nginx.conf changed", "mode of /etc/app.json changed from
// 0640 to 0644".
std::vector<std::string> Differences(const std::vector<Step>& steps) {
  std::vector<std::string> out;
  for (const auto& st : steps) {
    const std::string& path = st.want.path;
    const LiveFile& live = st.live;
    switch (st.action) {
      case Action::kNone:
        continue;
      case Action::kReplace:
        if (!live.exists) {
          out.push_back(path + " deleted");
        } else if (live.is_link) {
          out.push_back(path + " replaced by a symbolic link to " + live.link_target);
        } else {
          out.push_back(path + " changed (sha256 " + live.sha256.substr(0, 12) + "…, expected " +
                        st.want.sha256.substr(0, 12) + "…)");
        }
        break;
      case Action::kChmod:
        out.push_back("mode of " + path + " changed from " + ModeText(st.want.mode) + " to " +
                      ModeText(live.mode));
        break;
      case Action::kRemove:
        out.push_back(path + " created (it was absent)");
        break;
      case Action::kLink:
        if (!live.exists) {
          out.push_back(path + " deleted (it was a symbolic link to " + st.want.link_target + ")");
        } else if (live.is_link) {
          out.push_back(path + " retargeted: a symbolic link to " + live.link_target +
                        " (it was to " + st.want.link_target + ")");
        } else {
          out.push_back(path + " replaced by a file (it was a symbolic link to " +
                        st.want.link_target + ")");
        }
        break;
    }
  }
  return out;
}

// Removes what an interrupted restore that was never resumed (abandoned)
// left beside `target`: its staged copy "<name>.backstop-restore-<run>" and
// the store's partial write ".<name>.backstop-restore-<run>.backstop-<n>.tmp".
// One run acts at a time (the environment lock), so none of them is in use.
void RemoveLeftovers(FileSystem* fs, const std::string& target) {
  auto names = fs->ListDir(Dirname(target));
  if (!names.ok()) return;
  const std::string staged = Basename(target) + kStagedSuffix;
  for (const auto& name : *names) {
    if (name.rfind(staged, 0) == 0 || name.rfind("." + staged, 0) == 0) {
      (void)fs->Remove(JoinPath(Dirname(target), name));
    }
  }
}

class FilesDriver : public Driver {
 public:
  Result<json> Snapshot(const ComponentSpec& c, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    if (ctx.store == nullptr) return Status::Internal("files snapshot without a store");
    FileSystem* fs = ctx.env->fs();
    json files = json::array();
    std::set<std::string> blobs;
    std::vector<std::pair<std::string, std::string>> digests;
    for (const auto& path : s.files) {
      BACKSTOP_ASSIGN_OR_RETURN(LiveFile f, Inspect(fs, path, s.follow.count(path) != 0));
      if (f.is_link) {
        ctx.Progress(s.name + ": " + path + " is a symbolic link to " + f.link_target +
                     " (recorded as a link; list it under follow_symlinks to capture the file "
                     "it points to)");
      } else if (f.exists) {
        auto digest = ctx.store->PutFile(f.resolved);
        if (!digest.ok()) return digest.status().WithContext("storing " + path);
        f.sha256 = *digest;
        blobs.insert(f.sha256);
      } else {
        ctx.Progress(s.name + ": " + path + " does not exist (recorded as absent)");
      }
      digests.emplace_back(f.path, HashedDigest(f));
      files.push_back(FileJson(f));
    }
    return json{{"files", files},
                {"blobs", json(std::vector<std::string>(blobs.begin(), blobs.end()))},
                {"config_hash", ConfigHash(digests)}};
  }

  Result<json> Describe(const ComponentSpec& c, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    FileSystem* fs = ctx.env->fs();
    json files = json::array();
    std::vector<std::pair<std::string, std::string>> digests;
    for (const auto& path : s.files) {
      BACKSTOP_ASSIGN_OR_RETURN(LiveFile f, Inspect(fs, path, s.follow.count(path) != 0));
      BACKSTOP_RETURN_IF_ERROR(Hash(&f));
      digests.emplace_back(f.path, HashedDigest(f));
      files.push_back(FileJson(f));
    }
    return json{{"files", files}, {"config_hash", ConfigHash(digests)}};
  }

  // Every blob the entry's files need is in the store (what Restore reads).
  Status CheckRestorable(const ComponentSpec& c, const json& entry, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(std::vector<WantedFile> wanted, ParseEntry(entry, c.name));
    if (ctx.store == nullptr) return Status::Internal("files check without a store");
    std::vector<std::string> missing;
    for (const auto& w : wanted) {
      if (w.absent || w.is_link || ctx.store->Has(w.sha256)) continue;
      missing.push_back(w.path + " (blob " + w.sha256.substr(0, 12) + "…)");
    }
    if (missing.empty()) return Status::OK();
    return Status::FailedPrecondition("config files of " + c.name +
                                      " cannot be restored: the store " + ctx.store->root() +
                                      " lacks the content of " + Join(missing, ", "));
  }

  Status Restore(const ComponentSpec& c, const json& entry, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    BACKSTOP_ASSIGN_OR_RETURN(std::vector<WantedFile> wanted, ParseEntry(entry, s.name));
    FileSystem* fs = ctx.env->fs();
    BACKSTOP_ASSIGN_OR_RETURN(std::vector<Step> steps, PlanSteps(fs, s, wanted));
    const bool changes = std::any_of(steps.begin(), steps.end(),
                                     [](const Step& st) { return st.action != Action::kNone; });
    const bool reload_pending = !s.marker_path.empty() && fs->Exists(s.marker_path);
    if (ctx.dry_run) {
      for (const auto& st : steps) {
        if (st.action != Action::kNone) ctx.Progress("would restore " + st.want.path);
      }
      if ((changes || reload_pending) && !s.reload.empty()) {
        ctx.Progress("would run " + Join(s.reload, " "));
      }
      return Status::OK();
    }
    if (changes) {
      if (ctx.store == nullptr) return Status::Internal("files restore without a store");
      // Stage every replacement first: nothing live changes unless all blobs read back intact.
      const std::string suffix =
          kStagedSuffix + (ctx.run_id.empty() ? std::string() : "-" + ctx.run_id);
      Status staged = Status::OK();
      for (auto& st : steps) {
        if (st.action != Action::kReplace) continue;
        const std::string& target = st.live.resolved;
        RemoveLeftovers(fs, target);
        staged = fs->CreateDirs(Dirname(target), kConfigDirMode);
        if (staged.ok()) {
          st.staged = target + suffix;
          staged = ctx.store->GetToFile(st.want.sha256, st.staged, st.want.mode);
        }
        if (!staged.ok()) {
          staged = staged.WithContext("restoring " + st.want.path);
          break;
        }
      }
      if (!staged.ok()) {
        for (const auto& st : steps) {
          if (!st.staged.empty()) (void)fs->Remove(st.staged);
        }
        return Status(staged).WithContext("no live file of " + s.name + " was changed");
      }
      if (!s.reload.empty() && !s.marker_path.empty()) {
        BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(Dirname(s.marker_path)));
        BACKSTOP_RETURN_IF_ERROR(fs->WriteFileAtomic(s.marker_path, ctx.run_id + "\n"));
      }
      CrashPointForTest("files.after-stage");
      for (const auto& st : steps) {
        BACKSTOP_RETURN_IF_ERROR(Apply(s, st, ctx));
        if (st.action != Action::kNone) CrashPointForTest("files.after-file");
      }
    }
    // The reference for drift (Health): what the files were made equal to.
    BACKSTOP_RETURN_IF_ERROR(RecordReference(s, entry, ctx));
    if (!changes && !reload_pending) return Status::OK();
    if (s.reload.empty()) return Status::OK();
    CrashPointForTest("files.before-reload");
    return Reload(s, ctx);
  }

  Status VerifyRestored(const ComponentSpec& c, const json& entry, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    BACKSTOP_ASSIGN_OR_RETURN(std::vector<WantedFile> wanted, ParseEntry(entry, s.name));
    BACKSTOP_ASSIGN_OR_RETURN(std::vector<Step> steps, PlanSteps(ctx.env->fs(), s, wanted));
    std::vector<std::string> problems = Differences(steps);
    if (!problems.empty()) {
      return Status::FailedPrecondition("config files of " + s.name +
                                        " do not match the restore point: " + Join(problems, "; "));
    }
    const bool reload_pending = !s.marker_path.empty() && ctx.env->fs()->Exists(s.marker_path);
    if (reload_pending) {
      return Status::FailedPrecondition("config files of " + s.name +
                                        " were restored but the reload (" + Join(s.reload, " ") +
                                        ") has not succeeded yet");
    }
    return Status::OK();
  }

  // The spec's probe, if any, and drift: the files must still equal the
  // reference state (see Reference).
  HealthResult Health(const ComponentSpec& c, DriverContext& ctx) override {
    HealthResult probe = Driver::Health(c, ctx);
    // The baseline of a restore point being taken: what is captured becomes
    // the reference, so there is no drift to speak of.
    if (!ctx.restore_point_id.empty()) return probe;
    const int64_t started = ctx.env->clock()->NowMicros();
    auto drift = Drift(c, ctx);
    const int64_t latency_ms = (ctx.env->clock()->NowMicros() - started) / 1000;
    if (!drift.ok()) {
      return HealthResult::Make(HealthResult::State::kFail, latency_ms,
                                "config check failed: " + drift.status().message());
    }
    if (!drift->empty()) {
      return HealthResult::Make(HealthResult::State::kFail, latency_ms, *drift);
    }
    if (probe.state != HealthResult::State::kUnknown || c.health.enabled()) return probe;
    return HealthResult::Make(HealthResult::State::kPass, latency_ms, "files unchanged");
  }

 private:
  // The state drift is measured from: the newer of the last restore of this
  // component (recorded by Restore) and the newest restore point holding it
  // that is not a safety restore point (a safety point records the state a
  // rollback is about to replace). Null when there is neither.
  struct Reference {
    json entry;
    std::string since;  // "restore point rp-…" or "run run-…"
  };

  Result<Reference> FindReference(const Settings& s, DriverContext& ctx) {
    Reference ref;
    int64_t when = -1;
    if (!s.reference_path.empty()) {
      auto text = ctx.env->fs()->ReadFileNoFollow(s.reference_path);
      if (text.ok()) {
        json j = json::parse(*text, nullptr, false);
        if (j.is_object() && j.contains("entry") && j["entry"].is_object()) {
          ref.entry = j["entry"];
          when = j.value("restored_wall_us", int64_t{0});
          ref.since =
              j.value("run_id", "").empty() ? "the last restore" : "run " + j.value("run_id", "");
        }
      } else if (!text.status().IsNotFound()) {
        return text.status();
      }
    }
    if (ctx.store != nullptr) {
      std::vector<RestorePoint> points = ListRestorePoints(*ctx.store, nullptr);
      for (auto it = points.rbegin(); it != points.rend(); ++it) {
        if (it->kind == RestorePointKind::kSafety || !it->components.contains(s.name)) continue;
        if (it->created_wall_us > when) {
          ref.entry = it->components[s.name];
          ref.since = "restore point " + it->id;
        }
        break;
      }
    }
    return ref;
  }

  // "" when the files equal the reference state (or there is none yet);
  // otherwise "config drift: <file> changed; ... since <reference>".
  Result<std::string> Drift(const ComponentSpec& c, DriverContext& ctx) {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    BACKSTOP_ASSIGN_OR_RETURN(Reference ref, FindReference(s, ctx));
    if (ref.entry.is_null()) return std::string();
    BACKSTOP_ASSIGN_OR_RETURN(std::vector<WantedFile> wanted, ParseEntry(ref.entry, s.name));
    BACKSTOP_ASSIGN_OR_RETURN(std::vector<Step> steps, PlanSteps(ctx.env->fs(), s, wanted));
    std::vector<std::string> diffs = Differences(steps);
    if (diffs.empty()) return std::string();
    return "config drift: " + Join(diffs, "; ") + " since " + ref.since;
  }

  Status RecordReference(const Settings& s, const json& entry, DriverContext& ctx) {
    if (s.reference_path.empty()) return Status::OK();
    json record = {{"entry", entry},
                   {"run_id", ctx.run_id},
                   {"restored_wall_us", ctx.env->clock()->WallMicros()}};
    FileSystem* fs = ctx.env->fs();
    BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(s.component_dir));
    return fs->WriteFileAtomic(s.reference_path, record.dump() + "\n");
  }

  // Makes one file equal its wanted state. Never writes through a link: a
  // rename or unlink replaces the link itself, and chmod refuses one.
  Status Apply(const Settings& s, const Step& st, DriverContext& ctx) {
    FileSystem* fs = ctx.env->fs();
    const std::string& target = st.live.resolved;
    switch (st.action) {
      case Action::kReplace:
        BACKSTOP_RETURN_IF_ERROR(fs->Rename(st.staged, target));
        BACKSTOP_RETURN_IF_ERROR(fs->SyncDir(Dirname(target)));
        ctx.Progress(s.name + ": restored " + st.want.path);
        return Status::OK();
      case Action::kChmod:
        BACKSTOP_RETURN_IF_ERROR(fs->Chmod(target, st.want.mode));
        ctx.Progress(s.name + ": mode of " + st.want.path + " set to " + ModeText(st.want.mode));
        return Status::OK();
      case Action::kRemove:
        BACKSTOP_RETURN_IF_ERROR(fs->Remove(st.want.path));
        BACKSTOP_RETURN_IF_ERROR(fs->SyncDir(Dirname(st.want.path)));
        ctx.Progress(s.name + ": removed " + st.want.path + " (absent at the restore point)");
        return Status::OK();
      case Action::kLink:
        BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(Dirname(st.want.path), kConfigDirMode));
        BACKSTOP_RETURN_IF_ERROR(fs->SymlinkAtomic(st.want.link_target, st.want.path));
        ctx.Progress(s.name + ": " + st.want.path + " -> " + st.want.link_target);
        return Status::OK();
      case Action::kNone:
        return Status::OK();
    }
    return Status::OK();
  }

  Status Reload(const Settings& s, DriverContext& ctx) {
    ProcessOptions opts;
    opts.argv = s.reload;
    opts.timeout_ms = s.reload_timeout_ms;
    ctx.Progress(s.name + ": running " + Join(s.reload, " "));
    auto run = ctx.env->processes()->Run(opts);
    if (!run.ok()) {
      return run.status().WithContext("reload of " + s.name + " (" + Join(s.reload, " ") + ")");
    }
    if (!run->success()) {
      return Status::Unavailable("reload of " + s.name + " failed: `" + Join(s.reload, " ") +
                                 "`: " + run->Describe() +
                                 "; the restored files are in place, the reload is retried by the "
                                 "next restore (backstop rollback --resume)");
    }
    if (!s.marker_path.empty()) BACKSTOP_RETURN_IF_ERROR(ctx.env->fs()->Remove(s.marker_path));
    return Status::OK();
  }
};

std::vector<SettingSchema> Schema() {
  using T = SettingSchema::Type;
  std::vector<SettingSchema> v;
  auto add = [&v](std::string key, T type, bool required, std::string help,
                  json default_value = nullptr) {
    v.push_back(
        MakeSetting(std::move(key), type, required, std::move(help), std::move(default_value)));
  };
  add("files", T::kPathList, true,
      "the config files to capture and restore, e.g. [/etc/nginx/nginx.conf, config.json]");
  add("reload", T::kStringList, false,
      "argv run after a restore that changed a file, e.g. [nginx, -s, reload]; its failure "
      "fails the restore");
  add("reload_timeout", T::kDuration, false, "how long the reload may take; default 30s", "30s");
  add("follow_symlinks", T::kPathList, false,
      "files (among `files`) that may be symbolic links to follow: the file a link points to is "
      "captured and restored in its place. Any other link is captured and restored as a link, "
      "and never read or written through");
  return v;
}

}  // namespace

DriverInfo FilesDriverInfo() {
  DriverInfo info;
  info.name = "files";
  info.kinds = {"config"};
  info.summary =
      "configuration files captured by content and restored atomically, with an optional reload "
      "command";
  info.settings = Schema();
  info.factory = [] { return std::make_unique<FilesDriver>(); };
  return info;
}

}  // namespace backstop::files

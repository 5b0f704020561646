// The `files` driver. See files_driver.h for the contract.
#include "drivers/files/files_driver.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "hash.h"
#include "store.h"
#include "units.h"

namespace backstop::files {
namespace {

using nlohmann::json;

constexpr int kMaxSymlinkDepth = 40;

struct Settings {
  std::string name;
  std::vector<std::string> files;  // absolute
  std::vector<std::string> reload;
  int64_t reload_timeout_ms = 30'000;
  std::string marker_path;  // reload pending; empty without a state dir
};

Result<int64_t> DurationMs(const json& settings, const std::string& key, int64_t fallback) {
  if (!settings.contains(key) || settings[key].is_null()) return fallback;
  const json& v = settings[key];
  if (v.is_number()) return v.get<int64_t>();
  if (v.is_string()) {
    if (auto ms = ParseDurationMs(v.get<std::string>())) return *ms;
  }
  return Status::InvalidArgument("setting '" + key + "' must be a duration such as 30s, not " +
                                 v.dump());
}

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
    if (j.contains("reload") && !j["reload"].is_null()) s.reload = StringList(j["reload"]);
    BACKSTOP_ASSIGN_OR_RETURN(s.reload_timeout_ms, DurationMs(j, "reload_timeout", 30'000));
  } catch (const std::exception& e) {
    return Status::InvalidArgument("component " + c.name + ": bad files settings: " + e.what());
  }
  if (!state_dir.empty()) {
    s.marker_path = JoinPath(JoinPath(JoinPath(state_dir, "components"), c.name), "reload-pending");
  }
  return s;
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

// What a path holds now.
struct LiveFile {
  std::string path;      // as configured
  std::string resolved;  // after following symlinks
  bool exists = false;
  uint32_t mode = 0;
  uint64_t size = 0;
  std::string sha256;  // filled by Hash()
};

Result<LiveFile> Inspect(FileSystem* fs, const std::string& path) {
  LiveFile f;
  f.path = path;
  BACKSTOP_ASSIGN_OR_RETURN(f.resolved, ResolveLinks(fs, path));
  auto info = fs->Stat(f.resolved);
  if (!info.ok()) {
    if (info.status().IsNotFound()) return f;
    return info.status();
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
  if (!f->exists) return Status::OK();
  BACKSTOP_ASSIGN_OR_RETURN(f->sha256, Sha256File(f->resolved));
  return Status::OK();
}

json FileJson(const LiveFile& f) {
  if (!f.exists) return {{"path", f.path}, {"absent", true}};
  return {{"path", f.path}, {"sha256", f.sha256}, {"mode", f.mode}, {"size", f.size}};
}

struct WantedFile {
  std::string path;
  bool absent = false;
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
      if (!w.absent) {
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

std::string JoinArgv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) out += (out.empty() ? "" : " ") + a;
  return out;
}

enum class Action { kNone, kReplace, kChmod, kRemove };

struct Step {
  WantedFile want;
  LiveFile live;
  Action action = Action::kNone;
  std::string staged;  // temporary file next to the target (kReplace)
};

// What would change to make the live files equal `wanted`.
Result<std::vector<Step>> PlanSteps(FileSystem* fs, const std::vector<WantedFile>& wanted) {
  std::vector<Step> steps;
  for (const auto& w : wanted) {
    Step st;
    st.want = w;
    BACKSTOP_ASSIGN_OR_RETURN(st.live, Inspect(fs, w.path));
    if (w.absent) {
      st.action = st.live.exists ? Action::kRemove : Action::kNone;
    } else if (!st.live.exists) {
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
      BACKSTOP_ASSIGN_OR_RETURN(LiveFile f, Inspect(fs, path));
      if (f.exists) {
        auto digest = ctx.store->PutFile(f.resolved);
        if (!digest.ok()) return digest.status().WithContext("storing " + path);
        f.sha256 = *digest;
        blobs.insert(f.sha256);
      } else {
        ctx.Progress(s.name + ": " + path + " does not exist (recorded as absent)");
      }
      digests.emplace_back(f.path, f.sha256);
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
      BACKSTOP_ASSIGN_OR_RETURN(LiveFile f, Inspect(fs, path));
      BACKSTOP_RETURN_IF_ERROR(Hash(&f));
      digests.emplace_back(f.path, f.sha256);
      files.push_back(FileJson(f));
    }
    return json{{"files", files}, {"config_hash", ConfigHash(digests)}};
  }

  Status Restore(const ComponentSpec& c, const json& entry, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    BACKSTOP_ASSIGN_OR_RETURN(std::vector<WantedFile> wanted, ParseEntry(entry, s.name));
    FileSystem* fs = ctx.env->fs();
    BACKSTOP_ASSIGN_OR_RETURN(std::vector<Step> steps, PlanSteps(fs, wanted));
    const bool changes = std::any_of(steps.begin(), steps.end(),
                                     [](const Step& st) { return st.action != Action::kNone; });
    const bool reload_pending = !s.marker_path.empty() && fs->Exists(s.marker_path);
    if (ctx.dry_run) {
      for (const auto& st : steps) {
        if (st.action != Action::kNone) ctx.Progress("would restore " + st.want.path);
      }
      if ((changes || reload_pending) && !s.reload.empty()) {
        ctx.Progress("would run " + JoinArgv(s.reload));
      }
      return Status::OK();
    }
    if (!changes && !reload_pending) return Status::OK();

    if (changes) {
      if (ctx.store == nullptr) return Status::Internal("files restore without a store");
      // Stage every replacement first: nothing live changes unless all blobs read back intact.
      const std::string suffix =
          ".backstop-restore" + (ctx.run_id.empty() ? std::string() : "-" + ctx.run_id);
      Status staged = Status::OK();
      for (auto& st : steps) {
        if (st.action != Action::kReplace) continue;
        const std::string& target = st.live.resolved;
        staged = fs->CreateDirs(Dirname(target));
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
      for (const auto& st : steps) {
        const std::string& target = st.live.resolved;
        switch (st.action) {
          case Action::kReplace:
            BACKSTOP_RETURN_IF_ERROR(fs->Rename(st.staged, target));
            BACKSTOP_RETURN_IF_ERROR(fs->SyncDir(Dirname(target)));
            ctx.Progress(s.name + ": restored " + st.want.path);
            break;
          case Action::kChmod:
            BACKSTOP_RETURN_IF_ERROR(fs->Chmod(target, st.want.mode));
            ctx.Progress(s.name + ": mode of " + st.want.path + " set to " +
                         ModeText(st.want.mode));
            break;
          case Action::kRemove:
            BACKSTOP_RETURN_IF_ERROR(fs->Remove(target));
            BACKSTOP_RETURN_IF_ERROR(fs->SyncDir(Dirname(target)));
            ctx.Progress(s.name + ": removed " + st.want.path + " (absent at the restore point)");
            break;
          case Action::kNone:
            break;
        }
      }
    }
    if (s.reload.empty()) return Status::OK();
    return Reload(s, ctx);
  }

  Status VerifyRestored(const ComponentSpec& c, const json& entry, DriverContext& ctx) override {
    BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ctx.state_dir));
    BACKSTOP_ASSIGN_OR_RETURN(std::vector<WantedFile> wanted, ParseEntry(entry, s.name));
    BACKSTOP_ASSIGN_OR_RETURN(std::vector<Step> steps, PlanSteps(ctx.env->fs(), wanted));
    std::string problems;
    for (const auto& st : steps) {
      std::string what;
      switch (st.action) {
        case Action::kNone:
          continue;
        case Action::kReplace:
          what = st.live.exists ? st.want.path + " has sha256 " + st.live.sha256.substr(0, 12) +
                                      "…, expected " + st.want.sha256.substr(0, 12) + "…"
                                : st.want.path + " is missing";
          break;
        case Action::kChmod:
          what = st.want.path + " has mode " + ModeText(st.live.mode) + ", expected " +
                 ModeText(st.want.mode);
          break;
        case Action::kRemove:
          what = st.want.path + " exists but was absent at the restore point";
          break;
      }
      problems += (problems.empty() ? "" : "; ") + what;
    }
    if (!problems.empty()) {
      return Status::FailedPrecondition("config files of " + s.name +
                                        " do not match the restore point: " + problems);
    }
    const bool reload_pending = !s.marker_path.empty() && ctx.env->fs()->Exists(s.marker_path);
    if (reload_pending) {
      return Status::FailedPrecondition("config files of " + s.name +
                                        " were restored but the reload (" + JoinArgv(s.reload) +
                                        ") has not succeeded yet");
    }
    return Status::OK();
  }

 private:
  Status Reload(const Settings& s, DriverContext& ctx) {
    ProcessOptions opts;
    opts.argv = s.reload;
    opts.timeout_ms = s.reload_timeout_ms;
    ctx.Progress(s.name + ": running " + JoinArgv(s.reload));
    auto run = ctx.env->processes()->Run(opts);
    if (!run.ok()) {
      return run.status().WithContext("reload of " + s.name + " (" + JoinArgv(s.reload) + ")");
    }
    if (!run->success()) {
      return Status::Unavailable("reload of " + s.name + " failed: `" + JoinArgv(s.reload) +
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
  return v;
}

}  // namespace

std::string ConfigHash(std::vector<std::pair<std::string, std::string>> path_digests) {
  std::sort(path_digests.begin(), path_digests.end());
  Sha256 h;
  for (const auto& [path, digest] : path_digests) {
    h.Update(path);
    h.Update(std::string_view("\0", 1));
    h.Update(digest.empty() ? "absent" : digest);
    h.Update("\n");
  }
  return "sha256:" + h.FinishHex();
}

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

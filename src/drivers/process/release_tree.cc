// Release trees: capture, restore and verify. See release_tree.h.
#include "drivers/process/release_tree.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "base/hash.h"
#include "base/strings.h"
#include "base/units.h"
#include "drivers/process/release_links.h"
#include "store/restore_point.h"

namespace backstop::process {

using nlohmann::json;

namespace {

constexpr char kTreeFormat[] = "backstop-release-tree-1";

json EntryToJson(const TreeEntry& e) {
  json j = {{"path", e.path}, {"type", e.type}};
  if (e.type != "symlink") j["mode"] = e.mode;
  if (e.type == "file") {
    j["size"] = e.size;
    j["sha256"] = e.sha256;
  }
  if (e.type == "symlink") j["target"] = e.target;
  return j;
}

Result<TreeEntry> EntryFromJson(const json& j) {
  try {
    TreeEntry e;
    e.path = j.at("path").get<std::string>();
    e.type = j.at("type").get<std::string>();
    if (e.path.empty() || e.path[0] == '/' || e.path == ".." || e.path.rfind("../", 0) == 0 ||
        e.path.find("/../") != std::string::npos ||
        (e.path.size() >= 3 && e.path.substr(e.path.size() - 3) == "/..")) {
      return Status::Corruption("release tree entry with an unsafe path '" + e.path + "'");
    }
    if (e.type == "file") {
      e.mode = j.at("mode").get<uint32_t>();
      e.size = j.at("size").get<uint64_t>();
      e.sha256 = j.at("sha256").get<std::string>();
      if (!IsSha256Hex(e.sha256)) return Status::Corruption("bad digest for " + e.path);
    } else if (e.type == "dir") {
      e.mode = j.at("mode").get<uint32_t>();
    } else if (e.type == "symlink") {
      e.target = j.at("target").get<std::string>();
    } else {
      return Status::Corruption("release tree entry " + e.path + " has unknown type " + e.type);
    }
    return e;
  } catch (const std::exception& ex) {
    return Status::Corruption(std::string("bad release tree entry: ") + ex.what());
  }
}

// Walks `dir` recursively; `digest_of` gives the sha256 of a regular file
// (stored in the Store while snapshotting, only hashed while comparing).
Status WalkTree(FileSystem* fs, const std::string& root, const std::string& rel,
                const std::function<Result<std::string>(const std::string&)>& digest_of,
                const ProgressFn& warn, std::vector<TreeEntry>* out) {
  const std::string dir = rel.empty() ? root : JoinPath(root, rel);
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<std::string> names, fs->ListDir(dir));
  for (const auto& name : names) {
    const std::string child_rel = rel.empty() ? name : rel + "/" + name;
    const std::string full = JoinPath(root, child_rel);
    BACKSTOP_ASSIGN_OR_RETURN(FileInfo info, fs->Stat(full));
    TreeEntry e;
    e.path = child_rel;
    e.mode = info.mode;
    if (info.is_symlink) {
      e.type = "symlink";
      BACKSTOP_ASSIGN_OR_RETURN(e.target, fs->ReadLink(full));
      out->push_back(std::move(e));
    } else if (info.is_dir) {
      e.type = "dir";
      out->push_back(std::move(e));
      BACKSTOP_RETURN_IF_ERROR(WalkTree(fs, root, child_rel, digest_of, warn, out));
    } else if (info.is_regular) {
      e.type = "file";
      e.size = info.size;
      BACKSTOP_ASSIGN_OR_RETURN(e.sha256, digest_of(full));
      out->push_back(std::move(e));
    } else if (warn) {
      warn("skipping " + full + ": not a regular file, directory or symlink");
    }
  }
  return Status::OK();
}

}  // namespace

Result<Tree> ScanTree(FileSystem* fs, const std::string& dir,
                      const std::function<Result<std::string>(const std::string&)>& digest_of,
                      const ProgressFn& warn) {
  Tree t;
  BACKSTOP_ASSIGN_OR_RETURN(FileInfo root, fs->Stat(dir + "/."));
  t.root_mode = root.mode;
  BACKSTOP_RETURN_IF_ERROR(WalkTree(fs, dir, "", digest_of, warn, &t.entries));
  std::sort(t.entries.begin(), t.entries.end(),
            [](const TreeEntry& a, const TreeEntry& b) { return a.path < b.path; });
  return t;
}

json TreeToJson(const std::string& release, const Tree& t) {
  json entries = json::array();
  for (const auto& e : t.entries) entries.push_back(EntryToJson(e));
  return {
      {"format", kTreeFormat}, {"release", release}, {"mode", t.root_mode}, {"entries", entries}};
}

Result<Tree> TreeFromJson(const std::string& text) {
  Tree t;
  try {
    json j = json::parse(text);
    if (j.value("format", "") != kTreeFormat) {
      return Status::Corruption("release tree has an unknown format: " + j.value("format", "?"));
    }
    t.root_mode = j.value("mode", 0755u);
    for (const auto& e : j.at("entries")) {
      BACKSTOP_ASSIGN_OR_RETURN(TreeEntry entry, EntryFromJson(e));
      t.entries.push_back(std::move(entry));
    }
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("release tree is not valid JSON: ") + e.what());
  }
  std::sort(t.entries.begin(), t.entries.end(),
            [](const TreeEntry& a, const TreeEntry& b) { return a.path < b.path; });
  return t;
}

// The first difference between the live directory and the tree ("" if equal).
Result<std::string> DiffTree(FileSystem* fs, const std::string& dir, const Tree& want) {
  // Compare types, modes and sizes first; hash a file only when they match.
  std::vector<TreeEntry> live;
  auto no_hash = [](const std::string&) -> Result<std::string> { return std::string(); };
  BACKSTOP_RETURN_IF_ERROR(WalkTree(fs, dir, "", no_hash, nullptr, &live));
  std::sort(live.begin(), live.end(),
            [](const TreeEntry& a, const TreeEntry& b) { return a.path < b.path; });
  std::map<std::string, const TreeEntry*> live_by_path;
  for (const auto& e : live) live_by_path[e.path] = &e;
  for (const auto& w : want.entries) {
    auto it = live_by_path.find(w.path);
    if (it == live_by_path.end()) return w.path + " is missing";
    const TreeEntry& l = *it->second;
    if (l.type != w.type) return w.path + " is a " + l.type + ", expected a " + w.type;
    if (w.type == "symlink" && l.target != w.target) {
      return w.path + " points at " + l.target + ", expected " + w.target;
    }
    if (w.type != "symlink" && l.mode != w.mode) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " has mode %04o, expected %04o", l.mode, w.mode);
      return w.path + buf;
    }
    if (w.type == "file") {
      if (l.size != w.size) return w.path + " changed (size)";
      BACKSTOP_ASSIGN_OR_RETURN(std::string digest, Sha256File(JoinPath(dir, w.path)));
      if (digest != w.sha256) return w.path + " changed (content)";
    }
    live_by_path.erase(it);
  }
  if (!live_by_path.empty()) return live_by_path.begin()->first + " was added";
  return std::string();
}

// Builds the tree into `dest` (which must not exist) from the store.
Status BuildTree(FileSystem* fs, Store* store, const Tree& t, const std::string& dest) {
  BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(dest, 0755));
  for (const auto& e : t.entries) {
    const std::string path = JoinPath(dest, e.path);
    if (e.type == "dir") {
      BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(path, 0755));
    } else if (e.type == "file") {
      BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(Dirname(path), 0755));
      Status st = store->GetToFile(e.sha256, path, e.mode);
      if (!st.ok()) return st.WithContext("restoring " + e.path);
    } else {
      BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(Dirname(path), 0755));
      BACKSTOP_RETURN_IF_ERROR(fs->SymlinkAtomic(e.target, path));
    }
  }
  // Directory modes last (deepest first), so a read-only directory is filled first.
  for (auto it = t.entries.rbegin(); it != t.entries.rend(); ++it) {
    if (it->type == "dir") BACKSTOP_RETURN_IF_ERROR(fs->Chmod(JoinPath(dest, it->path), it->mode));
  }
  BACKSTOP_RETURN_IF_ERROR(fs->Chmod(dest, t.root_mode));
  return fs->SyncDir(dest);
}

Result<std::optional<std::string>> TreeToRebuildFrom(const Settings& s, const json& entry,
                                                     const std::string& release,
                                                     DriverContext& ctx) {
  if (entry.contains("release_tree") && entry["release_tree"].is_string()) {
    return std::optional<std::string>(entry["release_tree"].get<std::string>());
  }
  FileSystem* fs = ctx.env->fs();
  if (fs->Exists(ReleaseDir(s, release) + "/.")) return std::optional<std::string>();
  if (ctx.store != nullptr) {
    std::vector<std::string> unreadable;
    std::vector<RestorePoint> points = ListRestorePoints(*ctx.store, &unreadable);
    for (auto it = points.rbegin(); it != points.rend(); ++it) {
      const json& held = it->components.contains(s.name) ? it->components[s.name] : json();
      if (!held.is_object() || held.value("release", json()) != release ||
          !held.contains("release_tree") || !held["release_tree"].is_string()) {
        continue;
      }
      if (!ReadRestorePoint(*ctx.store, it->id).ok()) continue;  // modified: not trusted
      ctx.Progress(s.name + ": release " + release + " is missing from " + s.releases +
                   "; its files are in restore point " + it->id);
      return std::optional<std::string>(held["release_tree"].get<std::string>());
    }
  }
  auto names = ListReleaseNames(s, fs);
  std::string available = !names.ok()      ? names.status().message()
                          : names->empty() ? "(none)"
                                           : Join(*names);
  return Status::NotFound("release " + release + " of " + s.name + " not found in " + s.releases +
                          " and no restore point holds its files; available: " + available);
}

Status CheckTreeBlobs(const Settings& s, const std::string& release, const std::string& tree_digest,
                      Store* store) {
  if (store == nullptr) return Status::Internal("process driver without a store");
  const std::string what = "release " + release + " of " + s.name;
  if (!store->Has(tree_digest)) {
    return Status::FailedPrecondition("the file list of " + what + " (blob " + tree_digest +
                                      ") is missing from the store; it cannot be rebuilt");
  }
  BACKSTOP_ASSIGN_OR_RETURN(std::string text, store->Get(tree_digest));
  BACKSTOP_ASSIGN_OR_RETURN(Tree tree, TreeFromJson(text));
  std::vector<std::string> missing;
  for (const auto& e : tree.entries) {
    if (e.type == "file" && !store->Has(e.sha256))
      missing.push_back(e.path + " (blob " + e.sha256 + ")");
  }
  if (missing.empty()) return Status::OK();
  std::string list;
  for (size_t i = 0; i < missing.size() && i < 5; ++i) list += "\n  " + missing[i];
  if (missing.size() > 5) list += "\n  ... and " + std::to_string(missing.size() - 5) + " more";
  return Status::FailedPrecondition(std::to_string(missing.size()) + " file(s) of " + what +
                                    " are missing from the store; it cannot be rebuilt:" + list);
}

Status RestoreReleaseDir(const Settings& s, const std::string& release,
                         const std::string& tree_digest, DriverContext& ctx) {
  FileSystem* fs = ctx.env->fs();
  if (ctx.store == nullptr) return Status::Internal("process restore without a store");
  BACKSTOP_ASSIGN_OR_RETURN(std::string text, ctx.store->Get(tree_digest));
  BACKSTOP_ASSIGN_OR_RETURN(Tree tree, TreeFromJson(text));
  const std::string dir = ReleaseDir(s, release);
  const bool present = fs->Exists(dir);
  std::string diff;
  if (present) {
    BACKSTOP_ASSIGN_OR_RETURN(diff, DiffTree(fs, dir, tree));
    if (diff.empty()) return Status::OK();
  }
  const std::string token =
      ctx.run_id.empty() ? FormatCompactUtc(ctx.env->clock()->WallMicros()) : ctx.run_id;
  if (ctx.dry_run) {
    ctx.Progress(present ? "would rebuild release " + release + " (" + diff + ")"
                         : "would rebuild release " + release + " from the store");
    return Status::OK();
  }
  // Built next to its final place (same file system), renamed in when complete.
  const std::string staging = JoinPath(s.releases, "." + release + ".restoring");
  BACKSTOP_RETURN_IF_ERROR(fs->RemoveAll(staging));  // a leftover of an interrupted attempt
  BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(s.releases, 0755));
  ctx.Progress(s.name + ": rebuilding release " + release + " from the store (" +
               FormatThousands(tree.entries.size()) + " entries)");
  Status built = BuildTree(fs, ctx.store, tree, staging);
  if (!built.ok()) {
    (void)fs->RemoveAll(staging);
    return built.WithContext("rebuilding release " + release + " of " + s.name +
                             " (the live release directory was not touched)");
  }
  if (present) {
    std::string aside = JoinPath(s.releases, "." + release + ".replaced-" + token);
    for (int n = 2; fs->Exists(aside); ++n) {
      aside = JoinPath(s.releases, "." + release + ".replaced-" + token + "-" + std::to_string(n));
    }
    BACKSTOP_RETURN_IF_ERROR(fs->Rename(dir, aside));
    ctx.Progress(s.name + ": release " + release + " differed from the restore point (" + diff +
                 "); moved it aside to " + aside);
  }
  BACKSTOP_RETURN_IF_ERROR(fs->Rename(staging, dir));
  return fs->SyncDir(s.releases);
}

}  // namespace backstop::process

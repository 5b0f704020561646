// The release directories and the `current` link. See release_links.h.
#include "drivers/process/release_links.h"

#include <algorithm>
#include <cctype>

#include "drivers/process/process_driver.h"

namespace backstop::process {

using nlohmann::json;

std::string ReleaseDir(const Settings& s, const std::string& release) {
  return JoinPath(s.releases, release);
}

// A release name must be a plain directory name inside the releases directory.
Status CheckReleaseName(const std::string& release) {
  if (release.empty() || release == "." || release == ".." ||
      release.find('/') != std::string::npos || release[0] == '.') {
    return Status::InvalidArgument("bad release name '" + release +
                                   "': expected the name of a directory in the releases directory");
  }
  return Status::OK();
}

// Where `current` points. NotFound when there is no current symlink.
Result<CurrentTarget> ReadCurrent(const Settings& s, FileSystem* fs) {
  auto info = fs->Stat(s.current);
  if (!info.ok()) {
    if (info.status().IsNotFound()) {
      return Status::NotFound("nothing deployed for " + s.name + ": " + s.current +
                              " does not exist");
    }
    return info.status();
  }
  if (!info->is_symlink) {
    return Status::FailedPrecondition(s.current +
                                      " is not a symlink; the process driver expects "
                                      "`current` to be a symlink to a release directory");
  }
  BACKSTOP_ASSIGN_OR_RETURN(std::string target, fs->ReadLink(s.current));
  CurrentTarget t;
  t.dir = AbsolutePath(target, Dirname(s.current));
  t.release = Basename(t.dir);
  return t;
}

Result<std::vector<std::string>> ListReleaseNames(const Settings& s, FileSystem* fs) {
  auto names = fs->ListDir(s.releases);
  if (!names.ok()) {
    if (names.status().IsNotFound()) {
      return Status::NotFound("releases directory " + s.releases + " of " + s.name +
                              " does not exist");
    }
    return names.status();
  }
  std::vector<std::string> out;
  for (const auto& n : *names) {
    if (n.empty() || n[0] == '.') continue;  // our temporary and set-aside copies
    auto info = fs->Stat(JoinPath(s.releases, n));
    if (!info.ok()) continue;
    bool is_dir = info->is_dir;
    if (info->is_symlink) {
      // A release may itself be a symlink to a directory elsewhere.
      std::string full = JoinPath(s.releases, n) + "/.";
      is_dir = fs->Exists(full);
    }
    if (is_dir) out.push_back(n);
  }
  std::sort(out.begin(), out.end(), NaturalLess);
  return out;
}

Result<std::optional<std::string>> TargetRelease(const Settings& s, const json& entry) {
  if (!entry.is_object() || !entry.contains("release")) {
    return Status::InvalidArgument("process entry for " + s.name + " has no \"release\"");
  }
  if (entry["release"].is_null()) return std::optional<std::string>();
  if (!entry["release"].is_string()) {
    return Status::InvalidArgument("process entry for " + s.name +
                                   ": \"release\" must be a string");
  }
  std::string release = entry["release"].get<std::string>();
  BACKSTOP_RETURN_IF_ERROR(CheckReleaseName(release));
  return std::optional<std::string>(std::move(release));
}

Status RestoreNothingDeployed(const Settings& s, DriverContext& ctx) {
  FileSystem* fs = ctx.env->fs();
  auto info = fs->Stat(s.current);
  if (!info.ok()) return info.status().IsNotFound() ? Status::OK() : info.status();
  if (!info->is_symlink) {
    return Status::FailedPrecondition(s.current + " is not a symlink; not removing it");
  }
  if (ctx.dry_run) {
    ctx.Progress("would remove " + s.current + " (nothing was deployed)");
    return Status::OK();
  }
  BACKSTOP_RETURN_IF_ERROR(fs->Remove(s.current));
  BACKSTOP_RETURN_IF_ERROR(fs->SyncDir(Dirname(s.current)));
  ctx.Progress(s.name + ": removed " + s.current + " (nothing was deployed at the restore point)");
  return Status::OK();
}

bool NaturalLess(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  auto digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      size_t ie = i, je = j;
      while (ie < a.size() && digit(a[ie])) ++ie;
      while (je < b.size() && digit(b[je])) ++je;
      size_t iz = i, jz = j;  // skip leading zeros
      while (iz + 1 < ie && a[iz] == '0') ++iz;
      while (jz + 1 < je && b[jz] == '0') ++jz;
      if (ie - iz != je - jz) return ie - iz < je - jz;
      int cmp = a.compare(iz, ie - iz, b, jz, je - jz);
      if (cmp != 0) return cmp < 0;
      if (ie - i != je - j) return ie - i < je - j;  // "v01" after "v1"
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

Result<std::vector<std::string>> ListReleases(const ComponentSpec& c, Env* env) {
  BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ""));
  return ListReleaseNames(s, env->fs());
}

Result<std::string> CurrentRelease(const ComponentSpec& c, Env* env) {
  BACKSTOP_ASSIGN_OR_RETURN(Settings s, LoadSettings(c, ""));
  BACKSTOP_ASSIGN_OR_RETURN(CurrentTarget t, ReadCurrent(s, env->fs()));
  return t.release;
}

}  // namespace backstop::process

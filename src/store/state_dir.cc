// The state dir: created private, tightened on open. See state_dir.h.
#include "store/state_dir.h"

#include "base/units.h"

namespace backstop {
namespace {

constexpr uint32_t kPrivateDirMode = 0700;
constexpr uint32_t kGroupOtherBits = 0077;

// A folder Backstop keeps state in, but not a link to one.
Status RefuseLink(FileSystem* fs, const std::string& dir, const std::string& what) {
  auto info = fs->Stat(dir);
  if (!info.ok() || !info->is_symlink) return Status::OK();
  auto target = fs->ReadLink(dir);
  return Status::FailedPrecondition(
      what + " " + dir + " is a symbolic link" + (target.ok() ? " to " + *target : std::string()) +
      "; Backstop keeps its state only in a real folder (set `state_dir:`/`store:` in the spec to "
      "the folder the link points to)");
}

bool Inside(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         path[dir.size()] == '/');
}

}  // namespace

std::string StateDirReport::Message() const {
  if (tightened == 0) return "";
  return "tightened permissions of " + FormatThousands(tightened) +
         (tightened == 1 ? " file" : " files") + " under " + state_dir +
         " (now private to its owner: folders 0700, files 0600)";
}

Result<uint64_t> TightenTree(FileSystem* fs, const std::string& root) {
  BACKSTOP_ASSIGN_OR_RETURN(FileInfo info, fs->Stat(root));
  if (info.is_symlink) return uint64_t{0};  // never followed, never changed
  uint64_t changed = 0;
  if (info.is_dir) {
    if ((info.mode & kGroupOtherBits) != 0) {
      BACKSTOP_RETURN_IF_ERROR(fs->Chmod(root, info.mode & ~kGroupOtherBits));
      ++changed;
    }
    auto names = fs->ListDir(root);
    if (!names.ok()) {
      if (names.status().IsNotFound()) return changed;  // removed meanwhile
      return names.status();
    }
    for (const auto& name : *names) {
      auto sub = TightenTree(fs, JoinPath(root, name));
      if (!sub.ok()) {
        if (sub.status().IsNotFound()) continue;  // a temp file renamed away meanwhile
        return sub.status();
      }
      changed += *sub;
    }
    return changed;
  }
  if ((info.mode & kGroupOtherBits) != 0) {
    BACKSTOP_RETURN_IF_ERROR(fs->Chmod(root, info.mode & ~kGroupOtherBits));
    ++changed;
  }
  return changed;
}

Result<StateDirReport> OpenStateDir(Env* env, const std::string& state_dir,
                                    const std::string& store_path) {
  FileSystem* fs = env->fs();
  StateDirReport report;
  report.state_dir = state_dir;
  BACKSTOP_RETURN_IF_ERROR(RefuseLink(fs, state_dir, "the state dir"));
  BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(state_dir, kPrivateDirMode));
  BACKSTOP_ASSIGN_OR_RETURN(report.tightened, TightenTree(fs, state_dir));
  if (!store_path.empty() && !Inside(store_path, state_dir)) {
    BACKSTOP_RETURN_IF_ERROR(RefuseLink(fs, store_path, "the store"));
    BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(store_path, kPrivateDirMode));
    BACKSTOP_ASSIGN_OR_RETURN(uint64_t in_store, TightenTree(fs, store_path));
    report.tightened += in_store;
  }
  return report;
}

}  // namespace backstop

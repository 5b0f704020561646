#include "store/remote/dir_object_store.h"

#include <unistd.h>

#include <algorithm>

namespace backstop {

Result<std::unique_ptr<DirObjectStore>> DirObjectStore::Open(FileSystem* fs,
                                                             const std::string& root) {
  if (root.empty() || root.front() != '/') {
    return Status::InvalidArgument("a directory store needs an absolute path, not \"" + root +
                                   "\"");
  }
  auto info = fs->Stat(root);
  if (info.ok() && info->is_symlink) {
    return Status::FailedPrecondition("the remote store directory " + root +
                                      " is a symbolic link; name its real location");
  }
  BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(root, 0700));
  return std::unique_ptr<DirObjectStore>(new DirObjectStore(fs, root));
}

Result<std::string> DirObjectStore::PathOf(const std::string& key, bool create_dirs) {
  BACKSTOP_RETURN_IF_ERROR(CheckObjectKey(key));
  // Every folder on the way must be a real folder: a link planted in the tree
  // could send an object (a database dump) somewhere nobody chose.
  std::string dir = root_;
  size_t start = 0;
  for (size_t slash = key.find('/'); slash != std::string::npos; slash = key.find('/', start)) {
    dir = JoinPath(dir, key.substr(start, slash - start));
    start = slash + 1;
    auto info = fs_->Stat(dir);
    if (info.ok()) {
      if (info->is_symlink || !info->is_dir) {
        return Status::FailedPrecondition(dir + " in the remote store " + Describe() +
                                          " is not a folder Backstop made (a link or a file)");
      }
    } else if (create_dirs) {
      BACKSTOP_RETURN_IF_ERROR(fs_->CreateDirs(dir, 0700));
    }
  }
  return JoinPath(root_, key);
}

Status DirObjectStore::Put(const std::string& key, std::string_view data) {
  BACKSTOP_ASSIGN_OR_RETURN(std::string path, PathOf(key, /*create_dirs=*/true));
  return fs_->WriteFileAtomic(path, data, 0600);
}

Status DirObjectStore::CopyReplacing(const std::string& from, const std::string& to) {
  BACKSTOP_ASSIGN_OR_RETURN(std::unique_ptr<SequentialFile> in, fs_->NewSequentialFile(from));
  std::string tmp = to + ".part-" + std::to_string(::getpid()) + "-" + std::to_string(++counter_);
  BACKSTOP_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> out,
                            fs_->NewWritableFile(tmp, 0600, WriteMode::kCreateNew));
  Status st = [&]() -> Status {
    std::string scratch(1 << 20, '\0');
    for (;;) {
      BACKSTOP_ASSIGN_OR_RETURN(std::string_view chunk, in->Read(scratch.size(), scratch.data()));
      if (chunk.empty()) break;
      BACKSTOP_RETURN_IF_ERROR(out->Append(chunk));
    }
    BACKSTOP_RETURN_IF_ERROR(out->Sync());
    BACKSTOP_RETURN_IF_ERROR(out->Close());
    BACKSTOP_RETURN_IF_ERROR(fs_->Rename(tmp, to));
    return fs_->SyncDir(Dirname(to));
  }();
  if (!st.ok()) (void)fs_->Remove(tmp);
  return st;
}

Status DirObjectStore::PutFile(const std::string& key, const std::string& path) {
  BACKSTOP_ASSIGN_OR_RETURN(std::string to, PathOf(key, /*create_dirs=*/true));
  return CopyReplacing(path, to).WithContext("cannot put " + key + " into " + Describe());
}

Result<std::string> DirObjectStore::Get(const std::string& key) {
  BACKSTOP_ASSIGN_OR_RETURN(std::string path, PathOf(key, /*create_dirs=*/false));
  auto text = fs_->ReadFileNoFollow(path);
  if (!text.ok() && text.status().IsNotFound()) {
    return Status::NotFound("no object " + key + " in " + Describe());
  }
  return text;
}

Status DirObjectStore::GetToFile(const std::string& key, const std::string& path) {
  BACKSTOP_ASSIGN_OR_RETURN(std::string from, PathOf(key, /*create_dirs=*/false));
  if (!fs_->Exists(from)) return Status::NotFound("no object " + key + " in " + Describe());
  return CopyReplacing(from, path);
}

Result<uint64_t> DirObjectStore::Size(const std::string& key) {
  BACKSTOP_ASSIGN_OR_RETURN(std::string path, PathOf(key, /*create_dirs=*/false));
  auto info = fs_->Stat(path);
  if (!info.ok()) {
    if (info.status().IsNotFound())
      return Status::NotFound("no object " + key + " in " + Describe());
    return info.status();
  }
  if (!info->is_regular) {
    return Status::FailedPrecondition(path + " in the remote store is not a regular file");
  }
  return info->size;
}

Result<std::vector<ObjectInfo>> DirObjectStore::List(const std::string& prefix) {
  std::vector<ObjectInfo> out;
  // Walks the whole tree below the deepest folder the prefix names.
  std::string base_key =
      prefix.substr(0, prefix.rfind('/') == std::string::npos ? 0 : prefix.rfind('/'));
  std::vector<std::string> pending = {base_key};
  while (!pending.empty()) {
    std::string rel = pending.back();
    pending.pop_back();
    std::string dir = rel.empty() ? root_ : JoinPath(root_, rel);
    auto names = fs_->ListDir(dir);
    if (!names.ok()) {
      if (names.status().IsNotFound()) continue;
      return names.status();
    }
    for (const auto& name : *names) {
      if (name.find(".part-") != std::string::npos || name.find(".tmp-") != std::string::npos) {
        continue;  // a write in progress, not an object
      }
      std::string key = rel.empty() ? name : rel + "/" + name;
      auto info = fs_->Stat(JoinPath(root_, key));
      if (!info.ok() || info->is_symlink) continue;
      if (info->is_dir) {
        if (key.compare(0, std::min(key.size(), prefix.size()), prefix, 0,
                        std::min(key.size(), prefix.size())) == 0) {
          pending.push_back(key);
        }
      } else if (info->is_regular && key.compare(0, prefix.size(), prefix) == 0) {
        out.push_back({key, info->size});
      }
    }
  }
  std::sort(out.begin(), out.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return out;
}

Status DirObjectStore::Delete(const std::string& key) {
  BACKSTOP_ASSIGN_OR_RETURN(std::string path, PathOf(key, /*create_dirs=*/false));
  Status st = fs_->Remove(path);
  if (!st.ok() && !st.IsNotFound()) return st;
  return Status::OK();
}

}  // namespace backstop

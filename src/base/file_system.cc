// What every FileSystem gets for free, built on its streaming primitives:
// the whole-file helpers of env.h, so a decorator that changes how files are
// written or renamed changes them too.
#include "base/env.h"
#include "base/posix_file.h"

namespace backstop {

Result<std::string> ReadAll(SequentialFile& file) {
  std::string out;
  std::string scratch(64 << 10, '\0');
  for (;;) {
    BACKSTOP_ASSIGN_OR_RETURN(std::string_view chunk, file.Read(scratch.size(), scratch.data()));
    if (chunk.empty()) return out;
    out.append(chunk);
  }
}

Result<std::string> FileSystem::ReadFileNoFollow(const std::string& path) {
  auto info = Stat(path);
  if (info.ok() && info->is_symlink) return SymlinkRefused(path);
  return ReadFile(path);
}

Status FileSystem::WriteFileAtomic(const std::string& path, std::string_view data, uint32_t mode) {
  const std::string tmp = TempNameFor(path);
  auto file = NewWritableFile(tmp, mode, WriteMode::kCreateNew);
  if (!file.ok()) return file.status();
  Status st = (*file)->Append(data);
  if (st.ok()) st = (*file)->Sync();
  if (st.ok()) st = (*file)->Close();
  file->reset();
  if (st.ok()) st = Rename(tmp, path);
  if (!st.ok()) {
    (void)Remove(tmp);
    return st;
  }
  return SyncDir(Dirname(path));
}

Status FileSystem::AppendFile(const std::string& path, std::string_view data) {
  BACKSTOP_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file,
                            NewWritableFile(path, 0600, WriteMode::kAppend));
  BACKSTOP_RETURN_IF_ERROR(file->Append(data));
  BACKSTOP_RETURN_IF_ERROR(file->Sync());
  return file->Close();
}

}  // namespace backstop

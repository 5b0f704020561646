// FaultFileSystem: the rules and the files that obey them. See fault_fs.h.
#include "testing/fault_fs.h"

#include <fnmatch.h>

#include <algorithm>

namespace backstop::testing {
namespace {

bool Matches(const std::string& pattern, const std::string& path) {
  return ::fnmatch(pattern.c_str(), path.c_str(), 0) == 0;
}

// A target file whose writes and syncs first ask the rules.
class FaultWritableFile : public WritableFile {
 public:
  FaultWritableFile(FaultFileSystem* fs, std::unique_ptr<WritableFile> target, std::string path)
      : fs_(fs), target_(std::move(target)), path_(std::move(path)) {}

  Status Append(std::string_view data) override {
    size_t landed = 0;
    Status fault = fs_->OnWrite(path_, data.size(), &landed);
    if (fault.ok()) return target_->Append(data);
    if (landed > 0) {
      // The part that made it is really in the file, as after a short write.
      (void)target_->Append(data.substr(0, landed));
      (void)target_->Flush();
    }
    return fault;
  }
  Status Flush() override { return target_->Flush(); }
  Status Sync() override {
    BACKSTOP_RETURN_IF_ERROR(target_->Flush());
    BACKSTOP_RETURN_IF_ERROR(fs_->OnSync(path_));
    return target_->Sync();
  }
  Status Close() override { return target_->Close(); }

 private:
  FaultFileSystem* fs_;
  std::unique_ptr<WritableFile> target_;
  std::string path_;
};

}  // namespace

void FaultFileSystem::Add(Rule rule) {
  std::lock_guard<std::mutex> lock(mu_);
  rules_.push_back(std::move(rule));
}

void FaultFileSystem::FailWriteNumber(const std::string& pattern, int nth, int error) {
  Add({.kind = Kind::kWriteNumber, .pattern = pattern, .nth = nth, .error = error});
}

void FaultFileSystem::FailWritesAfterBytes(const std::string& pattern, uint64_t bytes) {
  Add({.kind = Kind::kAfterBytes, .pattern = pattern, .limit = bytes});
}

void FaultFileSystem::TearWriteNumber(const std::string& pattern, int nth, size_t keep) {
  Add({.kind = Kind::kTear, .pattern = pattern, .nth = nth, .limit = keep});
}

void FaultFileSystem::FailSyncs(const std::string& pattern) {
  Add({.kind = Kind::kSync, .pattern = pattern});
}

void FaultFileSystem::FailRenames(const std::string& pattern) {
  Add({.kind = Kind::kRename, .pattern = pattern});
}

void FaultFileSystem::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  rules_.clear();
}

int FaultFileSystem::faults_injected() {
  std::lock_guard<std::mutex> lock(mu_);
  return faults_;
}

Status FaultFileSystem::OnWrite(const std::string& path, size_t size, size_t* landed) {
  std::lock_guard<std::mutex> lock(mu_);
  *landed = size;
  int error = 0;
  for (Rule& r : rules_) {
    if (!Matches(r.pattern, path)) continue;
    ++r.writes;
    size_t allowed = size;
    int rule_error = 0;
    switch (r.kind) {
      case Kind::kWriteNumber:
        if (r.fired || r.writes == static_cast<uint64_t>(r.nth)) allowed = 0, rule_error = r.error;
        break;
      case Kind::kAfterBytes:
        if (r.bytes + size > r.limit) {
          allowed = static_cast<size_t>(r.limit - std::min(r.limit, r.bytes));
          rule_error = ENOSPC;
        }
        break;
      case Kind::kTear:
        if (r.fired) {
          allowed = 0, rule_error = EIO;
        } else if (r.writes == static_cast<uint64_t>(r.nth)) {
          allowed = std::min<size_t>(size, r.limit), rule_error = EIO;
        }
        break;
      case Kind::kSync:
      case Kind::kRename:
        continue;
    }
    if (rule_error != 0) {
      r.fired = true;
      if (allowed <= *landed) *landed = allowed, error = rule_error;
    }
  }
  for (Rule& r : rules_) {
    if (r.kind == Kind::kAfterBytes && Matches(r.pattern, path)) r.bytes += *landed;
  }
  if (error == 0) return Status::OK();
  ++faults_;
  return Status::FromErrno("write " + path, error);
}

Status FaultFileSystem::OnSync(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const Rule& r : rules_) {
    if (r.kind == Kind::kSync && Matches(r.pattern, path)) {
      ++faults_;
      return Status::FromErrno("fsync " + path, EIO);
    }
  }
  return Status::OK();
}

Status FaultFileSystem::OnRename(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const Rule& r : rules_) {
    if (r.kind == Kind::kRename && (Matches(r.pattern, from) || Matches(r.pattern, to))) {
      ++faults_;
      return Status::FromErrno("rename " + from + " to " + to, EIO);
    }
  }
  return Status::OK();
}

Result<std::unique_ptr<WritableFile>> FaultFileSystem::NewWritableFile(const std::string& path,
                                                                       uint32_t mode,
                                                                       WriteMode how) {
  BACKSTOP_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file,
                            FileSystemWrapper::NewWritableFile(path, mode, how));
  return std::unique_ptr<WritableFile>(new FaultWritableFile(this, std::move(file), path));
}

Status FaultFileSystem::Rename(const std::string& from, const std::string& to) {
  BACKSTOP_RETURN_IF_ERROR(OnRename(from, to));
  return FileSystemWrapper::Rename(from, to);
}

Status FaultFileSystem::RenameNoReplace(const std::string& from, const std::string& to) {
  BACKSTOP_RETURN_IF_ERROR(OnRename(from, to));
  return FileSystemWrapper::RenameNoReplace(from, to);
}

Status FaultFileSystem::SyncDir(const std::string& dir) {
  BACKSTOP_RETURN_IF_ERROR(OnSync(dir));
  return FileSystemWrapper::SyncDir(dir);
}

}  // namespace backstop::testing

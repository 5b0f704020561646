// WritableFile and SequentialFile over POSIX file descriptors. See posix_file.h.
#include "base/posix_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace backstop {
namespace {

// Big enough that a blob's compressed stream is written in few system
// calls, small enough to keep per open file.
constexpr size_t kWriteBufferBytes = 64 << 10;

std::atomic<uint64_t> g_temp_counter{0};

class PosixWritableFile : public WritableFile {
 public:
  PosixWritableFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {
    buffer_.reserve(kWriteBufferBytes);
  }
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }
  PosixWritableFile(const PosixWritableFile&) = delete;
  PosixWritableFile& operator=(const PosixWritableFile&) = delete;

  Status Append(std::string_view data) override {
    BACKSTOP_RETURN_IF_ERROR(CheckOpen());
    if (buffer_.size() + data.size() <= kWriteBufferBytes) {
      buffer_.append(data);
      return Status::OK();
    }
    BACKSTOP_RETURN_IF_ERROR(Flush());
    if (data.size() < kWriteBufferBytes) {
      buffer_.append(data);
      return Status::OK();
    }
    return WriteUnbuffered(data);  // large: no copy through the buffer
  }

  Status Flush() override {
    BACKSTOP_RETURN_IF_ERROR(CheckOpen());
    Status st = WriteUnbuffered(buffer_);
    buffer_.clear();
    return st;
  }

  Status Sync() override {
    BACKSTOP_RETURN_IF_ERROR(Flush());
    if (::fsync(fd_) != 0) return Status::FromErrno("fsync " + path_, errno);
    return Status::OK();
  }

  Status Close() override {
    BACKSTOP_RETURN_IF_ERROR(CheckOpen());
    Status st = Flush();
    int fd = fd_;
    fd_ = -1;
    // A failed close can mean lost data (NFS): it is reported.
    if (::close(fd) != 0 && st.ok()) st = Status::FromErrno("close " + path_, errno);
    return st;
  }

 private:
  Status CheckOpen() const {
    if (fd_ < 0) return Status::FailedPrecondition(path_ + " is already closed");
    return Status::OK();
  }

  Status WriteUnbuffered(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno("write " + path_, errno);
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return Status::OK();
  }

  int fd_;
  std::string path_;
  std::string buffer_;
};

class PosixSequentialFile : public SequentialFile {
 public:
  PosixSequentialFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixSequentialFile() override { ::close(fd_); }
  PosixSequentialFile(const PosixSequentialFile&) = delete;
  PosixSequentialFile& operator=(const PosixSequentialFile&) = delete;

  Result<std::string_view> Read(size_t n, char* scratch) override {
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::read(fd_, scratch + got, n - got);
      if (r < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno("read " + path_, errno);
      }
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    return std::string_view(scratch, got);
  }

  Status Skip(uint64_t n) override {
    if (::lseek(fd_, static_cast<off_t>(n), SEEK_CUR) < 0) {
      return Status::FromErrno("seek " + path_, errno);
    }
    return Status::OK();
  }

 private:
  int fd_;
  std::string path_;
};

// Opens for appending; a file created here gets exactly `mode`, one that
// exists keeps its own.
int OpenForAppend(const std::string& path, uint32_t mode) {
  constexpr int kFlags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW;
  int fd = ::open(path.c_str(), kFlags);
  if (fd >= 0 || errno != ENOENT) return fd;
  fd = ::open(path.c_str(), kFlags | O_CREAT | O_EXCL, mode);
  if (fd < 0) {
    if (errno == EEXIST) return ::open(path.c_str(), kFlags);  // created meanwhile
    return fd;
  }
  if (::fchmod(fd, mode) != 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

}  // namespace

Status SymlinkRefused(const std::string& path) {
  return Status::FailedPrecondition(path +
                                    " is a symbolic link; Backstop does not read or write "
                                    "through a link where it expects its own file (remove it)");
}

std::string TempNameFor(const std::string& path) {
  return path + ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(++g_temp_counter);
}

Result<std::unique_ptr<WritableFile>> NewPosixWritableFile(const std::string& path, uint32_t mode,
                                                           WriteMode how) {
  mode &= 07777;
  int fd = -1;
  switch (how) {
    case WriteMode::kAppend:
      fd = OpenForAppend(path, mode);
      break;
    case WriteMode::kTruncate:
    case WriteMode::kCreateNew: {
      int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW;
      flags |= how == WriteMode::kTruncate ? O_TRUNC : O_EXCL;
      fd = ::open(path.c_str(), flags, mode);
      // Set explicitly: the umask narrowed the creation mode, and a file
      // that existed (a leftover of a killed run) may have had another.
      if (fd >= 0 && ::fchmod(fd, mode) != 0) {
        int e = errno;
        ::close(fd);
        return Status::FromErrno("chmod " + path, e);
      }
      break;
    }
  }
  if (fd < 0) {
    if (errno == ELOOP) return SymlinkRefused(path);
    if (errno == EEXIST && how == WriteMode::kCreateNew) {
      return Status::FailedPrecondition(path + " already exists; it was left unchanged");
    }
    return Status::FromErrno((how == WriteMode::kAppend ? "open " : "create ") + path, errno);
  }
  return std::unique_ptr<WritableFile>(new PosixWritableFile(fd, path));
}

Result<std::unique_ptr<SequentialFile>> NewPosixSequentialFile(const std::string& path,
                                                               bool follow_links) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (follow_links ? 0 : O_NOFOLLOW));
  if (fd < 0) {
    if (errno == ENOENT) return Status::NotFound(path + ": no such file");
    if (errno == ELOOP && !follow_links) return SymlinkRefused(path);
    return Status::FromErrno("open " + path, errno);
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);  // read ahead more: it is read once, in order
  return std::unique_ptr<SequentialFile>(new PosixSequentialFile(fd, path));
}

}  // namespace backstop

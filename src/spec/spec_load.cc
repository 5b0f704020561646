// LoadSpec: the spec file from disk, with the size and file-type limits,
// handed to the parser (spec.cc) with the caller's driver catalogue.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/env.h"
#include "spec/spec.h"

namespace backstop {

namespace {

const char kStarterHint[] = "; run `backstop init --example mistersmith` to write a starter spec";

}  // namespace

Result<std::string> ReadSpecFile(const std::string& path) {
  // O_NONBLOCK: opening a FIFO nobody writes to must not hang; the file
  // type is checked on the open descriptor (no race with a rename).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return Status::NotFound(path + ": no such file" + kStarterHint);
    return Status::InvalidArgument("cannot open the spec " + path + ": " + std::strerror(err) +
                                   "; pass --spec with a readable YAML file");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::InvalidArgument("cannot stat the spec " + path + ": " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    const char* what = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISFIFO(st.st_mode) ? "a pipe"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    return Status::InvalidArgument("the spec " + path + " is " + what +
                                   "; pass --spec with a regular YAML file such as backstop.yaml");
  }
  const std::string too_big = "the spec " + path + " is larger than " + std::string("4 MiB") +
                              ", the largest spec Backstop reads; split the environment or "
                              "remove what it does not need";
  if (static_cast<uint64_t>(st.st_size) > kMaxSpecBytes) {
    ::close(fd);
    return Status::InvalidArgument(too_big + " (it has " + std::to_string(st.st_size) + " bytes)");
  }
  // Read at most one byte past the limit: a file that grows while it is
  // read is refused too, never read without bound.
  std::string text;
  text.resize(kMaxSpecBytes + 1);
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Status::InvalidArgument("cannot read the spec " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  if (got > kMaxSpecBytes) return Status::InvalidArgument(too_big);
  text.resize(got);
  return text;
}

Result<Spec> LoadSpec(const std::string& path, const DriverCatalog& drivers) {
  BACKSTOP_ASSIGN_OR_RETURN(std::string text, ReadSpecFile(path));
  return ParseSpec(text, path, drivers);
}

}  // namespace backstop

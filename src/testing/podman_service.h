// A real podman API service (Docker Engine API 1.41 on a unix socket) for
// integration tests of the container driver.
//
// PodmanService::Start creates a temporary directory holding the storage
// (root, runroot, tmpdir), a containers.conf with the settings this kind of
// machine needs (runtime runc, explicit nofile/nproc ulimits: crun and the
// default limits fail here) and the socket, runs
//   podman --root R --runroot RR --tmpdir T --runtime runc
//       system service --time=0 unix://<dir>/podman.sock
// and waits until GET /version answers. The storage options are the same for
// every call from first use on (changing them makes every later call stall).
// The destructor removes every container (podman rm -af), stops the service
// (SIGTERM, then SIGKILL) and removes the directory. The child gets
// PR_SET_PDEATHSIG so a crashed test does not leave a service behind.
//
// Tests set up images with the podman command (Podman, ImportBusyboxImage):
// there is no registry here, so an image is a `podman import` of a rootfs
// holding the static busybox (package busybox-static).
//
// Thread-safety: not thread-safe. Test-only code.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace backstop::testing {

class PodmanService {
 public:
  // True when podman, runc and the static busybox are installed; tests skip
  // otherwise (scripts/install-deps --test installs them).
  static bool Installed();
  // The reason Installed() is false, for GTEST_SKIP.
  static std::string NotInstalledReason();

  static Result<std::unique_ptr<PodmanService>> Start();
  ~PodmanService();
  PodmanService(const PodmanService&) = delete;
  PodmanService& operator=(const PodmanService&) = delete;

  const std::string& socket_path() const { return socket_path_; }
  const std::string& dir() const { return dir_; }

  // Runs `podman <the service's storage options> args...`; returns its
  // stdout, or an error with its stderr.
  Result<std::string> Podman(const std::vector<std::string>& args) const;
  // Imports a rootfs with /bin/busybox and its applets (sh, sleep, httpd...)
  // as image `ref` (e.g. "localhost/web:1"), with `podman import --change`
  // instructions (e.g. "CMD [\"sleep\",\"600\"]"). `marker` is written to
  // /release in the image, so two releases differ in content. Returns the
  // image id (sha256:<hex>).
  Result<std::string> ImportBusyboxImage(const std::string& ref,
                                         const std::vector<std::string>& changes,
                                         const std::string& marker) const;
  // The service's output, for failure messages.
  std::string LogTail() const;

 private:
  PodmanService() = default;
  std::vector<std::string> GlobalOptions() const;
  Status Launch();
  void StopService();

  std::string dir_;
  std::string socket_path_;
  std::string conf_path_;
  pid_t pid_ = -1;
};

}  // namespace backstop::testing

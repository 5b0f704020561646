#include "testing/podman_service.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "base/env.h"
#include "drivers/container/docker_client.h"

namespace backstop::testing {
namespace {

// The settings podman needs on these machines (see the header).
constexpr const char* kContainersConf =
    "[containers]\n"
    "default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n"
    "[engine]\n"
    "runtime = \"runc\"\n";

constexpr const char* kBusybox = "/bin/busybox";

bool InPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = JoinPath(dirs.substr(start, end - start), name);
    if (::access(candidate.c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

}  // namespace

std::string PodmanService::NotInstalledReason() {
  std::string missing;
  if (!InPath("podman")) missing += " podman";
  if (!InPath("runc")) missing += " runc";
  if (::access(kBusybox, X_OK) != 0) missing += " busybox-static";
  if (missing.empty()) return "";
  return "not installed:" + missing + " (scripts/install-deps --test installs them)";
}

bool PodmanService::Installed() { return NotInstalledReason().empty(); }

Result<std::unique_ptr<PodmanService>> PodmanService::Start() {
  std::unique_ptr<PodmanService> service(new PodmanService());
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/backstop-podman-XXXXXX";
  char* made = ::mkdtemp(templ.data());
  if (made == nullptr) return Status::FromErrno("mkdtemp " + templ, errno);
  service->dir_ = made;
  service->socket_path_ = JoinPath(service->dir_, "podman.sock");
  service->conf_path_ = JoinPath(service->dir_, "containers.conf");
  FileSystem* fs = Env::Default()->fs();
  BACKSTOP_RETURN_IF_ERROR(fs->WriteFileAtomic(service->conf_path_, kContainersConf, 0644));
  BACKSTOP_RETURN_IF_ERROR(service->Launch());
  return service;
}

std::vector<std::string> PodmanService::GlobalOptions() const {
  return {"podman",
          "--root",
          JoinPath(dir_, "root"),
          "--runroot",
          JoinPath(dir_, "runroot"),
          "--tmpdir",
          JoinPath(dir_, "tmp"),
          "--runtime",
          "runc"};
}

Status PodmanService::Launch() {
  std::vector<std::string> args = GlobalOptions();
  args.push_back("system");
  args.push_back("service");
  args.push_back("--time=0");
  args.push_back("unix://" + socket_path_);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string out = JoinPath(dir_, "service.log");
  pid_t pid = ::fork();
  if (pid < 0) return Status::FromErrno("fork", errno);
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::setenv("CONTAINERS_CONF", conf_path_.c_str(), 1);
    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  pid_ = pid;
  container::DockerClientOptions options;
  options.socket_path = socket_path_;
  options.request_timeout_ms = 2000;
  container::DockerClient client(options);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    int wstatus = 0;
    if (::waitpid(pid_, &wstatus, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::Unavailable("podman system service exited during start-up: " + LogTail());
    }
    if (Env::Default()->fs()->Exists(socket_path_) && client.Version().ok()) return Status::OK();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  StopService();
  return Status::Timeout("podman system service did not answer /version within 30 s: " + LogTail());
}

Result<std::string> PodmanService::Podman(const std::vector<std::string>& args) const {
  ProcessOptions options;
  options.argv = GlobalOptions();
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  options.env["CONTAINERS_CONF"] = conf_path_;
  options.timeout_ms = 120000;
  BACKSTOP_ASSIGN_OR_RETURN(ProcessResult result, Env::Default()->processes()->Run(options));
  if (!result.success()) {
    std::string shown;
    for (const auto& a : args) shown += " " + a;
    return Status::Internal("podman" + shown + ": " + result.Describe() + "\n" + result.err);
  }
  return result.out;
}

Result<std::string> PodmanService::ImportBusyboxImage(const std::string& ref,
                                                      const std::vector<std::string>& changes,
                                                      const std::string& marker) const {
  FileSystem* fs = Env::Default()->fs();
  std::string rootfs = JoinPath(dir_, "rootfs-" + std::to_string(::getpid()));
  BACKSTOP_RETURN_IF_ERROR(fs->RemoveAll(rootfs));
  BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(JoinPath(rootfs, "bin"), 0755));
  BACKSTOP_ASSIGN_OR_RETURN(std::string busybox, fs->ReadFile(kBusybox));
  BACKSTOP_RETURN_IF_ERROR(fs->WriteFileAtomic(JoinPath(rootfs, "bin/busybox"), busybox, 0755));
  for (const char* applet : {"sh", "sleep", "httpd", "true", "false", "cat", "echo", "wget"}) {
    BACKSTOP_RETURN_IF_ERROR(
        fs->SymlinkAtomic("busybox", JoinPath(rootfs, "bin/" + std::string(applet))));
  }
  BACKSTOP_RETURN_IF_ERROR(fs->WriteFileAtomic(JoinPath(rootfs, "release"), marker + "\n", 0644));
  std::string tar = rootfs + ".tar";
  ProcessOptions tar_options;
  tar_options.argv = {"tar", "-C", rootfs, "-cf", tar, "."};
  BACKSTOP_ASSIGN_OR_RETURN(ProcessResult packed, Env::Default()->processes()->Run(tar_options));
  if (!packed.success()) return Status::Internal("tar of the test rootfs: " + packed.Describe());
  std::vector<std::string> args = {"import", "--quiet"};
  for (const auto& change : changes) {
    args.push_back("--change");
    args.push_back(change);
  }
  args.push_back(tar);
  args.push_back(ref);
  auto imported = Podman(args);
  (void)fs->RemoveAll(rootfs);
  (void)fs->Remove(tar);
  if (!imported.ok()) return imported.status();
  std::string id = *imported;
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  if (id.rfind("sha256:", 0) != 0) id = "sha256:" + id;
  return id;
}

void PodmanService::StopService() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (true) {
    int wstatus = 0;
    pid_t r = ::waitpid(pid_, &wstatus, WNOHANG);
    if (r == pid_ || r < 0) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &wstatus, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
}

PodmanService::~PodmanService() {
  // Containers run under conmon, outside the service: remove them first.
  if (!dir_.empty()) (void)Podman({"rm", "--all", "--force", "--time", "0"});
  StopService();
  if (!dir_.empty() && std::getenv("BACKSTOP_KEEP_TEST_DIRS") == nullptr) {
    (void)Env::Default()->fs()->RemoveAll(dir_);
  }
}

std::string PodmanService::LogTail() const {
  auto content = Env::Default()->fs()->ReadFile(JoinPath(dir_, "service.log"));
  std::string text = content.ok() ? *content : std::string();
  if (text.size() > 2000) text = text.substr(text.size() - 2000);
  return text;
}

}  // namespace backstop::testing

#include "testing/s3rver.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "base/env.h"
#include "testing/ports.h"

namespace backstop::testing {
namespace {

size_t S3rverAppend(char* data, size_t size, size_t nmemb, void* out) {
  static_cast<std::string*>(out)->append(data, size * nmemb);
  return size * nmemb;
}

// The HTTP status of `method` `url` (0 when nothing answers) and its body.
long S3rverHttp(const std::string& method, const std::string& url, std::string* body = nullptr) {
  CURL* h = curl_easy_init();
  if (h == nullptr) return 0;
  std::string sink;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, S3rverAppend);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, body != nullptr ? body : &sink);
  if (method == "POST") {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
  }
  long code = 0;
  if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(h);
  return code;
}

// Forks `node argv...` with its output appended to `out`; the child dies with us.
Result<pid_t> S3rverSpawnNode(const std::vector<std::string>& args, const std::string& out) {
  std::vector<char*> argv;
  static char node[] = "node";
  argv.push_back(node);
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return Status::FromErrno("fork", errno);
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execvp("node", argv.data());
    ::_exit(127);
  }
  return pid;
}

// Waits until `url` answers anything over HTTP; Unavailable (with `log`'s
// tail) when `pid` exits first, Timeout after 20 s.
Status S3rverAwait(pid_t* pid, const std::string& url, const std::string& what,
                   const std::string& log) {
  auto tail = [&] {
    auto text = Env::Default()->fs()->ReadFile(log);
    std::string t = text.ok() ? *text : "";
    return t.size() > 2000 ? t.substr(t.size() - 2000) : t;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    int wstatus = 0;
    if (::waitpid(*pid, &wstatus, WNOHANG) == *pid) {
      *pid = -1;
      bool no_node = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 127;
      return Status::Unavailable(
          what + " exited during start-up" +
          (no_node ? " (is node installed? scripts/install-deps installs it)" : "") + ": " +
          tail());
    }
    if (S3rverHttp("GET", url) != 0) return Status::OK();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Status::Timeout(what + " did not answer within 20 s: " + tail());
}

void S3rverStopPid(pid_t* pid) {
  if (*pid <= 0) return;
  ::kill(*pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (true) {
    int wstatus = 0;
    pid_t r = ::waitpid(*pid, &wstatus, WNOHANG);
    if (r == *pid || r < 0) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(*pid, SIGKILL);
      ::waitpid(*pid, &wstatus, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  *pid = -1;
}

Result<std::string> S3rverTempDir(const char* name) {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/backstop-" + name + "-XXXXXX";
  char* made = ::mkdtemp(templ.data());
  if (made == nullptr) return Status::FromErrno("mkdtemp " + templ, errno);
  return std::string(made);
}

std::string S3rverLogTail(const std::string& path) {
  auto text = Env::Default()->fs()->ReadFile(path);
  if (!text.ok()) return "";
  return text->size() > 2000 ? text->substr(text->size() - 2000) : *text;
}

}  // namespace

// ---- S3rver ------------------------------------------------------------------

Result<std::unique_ptr<S3rver>> S3rver::Start(const std::string& bucket,
                                              const std::string& source_dir) {
  std::unique_ptr<S3rver> server(new S3rver());
  const char* configured = std::getenv("BACKSTOP_S3RVER");
  server->script_ = configured != nullptr && *configured
                        ? configured
                        : JoinPath(source_dir, "tests/servers/node_modules/.bin/s3rver");
  if (::access(server->script_.c_str(), R_OK) != 0) {
    return Status::FailedPrecondition(
        "s3rver is not installed at " + server->script_ +
        ": run scripts/install-deps --test (it runs npm ci in tests/servers/), or set "
        "BACKSTOP_S3RVER to s3rver's bin/s3rver.js");
  }
  server->bucket_ = bucket;
  BACKSTOP_ASSIGN_OR_RETURN(server->dir_, S3rverTempDir("s3rver"));
  Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    BACKSTOP_ASSIGN_OR_RETURN(server->port_, ReserveLoopbackPort());
    last = server->Launch();
    if (last.ok()) return server;
  }
  return last;
}

Status S3rver::Launch() {
  std::string log = JoinPath(dir_, "server.out");
  BACKSTOP_ASSIGN_OR_RETURN(
      // s3rver 3.7 makes its ListObjectsV2 continuation tokens with DES, which
      // OpenSSL 3 keeps in its legacy provider: without it every listing that
      // has a next page fails with 500.
      pid_,
      S3rverSpawnNode({"--openssl-legacy-provider", script_, "-d", JoinPath(dir_, "data"), "-a",
                       "127.0.0.1", "-p", std::to_string(port_), "--configure-bucket", bucket_},
                      log));
  Status st = S3rverAwait(&pid_, endpoint(), "s3rver (port " + std::to_string(port_) + ")", log);
  if (!st.ok()) S3rverStopPid(&pid_);
  return st;
}

S3rver::~S3rver() {
  (void)Stop();
  if (!dir_.empty() && std::getenv("BACKSTOP_KEEP_TEST_DIRS") == nullptr) {
    (void)Env::Default()->fs()->RemoveAll(dir_);
  }
}

Status S3rver::Stop() {
  S3rverStopPid(&pid_);
  return Status::OK();
}

Status S3rver::Restart() {
  BACKSTOP_RETURN_IF_ERROR(Stop());
  // The old listener may linger for a moment; retry briefly on the same port.
  Status st;
  for (int attempt = 0; attempt < 20; ++attempt) {
    st = Launch();
    if (st.ok()) return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return st;
}

std::string S3rver::endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

std::string S3rver::LogTail() const { return S3rverLogTail(JoinPath(dir_, "server.out")); }

// ---- S3FaultProxy --------------------------------------------------------------

Result<std::unique_ptr<S3FaultProxy>> S3FaultProxy::Start(const std::string& upstream,
                                                          const std::string& source_dir,
                                                          const std::string& sigv4_secret) {
  std::unique_ptr<S3FaultProxy> proxy(new S3FaultProxy());
  std::string script = JoinPath(source_dir, "tests/tools/s3-fault-proxy.mjs");
  BACKSTOP_ASSIGN_OR_RETURN(std::string dir, S3rverTempDir("s3proxy"));
  proxy->log_ = JoinPath(dir, "proxy.out");
  Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    BACKSTOP_ASSIGN_OR_RETURN(proxy->port_, ReserveLoopbackPort());
    std::vector<std::string> args = {script, "--port", std::to_string(proxy->port_), "--upstream",
                                     upstream};
    if (!sigv4_secret.empty()) {
      args.push_back("--sigv4-secret");
      args.push_back(sigv4_secret);
    }
    BACKSTOP_ASSIGN_OR_RETURN(proxy->pid_, S3rverSpawnNode(args, proxy->log_));
    last = S3rverAwait(&proxy->pid_, proxy->endpoint() + "/__fault/count", "s3-fault-proxy",
                       proxy->log_);
    if (last.ok()) return proxy;
    S3rverStopPid(&proxy->pid_);
  }
  return last;
}

S3FaultProxy::~S3FaultProxy() {
  S3rverStopPid(&pid_);
  if (!log_.empty() && std::getenv("BACKSTOP_KEEP_TEST_DIRS") == nullptr) {
    (void)Env::Default()->fs()->RemoveAll(Dirname(log_));
  }
}

Status S3FaultProxy::SetMode(const std::string& mode) {
  std::string path;
  for (char c : mode) path += c == ' ' ? std::string("%20") : std::string(1, c);
  std::string body;
  long code = S3rverHttp("POST", endpoint() + "/__fault/" + path, &body);
  if (code != 200) {
    return Status::Unavailable("s3-fault-proxy refused mode \"" + mode + "\": HTTP " +
                               std::to_string(code) + " " + body);
  }
  return Status::OK();
}

Result<int> S3FaultProxy::RequestCount() {
  std::string body;
  long code = S3rverHttp("GET", endpoint() + "/__fault/count", &body);
  if (code != 200) return Status::Unavailable("s3-fault-proxy: HTTP " + std::to_string(code));
  return std::atoi(body.c_str());
}

std::string S3FaultProxy::endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

std::string S3FaultProxy::LogTail() const { return S3rverLogTail(log_); }

}  // namespace backstop::testing

#include "testing/nginx_server.h"

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

#include "base/env.h"
#include "testing/ports.h"

namespace backstop::testing {
namespace {

size_t AppendBody(char* data, size_t size, size_t nmemb, void* out) {
  static_cast<std::string*>(out)->append(data, size * nmemb);
  return size * nmemb;
}

// nginx's quoted string for `text` (a return body).
std::string Quoted(const std::string& text) {
  std::string out = "\"";
  for (char ch : text) {
    if (ch == '"' || ch == '\\' || ch == '$') out += '\\';
    if (ch == '\n') {
      out += "\\n";
      continue;
    }
    out += ch;
  }
  return out + "\"";
}

}  // namespace

Result<std::unique_ptr<NginxServer>> NginxServer::Start(const std::string& body) {
  std::unique_ptr<NginxServer> server(new NginxServer());
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/backstop-nginx-XXXXXX";
  char* made = ::mkdtemp(templ.data());
  if (made == nullptr) return Status::FromErrno("mkdtemp " + templ, errno);
  server->dir_ = made;
  // Workers (user nobody when run as root) must reach the prefix.
  if (::chmod(made, 0755) != 0) return Status::FromErrno("chmod " + templ, errno);
  Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    BACKSTOP_ASSIGN_OR_RETURN(server->port_, ReserveLoopbackPort());
    BACKSTOP_RETURN_IF_ERROR(server->WriteConfig(body));
    last = server->Launch();
    if (last.ok()) return server;
  }
  return last;
}

std::string NginxServer::main_config() const { return JoinPath(dir_, "nginx.conf"); }
std::string NginxServer::site_config() const { return JoinPath(dir_, "sites/site.conf"); }
std::string NginxServer::pid_file() const { return JoinPath(dir_, "nginx.pid"); }
std::string NginxServer::error_log() const { return JoinPath(dir_, "error.log"); }
std::string NginxServer::upstreams_dir() const { return JoinPath(dir_, "upstreams"); }

std::string NginxServer::SiteAnswering(const std::string& body) const {
  return "server {\n  listen 127.0.0.1:" + std::to_string(port_) +
         ";\n  location / {\n    default_type text/plain;\n    return 200 " + Quoted(body) +
         ";\n  }\n}\n";
}

Status NginxServer::WriteConfig(const std::string& body) {
  FileSystem* fs = Env::Default()->fs();
  const std::string temp = JoinPath(dir_, "temp");
  BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(JoinPath(dir_, "sites"), 0755));
  BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(temp, 0755));
  BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(upstreams_dir(), 0700));
  std::string conf = "daemon off;\nmaster_process on;\nworker_processes 1;\n";
  conf += "pid " + pid_file() + ";\n";
  conf += "error_log " + error_log() + " notice;\n";
  conf += "events {\n  worker_connections 64;\n}\n";
  conf += "http {\n  access_log off;\n";
  for (const char* kind : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
    conf += "  " + std::string(kind) + "_temp_path " + JoinPath(temp, kind) + ";\n";
  }
  conf += "  include " + JoinPath(upstreams_dir(), "*.conf") + ";\n";
  conf += "  include " + site_config() + ";\n}\n";
  BACKSTOP_RETURN_IF_ERROR(fs->WriteFileAtomic(main_config(), conf, 0644));
  return fs->WriteFileAtomic(site_config(), SiteAnswering(body), 0644);
}

Status NginxServer::Launch() {
  const std::string out = JoinPath(dir_, "nginx.out");
  const std::string prefix = dir_ + "/";
  const std::string log = error_log();
  const std::string conf = main_config();
  pid_t pid = ::fork();
  if (pid < 0) return Status::FromErrno("fork", errno);
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execlp("nginx", "nginx", "-p", prefix.c_str(), "-e", log.c_str(), "-c", conf.c_str(),
             static_cast<char*>(nullptr));
    ::_exit(127);
  }
  pid_ = pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    int wstatus = 0;
    if (::waitpid(pid_, &wstatus, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::Unavailable("nginx exited during start-up (port " + std::to_string(port_) +
                                 "): " + LogTail());
    }
    if (Get("/").ok()) return Status::OK();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  (void)Stop();
  return Status::Timeout("nginx did not answer within 15 s: " + LogTail());
}

NginxServer::~NginxServer() {
  (void)Stop();
  if (!dir_.empty() && std::getenv("BACKSTOP_KEEP_TEST_DIRS") == nullptr) {
    (void)Env::Default()->fs()->RemoveAll(dir_);
  }
}

Status NginxServer::Stop() {
  if (pid_ <= 0) return Status::OK();
  ::kill(pid_, SIGQUIT);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (true) {
    int wstatus = 0;
    pid_t r = ::waitpid(pid_, &wstatus, WNOHANG);
    if (r == pid_ || r < 0) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &wstatus, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = -1;
  return Status::OK();
}

Result<std::string> NginxServer::Get(const std::string& path) const {
  const std::string url = "http://127.0.0.1:" + std::to_string(port_) + path;
  CURL* h = curl_easy_init();
  if (h == nullptr) return Status::Internal("curl_easy_init failed");
  std::string body;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  long code = 0;
  CURLcode rc = curl_easy_perform(h);
  if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(h);
  if (rc != CURLE_OK) return Status::Unavailable("GET " + url + ": " + curl_easy_strerror(rc));
  if (code != 200) return Status::Unavailable("GET " + url + ": HTTP " + std::to_string(code));
  return body;
}

std::string NginxServer::LogTail() const {
  std::string text;
  for (const std::string& path : {JoinPath(dir_, "nginx.out"), error_log()}) {
    auto content = Env::Default()->fs()->ReadFile(path);
    if (content.ok()) text += *content;
  }
  if (text.size() > 2000) text = text.substr(text.size() - 2000);
  return text;
}

}  // namespace backstop::testing

// NginxServer: a real nginx for tests, in a temporary directory on a
// reserved loopback port (testing/ports.h).
//
// Start() writes <dir>/nginx.conf (daemon off; pid, error log and every temp
// path under <dir>, so nothing is written to /var) that includes the
// upstream files <dir>/upstreams/*.conf (none at first; the nginx driver's
// `upstreams` directory, 0700) and the site config <dir>/sites/site.conf, writes a first site that
// answers every GET with `body`, runs `nginx -p <dir> -e <dir>/error.log -c <dir>/nginx.conf` as a
// non-daemon master (a child of the test, with PR_SET_PDEATHSIG) and waits until the site answers.
// The destructor stops it (SIGQUIT: open connections finish; SIGKILL after 5 s) and removes the
// directory (kept when BACKSTOP_KEEP_TEST_DIRS is set). Workers run as `nobody` when the test runs
// as root: files they serve must be world-readable.
//
// Thread-safety: not thread-safe. Test-only code.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "base/status.h"

namespace backstop::testing {

class NginxServer {
 public:
  // Starts nginx whose site answers `body` with 200. Retries on another port
  // when the reserved one was taken before nginx bound it.
  static Result<std::unique_ptr<NginxServer>> Start(const std::string& body = "first\n");
  ~NginxServer();
  NginxServer(const NginxServer&) = delete;
  NginxServer& operator=(const NginxServer&) = delete;

  // SIGQUIT and wait (SIGKILL after 5 s). A stopped server is OK.
  Status Stop();
  bool running() const { return pid_ > 0; }

  // The text of a site config for this server's port answering `body` with 200.
  std::string SiteAnswering(const std::string& body) const;

  // GET http://127.0.0.1:<port><path>: the body of a 200 answer; Unavailable
  // naming the status (or the connection error) otherwise.
  Result<std::string> Get(const std::string& path = "/") const;

  const std::string& dir() const { return dir_; }
  int port() const { return port_; }
  pid_t master_pid() const { return pid_; }
  std::string main_config() const;    // <dir>/nginx.conf
  std::string site_config() const;    // <dir>/sites/site.conf
  std::string pid_file() const;       // <dir>/nginx.pid
  std::string error_log() const;      // <dir>/error.log
  std::string upstreams_dir() const;  // <dir>/upstreams, 0700, included as *.conf
  // The end of the error log, for failure messages.
  std::string LogTail() const;

 private:
  NginxServer() = default;
  Status WriteConfig(const std::string& body);
  Status Launch();
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace backstop::testing

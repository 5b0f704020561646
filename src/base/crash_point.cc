#include "base/crash_point.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

namespace backstop {
namespace {

struct CrashConfig {
  std::string target;  // name to crash at; empty: none
  int occurrence = 1;
  std::string log_path;
};

const CrashConfig& Config() {
  static const CrashConfig config = [] {
    CrashConfig c;
    if (const char* v = std::getenv("BACKSTOP_CRASH_POINT_FOR_TEST"); v != nullptr) {
      c.target = v;
      if (size_t hash = c.target.find('#'); hash != std::string::npos) {
        c.occurrence = std::max(1, std::atoi(c.target.c_str() + hash + 1));
        c.target.resize(hash);
      }
    }
    if (const char* v = std::getenv("BACKSTOP_CRASH_POINTS_LOG_FOR_TEST"); v != nullptr) {
      c.log_path = v;
    }
    return c;
  }();
  return config;
}

}  // namespace

void CrashPointForTest(std::string_view name) {
  const CrashConfig& config = Config();
  if (config.target.empty() && config.log_path.empty()) return;
  if (!config.log_path.empty()) {
    // O_APPEND writes of one short line are atomic, so concurrent threads and
    // processes (a resumed run) never interleave names.
    std::string line(name);
    line.push_back('\n');
    int fd = ::open(config.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
      [[maybe_unused]] ssize_t n = ::write(fd, line.data(), line.size());
      ::close(fd);
    }
  }
  if (config.target.empty() || name != config.target) return;
  static std::mutex mu;
  static std::map<std::string, int, std::less<>> seen;
  std::lock_guard<std::mutex> lock(mu);
  int& count = seen[std::string(name)];
  if (++count == config.occurrence) ::raise(SIGKILL);
}

}  // namespace backstop

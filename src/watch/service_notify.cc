#include "watch/service_notify.h"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "watch/watch.h"

namespace backstop {
namespace {

constexpr int64_t kStatusEveryUs = 1'000'000;

std::string Plural(size_t n, const std::string& word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// STATUS= is one line: a newline would start another assignment.
std::string OneLine(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

}  // namespace

std::string ServiceStatusLine(const ServiceState& s) {
  std::string line = "watching " + Plural(s.components, "component");
  line += s.not_ok == 0 ? ", all triggers ok"
                        : "; " + Plural(s.not_ok, "trigger") + " pending or firing";
  if (s.dry_run) line += "; dry run";
  if (s.paused) {
    line += "; paused";
    if (!s.paused_reason.empty()) line += " (" + s.paused_reason + ")";
  }
  if (!s.running.empty()) line += "; running " + s.running;
  return OneLine(line);
}

ServiceNotifier::ServiceNotifier() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = socket != nullptr && *socket != '\0';
  uint64_t usec = 0;
  // > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) is this
  // process: a child of a supervised daemon does not ping for it.
  if (enabled_ && sd_watchdog_enabled(/*unset_environment=*/0, &usec) > 0) {
    watchdog_usec_ = static_cast<int64_t>(usec);
  }
}

void ServiceNotifier::Ready(const std::string& status, int64_t now_us) {
  if (!enabled_) return;
  last_status_ = OneLine(status);
  last_status_us_ = now_us;
  last_ping_us_ = now_us;
  Send("READY=1\nSTATUS=" + last_status_ + (watchdog_usec_ > 0 ? "\nWATCHDOG=1" : ""));
}

void ServiceNotifier::Alive(int64_t now_us, const std::function<std::string()>& status) {
  if (!enabled_) return;
  std::string message;
  if (watchdog_usec_ > 0 && now_us - last_ping_us_ >= watchdog_usec_ / 2) {
    message = "WATCHDOG=1";
    last_ping_us_ = now_us;
  }
  if (now_us - last_status_us_ >= kStatusEveryUs) {
    last_status_us_ = now_us;
    std::string line = OneLine(status());
    if (line != last_status_) {
      last_status_ = line;
      message += (message.empty() ? "" : "\n") + ("STATUS=" + line);
    }
  }
  if (!message.empty()) Send(message);
}

std::chrono::milliseconds ServiceNotifier::Bound(std::chrono::milliseconds wait,
                                                 int64_t now_us) const {
  if (!enabled_ || watchdog_usec_ <= 0) return wait;
  const int64_t due_in_us = last_ping_us_ + watchdog_usec_ / 2 - now_us;
  return std::min(wait, std::chrono::milliseconds(std::max<int64_t>(1, due_in_us / 1000)));
}

void ServiceNotifier::Stopping(const std::string& status) {
  if (!enabled_) return;
  Send("STOPPING=1\nSTATUS=" + OneLine(status));
}

void ServiceNotifier::Send(const std::string& message) {
  (void)sd_notify(/*unset_environment=*/0, message.c_str());
}

// The watcher's side: what it tells the service manager about itself.
std::string Watcher::ServiceStatus() {
  ServiceState state;
  state.components = spec_.components.size();
  state.not_ok = non_ok_.size();
  state.dry_run = options_.dry_run;
  MutexLock lock(&mu_);
  state.paused = paused_.paused;
  state.paused_reason = paused_.reason;
  if (run_active_) state.running = run_description_.empty() ? "a rollback" : run_description_;
  return ServiceStatusLine(state);
}

}  // namespace backstop

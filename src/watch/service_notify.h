// Tells the service manager how `backstop watch` is doing (systemd's
// sd_notify protocol, through libsystemd): READY=1 once the daemon probes and
// its API listens, WATCHDOG=1 from the control loop at half the watchdog
// interval, STATUS= with a short state, STOPPING=1 on shutdown.
//
// Without $NOTIFY_SOCKET (not started by systemd, or not Type=notify) every
// call does nothing. The watchdog is on only when the manager set
// $WATCHDOG_USEC for this process. Because WATCHDOG=1 is sent from the control
// loop itself, a loop that hangs stops the pings and the manager restarts the
// daemon (WatchdogSec= in examples/systemd/backstop-watch.service).
//
// Ownership: owns nothing but its own state; reads the environment once, at
// construction. Thread-safety: one thread (the control loop).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace backstop {

// What STATUS= says about the daemon, in one short line.
struct ServiceState {
  size_t components = 0;      // in the spec
  size_t not_ok = 0;          // trigger instances pending or firing
  bool dry_run = false;       // --dry-run: decides, never acts
  bool paused = false;        // `backstop watch pause`
  std::string paused_reason;  // why, when given
  std::string running;        // the rollback in progress ("" when none)
};

// "watching 4 components, all triggers ok", "...; 1 trigger pending or
// firing; paused (maintenance); rolling back orchestrator (trigger:...)".
std::string ServiceStatusLine(const ServiceState& state);

class ServiceNotifier {
 public:
  // Reads $NOTIFY_SOCKET and $WATCHDOG_USEC / $WATCHDOG_PID of this process.
  ServiceNotifier();

  // Whether a service manager listens ($NOTIFY_SOCKET is set).
  bool enabled() const { return enabled_; }
  // The manager's watchdog interval; 0 when it set none.
  int64_t watchdog_usec() const { return watchdog_usec_; }

  // The daemon is up: READY=1 with its first STATUS=.
  void Ready(const std::string& status, int64_t now_us);
  // The control loop is alive at `now_us` (monotonic): sends WATCHDOG=1 when
  // half the watchdog interval has passed since the last one, and STATUS=
  // (asked of `status`, at most once a second) when the line changed.
  void Alive(int64_t now_us, const std::function<std::string()>& status);
  // The longest the control loop may sleep from `now_us` and still ping the
  // watchdog on time: `wait`, shortened when the next WATCHDOG=1 falls due
  // sooner.
  std::chrono::milliseconds Bound(std::chrono::milliseconds wait, int64_t now_us) const;
  // Shutting down: STOPPING=1 with why it may take a while. The manager stops
  // expecting watchdog pings from here on.
  void Stopping(const std::string& status);

 private:
  // Sends `message` (newline-separated assignments); a failure is ignored:
  // a manager that cannot be told must not stop the daemon.
  void Send(const std::string& message);

  bool enabled_ = false;
  int64_t watchdog_usec_ = 0;
  int64_t last_ping_us_ = 0;
  int64_t last_status_us_ = 0;
  std::string last_status_;
};

}  // namespace backstop

#include "drill/nats_outage.h"

#include <signal.h>

#include <cerrno>
#include <cstring>

#include "drivers/nats/nats_settings.h"
#include "drivers/process/proc_table.h"

namespace backstop {
namespace {

// The loopback port of the first server in a NATS URL list
// ("nats://user:pw@127.0.0.1:4222,nats://..."), or 0 when it is not loopback.
int LoopbackPort(const std::string& urls) {
  std::string url = urls.substr(0, urls.find(','));
  if (auto scheme = url.find("://"); scheme != std::string::npos) url = url.substr(scheme + 3);
  if (auto at = url.rfind('@'); at != std::string::npos) url = url.substr(at + 1);
  if (auto slash = url.find('/'); slash != std::string::npos) url = url.substr(0, slash);
  const auto colon = url.rfind(':');
  const std::string host = colon == std::string::npos ? url : url.substr(0, colon);
  if (host != "localhost" && host.rfind("127.", 0) != 0 && host != "[::1]") return 0;
  if (colon == std::string::npos) return 4222;
  const int port = std::atoi(url.c_str() + colon + 1);
  return port > 0 && port < 65536 ? port : 0;
}

}  // namespace

Status CheckNatsOutageFault(const Spec& spec, const std::string& component) {
  const ComponentSpec* c = spec.Find(component);
  if (c == nullptr) {
    return Status::InvalidArgument(component.empty()
                                       ? "the spec has no nats stream for a nats_outage drill"
                                       : "no component named '" + component + "'");
  }
  if (c->kind != ComponentKind::kStream || c->driver != "nats") {
    return Status::InvalidArgument("nats_outage drills a stream of the nats driver; " + component +
                                   " is a " + c->driver + " " + std::string(Name(c->kind)));
  }
  auto settings = nats::ReadSettings(*c);
  if (!settings.ok()) return settings.status();
  if (LoopbackPort(settings->connect.url) == 0) {
    return Status::InvalidArgument("nats_outage freezes the nats-server process on this machine; " +
                                   component + "'s url does not name a loopback address");
  }
  if (!WatchedBy(spec, component, Signal::kHealth) &&
      !WatchedBy(spec, component, Signal::kUnreachable) &&
      !WatchedBy(spec, component, Signal::kDisconnected)) {
    return Status::FailedPrecondition("no trigger watches the reachability of " + component +
                                      ": nothing could detect a NATS outage");
  }
  return Status::OK();
}

Status InjectNatsOutage(Env* env, const Spec& spec, const std::string& component,
                        InjectedFault* fault) {
  auto settings = nats::ReadSettings(*spec.Find(component));
  if (!settings.ok()) return settings.status();
  const int port = LoopbackPort(settings->connect.url);
  const pid_t pid = process::LoopbackListenerPid(env->fs(), port);
  if (pid <= 0) {
    return Status::FailedPrecondition("no process visible to this user listens on port " +
                                      std::to_string(port) + " (" + component +
                                      "'s server): nothing to freeze");
  }
  if (Status stopped = env->processes()->Signal(pid, SIGSTOP, /*whole_group=*/false);
      !stopped.ok()) {
    return Status::FailedPrecondition("cannot stop pid " + std::to_string(pid) + " (" + component +
                                      "'s server): " + stopped.message());
  }
  fault->frozen_pid = pid;
  fault->description = "froze " + component + "'s server, pid " + std::to_string(pid) +
                       " on port " + std::to_string(port) +
                       " (SIGSTOP: connections hang as behind a partition; its streams are kept; "
                       "if this drill is interrupted, kill -CONT " +
                       std::to_string(pid) + ")";
  return Status::OK();
}

Status ResumeNatsServer(Env* env, InjectedFault* fault) {
  if (fault->frozen_pid <= 0) return Status::OK();
  Status resumed = env->processes()->Signal(fault->frozen_pid, SIGCONT, /*whole_group=*/false);
  if (!resumed.ok() && !resumed.IsNotFound()) {
    return Status::Internal("cannot resume pid " + std::to_string(fault->frozen_pid) + ": " +
                            resumed.message() + "; run kill -CONT " +
                            std::to_string(fault->frozen_pid));
  }
  fault->frozen_pid = 0;
  return Status::OK();
}

}  // namespace backstop

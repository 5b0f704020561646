// `backstop watch` and `backstop watch --once`: RunWatchCommand. See watch.h.
#include <malloc.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstring>
#include <set>
#include <thread>

#include "base/exit_code.h"
#include "base/strings.h"
#include "notify/notify_service.h"
#include "watch/watch.h"

namespace backstop {

namespace {

void PrintOnce(Output& out, const nlohmann::json& doc) {
  out.Line(Pad("COMPONENT", 16) + Pad("HEALTH", 12) + Pad("LATENCY", 10) + "DETAIL");
  for (const auto& c : doc["components"]) {
    std::string health = c.value("health", "");
    std::string latency =
        c.contains("latency_ms") ? std::to_string(c["latency_ms"].get<int64_t>()) + " ms" : "-";
    out.Line(Pad(c.value("name", ""), 16) + Pad(health, 12) + Pad(latency, 10) +
             c.value("detail", c["probe"].is_null() ? std::string("(no probe)") : std::string()));
  }
  std::set<std::string> unprobed;
  for (const auto& c : doc["components"]) {
    if (c["probe"].is_null()) unprobed.insert(c.value("name", ""));
  }
  out.Line("");
  out.Line(Pad("TRIGGER", 24) + Pad("COMPONENT", 16) + Pad("STATE", 10) + "REASON");
  for (const auto& t : doc["triggers"]) {
    // Instances of components nothing probes stay ok forever: not worth a line.
    if (unprobed.count(t.value("component", "")) && t.value("state", "") == "ok") continue;
    std::string state = t.value("state", "");
    if (state != "firing" && t.value("consecutive_bad", 0) > 0) {
      state += " (" + std::to_string(t.value("consecutive_bad", 0)) + " bad)";
    }
    out.Line(Pad(t.value("trigger", ""), 24) + Pad(t.value("component", ""), 16) + Pad(state, 10) +
             t.value("reason", ""));
  }
  for (const auto& d : doc["decisions"]) {
    out.Line("decision (" + d.value("outcome", std::string()) +
             "): " + d.value("why", std::string()));
  }
  out.Line(doc.value("ok", false) ? "all healthy, no trigger firing" : "NOT healthy");
}

}  // namespace

int RunWatchCommand(Env* env, const Spec& spec, const DriverRegistry& registry,
                    const WatchOptions& options, Output& out) {
  if (options.log_format != "text" && options.log_format != "json") {
    out.Error("backstop watch: --log-format must be text or json");
    return 2;
  }
  if (options.listen != "off") {
    std::string host;
    int port = 0;
    Status st = ParseListenAddress(options.listen, &host, &port);
    if (!st.ok()) {
      out.Error("backstop watch: " + st.message());
      return 2;
    }
    if (!IsLoopbackHost(host) && !options.allow_remote) {
      out.Error("backstop watch: --listen " + options.listen +
                " is not a loopback address: other machines could reach the API, whose reads "
                "need no token; pass --allow-remote as well if that is what you want, or "
                "listen on 127.0.0.1");
      return 2;
    }
  }
  ::signal(SIGPIPE, SIG_IGN);
  // A long-running daemon with a dozen mostly idle threads: two malloc arenas
  // are plenty, and each further one would keep its own pages resident.
  ::mallopt(M_ARENA_MAX, 2);
  WatchLogger log(options.log_format == "json", stderr, env->clock());
  Watcher watcher(env, spec, registry, options, &log);
  if (options.once) {
    bool healthy = false;
    auto doc = watcher.Once(&healthy);
    if (!doc.ok()) {
      out.Error("backstop watch --once: " + doc.status().message());
      return ExitCodeFor(doc.status());
    }
    if (out.json()) {
      out.Json(*doc);
    } else {
      PrintOnce(out, *doc);
    }
    return healthy ? 0 : 1;
  }
  // SIGINT / SIGTERM are taken by one thread (sigwait); block them before any
  // other thread starts so that none of them receives them instead.
  sigset_t stop_signals, previous;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, &previous);
  // Notifications on their own thread: a slow receiver never holds up the loop.
  for (const auto& target : spec.notify) {
    if (!target.url.empty()) log.AddSecret(target.url);  // may hold a token
  }
  NotifyService notifications(env, spec, [&log](const std::string& level, const std::string& line) {
    log.Log(level, line);
  });
  if (Status nst = notifications.Start(); !nst.ok()) {
    log.Error("notifications will not be sent: " + nst.message());
  }
  std::atomic<bool> done{false};
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (!done.load()) {
      log.Info(std::string("received ") + strsignal(sig));
      watcher.Stop();
    }
  });
  Status st = watcher.Run();
  done = true;
  pthread_kill(signal_thread.native_handle(), SIGTERM);  // wakes the sigwait
  signal_thread.join();
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (!st.ok()) {
    log.Error("watch failed: " + st.message());
    out.Error("backstop watch: " + st.message());
    return ExitCodeFor(st);
  }
  return 0;
}

}  // namespace backstop

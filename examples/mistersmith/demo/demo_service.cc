// demo-service: the stand-in for MisterSmith's orchestrator and web UI.
//
// One small HTTP server whose behaviour comes from the release it runs in:
// `serve` reads release.json from its working directory (the release
// directory Backstop starts it in):
//   {"role": "orchestrator", "version": "v2", "healthy": true, "error_rate": 0.0,
//    "ignore_sigterm": false, "start_delay_ms": 0, "response_delay_ms": 0}
// (response_delay_ms: every HTTP answer waits that long first, a release
// that answers slowly) and answers
//   GET /health   200 "ok", or 503 with the reason when the release is unhealthy
//   GET /version  {"role", "version", "pid", "port"}
//   GET /metrics  Prometheus text: demo_requests_total, demo_errors_total, demo_up
//   GET /         a small HTML page; every request counts, a fraction error_rate
//                 of them (spread evenly, deterministically) answer 500
//   POST /admin/health {"healthy": false}   turns the health off (or back on)
//                 at run time, answering {"healthy": ...}; SIGUSR1 toggles it
// The port comes from --port or the PORT environment variable; --host picks
// the address (127.0.0.1 by default).
//
// gRPC (when built with -DBACKSTOP_WITH_GRPC=ON, the default): with
// --grpc-port N or GRPC_PORT set, it also serves the standard gRPC health
// service (grpc.health.v1, grpc++'s own implementation) on that port, as the
// real orchestrator does on 50051: the server ("") and the service
// "mistersmith.<role>" answer SERVING while healthy, NOT_SERVING otherwise.
// /health, /version and gRPC always agree: one flag, set from release.json at
// start and switched by POST /admin/health or SIGUSR1.
//
// `make-release --role R --version V --healthy true|false --dir DIR` writes a
// release directory: DIR/release.json and DIR/bin/R, a shell script that
// execs this binary with `serve`, so demos and tests can build release trees.
//
// It depends on nothing of Backstop's, on purpose: it plays a foreign service.
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <sys/stat.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#ifdef DEMO_WITH_GRPC
#include "demo_grpc.h"
#endif

namespace {

struct Release {
  std::string role = "service";
  std::string version = "unknown";
  bool healthy = true;
  std::string unhealthy_reason;
  double error_rate = 0.0;
  bool ignore_sigterm = false;
  int64_t start_delay_ms = 0;
  int64_t response_delay_ms = 0;
};

void Log(const std::string& line) {
  std::cout << "demo-service[" << getpid() << "]: " << line << std::endl;
}

int Fail(const std::string& message) {
  std::cerr << "demo-service: " << message << std::endl;
  return 2;
}

bool ReadRelease(const std::string& path, Release* out, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = "cannot read " + path + ": " + std::strerror(errno) +
             " (run me in a release directory, or use make-release to create one)";
    return false;
  }
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    out->role = j.value("role", out->role);
    out->version = j.value("version", out->version);
    out->healthy = j.value("healthy", true);
    out->unhealthy_reason = j.value("unhealthy_reason", std::string());
    out->error_rate = j.value("error_rate", 0.0);
    out->ignore_sigterm = j.value("ignore_sigterm", false);
    out->start_delay_ms = j.value("start_delay_ms", int64_t{0});
    out->response_delay_ms = j.value("response_delay_ms", int64_t{0});
  } catch (const std::exception& e) {
    *error = "bad " + path + ": " + e.what();
    return false;
  }
  if (out->error_rate < 0 || out->error_rate > 1) {
    *error = "bad " + path + ": error_rate must be between 0.0 and 1.0";
    return false;
  }
  return true;
}

// Parses "--key value" and "--key=value" pairs after the subcommand.
bool ParseFlags(int argc, char** argv, int first, std::map<std::string, std::string>* flags,
                std::string* error) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      *error = "unexpected argument '" + arg + "'";
      return false;
    }
    auto eq = arg.find('=');
    if (eq != std::string::npos) {
      (*flags)[arg.substr(2, eq - 2)] = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      (*flags)[arg.substr(2)] = argv[++i];
    } else {
      *error = "flag " + arg + " needs a value";
      return false;
    }
  }
  return true;
}

bool ParseBool(const std::string& s, bool* out) {
  if (s == "true" || s == "yes" || s == "1") return *out = true, true;
  if (s == "false" || s == "no" || s == "0") return *out = false, true;
  return false;
}

std::string SelfPath() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "demo-service";
  return std::string(buf, static_cast<size_t>(n));
}

bool WriteFile(const std::string& path, const std::string& data, mode_t mode, std::string* error) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << data;
    if (!out.flush()) {
      *error = "cannot write " + tmp + ": " + std::strerror(errno);
      return false;
    }
  }
  if (::chmod(tmp.c_str(), mode) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = "cannot install " + path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

bool MakeDirs(const std::string& path, std::string* error) {
  std::string partial;
  std::stringstream in(path);
  std::string part;
  if (!path.empty() && path[0] == '/') partial = "/";
  while (std::getline(in, part, '/')) {
    if (part.empty()) continue;
    partial += part;
    if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      *error = "cannot create " + partial + ": " + std::strerror(errno);
      return false;
    }
    partial += "/";
  }
  return true;
}

int MakeRelease(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  std::string error;
  if (!ParseFlags(argc, argv, 2, &flags, &error)) return Fail(error);
  for (const char* required : {"role", "version", "dir"}) {
    if (flags.count(required) == 0) {
      return Fail(std::string("make-release needs --") + required +
                  "; usage: demo-service make-release --role R --version V "
                  "--healthy true|false --dir DIR [--error-rate X] [--ignore-sigterm true] "
                  "[--start-delay-ms N] [--response-delay-ms N]");
    }
  }
  nlohmann::json release;
  release["role"] = flags["role"];
  release["version"] = flags["version"];
  bool healthy = true;
  if (flags.count("healthy") && !ParseBool(flags["healthy"], &healthy)) {
    return Fail("--healthy must be true or false, not '" + flags["healthy"] + "'");
  }
  release["healthy"] = healthy;
  release["error_rate"] = 0.0;
  release["ignore_sigterm"] = false;
  release["start_delay_ms"] = 0;
  release["response_delay_ms"] = 0;
  try {
    if (flags.count("error-rate")) release["error_rate"] = std::stod(flags["error-rate"]);
    if (flags.count("start-delay-ms"))
      release["start_delay_ms"] = std::stoll(flags["start-delay-ms"]);
    if (flags.count("response-delay-ms"))
      release["response_delay_ms"] = std::stoll(flags["response-delay-ms"]);
  } catch (const std::exception&) {
    return Fail("--error-rate, --start-delay-ms and --response-delay-ms take numbers");
  }
  if (flags.count("ignore-sigterm")) {
    bool ignore = false;
    if (!ParseBool(flags["ignore-sigterm"], &ignore))
      return Fail("--ignore-sigterm takes true|false");
    release["ignore_sigterm"] = ignore;
  }
  const std::string dir = flags["dir"];
  const std::string role = flags["role"];
  if (role.find('/') != std::string::npos || role.empty()) return Fail("bad --role '" + role + "'");
  if (!MakeDirs(dir + "/bin", &error)) return Fail(error);
  if (!WriteFile(dir + "/release.json", release.dump(2) + "\n", 0644, &error)) return Fail(error);
  std::string script = "#!/bin/sh\n# " + role + " " + flags["version"] +
                       " (written by demo-service make-release)\nexec '" + SelfPath() +
                       "' serve \"$@\"\n";
  if (!WriteFile(dir + "/bin/" + role, script, 0755, &error)) return Fail(error);
  return 0;
}

class Counters {
 public:
  // Counts one request; returns true if it should fail to honour error_rate.
  // Failures are spread evenly: request n fails when floor(n*rate) grows.
  bool CountRequest(double error_rate) {
    uint64_t n = ++requests_;
    bool fail = static_cast<uint64_t>(static_cast<double>(n) * error_rate) >
                static_cast<uint64_t>(static_cast<double>(n - 1) * error_rate);
    if (fail) ++errors_;
    return fail;
  }
  uint64_t requests() const { return requests_; }
  uint64_t errors() const { return errors_; }

 private:
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> errors_{0};
};

std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// The service's health, as /health and the gRPC health service report it.
// Starts as release.json says; POST /admin/health and SIGUSR1 change it.
// Thread-safety: all methods may be called from any thread.
class HealthSwitch {
 public:
  explicit HealthSwitch(const Release& rel)
      : healthy_(rel.healthy),
        reason_(rel.unhealthy_reason.empty() ? "release " + rel.version + " is marked unhealthy"
                                             : rel.unhealthy_reason) {}
  bool healthy() {
    std::lock_guard<std::mutex> lock(mu_);
    return healthy_;
  }
  std::string reason() {
    std::lock_guard<std::mutex> lock(mu_);
    return reason_;
  }
#ifdef DEMO_WITH_GRPC
  void Attach(DemoGrpcHealth* grpc) {
    std::lock_guard<std::mutex> lock(mu_);
    grpc_ = grpc;
  }
#endif
  void Set(bool healthy, const std::string& how) {
    std::lock_guard<std::mutex> lock(mu_);
    SetLocked(healthy, how);
  }
  void Toggle(const std::string& how) {
    std::lock_guard<std::mutex> lock(mu_);
    SetLocked(!healthy_, how);
  }

 private:
  void SetLocked(bool healthy, const std::string& how) {
    healthy_ = healthy;
    if (!healthy) reason_ = "health switched off at run time (" + how + ")";
#ifdef DEMO_WITH_GRPC
    if (grpc_ != nullptr) grpc_->SetServing(healthy);
#endif
    Log(std::string("health switched ") + (healthy ? "on" : "off") + " by " + how);
  }

  std::mutex mu_;
  bool healthy_;
  std::string reason_;
#ifdef DEMO_WITH_GRPC
  DemoGrpcHealth* grpc_ = nullptr;
#endif
};

// --grpc-port or GRPC_PORT; 0 when neither is set.
bool GrpcPort(std::map<std::string, std::string>& flags, int http_port, int* grpc_port,
              std::string* error) {
  std::string text = flags.count("grpc-port") ? flags["grpc-port"] : "";
  if (text.empty()) {
    const char* env = std::getenv("GRPC_PORT");
    text = env != nullptr ? env : "";
  }
  *grpc_port = 0;
  if (text.empty()) return true;
  try {
    *grpc_port = std::stoi(text);
  } catch (const std::exception&) {
    *error = "bad gRPC port '" + text + "'";
    return false;
  }
  if (*grpc_port <= 0 || *grpc_port > 65535) {
    *error = "bad gRPC port '" + text + "'";
    return false;
  }
  if (*grpc_port == http_port) {
    *error = "the gRPC port (GRPC_PORT / --grpc-port) equals the HTTP port " + text +
             ": give the gRPC health server a port of its own";
    return false;
  }
#ifndef DEMO_WITH_GRPC
  *error =
      "GRPC_PORT / --grpc-port is set, but this demo-service was built without gRPC "
      "(configure with -DBACKSTOP_WITH_GRPC=ON)";
  return false;
#endif
  return true;
}

int Serve(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  std::string error;
  if (!ParseFlags(argc, argv, 2, &flags, &error)) return Fail(error);
  std::string port_text = flags.count("port") ? flags["port"] : "";
  if (port_text.empty()) {
    const char* env_port = std::getenv("PORT");
    port_text = env_port != nullptr ? env_port : "";
  }
  if (port_text.empty()) return Fail("no port: pass --port N or set PORT");
  int port = 0;
  try {
    port = std::stoi(port_text);
  } catch (const std::exception&) {
    return Fail("bad port '" + port_text + "'");
  }
  const std::string host = flags.count("host") ? flags["host"] : "127.0.0.1";
  const std::string release_path = flags.count("release") ? flags["release"] : "release.json";
  int grpc_port = 0;
  if (!GrpcPort(flags, port, &grpc_port, &error)) return Fail(error);

  Release rel;
  if (!ReadRelease(release_path, &rel, &error)) return Fail(error);
  HealthSwitch health(rel);

  // SIGTERM, SIGINT and SIGUSR1 (health toggle) are taken by a dedicated
  // thread (sigwait), so they must be blocked before any other thread starts.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  if (!rel.ignore_sigterm) sigaddset(&stop_signals, SIGTERM);
  sigset_t handled_signals = stop_signals;
  sigaddset(&handled_signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &handled_signals, nullptr);
  if (rel.ignore_sigterm) ::signal(SIGTERM, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);

  if (rel.start_delay_ms > 0) {
    Log(rel.role + " " + rel.version + " starting (delay " + std::to_string(rel.start_delay_ms) +
        " ms)");
    std::this_thread::sleep_for(std::chrono::milliseconds(rel.start_delay_ms));
  }

  httplib::Server server;
  server.set_keep_alive_timeout(1);  // so a stop is not held up by idle clients
  if (rel.response_delay_ms > 0) {
    server.set_pre_routing_handler([&](const httplib::Request&, httplib::Response&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(rel.response_delay_ms));
      return httplib::Server::HandlerResponse::Unhandled;
    });
  }
  Counters counters;
  server.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    if (health.healthy()) {
      res.set_content("ok\n", "text/plain");
    } else {
      res.status = 503;
      res.set_content("unhealthy: " + health.reason() + "\n", "text/plain");
    }
  });
  server.Post("/admin/health", [&](const httplib::Request& req, httplib::Response& res) {
    bool healthy = false;
    try {
      healthy = nlohmann::json::parse(req.body).at("healthy").get<bool>();
    } catch (const std::exception&) {
      res.status = 400;
      res.set_content("expected a JSON body such as {\"healthy\": false}\n", "text/plain");
      return;
    }
    health.Set(healthy, "POST /admin/health");
    res.set_content(nlohmann::json({{"healthy", healthy}}).dump() + "\n", "application/json");
  });
  server.Get("/version", [&](const httplib::Request&, httplib::Response& res) {
    nlohmann::json j = {{"role", rel.role},
                        {"version", rel.version},
                        {"pid", static_cast<int>(getpid())},
                        {"port", port},
                        {"healthy", health.healthy()}};
    if (grpc_port != 0) j["grpc_port"] = grpc_port;
    res.set_content(j.dump() + "\n", "application/json");
  });
  server.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    std::ostringstream m;
    m << "# HELP demo_requests_total Requests served by the application endpoints.\n"
      << "# TYPE demo_requests_total counter\n"
      << "demo_requests_total " << counters.requests() << "\n"
      << "# HELP demo_errors_total Application requests answered with a 5xx status.\n"
      << "# TYPE demo_errors_total counter\n"
      << "demo_errors_total " << counters.errors() << "\n"
      << "# HELP demo_up 1 while the service runs.\n"
      << "# TYPE demo_up gauge\n"
      << "demo_up 1\n";
    res.set_content(m.str(), "text/plain; version=0.0.4");
  });
  server.Get("/", [&](const httplib::Request&, httplib::Response& res) {
    if (counters.CountRequest(rel.error_rate)) {
      res.status = 500;
      res.set_content("internal error (simulated by release " + rel.version + ")\n", "text/plain");
      return;
    }
    std::string role = HtmlEscape(rel.role), version = HtmlEscape(rel.version);
    res.set_content("<!doctype html>\n<html><head><title>" + role + " " + version +
                        "</title></head>\n<body><h1>MisterSmith " + role + "</h1>\n<p>version " +
                        version + "</p></body></html>\n",
                    "text/html");
  });

  if (!server.bind_to_port(host.c_str(), port)) {
    return Fail("cannot listen on " + host + ":" + std::to_string(port) + ": " +
                std::strerror(errno));
  }

#ifdef DEMO_WITH_GRPC
  std::unique_ptr<DemoGrpcHealth> grpc;
  if (grpc_port != 0) {
    grpc =
        DemoGrpcHealth::Start(host, grpc_port, "mistersmith." + rel.role, health.healthy(), &error);
    if (grpc == nullptr) return Fail(error);
    health.Attach(grpc.get());
  }
#endif

  std::atomic<bool> stopping{false};
  std::thread signal_thread([&] {
    for (;;) {
      int sig = 0;
      if (sigwait(&handled_signals, &sig) != 0) continue;
      if (sig == SIGUSR1) {
        health.Toggle("SIGUSR1");
        continue;
      }
      if (!stopping.exchange(true)) {
        Log(rel.role + " " + rel.version + " stopping on " + strsignal(sig));
        server.stop();
      }
      return;
    }
  });

  Log(rel.role + " " + rel.version + " listening on " + host + ":" + std::to_string(port) +
      (grpc_port != 0 ? " (gRPC health on port " + std::to_string(grpc_port) + ")" : "") +
      (rel.healthy ? "" : " (unhealthy release)"));
  bool ok = server.listen_after_bind();
  if (!stopping.exchange(true)) {
    // The listener ended by itself: wake the signal thread so it can be joined.
    pthread_kill(signal_thread.native_handle(), SIGINT);
  }
  signal_thread.join();
#ifdef DEMO_WITH_GRPC
  if (grpc != nullptr) {
    health.Attach(nullptr);
    grpc->Stop();
  }
#endif
  Log(rel.role + " " + rel.version + " stopped");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string command = argc > 1 ? argv[1] : "";
  if (command == "serve") return Serve(argc, argv);
  if (command == "make-release") return MakeRelease(argc, argv);
  std::cerr << "usage: demo-service serve [--port N] [--host ADDR] [--release FILE] "
               "[--grpc-port N]\n"
               "       demo-service make-release --role R --version V --healthy true|false "
               "--dir DIR\n"
               "         [--error-rate X] [--ignore-sigterm true] [--start-delay-ms N]\n"
               "         [--response-delay-ms N]\n";
  return command == "--help" || command == "-h" ? 0 : 2;
}

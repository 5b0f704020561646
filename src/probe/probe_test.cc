#include "probe/probe.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "testing/test_env.h"

namespace backstop {
namespace {

using State = HealthResult::State;

// A real HTTP server on a random loopback port, run on its own thread.
class LocalHttpServer {
 public:
  LocalHttpServer() {
    server_.Get("/ok", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ok", "text/plain");
    });
    server_.Get("/created",
                [](const httplib::Request&, httplib::Response& res) { res.status = 201; });
    server_.Get("/down", [](const httplib::Request&, httplib::Response& res) {
      res.status = 503;
      res.set_content("down", "text/plain");
    });
    server_.Get("/slow", [this](const httplib::Request&, httplib::Response& res) {
      std::unique_lock<std::mutex> lock(mu_);
      // Longer than any probe timeout used below; released early on shutdown.
      cv_.wait_for(lock, std::chrono::seconds(5), [this] { return closing_; });
      res.set_content("late", "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    // bind_to_any_port already listens: connections queue until the thread accepts.
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~LocalHttpServer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closing_ = true;
    }
    cv_.notify_all();
    // stop() is a no-op until listen has begun.
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool closing_ = false;
};

// A loopback port with nothing listening on it (bound, read back, closed).
int UnusedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

ProbeSpec Http(const std::string& url, int64_t timeout_ms = 2000) {
  ProbeSpec p;
  p.type = ProbeSpec::Type::kHttp;
  p.target = url;
  p.timeout_ms = timeout_ms;
  return p;
}

ProbeSpec Tcp(const std::string& target, int64_t timeout_ms = 2000) {
  ProbeSpec p;
  p.type = ProbeSpec::Type::kTcp;
  p.target = target;
  p.timeout_ms = timeout_ms;
  return p;
}

ProbeSpec Exec(std::vector<std::string> argv, int64_t timeout_ms = 5000) {
  ProbeSpec p;
  p.type = ProbeSpec::Type::kExec;
  p.command = std::move(argv);
  p.timeout_ms = timeout_ms;
  return p;
}

TEST(HttpProbeTest, Status200Passes) {
  LocalHttpServer server;
  HealthResult r = RunProbe(Http(server.Url("/ok")), Env::Default());
  EXPECT_EQ(r.state, State::kPass) << r.detail;
  EXPECT_EQ(r.detail.rfind("HTTP 200 in ", 0), 0u) << r.detail;
  EXPECT_GE(r.latency_ms, 0);
  EXPECT_EQ(r.signals.at("http_status"), 200);
}

TEST(HttpProbeTest, Status503Fails) {
  LocalHttpServer server;
  HealthResult r = RunProbe(Http(server.Url("/down")), Env::Default());
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "HTTP 503");
}

TEST(HttpProbeTest, AnyTwoHundredPassesByDefault) {
  LocalHttpServer server;
  EXPECT_EQ(RunProbe(Http(server.Url("/created")), Env::Default()).state, State::kPass);
}

TEST(HttpProbeTest, ExpectStatusIsExact) {
  LocalHttpServer server;
  ProbeSpec p = Http(server.Url("/ok"));
  p.expect_status = 201;
  HealthResult r = RunProbe(p, Env::Default());
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "HTTP 200 (expected 201)");

  p = Http(server.Url("/down"));
  p.expect_status = 503;
  EXPECT_EQ(RunProbe(p, Env::Default()).state, State::kPass);
}

TEST(HttpProbeTest, SlowAnswerIsATimeoutFailure) {
  LocalHttpServer server;
  HealthResult r = RunProbe(Http(server.Url("/slow"), 200), Env::Default());
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "timed out after 200 ms");
  EXPECT_GT(r.latency_ms, 0);
}

TEST(HttpProbeTest, RefusedPortFails) {
  HealthResult r = RunProbe(Http("http://127.0.0.1:" + std::to_string(UnusedPort()) + "/health"),
                            Env::Default());
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "connection refused");
}

TEST(HttpProbeTest, MalformedUrlIsUnknown) {
  HealthResult r = RunProbe(Http("nope://what"), Env::Default());
  EXPECT_EQ(r.state, State::kUnknown) << r.detail;
}

TEST(HttpProbeTest, ConcurrentProbesFromManyThreads) {
  LocalHttpServer server;
  std::atomic<int> passes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        if (RunProbe(Http(server.Url("/ok")), Env::Default()).pass()) ++passes;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(passes.load(), 80);
}

TEST(TcpProbeTest, OpenPortPasses) {
  LocalHttpServer server;
  HealthResult r = RunProbe(Tcp("127.0.0.1:" + std::to_string(server.port())), Env::Default());
  EXPECT_EQ(r.state, State::kPass) << r.detail;
  EXPECT_EQ(r.detail.rfind("connected in ", 0), 0u);
}

TEST(TcpProbeTest, HostnameIsResolved) {
  LocalHttpServer server;
  HealthResult r = RunProbe(Tcp("localhost:" + std::to_string(server.port())), Env::Default());
  EXPECT_EQ(r.state, State::kPass) << r.detail;
}

TEST(TcpProbeTest, ClosedPortFails) {
  HealthResult r = RunProbe(Tcp("127.0.0.1:" + std::to_string(UnusedPort())), Env::Default());
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "connection refused");
}

TEST(TcpProbeTest, Ipv6Loopback) {
  int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (fd >= 0) ::close(fd);
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string target = "[::1]:" + std::to_string(ntohs(addr.sin6_port));
  HealthResult r = RunProbe(Tcp(target), Env::Default());
  EXPECT_EQ(r.state, State::kPass) << r.detail;
  ::close(fd);
  r = RunProbe(Tcp(target), Env::Default());
  EXPECT_EQ(r.state, State::kFail);
}

TEST(TcpProbeTest, BadTargetIsUnknown) {
  EXPECT_EQ(RunProbe(Tcp("no-port-here"), Env::Default()).state, State::kUnknown);
  EXPECT_EQ(RunProbe(Tcp("[::1]80"), Env::Default()).state, State::kUnknown);
}

TEST(ExecProbeTest, TruePassesFalseFails) {
  EXPECT_EQ(RunProbe(Exec({"true"}), Env::Default()).state, State::kPass);
  HealthResult r = RunProbe(Exec({"false"}), Env::Default());
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "exit 1");
}

TEST(ExecProbeTest, DetailHasExitCodeAndLastStderrLine) {
  HealthResult r =
      RunProbe(Exec({"sh", "-c", "echo first >&2; echo 'replica lag too high' >&2; exit 3"}),
               Env::Default());
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "exit 3: replica lag too high");
}

TEST(ExecProbeTest, TimeoutIsAFailure) {
  HealthResult r = RunProbe(Exec({"sleep", "10"}, 200), Env::Default());
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "timed out after 200 ms");
}

TEST(GrpcProbeTest, UnknownUntilRegistered) {
  ProbeSpec p;
  p.type = ProbeSpec::Type::kGrpc;
  p.target = "127.0.0.1:50051";
  HealthResult r = RunProbe(p, Env::Default());
  EXPECT_EQ(r.state, State::kUnknown);
  EXPECT_EQ(r.detail, "gRPC probe not built in");

  SetGrpcProbe([](const ProbeSpec& probe) {
    HealthResult h;
    h.state = State::kPass;
    h.detail = "SERVING " + probe.target;
    return h;
  });
  r = RunProbe(p, Env::Default());
  EXPECT_EQ(r.state, State::kPass);
  EXPECT_EQ(r.detail, "SERVING 127.0.0.1:50051");
  SetGrpcProbe(nullptr);
  EXPECT_EQ(RunProbe(p, Env::Default()).state, State::kUnknown);
}

TEST(ProbeTest, NoProbeIsUnknown) {
  EXPECT_EQ(RunProbe(ProbeSpec{}, Env::Default()).state, State::kUnknown);
}

TEST(WaitHealthyTest, PassesOnceTheServerStartsAnswering) {
  const int port = UnusedPort();
  httplib::Server server;
  server.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok", "text/plain");
  });
  std::thread late_start([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    server.listen("127.0.0.1", port);
  });
  ProbeSpec p = Http("http://127.0.0.1:" + std::to_string(port) + "/health", 1000);
  p.start_period_ms = 20'000;
  int attempts = 0;
  std::vector<std::string> lines;
  HealthResult r = WaitHealthy(p, Env::Default(), 50, &attempts,
                               [&](const std::string& line) { lines.push_back(line); });
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  server.stop();
  late_start.join();
  EXPECT_EQ(r.state, State::kPass) << r.detail;
  EXPECT_GT(attempts, 1);
  ASSERT_EQ(lines.size(), static_cast<size_t>(attempts));
  EXPECT_EQ(lines.front().rfind("health 1/", 0), 0u) << lines.front();
  EXPECT_NE(lines.front().find("connection refused"), std::string::npos) << lines.front();
  EXPECT_NE(lines.back().find("HTTP 200"), std::string::npos) << lines.back();
}

TEST(WaitHealthyTest, GivesUpAfterTheStartPeriod) {
  ProbeSpec p = Tcp("127.0.0.1:" + std::to_string(UnusedPort()), 500);
  p.start_period_ms = 300;
  int attempts = 0;
  HealthResult r = WaitHealthy(p, Env::Default(), 50, &attempts, nullptr);
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "connection refused");
  EXPECT_GE(attempts, 2);
}

TEST(WaitHealthyTest, PollsEveryIntervalUntilTheDeadlineOnAFakeClock) {
  testing::FakeClock clock;
  Env env = testing::MakeEnvWithClock(&clock);
  ProbeSpec p = Tcp("127.0.0.1:" + std::to_string(UnusedPort()), 500);
  p.start_period_ms = 30'000;
  int attempts = 0;
  HealthResult r = WaitHealthy(p, &env, 1000, &attempts, nullptr);
  EXPECT_EQ(r.state, State::kFail);
  // One attempt at the start, then one per second up to and including the deadline.
  EXPECT_EQ(attempts, 31);
}

TEST(WaitHealthyTest, AtLeastOneAttemptWithoutAStartPeriod) {
  LocalHttpServer server;
  ProbeSpec p = Http(server.Url("/ok"));
  p.start_period_ms = 0;
  int attempts = 0;
  EXPECT_TRUE(WaitHealthy(p, Env::Default(), 100, &attempts, nullptr).pass());
  EXPECT_EQ(attempts, 1);
}

}  // namespace
}  // namespace backstop

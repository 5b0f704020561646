// The asynchronous prober against real loopback servers: many HTTP targets at
// once, HTTP errors, timeouts, refused connections, a server that dies while
// its connection is cached, TCP and exec probes, and blocking probes that
// overrun. Asserts outcomes only, never durations.
#include "watch/prober.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

namespace backstop {
namespace {

using State = HealthResult::State;

// An HTTP server on 127.0.0.1 and a free port, in a thread.
class TestServer {
 public:
  TestServer() {
    server_.Get("/ok", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ok\n", "text/plain");
    });
    server_.Get("/bad", [](const httplib::Request&, httplib::Response& res) {
      res.status = 503;
      res.set_content("unhealthy\n", "text/plain");
    });
    server_.Get("/slow", [this](const httplib::Request&, httplib::Response& res) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::seconds(5), [this] { return released_; });
      res.set_content("late\n", "text/plain");
    });
    server_.Get("/metrics", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("demo_requests_total 10\ndemo_errors_total 1\n", "text/plain");
    });
    // Probes keep connections open: enough threads for all, and idle ones dropped soon.
    server_.new_task_queue = [] { return new httplib::ThreadPool(32); };
    server_.set_keep_alive_timeout(1);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() before the accept loop runs would be lost: wait until it runs.
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~TestServer() { Shutdown(); }
  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      released_ = true;
      cv_.notify_all();
    }
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return port_; }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
};

// A port on 127.0.0.1 where nothing listens (bound, read back, closed).
int UnusedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

ProbeTarget Http(const std::string& name, const std::string& url, int64_t interval_ms = 3'600'000,
                 int64_t timeout_ms = 5'000) {
  ProbeTarget t;
  t.name = name;
  t.probe.type = ProbeSpec::Type::kHttp;
  t.probe.target = url;
  t.probe.interval_ms = interval_ms;
  t.probe.timeout_ms = timeout_ms;
  return t;
}

// Collects outcomes by target name.
class Collector {
 public:
  Prober::Callback callback() {
    return [this](ProbeOutcome&& o) {
      std::lock_guard<std::mutex> lock(mu_);
      by_name_[o.name].push_back(std::move(o));
      cv_.notify_all();
    };
  }
  // Waits until `pred` holds over the outcomes (real time, generous limit).
  bool WaitFor(
      const std::function<bool(const std::map<std::string, std::vector<ProbeOutcome>>&)>& pred) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return pred(by_name_); });
  }
  bool WaitForCount(const std::string& name, size_t n) {
    return WaitFor([&](const auto& m) {
      auto it = m.find(name);
      return it != m.end() && it->second.size() >= n;
    });
  }
  std::vector<ProbeOutcome> Get(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    return by_name_[name];
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::vector<ProbeOutcome>> by_name_;
};

TEST(ProberTest, ManyHttpTargetsAtOnce) {
  TestServer server;
  Collector c;
  Prober prober(Env::Default());
  ASSERT_TRUE(prober.Start(c.callback()).ok());
  constexpr int kGood = 60, kBad = 15;
  // Spread over 150 ms as the daemon spreads them: cpp-httplib listens with a
  // backlog of 5, and a burst of 75 connects would be the server's problem.
  int n = 0;
  for (int i = 0; i < kGood; ++i) {
    ProbeTarget t = Http("good" + std::to_string(i), server.Url("/ok"));
    t.first_delay_ms = 2 * n++;
    ASSERT_TRUE(prober.Add(t).ok());
  }
  for (int i = 0; i < kBad; ++i) {
    ProbeTarget t = Http("bad" + std::to_string(i), server.Url("/bad"));
    t.first_delay_ms = 2 * n++;
    ASSERT_TRUE(prober.Add(t).ok());
  }
  ASSERT_TRUE(c.WaitFor([&](const auto& m) { return m.size() == kGood + kBad; }));
  for (int i = 0; i < kGood; ++i) {
    auto o = c.Get("good" + std::to_string(i));
    ASSERT_EQ(o.size(), 1u);
    EXPECT_EQ(o[0].health.state, State::kPass) << o[0].health.detail;
    EXPECT_EQ(o[0].health.signals.at("http_status"), 200);
    EXPECT_TRUE(o[0].reachable);
    EXPECT_FALSE(o[0].timed_out);
  }
  for (int i = 0; i < kBad; ++i) {
    auto o = c.Get("bad" + std::to_string(i));
    ASSERT_EQ(o.size(), 1u);
    EXPECT_EQ(o[0].health.state, State::kFail);
    EXPECT_EQ(o[0].health.detail, "HTTP 503");
    EXPECT_TRUE(o[0].reachable) << "a 503 is an answer: the server was reached";
  }
  auto stats = prober.GetStats();
  EXPECT_EQ(stats.http, static_cast<uint64_t>(kGood + kBad));
  EXPECT_EQ(stats.completed, static_cast<uint64_t>(kGood + kBad));
}

TEST(ProberTest, ExpectedStatusOverridesTwoHundreds) {
  TestServer server;
  Collector c;
  Prober prober(Env::Default());
  ASSERT_TRUE(prober.Start(c.callback()).ok());
  ProbeTarget t = Http("expect503", server.Url("/bad"));
  t.probe.expect_status = 503;
  ASSERT_TRUE(prober.Add(t).ok());
  ProbeTarget u = Http("expect204", server.Url("/ok"));
  u.probe.expect_status = 204;
  ASSERT_TRUE(prober.Add(u).ok());
  ASSERT_TRUE(c.WaitForCount("expect503", 1));
  ASSERT_TRUE(c.WaitForCount("expect204", 1));
  EXPECT_EQ(c.Get("expect503")[0].health.state, State::kPass);
  EXPECT_EQ(c.Get("expect204")[0].health.state, State::kFail);
  EXPECT_EQ(c.Get("expect204")[0].health.detail, "HTTP 200 (expected 204)");
}

TEST(ProberTest, TimeoutIsAFailureNotMissingData) {
  TestServer server;
  Collector c;
  Prober prober(Env::Default());
  ASSERT_TRUE(prober.Start(c.callback()).ok());
  ASSERT_TRUE(prober.Add(Http("slow", server.Url("/slow"), 3'600'000, 200)).ok());
  ASSERT_TRUE(c.WaitForCount("slow", 1));
  ProbeOutcome o = c.Get("slow")[0];
  EXPECT_EQ(o.health.state, State::kFail);
  EXPECT_TRUE(o.timed_out);
  EXPECT_TRUE(o.reachable) << "it connected; the answer was late";
  EXPECT_EQ(o.health.detail.rfind("timed out after 200 ms", 0), 0u) << o.health.detail;
}

TEST(ProberTest, RefusedConnectionIsUnreachable) {
  Collector c;
  Prober prober(Env::Default());
  ASSERT_TRUE(prober.Start(c.callback()).ok());
  const int port = UnusedPort();
  ASSERT_TRUE(
      prober.Add(Http("gone", "http://127.0.0.1:" + std::to_string(port) + "/health")).ok());
  ProbeTarget tcp;
  tcp.name = "gone-tcp";
  tcp.probe.type = ProbeSpec::Type::kTcp;
  tcp.probe.target = "127.0.0.1:" + std::to_string(port);
  tcp.probe.interval_ms = 3'600'000;
  ASSERT_TRUE(prober.Add(tcp).ok());
  ASSERT_TRUE(c.WaitForCount("gone", 1));
  ASSERT_TRUE(c.WaitForCount("gone-tcp", 1));
  for (const char* name : {"gone", "gone-tcp"}) {
    ProbeOutcome o = c.Get(name)[0];
    EXPECT_EQ(o.health.state, State::kFail) << name;
    EXPECT_FALSE(o.reachable) << name;
    EXPECT_EQ(o.health.detail, "connection refused") << name;
  }
}

TEST(ProberTest, TcpProbeConnects) {
  TestServer server;
  Collector c;
  Prober prober(Env::Default());
  ASSERT_TRUE(prober.Start(c.callback()).ok());
  ProbeTarget tcp;
  tcp.name = "tcp";
  tcp.probe.type = ProbeSpec::Type::kTcp;
  tcp.probe.target = "127.0.0.1:" + std::to_string(server.port());
  tcp.probe.interval_ms = 3'600'000;
  ASSERT_TRUE(prober.Add(tcp).ok());
  ASSERT_TRUE(c.WaitForCount("tcp", 1));
  ProbeOutcome o = c.Get("tcp")[0];
  EXPECT_EQ(o.health.state, State::kPass) << o.health.detail;
  EXPECT_TRUE(o.reachable);
  EXPECT_EQ(o.health.signals.count("connect_time_ms"), 1u);
  EXPECT_EQ(prober.GetStats().tcp, 1u);
}

TEST(ProberTest, DeadServerIsDetectedDespiteConnectionReuse) {
  auto server = std::make_unique<TestServer>();
  const std::string url = server->Url("/ok");
  Collector c;
  Prober prober(Env::Default());
  ASSERT_TRUE(prober.Start(c.callback()).ok());
  ASSERT_TRUE(prober.Add(Http("svc", url, /*interval_ms=*/20, /*timeout_ms=*/2'000)).ok());
  // Several passes: the connection is cached and reused between them.
  ASSERT_TRUE(c.WaitFor([](const auto& m) {
    auto it = m.find("svc");
    if (it == m.end()) return false;
    int passes = 0;
    for (const auto& o : it->second) passes += o.health.pass();
    return passes >= 3;
  }));
  server->Shutdown();
  const size_t before = c.Get("svc").size();
  ASSERT_TRUE(c.WaitFor([&](const auto& m) {
    const auto& v = m.at("svc");
    for (size_t i = before; i < v.size(); ++i) {
      if (v[i].health.state == State::kFail) return true;
    }
    return false;
  }));
  // Once the dust settles, every probe fails: nothing answers on that port.
  const size_t settled = c.Get("svc").size() + 1;
  ASSERT_TRUE(c.WaitForCount("svc", settled + 2));
  auto all = c.Get("svc");
  for (size_t i = settled; i < all.size(); ++i) {
    EXPECT_EQ(all[i].health.state, State::kFail) << all[i].health.detail;
    EXPECT_FALSE(all[i].reachable);
  }
}

TEST(ProberTest, ProbesRepeatAtTheirInterval) {
  TestServer server;
  Collector c;
  Prober prober(Env::Default());
  ASSERT_TRUE(prober.Start(c.callback()).ok());
  ASSERT_TRUE(prober.Add(Http("fast", server.Url("/ok"), /*interval_ms=*/10)).ok());
  ASSERT_TRUE(prober.Add(Http("once", server.Url("/ok"), /*interval_ms=*/3'600'000)).ok());
  ASSERT_TRUE(c.WaitForCount("fast", 5));
  EXPECT_EQ(c.Get("once").size(), 1u) << "an hourly target is probed once in this test";
  // A due probe of a target never overlaps its previous probe.
  auto fast = c.Get("fast");
  for (size_t i = 1; i < fast.size(); ++i) {
    EXPECT_GE(fast[i].started_us, fast[i - 1].finished_us);
  }
  prober.ProbeNow("once");
  ASSERT_TRUE(c.WaitForCount("once", 2));
}

TEST(ProberTest, CapturesTheBodyWhenAsked) {
  TestServer server;
  Collector c;
  Prober prober(Env::Default());
  ASSERT_TRUE(prober.Start(c.callback()).ok());
  ProbeTarget t = Http("metrics", server.Url("/metrics"));
  t.capture_body = true;
  ASSERT_TRUE(prober.Add(t).ok());
  ASSERT_TRUE(prober.Add(Http("plain", server.Url("/metrics"))).ok());
  ASSERT_TRUE(c.WaitForCount("metrics", 1));
  ASSERT_TRUE(c.WaitForCount("plain", 1));
  EXPECT_EQ(c.Get("metrics")[0].body, "demo_requests_total 10\ndemo_errors_total 1\n");
  EXPECT_EQ(c.Get("plain")[0].body, "");
}

TEST(ProberTest, ExecProbesRunInTheWorkerPool) {
  Collector c;
  Prober prober(Env::Default());
  ASSERT_TRUE(prober.Start(c.callback()).ok());
  ProbeTarget ok;
  ok.name = "true";
  ok.probe.type = ProbeSpec::Type::kExec;
  ok.probe.command = {"true"};
  ok.probe.interval_ms = 3'600'000;
  ProbeTarget bad = ok;
  bad.name = "false";
  bad.probe.command = {"sh", "-c", "echo broken >&2; exit 3"};
  ASSERT_TRUE(prober.Add(ok).ok());
  ASSERT_TRUE(prober.Add(bad).ok());
  ASSERT_TRUE(c.WaitForCount("true", 1));
  ASSERT_TRUE(c.WaitForCount("false", 1));
  EXPECT_EQ(c.Get("true")[0].health.state, State::kPass);
  EXPECT_EQ(c.Get("false")[0].health.state, State::kFail);
  EXPECT_NE(c.Get("false")[0].health.detail.find("exit 3"), std::string::npos)
      << c.Get("false")[0].health.detail;
  EXPECT_EQ(prober.GetStats().blocking, 2u);
}

TEST(ProberTest, BlockingProbeThatOverrunsIsReportedAsTimedOut) {
  Collector c;
  Prober::Options options;
  options.workers = 2;
  options.blocking_grace_ms = 20;
  Prober prober(Env::Default(), options);
  ASSERT_TRUE(prober.Start(c.callback()).ok());
  std::atomic<bool> release{false};
  ProbeTarget hang;
  hang.name = "hang";
  hang.probe.interval_ms = 3'600'000;
  hang.probe.timeout_ms = 50;
  hang.blocking = [&release] {
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    HealthResult h;
    h.state = State::kPass;  // too late to count
    return h;
  };
  ProbeTarget quick;
  quick.name = "quick";
  quick.probe.interval_ms = 3'600'000;
  quick.blocking = [] {
    HealthResult h;
    h.state = State::kPass;
    h.detail = "fine";
    return h;
  };
  ASSERT_TRUE(prober.Add(hang).ok());
  ASSERT_TRUE(prober.Add(quick).ok());
  ASSERT_TRUE(c.WaitForCount("hang", 1));
  ASSERT_TRUE(c.WaitForCount("quick", 1));
  ProbeOutcome o = c.Get("hang")[0];
  EXPECT_EQ(o.health.state, State::kFail);
  EXPECT_TRUE(o.timed_out);
  EXPECT_EQ(c.Get("quick")[0].health.state, State::kPass) << "one hung probe blocks no other";
  release = true;
  prober.Stop();
  EXPECT_EQ(c.Get("hang").size(), 1u) << "the late result is dropped";
}

// Add and ProbeNow from another thread may race with Stop: they wake the
// loop under the lock Stop closes the wake descriptor under, never writing to
// a closed (or reused) descriptor. ThreadSanitizer reported this race before.
TEST(ProberTest, AddAndProbeNowMayRaceWithStop) {
  Prober prober(Env::Default());
  ASSERT_TRUE(prober.Start([](ProbeOutcome&&) {}).ok());
  std::atomic<int> added{0};
  std::thread adder([&] {
    for (int i = 0; i < 2000; ++i) {
      ProbeTarget t;
      t.name = "t" + std::to_string(i);
      t.probe.interval_ms = 60'000;
      t.probe.timeout_ms = 100;
      t.blocking = [] { return HealthResult{}; };
      if (prober.Add(std::move(t)).ok()) ++added;
      prober.ProbeNow("t0");
    }
  });
  while (added.load() < 10) std::this_thread::yield();
  prober.Stop();
  adder.join();
  EXPECT_EQ(added.load(), 2000);  // adding after Stop is accepted, and inert
}

TEST(ProberTest, RejectsDuplicateAndEmptyTargets) {
  Prober prober(Env::Default());
  TestServer server;
  EXPECT_TRUE(prober.Add(Http("a", server.Url("/ok"))).ok());
  EXPECT_FALSE(prober.Add(Http("a", server.Url("/ok"))).ok());
  ProbeTarget none;
  none.name = "none";
  EXPECT_FALSE(prober.Add(none).ok());
}

TEST(ProberTest, ProbeOnceKeepsTheOrderOfTargets) {
  TestServer server;
  const int port = UnusedPort();
  std::vector<ProbeTarget> targets = {Http("a", server.Url("/ok")), Http("b", server.Url("/bad")),
                                      Http("c", "http://127.0.0.1:" + std::to_string(port) + "/"),
                                      Http("d", server.Url("/ok"))};
  auto out = ProbeOnce(Env::Default(), targets);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].name, "a");
  EXPECT_EQ(out[0].health.state, State::kPass);
  EXPECT_EQ(out[1].health.state, State::kFail);
  EXPECT_EQ(out[2].health.state, State::kFail);
  EXPECT_FALSE(out[2].reachable);
  EXPECT_EQ(out[3].name, "d");
  EXPECT_EQ(out[3].health.state, State::kPass);
}

}  // namespace
}  // namespace backstop

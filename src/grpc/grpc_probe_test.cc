// Tests of the gRPC health probe against real gRPC servers on loopback ports,
// run in this process: a Health service whose answers the tests set, and
// grpc++'s own default health service (a standard implementation that is not
// ours).
#include "grpc/grpc_probe.h"

#include <arpa/inet.h>
#include <grpcpp/ext/health_check_service_server_builder_option.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "health.grpc.pb.h"
#include "probe/probe.h"

namespace backstop {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using grpc_probe::CheckGrpcHealth;
using State = HealthResult::State;

// A Health service answering what the test tells it to. Services not set
// answer NOT_FOUND, as the protocol says. Stall() makes Check block until
// Release() or until the client's deadline cancels the call.
class FakeHealth final : public Health::Service {
 public:
  void Set(const std::string& service, HealthCheckResponse::ServingStatus status) {
    std::lock_guard<std::mutex> lock(mu_);
    statuses_[service] = status;
  }
  void Stall() {
    std::lock_guard<std::mutex> lock(mu_);
    stall_ = true;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stall_ = false;
    }
    cv_.notify_all();
  }
  int cancelled_calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return cancelled_calls_;
  }
  // The client address of every call so far ("ipv4:127.0.0.1:54321").
  std::vector<std::string> peers() {
    std::lock_guard<std::mutex> lock(mu_);
    return peers_;
  }

  grpc::Status Check(grpc::ServerContext* context, const HealthCheckRequest* request,
                     HealthCheckResponse* response) override {
    std::unique_lock<std::mutex> lock(mu_);
    peers_.push_back(context->peer());
    // A stalled call waits for Release() or its own cancellation; the 60 s cap
    // only keeps a broken probe from hanging the test (it then sees SERVING).
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (stall_ && std::chrono::steady_clock::now() < give_up) {
      if (context->IsCancelled()) {
        ++cancelled_calls_;
        return grpc::Status(grpc::StatusCode::CANCELLED, "client gave up");
      }
      cv_.wait_for(lock, std::chrono::milliseconds(10));
    }
    auto it = statuses_.find(request->service());
    if (it == statuses_.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service");
    }
    response->set_status(it->second);
    return grpc::Status::OK;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, HealthCheckResponse::ServingStatus> statuses_;
  bool stall_ = false;
  int cancelled_calls_ = 0;
  std::vector<std::string> peers_;
};

// A gRPC server on 127.0.0.1, serving `service` (may be null: no services).
class TestServer {
 public:
  // port 0 picks a free one. Returns null (and fails the test) if it cannot listen.
  static std::unique_ptr<TestServer> Start(grpc::Service* service, int port = 0,
                                           bool default_health = false) {
    auto server = std::unique_ptr<TestServer>(new TestServer);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(),
                             &server->port_);
    if (service != nullptr) builder.RegisterService(service);
    if (!default_health) {
      // No grpc++ default health service, whatever the process-wide switch says.
      builder.SetOption(std::make_unique<grpc::HealthCheckServiceServerBuilderOption>(nullptr));
    }
    if (service == nullptr) {
      // grpc++ refuses to start a server with no service of the application's
      // own unless a completion queue is polled: poll one (it serves the
      // UNIMPLEMENTED answers; the default health service runs elsewhere).
      server->cq_ = builder.AddCompletionQueue();
    }
    server->server_ = builder.BuildAndStart();
    if (server->server_ == nullptr || server->port_ == 0) {
      ADD_FAILURE() << "cannot start a gRPC server on 127.0.0.1:" << port;
      return nullptr;
    }
    if (server->cq_ != nullptr) {
      server->cq_thread_ = std::thread([cq = server->cq_.get()] {
        void* tag;
        bool ok;
        while (cq->Next(&tag, &ok)) {
        }
      });
    }
    return server;
  }
  ~TestServer() { Stop(); }
  void Stop() {
    if (server_ == nullptr) return;
    // Calls still running after the grace period are cancelled.
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_->Wait();
    if (cq_ != nullptr) {
      cq_->Shutdown();
      cq_thread_.join();
      cq_.reset();
    }
    server_.reset();
  }
  int port() const { return port_; }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  grpc::Server* server() { return server_.get(); }

 private:
  TestServer() = default;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::thread cq_thread_;
  int port_ = 0;
};

// A loopback port nothing listens on (bound, read back, closed).
int DeadPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

ProbeSpec GrpcProbe(const std::string& target, const std::string& service = "",
                    int64_t timeout_ms = 5'000) {
  ProbeSpec p;
  p.type = ProbeSpec::Type::kGrpc;
  p.target = target;
  p.grpc_service = service;
  p.timeout_ms = timeout_ms;
  return p;
}

TEST(GrpcProbeTest, ServingPasses) {
  FakeHealth health;
  health.Set("", HealthCheckResponse::SERVING);
  auto server = TestServer::Start(&health);
  ASSERT_NE(server, nullptr);
  HealthResult r = CheckGrpcHealth(GrpcProbe(server->target()));
  EXPECT_EQ(r.state, State::kPass) << r.detail;
  EXPECT_EQ(r.detail.rfind("SERVING in ", 0), 0u) << r.detail;
  EXPECT_GE(r.latency_ms, 0);
  EXPECT_EQ(r.signals.at("grpc_health_status"), HealthCheckResponse::SERVING);
}

TEST(GrpcProbeTest, NotServingFails) {
  FakeHealth health;
  health.Set("", HealthCheckResponse::NOT_SERVING);
  auto server = TestServer::Start(&health);
  ASSERT_NE(server, nullptr);
  HealthResult r = CheckGrpcHealth(GrpcProbe(server->target()));
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "NOT_SERVING");
}

TEST(GrpcProbeTest, UnknownAndServiceUnknownCountAsNotServing) {
  FakeHealth health;
  health.Set("a.Unknown", HealthCheckResponse::UNKNOWN);
  health.Set("a.ServiceUnknown", HealthCheckResponse::SERVICE_UNKNOWN);
  auto server = TestServer::Start(&health);
  ASSERT_NE(server, nullptr);
  HealthResult r = CheckGrpcHealth(GrpcProbe(server->target(), "a.Unknown"));
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "NOT_SERVING (service 'a.Unknown', status UNKNOWN)");
  r = CheckGrpcHealth(GrpcProbe(server->target(), "a.ServiceUnknown"));
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "NOT_SERVING (service 'a.ServiceUnknown', status SERVICE_UNKNOWN)");
}

TEST(GrpcProbeTest, AsksAboutTheNamedService) {
  FakeHealth health;
  health.Set("", HealthCheckResponse::SERVING);
  health.Set("bus.Health", HealthCheckResponse::NOT_SERVING);
  health.Set("api.Health", HealthCheckResponse::SERVING);
  auto server = TestServer::Start(&health);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(CheckGrpcHealth(GrpcProbe(server->target(), "api.Health")).state, State::kPass);
  HealthResult r = CheckGrpcHealth(GrpcProbe(server->target(), "bus.Health"));
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "NOT_SERVING (service 'bus.Health')");
}

TEST(GrpcProbeTest, UnknownServiceIsNotFound) {
  FakeHealth health;
  health.Set("", HealthCheckResponse::SERVING);
  auto server = TestServer::Start(&health);
  ASSERT_NE(server, nullptr);
  HealthResult r = CheckGrpcHealth(GrpcProbe(server->target(), "nosuch.Service"));
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "service 'nosuch.Service' not found (NOT_FOUND)");
  EXPECT_EQ(r.signals.at("grpc_code"), static_cast<double>(grpc::StatusCode::NOT_FOUND));
}

TEST(GrpcProbeTest, DeadPortIsUnavailable) {
  int port = DeadPort();
  ASSERT_NE(port, 0);
  HealthResult r = CheckGrpcHealth(GrpcProbe("127.0.0.1:" + std::to_string(port)));
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "unavailable: connection refused");
  EXPECT_EQ(r.signals.at("grpc_code"), static_cast<double>(grpc::StatusCode::UNAVAILABLE));
}

TEST(GrpcProbeTest, ServerWithoutHealthServiceIsUnimplemented) {
  auto server = TestServer::Start(nullptr);
  ASSERT_NE(server, nullptr);
  HealthResult r = CheckGrpcHealth(GrpcProbe(server->target()));
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_NE(r.detail.find("does not implement grpc.health.v1.Health (UNIMPLEMENTED)"),
            std::string::npos)
      << r.detail;
}

// The server takes the call and never answers: the probe gives up at its
// deadline (the server sees the call cancelled) instead of waiting it out.
TEST(GrpcProbeTest, SlowServerHitsTheDeadline) {
  FakeHealth health;
  health.Set("", HealthCheckResponse::SERVING);
  auto server = TestServer::Start(&health);
  ASSERT_NE(server, nullptr);
  // Connect first, so that the deadline below is spent inside the call.
  ASSERT_TRUE(CheckGrpcHealth(GrpcProbe(server->target())).pass());
  health.Stall();
  HealthResult r = CheckGrpcHealth(GrpcProbe(server->target(), "", 300));
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "timed out after 300 ms");
  // The server learns that the client gave up (the deadline travels with the call).
  for (int i = 0; i < 3000 && health.cancelled_calls() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(health.cancelled_calls(), 1);
  health.Release();
}

// A listener that accepts TCP connections but never speaks HTTP/2: the
// deadline bounds connecting, too.
TEST(GrpcProbeTest, DeadlineCoversConnecting) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  HealthResult r =
      CheckGrpcHealth(GrpcProbe("127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), "", 250));
  ::close(fd);
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "timed out after 250 ms");
}

// Repeated probes of one target share a connection: the server sees one peer.
TEST(GrpcProbeTest, RepeatedProbesReuseTheConnection) {
  FakeHealth health;
  health.Set("", HealthCheckResponse::SERVING);
  auto server = TestServer::Start(&health);
  ASSERT_NE(server, nullptr);
  const size_t channels_before = grpc_probe::ChannelsCreatedForTesting();
  for (int i = 0; i < 5; ++i) {
    HealthResult r = CheckGrpcHealth(GrpcProbe(server->target()));
    ASSERT_TRUE(r.pass()) << r.detail;
  }
  std::vector<std::string> peers = health.peers();
  ASSERT_EQ(peers.size(), 5u);
  EXPECT_EQ(std::set<std::string>(peers.begin(), peers.end()).size(), 1u);
  EXPECT_EQ(grpc_probe::ChannelsCreatedForTesting() - channels_before, 1u);
}

// The server goes away and comes back on the same port: a probe during the
// outage reports it, and the first probe after the restart passes (no
// reconnect backoff to wait out).
TEST(GrpcProbeTest, ProbePassesAfterTheServerRestarts) {
  FakeHealth first;
  first.Set("", HealthCheckResponse::SERVING);
  auto server = TestServer::Start(&first);
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  const std::string target = server->target();
  ASSERT_TRUE(CheckGrpcHealth(GrpcProbe(target)).pass());

  server->Stop();
  HealthResult down = CheckGrpcHealth(GrpcProbe(target));
  EXPECT_EQ(down.state, State::kFail);
  EXPECT_EQ(down.detail.rfind("unavailable: ", 0), 0u) << down.detail;
  // Twice: the channel is now in its reconnect backoff.
  down = CheckGrpcHealth(GrpcProbe(target));
  EXPECT_EQ(down.detail.rfind("unavailable: ", 0), 0u) << down.detail;

  FakeHealth second;
  second.Set("", HealthCheckResponse::NOT_SERVING);
  auto restarted = TestServer::Start(&second, port);
  ASSERT_NE(restarted, nullptr);
  HealthResult r = CheckGrpcHealth(GrpcProbe(target));
  EXPECT_EQ(r.detail, "NOT_SERVING");  // the new server's answer, not a stale one
  second.Set("", HealthCheckResponse::SERVING);
  EXPECT_TRUE(CheckGrpcHealth(GrpcProbe(target)).pass());
}

// A restart between two probes, with no probe during the outage.
TEST(GrpcProbeTest, RestartBetweenProbesIsSeenAtOnce) {
  FakeHealth first;
  first.Set("", HealthCheckResponse::SERVING);
  auto server = TestServer::Start(&first);
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  ASSERT_TRUE(CheckGrpcHealth(GrpcProbe(server->target())).pass());
  server->Stop();

  FakeHealth second;
  second.Set("", HealthCheckResponse::SERVING);
  auto restarted = TestServer::Start(&second, port);
  ASSERT_NE(restarted, nullptr);
  HealthResult r = CheckGrpcHealth(GrpcProbe(restarted->target()));
  EXPECT_TRUE(r.pass()) << r.detail;
  EXPECT_EQ(second.peers().size(), 1u);
}

TEST(GrpcProbeTest, ManyThreadsProbeAtOnce) {
  FakeHealth serving, failing;
  serving.Set("", HealthCheckResponse::SERVING);
  failing.Set("", HealthCheckResponse::NOT_SERVING);
  auto a = TestServer::Start(&serving);
  auto b = TestServer::Start(&failing);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  std::mutex mu;
  int passes = 0, not_serving = 0, other = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        HealthResult r = CheckGrpcHealth(GrpcProbe((t + i) % 2 == 0 ? a->target() : b->target()));
        std::lock_guard<std::mutex> lock(mu);
        if (r.pass()) {
          ++passes;
        } else if (r.detail == "NOT_SERVING") {
          ++not_serving;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(passes, 80);
  EXPECT_EQ(not_serving, 80);
  EXPECT_EQ(other, 0);
}

// grpc++'s own health service (what the demo service runs), flipped at run
// time through its public API.
TEST(GrpcProbeTest, WorksWithTheStandardHealthService) {
  grpc::EnableDefaultHealthCheckService(true);
  auto server = TestServer::Start(nullptr, 0, /*default_health=*/true);
  grpc::EnableDefaultHealthCheckService(false);
  ASSERT_NE(server, nullptr);
  grpc::HealthCheckServiceInterface* health = server->server()->GetHealthCheckService();
  ASSERT_NE(health, nullptr);
  EXPECT_TRUE(CheckGrpcHealth(GrpcProbe(server->target())).pass());
  health->SetServingStatus(false);
  EXPECT_EQ(CheckGrpcHealth(GrpcProbe(server->target())).detail, "NOT_SERVING");
  health->SetServingStatus(true);
  EXPECT_TRUE(CheckGrpcHealth(GrpcProbe(server->target())).pass());
  EXPECT_EQ(CheckGrpcHealth(GrpcProbe(server->target(), "nosuch")).detail,
            "service 'nosuch' not found (NOT_FOUND)");
}

// Through probe.h, as the CLI and the watcher call it.
TEST(GrpcProbeTest, RegisteredProbeAnswersRunProbe) {
  FakeHealth health;
  health.Set("", HealthCheckResponse::SERVING);
  auto server = TestServer::Start(&health);
  ASSERT_NE(server, nullptr);
  grpc_probe::RegisterGrpcProbe();
  HealthResult r = RunProbe(GrpcProbe(server->target()), Env::Default());
  EXPECT_TRUE(r.pass()) << r.detail;
  health.Set("", HealthCheckResponse::NOT_SERVING);
  r = RunProbe(GrpcProbe(server->target()), Env::Default());
  EXPECT_EQ(r.detail, "NOT_SERVING");
}

}  // namespace
}  // namespace backstop

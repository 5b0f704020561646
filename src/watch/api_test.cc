// The HTTP API against a real server on a free loopback port: bearer-token
// authentication of everything that acts (no token, wrong token, right
// token), read-only endpoints, errors as JSON; the token file; the /metrics
// exposition parses and is consistent.
#include "watch/api.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <set>

#include "testing/test_env.h"
#include "watch/fake_api_backend.h"
#include "watch/signals.h"

namespace backstop {
namespace {

constexpr const char* kToken = "c0ffee-test-token-5f3a";

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ApiServer::Options o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.token = kToken;
    o.log = [this](const std::string& level, const std::string& msg, nlohmann::json fields) {
      std::lock_guard<std::mutex> lock(log_mu_);
      logs_.push_back(level + " " + msg + " " + fields.dump());
    };
    server_ = std::make_unique<ApiServer>(&backend_, o);
    ASSERT_TRUE(server_->Start().ok());
    ASSERT_GT(server_->port(), 0);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_connection_timeout(5);
    client_->set_read_timeout(10);
  }
  void TearDown() override { server_->Stop(); }

  httplib::Result Post(const std::string& path, const std::string& body,
                       const std::string& authorization) {
    httplib::Headers headers;
    if (!authorization.empty()) headers.emplace("Authorization", authorization);
    return client_->Post(path.c_str(), headers, body, "application/json");
  }
  std::string AllLogs() {
    std::lock_guard<std::mutex> lock(log_mu_);
    std::string all;
    for (const auto& l : logs_) all += l + "\n";
    return all;
  }

  FakeBackend backend_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<httplib::Client> client_;
  std::mutex log_mu_;
  std::vector<std::string> logs_;
};

TEST_F(ApiTest, ActionsWithoutTokenAre401AndDoNothing) {
  for (const char* path : {"/api/v1/rollback", "/api/v1/pause", "/api/v1/resume"}) {
    auto res = Post(path, R"({"component": "webui"})", "");
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 401) << path;
    auto body = nlohmann::json::parse(res->body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << res->body;
    EXPECT_EQ(body.value("code", ""), "unauthorized");
    EXPECT_FALSE(body.value("error", "").empty());
    EXPECT_EQ(res->get_header_value("WWW-Authenticate").rfind("Bearer", 0), 0u);
  }
  EXPECT_EQ(backend_.rollbacks.load(), 0);
  EXPECT_EQ(backend_.pause_calls.load(), 0);
}

TEST_F(ApiTest, WrongTokenIs401) {
  for (const std::string& auth :
       {std::string("Bearer zzz-presented-zzz"), std::string("Bearer ") + kToken + "x",
        std::string("Bearer ") + std::string(kToken).substr(1), std::string("Basic ") + kToken,
        std::string(kToken)}) {
    auto res = Post("/api/v1/rollback", R"({"component": "webui"})", auth);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 401) << auth;
  }
  EXPECT_EQ(backend_.rollbacks.load(), 0);
  // The refusal is logged, the token that was presented is not.
  const std::string logs = AllLogs();
  EXPECT_NE(logs.find("refused"), std::string::npos);
  EXPECT_EQ(logs.find(kToken), std::string::npos);
  EXPECT_EQ(logs.find("zzz-presented"), std::string::npos) << "only the reason, never the value";
}

TEST_F(ApiTest, RightTokenActs) {
  auto res = Post("/api/v1/rollback", R"({"component": "webui", "to": "previous"})",
                  std::string("Bearer ") + kToken);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 202) << res->body;
  EXPECT_EQ(backend_.rollbacks.load(), 1);
  {
    std::lock_guard<std::mutex> lock(backend_.mu);
    EXPECT_EQ(backend_.last_body.value("component", ""), "webui");
    EXPECT_EQ(backend_.last_body.value("to", ""), "previous");
    EXPECT_EQ(backend_.last_actor.rfind("api 127.0.0.1", 0), 0u);
  }
  // The scheme is case-insensitive (RFC 7235).
  res = Post("/api/v1/pause", R"({"reason": "incident 42"})", std::string("bearer ") + kToken);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_TRUE(backend_.paused.load());
  {
    std::lock_guard<std::mutex> lock(backend_.mu);
    EXPECT_EQ(backend_.last_reason, "incident 42");
  }
  res = Post("/api/v1/resume", "", std::string("Bearer ") + kToken);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_FALSE(backend_.paused.load());
}

// A TCP connection to the API from a chosen loopback address (127.0.0.0/8
// is all local, so "other clients" are easy to make).
int ConnectFrom(const std::string& source, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, source.c_str(), &from.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
    ::close(fd);
    return -1;
  }
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{20, 0};  // a bound for the test, not an assertion on time
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Sends a whole GET and reads the answer to its end (the server closes).
std::string GetFrom(const std::string& source, int port, const std::string& path) {
  int fd = ConnectFrom(source, port);
  if (fd < 0) return "cannot connect from " + source;
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: api\r\n\r\n";
  (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string answer;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    answer.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return answer;
}

TEST_F(ApiTest, SlowClientsDoNotStarveTheApi) {
  // 200 connections from one address and 50 from another, each having sent
  // one byte of its request and then nothing: they occupy no worker.
  std::vector<int> slow;
  for (int i = 0; i < 250; ++i) {
    int fd = ConnectFrom(i < 200 ? "127.0.0.1" : "127.0.0.2", server_->port());
    ASSERT_GE(fd, 0) << "connection " << i;
    ASSERT_EQ(::send(fd, "G", 1, MSG_NOSIGNAL), 1);
    slow.push_back(fd);
  }
  // A normal request from a third address, and from the slow clients' own
  // addresses, is answered.
  for (const char* source : {"127.0.0.3", "127.0.0.1", "127.0.0.2"}) {
    std::string answer = GetFrom(source, server_->port(), "/api/v1/status");
    EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << source << ": " << answer;
    EXPECT_NE(answer.find("\"components\": 2"), std::string::npos) << answer;
  }
  auto res = client_->Get("/metrics");
  ASSERT_TRUE(res) << "the API did not answer while slow clients were connected";
  EXPECT_EQ(res->status, 200);
  for (int fd : slow) ::close(fd);
}

TEST(ApiLimitsTest, ARequestHeadThatDoesNotArriveGets408) {
  FakeBackend backend;
  ApiServer::Options o;
  o.token = kToken;
  o.header_timeout_ms = 200;
  o.request_timeout_ms = 400;
  ApiServer server(&backend, o);
  ASSERT_TRUE(server.Start().ok());
  // Half a head, then nothing: the server answers 408 and closes.
  int fd = ConnectFrom("127.0.0.1", server.port());
  ASSERT_GE(fd, 0);
  const std::string part = "GET /api/v1/status HTTP/1.1\r\nHo";
  ASSERT_EQ(::send(fd, part.data(), part.size(), MSG_NOSIGNAL), static_cast<ssize_t>(part.size()));
  char buf[1024];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)).rfind("HTTP/1.1 408", 0), 0u);
  ::close(fd);
  // A head without its body: 408 too.
  fd = ConnectFrom("127.0.0.1", server.port());
  ASSERT_GE(fd, 0);
  const std::string head =
      "POST /api/v1/pause HTTP/1.1\r\nHost: api\r\nContent-Length: 100\r\n\r\n{";
  ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  n = ::recv(fd, buf, sizeof buf, 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)).rfind("HTTP/1.1 408", 0), 0u);
  ::close(fd);
  EXPECT_EQ(backend.pause_calls.load(), 0);
  server.Stop();
}

TEST(ApiLimitsTest, LoopbackHosts) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("::"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.5"));
  EXPECT_FALSE(IsLoopbackHost("1270.0.0.1"));
}

TEST_F(ApiTest, BadBodiesAre400) {
  auto res = Post("/api/v1/rollback", "{not json", std::string("Bearer ") + kToken);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = Post("/api/v1/rollback", "[1,2]", std::string("Bearer ") + kToken);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(backend_.rollbacks.load(), 0);
}

TEST_F(ApiTest, ReadOnlyEndpointsNeedNoToken) {
  auto res = client_->Get("/api/v1/status");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(nlohmann::json::parse(res->body).value("components", 0), 2);
  res = client_->Get("/api/v1/runs?limit=7");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(backend_.last_limit.load(), 7);
  EXPECT_EQ(backend_.last_offset.load(), 0);
  res = client_->Get("/api/v1/runs?limit=20&offset=40");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(backend_.last_offset.load(), 40);
  for (const char* bad : {"/api/v1/runs?limit=lots", "/api/v1/runs?offset=-1"}) {
    res = client_->Get(bad);
    ASSERT_TRUE(res) << bad;
    EXPECT_EQ(res->status, 400) << bad;
  }
  res = client_->Get("/api/v1/runs/run-1");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  res = client_->Get("/api/v1/runs/run-9");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_EQ(nlohmann::json::parse(res->body).value("code", ""), "not_found");
  res = client_->Get("/api/v1/nothing");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_TRUE(nlohmann::json::parse(res->body, nullptr, false).is_object()) << res->body;
  res = client_->Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->get_header_value("Content-Type").find("text/plain"), std::string::npos);
  EXPECT_NE(res->body.find("backstop_watch_paused 0"), std::string::npos);
}

TEST(TokenTest, ConstantTimeComparisonSemantics) {
  EXPECT_TRUE(TokenMatches("abc123", "abc123"));
  EXPECT_FALSE(TokenMatches("abc124", "abc123"));
  EXPECT_FALSE(TokenMatches("abc12", "abc123"));
  EXPECT_FALSE(TokenMatches("", "abc123"));
  EXPECT_FALSE(TokenMatches("", "")) << "an empty expected token accepts nothing";
}

TEST(TokenTest, GeneratedOnceWithMode0600ThenReused) {
  testing::TempDir dir;
  ::unsetenv("BACKSTOP_API_TOKEN");
  std::string source;
  auto a = LoadOrCreateApiToken(Env::Default(), dir.path(), "", &source);
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->size(), 64u);
  EXPECT_NE(source.find("generated"), std::string::npos);
  EXPECT_EQ(source.find(*a), std::string::npos) << "the source never names the token";
  struct stat st;
  ASSERT_EQ(::stat(dir.Join("api-token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto b = LoadOrCreateApiToken(Env::Default(), dir.path(), "", &source);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(source, dir.Join("api-token"));
}

TEST(TokenTest, FileFlagThenEnvironmentThenStateDir) {
  testing::TempDir dir;
  testing::WriteFileOrDie(dir.Join("tok"), "  from-file-token \nsecond line\n");
  ::setenv("BACKSTOP_API_TOKEN", "from-env-token", 1);
  std::string source;
  auto f = LoadOrCreateApiToken(Env::Default(), dir.path(), dir.Join("tok"), &source);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f, "from-file-token");
  auto e = LoadOrCreateApiToken(Env::Default(), dir.path(), "", &source);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(*e, "from-env-token");
  EXPECT_EQ(source, "BACKSTOP_API_TOKEN");
  ::unsetenv("BACKSTOP_API_TOKEN");
  EXPECT_FALSE(LoadOrCreateApiToken(Env::Default(), dir.path(), dir.Join("missing"), &source).ok());
  testing::WriteFileOrDie(dir.Join("empty"), "\n");
  EXPECT_FALSE(LoadOrCreateApiToken(Env::Default(), dir.path(), dir.Join("empty"), &source).ok());
}

TEST(ListenAddressTest, Parses) {
  std::string host;
  int port = 0;
  ASSERT_TRUE(ParseListenAddress("127.0.0.1:8742", &host, &port).ok());
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 8742);
  ASSERT_TRUE(ParseListenAddress(":9000", &host, &port).ok());
  EXPECT_EQ(host, "127.0.0.1") << "no address means loopback, not every interface";
  ASSERT_TRUE(ParseListenAddress("[::1]:0", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 0);
  EXPECT_FALSE(ParseListenAddress("8742", &host, &port).ok());
  EXPECT_FALSE(ParseListenAddress("127.0.0.1:99999", &host, &port).ok());
  EXPECT_FALSE(ParseListenAddress("127.0.0.1:http", &host, &port).ok());
}

// The exposition: it parses, every sample belongs to a family declared by a
// # TYPE line before it, histograms are cumulative and end with +Inf == count.
TEST(MetricsTest, ExpositionParsesAndIsConsistent) {
  WatchMetrics m;
  WatchMetrics::Probe p;
  p.component = "web\"ui";  // escaped in labels
  p.has_result = true;
  p.success = true;
  p.total = 5;
  p.failures = 1;
  for (double v : {0.0004, 0.002, 0.002, 0.3, 20.0}) p.latency.Observe(v);
  m.probes.push_back(p);
  WatchMetrics::Probe fresh;
  fresh.component = "db";
  m.probes.push_back(fresh);
  m.triggers.push_back({"health_check_failures", "web\"ui", 2});
  m.triggers.push_back({"response_time", "db", 1});
  m.runs_total[{"rollback", "succeeded"}] = 2;
  m.runs_total[{"rollback", "failed"}] = 1;
  m.run_duration.Observe(3.2);
  m.decisions_total["acted"] = 3;
  m.paused = true;
  const std::string text = RenderMetrics(m);

  auto parsed = ParsePrometheusText(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message() << "\n" << text;

  // Families declared before use.
  std::set<std::string> declared;
  std::map<std::string, std::string> types;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream f(line.substr(7));
      std::string name, type;
      f >> name >> type;
      EXPECT_TRUE(declared.insert(name).second) << "declared twice: " << name;
      types[name] = type;
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    std::string name = line.substr(0, line.find_first_of("{ "));
    std::string family = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      std::string s = suffix;
      if (family.size() > s.size() && family.compare(family.size() - s.size(), s.size(), s) == 0 &&
          declared.count(family.substr(0, family.size() - s.size()))) {
        family = family.substr(0, family.size() - s.size());
      }
    }
    EXPECT_TRUE(declared.count(family)) << "sample before its # TYPE: " << line;
  }
  EXPECT_EQ(types["backstop_probe_latency_seconds"], "histogram");
  EXPECT_EQ(types["backstop_run_duration_seconds"], "histogram");
  EXPECT_EQ(types["backstop_runs_total"], "counter");
  EXPECT_EQ(types["backstop_trigger_state"], "gauge");

  auto value = [&](const std::string& name, std::map<std::string, std::string> labels) {
    for (const auto& s : *parsed) {
      if (s.name == name && s.labels == labels) return std::optional<double>(s.value);
    }
    return std::optional<double>();
  };
  EXPECT_EQ(value("backstop_probe_success", {{"component", "web\"ui"}}), 1);
  EXPECT_FALSE(value("backstop_probe_success", {{"component", "db"}}).has_value())
      << "no sample yet: no success value";
  EXPECT_EQ(value("backstop_probes_total", {{"component", "web\"ui"}, {"result", "failure"}}), 1);
  EXPECT_EQ(value("backstop_probes_total", {{"component", "web\"ui"}, {"result", "success"}}), 4);
  EXPECT_EQ(value("backstop_trigger_state",
                  {{"trigger", "health_check_failures"}, {"component", "web\"ui"}}),
            2);
  EXPECT_EQ(value("backstop_trigger_state", {{"trigger", "response_time"}, {"component", "db"}}),
            1);
  EXPECT_EQ(value("backstop_runs_total", {{"kind", "rollback"}, {"status", "succeeded"}}), 2);
  EXPECT_EQ(value("backstop_runs_total", {{"kind", "rollback"}, {"status", "failed"}}), 1);
  EXPECT_EQ(value("backstop_watch_paused", {}), 1);
  EXPECT_EQ(value("backstop_decisions_total", {{"outcome", "acted"}}), 3);
  EXPECT_EQ(value("backstop_run_duration_seconds_count", {}), 1);
  EXPECT_DOUBLE_EQ(*value("backstop_run_duration_seconds_sum", {}), 3.2);

  // The probe latency histogram of web"ui: cumulative, +Inf == count == 5.
  std::vector<double> buckets;
  for (const auto& s : *parsed) {
    if (s.name == "backstop_probe_latency_seconds_bucket" && s.labels.at("component") == "web\"ui")
      buckets.push_back(s.value);
  }
  ASSERT_EQ(buckets.size(), ProbeLatencyBounds().size() + 1);
  for (size_t i = 1; i < buckets.size(); ++i) EXPECT_GE(buckets[i], buckets[i - 1]);
  EXPECT_EQ(buckets.front(), 1);  // 0.0004 <= 0.0005
  EXPECT_EQ(buckets[ProbeLatencyBounds().size() - 1], 4) << "20 s is above the last bound";
  EXPECT_EQ(buckets.back(), 5);
  EXPECT_EQ(value("backstop_probe_latency_seconds_count", {{"component", "web\"ui"}}), 5);
}

}  // namespace
}  // namespace backstop

// The dashboard and the event stream against a real ApiServer on a free
// loopback port: the page and its assets with their types and a strict
// Content-Security-Policy; /api/v1/events refuses a missing or wrong token,
// delivers events to a reader, and drops a client that does not read
// without holding up the publisher or the other clients.
#include "watch/dashboard.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <regex>
#include <string>
#include <thread>

#include "watch/api.h"
#include "watch/fake_api_backend.h"

namespace backstop {
namespace {

constexpr const char* kToken = "dashboard-test-token-77";

class DashboardTest : public ::testing::Test {
 protected:
  void Start(EventStream::Options events = {}) {
    ApiServer::Options o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.token = kToken;
    o.events = events;
    o.log = [this](const std::string& level, const std::string& msg, nlohmann::json fields) {
      std::lock_guard<std::mutex> lock(log_mu_);
      logs_ += level + " " + msg + " " + fields.dump() + "\n";
    };
    server_ = std::make_unique<ApiServer>(&backend_, o);
    ASSERT_TRUE(server_->Start().ok());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(10);
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  // A raw connection that has sent GET /api/v1/events with `authorization`.
  int OpenStream(const std::string& authorization, int rcvbuf = 0) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_GE(fd, 0);
    if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    std::string req = "GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (!authorization.empty()) req += "Authorization: " + authorization + "\r\n";
    req += "\r\n";
    EXPECT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
    return fd;
  }
  // Reads from `fd` until `text` has arrived (true) or the peer closes or
  // 10 s pass without a byte (false). Everything read is appended to `seen`.
  static bool ReadUntil(int fd, const std::string& text, std::string* seen) {
    char buf[65536];
    while (seen->find(text) == std::string::npos) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 10'000) <= 0) return false;
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return false;
      seen->append(buf, static_cast<size_t>(n));
    }
    return true;
  }

  FakeBackend backend_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<httplib::Client> client_;
  std::mutex log_mu_;
  std::string logs_;
};

TEST_F(DashboardTest, PageAndAssetsWithTypesAndStrictPolicy) {
  Start();
  auto page = client_->Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  const std::string csp = page->get_header_value("Content-Security-Policy");
  EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("unsafe"), std::string::npos) << csp;
  EXPECT_EQ(page->get_header_value("X-Content-Type-Options"), "nosniff");
  // No inline script: every <script> names its source.
  const std::regex inline_script(R"(<script(?![^>]*\bsrc=)[^>]*>)");
  EXPECT_FALSE(std::regex_search(page->body, inline_script)) << page->body;
  // Everything the page refers to is served, with its type.
  const std::regex ref(R"((?:src|href)="(/assets/[^"]+)\")");
  int refs = 0;
  for (std::sregex_iterator it(page->body.begin(), page->body.end(), ref), end; it != end; ++it) {
    const std::string path = (*it)[1];
    auto asset = client_->Get(path.c_str());
    ASSERT_TRUE(asset) << path;
    EXPECT_EQ(asset->status, 200) << path;
    const std::string type = asset->get_header_value("Content-Type");
    if (path.ends_with(".js")) {
      EXPECT_EQ(type, "text/javascript; charset=utf-8") << path;
    } else if (path.ends_with(".css")) {
      EXPECT_EQ(type, "text/css; charset=utf-8") << path;
    }
    EXPECT_EQ(asset->get_header_value("Content-Security-Policy"), csp) << path;
    ++refs;
  }
  EXPECT_GE(refs, 3);
  for (const char* path :
       {"/assets/vendor/preact-htm.js", "/assets/vendor/uplot.js", "/assets/api.js"}) {
    auto asset = client_->Get(path);
    ASSERT_TRUE(asset) << path;
    EXPECT_EQ(asset->status, 200) << path;
    EXPECT_GT(asset->body.size(), 100u) << path;
  }
  auto missing = client_->Get("/assets/no-such-file.js");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST_F(DashboardTest, PlanAndVerifyNeedTheToken) {
  Start();
  const httplib::Headers none;
  const httplib::Headers right = {{"Authorization", std::string("Bearer ") + kToken}};
  for (const char* path : {"/api/v1/plan", "/api/v1/restore-points/rp-1/verify"}) {
    auto refused = client_->Post(path, none, R"({"all": true})", "application/json");
    ASSERT_TRUE(refused) << path;
    EXPECT_EQ(refused->status, 401) << path;
    auto answered = client_->Post(path, right, R"({"all": true})", "application/json");
    ASSERT_TRUE(answered) << path;
    EXPECT_EQ(answered->status, 200) << path;
  }
  EXPECT_EQ(backend_.plans.load(), 1);
  EXPECT_EQ(backend_.verifies.load(), 1);
  auto bad = client_->Post("/api/v1/plan", right, "[1]", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  // Reads need none.
  for (const char* path : {"/api/v1/components", "/api/v1/restore-points"}) {
    auto read = client_->Get(path);
    ASSERT_TRUE(read) << path;
    EXPECT_EQ(read->status, 200) << path;
  }
}

TEST_F(DashboardTest, EventsWithoutTheRightTokenAre401) {
  Start();
  for (const std::string& auth : {std::string(), std::string("Bearer wrong-zzz-token")}) {
    int fd = OpenStream(auth);
    std::string seen;
    ReadUntil(fd, "\r\n\r\n", &seen);
    EXPECT_EQ(seen.rfind("HTTP/1.1 401", 0), 0u) << seen;
    EXPECT_NE(seen.find("WWW-Authenticate: Bearer"), std::string::npos) << seen;
    EXPECT_FALSE(ReadUntil(fd, "never", &seen)) << "the connection is closed";
    ::close(fd);
  }
  EXPECT_EQ(server_->event_stats().clients, 0);
  std::lock_guard<std::mutex> lock(log_mu_);
  EXPECT_NE(logs_.find("refused"), std::string::npos);
  EXPECT_EQ(logs_.find("wrong-zzz-token"), std::string::npos) << "the token is never logged";
}

TEST_F(DashboardTest, EventsReachAReader) {
  Start();
  int fd = OpenStream(std::string("Bearer ") + kToken);
  std::string seen;
  ASSERT_TRUE(ReadUntil(fd, "event: hello\n", &seen)) << seen;
  EXPECT_EQ(seen.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << seen;
  EXPECT_NE(seen.find("Content-Type: text/event-stream"), std::string::npos) << seen;
  server_->Publish("trigger", {{"trigger", "health_check_failures"}, {"to", "pending"}});
  ASSERT_TRUE(ReadUntil(fd, "\"trigger\":\"health_check_failures\"}\n\n", &seen)) << seen;
  EXPECT_NE(seen.find("id: 1\nevent: trigger\ndata: {\"to\":\"pending\","), std::string::npos)
      << seen;
  // The API goes on answering while the stream is open (it holds no worker).
  auto status = client_->Get("/api/v1/status");
  ASSERT_TRUE(status);
  EXPECT_EQ(status->status, 200);
  ::close(fd);
}

TEST_F(DashboardTest, ASlowClientIsDroppedWithoutStallingThePublisherOrOthers) {
  EventStream::Options events;
  events.max_buffered_bytes = 64 << 10;
  Start(events);
  // The slow client never reads; the fast one reads everything on a thread.
  int slow = OpenStream(std::string("Bearer ") + kToken, 4096);
  int fast = OpenStream(std::string("Bearer ") + kToken);
  std::string slow_seen, fast_seen;
  ASSERT_TRUE(ReadUntil(slow, "event: hello\n", &slow_seen));
  ASSERT_TRUE(ReadUntil(fast, "event: hello\n", &fast_seen));
  std::mutex mu;
  std::condition_variable cv;
  int fast_last = -1;  // the last event number the fast client has seen
  bool fast_ok = true;
  std::thread reader([&] {
    std::string buf;
    for (;;) {
      size_t at = buf.find("\n\n");
      while (at == std::string::npos) {
        char chunk[65536];
        pollfd p{fast, POLLIN, 0};
        ssize_t n = ::poll(&p, 1, 10'000) > 0 ? ::recv(fast, chunk, sizeof chunk, 0) : -1;
        if (n <= 0) {
          std::lock_guard<std::mutex> lock(mu);
          fast_ok = false;
          cv.notify_all();
          return;
        }
        buf.append(chunk, static_cast<size_t>(n));
        at = buf.find("\n\n");
      }
      const std::string frame = buf.substr(0, at);
      buf.erase(0, at + 2);
      size_t n = frame.find("\"n\":");
      if (n == std::string::npos) continue;
      const int number = std::stoi(frame.substr(n + 4));
      std::lock_guard<std::mutex> lock(mu);
      fast_last = number;
      cv.notify_all();
      if (number < 0) return;
    }
  });
  // Publish 8 KiB events, each once the fast client has the previous one,
  // until the slow client's kernel buffers and its 64 KiB are full and it is
  // dropped. Every Publish returns: none waits for the slow client.
  const std::string payload(8 << 10, 'x');
  int published = 0;
  for (; published < 20'000 && server_->event_stats().dropped == 0; ++published) {
    server_->Publish("filler", {{"n", published}, {"pad", payload}});
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10),
                            [&] { return fast_last == published || !fast_ok; }));
    ASSERT_TRUE(fast_ok) << "the fast client lost its stream after " << published << " events";
  }
  EXPECT_EQ(server_->event_stats().dropped, 1u) << "only the slow client is dropped";
  server_->Publish("filler", {{"n", -1}});
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return fast_last == -1; }));
  }
  reader.join();
  // The slow client reads what was sent before it was dropped, then the end.
  EXPECT_FALSE(ReadUntil(slow, "\"n\":-1}", &slow_seen)) << "closed before the last event";
  EXPECT_EQ(server_->event_stats().clients, 1);
  ::close(slow);
  ::close(fast);
}

}  // namespace
}  // namespace backstop

// NotifyService against real receivers on loopback: a receiver that hangs
// holds up its own target only; the other target gets every event meanwhile,
// and each event is delivered once to each target.
#include "notify/notify_service.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "notify/notifier.h"
#include "notify/signature.h"
#include "run/state_db.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

// A webhook receiver on loopback that records the event ids it was sent;
// with hang(), every request waits until Release().
class Receiver {
 public:
  explicit Receiver(bool hang) : hang_(hang) {
    server_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::unique_lock<std::mutex> lock(mu_);
      ++requests_;
      cv_.notify_all();
      cv_.wait(lock, [this] { return !hang_ || released_; });
      received_.insert(req.get_header_value(kEventIdHeader));
      cv_.notify_all();
      res.set_content("ok", "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~Receiver() {
    Release();
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  // Waits (at most about 10 s) until `id` was received.
  bool WaitFor(const std::string& id) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return received_.contains(id); });
  }
  // Waits (at most about 10 s) until a request came in.
  bool WaitForARequest() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return requests_ > 0; });
  }
  std::set<std::string> received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  const bool hang_;
  bool released_ = false;
  int requests_ = 0;
  std::set<std::string> received_;
};

NotifySpec Webhook(const std::string& name, const std::string& url) {
  NotifySpec t;
  t.name = name;
  t.type = "webhook";
  t.url = url;
  t.on = {"rollback_finished"};
  return t;
}

TEST(NotifyServiceTest, AHangingReceiverHoldsUpNoOtherTarget) {
  testing::TempDir dir;
  Receiver hanging(/*hang=*/true);
  Receiver good(/*hang=*/false);
  Spec spec;
  spec.environment = "staging";
  spec.state_dir = dir.path();
  spec.base_dir = dir.path();
  spec.notify = {Webhook("good", good.url()), Webhook("hanging", hanging.url())};
  auto db = StateDb::Open(dir.Join("state.db"));
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  std::mutex log_mu;
  std::vector<std::string> lines;
  NotifyLog log = [&](const std::string& level, const std::string& line) {
    std::lock_guard<std::mutex> lock(log_mu);
    lines.push_back(level + " " + line);
  };
  // The targets' cursors start here: what is journaled next is theirs.
  ASSERT_TRUE(Notifier(Env::Default(), spec, nullptr, log).Feed(**db).ok());
  auto journal = [&] {
    Event e;
    e.at_us = Env::Default()->clock()->WallMicros();
    e.kind = EventKind::kRunFinished;
    e.run_id = "run-1";
    e.message = "rollback of api succeeded";
    auto id = (*db)->AppendEvent(e);
    EXPECT_TRUE(id.ok());
    return "staging:" + std::to_string(id.ok() ? *id : 0);
  };
  NotifyOptions options;
  options.total_timeout_ms = 120'000;  // the hanging attempt outlasts the test
  NotifyService service(Env::Default(), spec, log, options);
  ASSERT_TRUE(service.Start(/*poll_ms=*/50).ok());

  const std::string first = journal();
  service.Wake();
  ASSERT_TRUE(good.WaitFor(first));
  ASSERT_TRUE(hanging.WaitForARequest());
  // The hanging receiver holds its attempt; the good one hears of what follows.
  const std::string second = journal();
  const std::string third = journal();
  service.Wake();
  EXPECT_TRUE(good.WaitFor(second));
  EXPECT_TRUE(good.WaitFor(third));
  EXPECT_TRUE(hanging.received().empty());

  hanging.Release();
  EXPECT_TRUE(hanging.WaitFor(third));
  service.Stop();
  EXPECT_EQ(good.received(), (std::set<std::string>{first, second, third}));
  EXPECT_EQ(hanging.received(), (std::set<std::string>{first, second, third}));
  auto rows = (*db)->Deliveries({});
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 6u);
  for (const auto& row : *rows) {
    EXPECT_EQ(row.attempts, 1) << row.target << " " << row.event_id;
    EXPECT_GT(row.delivered_us, 0) << row.target << " " << row.event_id;
  }
}

}  // namespace
}  // namespace backstop

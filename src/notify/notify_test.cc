// Notifications: the payloads (exact JSON), the signature (RFC 4231's
// vector), the retry schedule, the `on:` table, and the queue across a
// restart (the state database reopened).
#include <gtest/gtest.h>

#include <vector>

#include "base/units.h"
#include "notify/notifier.h"
#include "notify/notify_events.h"
#include "notify/payload.h"
#include "notify/retry.h"
#include "notify/signature.h"
#include "run/state_db.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

Event SampleEvent() {
  Event e;
  e.id = 42;
  e.at_us = 1'790'000'000'123'456;  // 2026-09-21T...
  e.kind = EventKind::kRunFinished;
  e.run_id = "run-20260921T120000Z-ab12cd";
  e.component = "api";
  e.message = "rollback of api succeeded";
  e.detail = {{"status", "succeeded"}};
  return e;
}

TEST(NotifyPayload, WebhookIsTheDocumentedSchema) {
  const Event e = SampleEvent();
  const std::string at = FormatRfc3339(e.at_us, true);
  EXPECT_EQ(WebhookPayload("staging", e).dump(),
            std::string(R"({"at":")") + at +
                R"(","component":"api","detail":{"status":"succeeded"},"environment":"staging",)"
                R"("event_id":"staging:42","kind":"run.finished",)"
                R"("message":"rollback of api succeeded","run":"run-20260921T120000Z-ab12cd",)"
                R"("trigger":null,"version":1})");
}

TEST(NotifyPayload, SlackHasHeaderSectionAndContextBlocks) {
  Event e = SampleEvent();
  e.message = "a < b & c";
  const std::string at = FormatRfc3339(e.at_us, false);
  EXPECT_EQ(
      SlackPayload("staging", e).dump(),
      std::string(
          R"({"blocks":[{"text":{"text":"Backstop staging: run.finished","type":"plain_text"},)") +
          R"("type":"header"},{"text":{"text":"a &lt; b &amp; c","type":"mrkdwn"},"type":"section"},)" +
          R"({"elements":[{"text":")" + at +
          R"( · run `run-20260921T120000Z-ab12cd` · component `api` · event staging:42",)" +
          R"("type":"mrkdwn"}],"type":"context"}],)" +
          R"("text":"Backstop [staging] run.finished: a < b & c"})");
}

TEST(NotifyPayload, LogLine) {
  EXPECT_EQ(NotificationLogLine("ops", "staging", SampleEvent()),
            "notify ops: run.finished [staging] rollback of api succeeded "
            "(run run-20260921T120000Z-ab12cd, component api)");
}

TEST(NotifySignature, Rfc4231TestCase2) {
  EXPECT_EQ(HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(SignatureHeaderValue("Jefe", "what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(NotifyRetry, ExponentialCappedWithJitter) {
  RetryPolicy p;  // 5 s doubling, cap 10 min, 8 attempts, jitter 0.5
  std::vector<int64_t> no_jitter;
  for (int a = 1; a <= 9; ++a) no_jitter.push_back(RetryDelayMs(p, a, 0.0));
  EXPECT_EQ(no_jitter, (std::vector<int64_t>{5'000, 10'000, 20'000, 40'000, 80'000, 160'000,
                                             320'000, 600'000, 600'000}));
  EXPECT_EQ(RetryDelayMs(p, 1, 0.5), 3'750);
  EXPECT_EQ(RetryDelayMs(p, 8, 0.999999), 300'000);
  EXPECT_FALSE(RetriesExhausted(p, 7));
  EXPECT_TRUE(RetriesExhausted(p, 8));
}

TEST(NotifyEvents, EveryNameTheSpecAcceptsHasAKind) {
  for (const auto& name : NotifyEventNames()) {
    EXPECT_TRUE(NotifyEventKind(name).has_value()) << name;
  }
  EXPECT_EQ(NotifyEventKind("rollback_started"), EventKind::kRunStarted);
  EXPECT_EQ(NotifyEventKind("decision"), EventKind::kDecision);
  EXPECT_FALSE(NotifyEventKind("run.started").has_value());
}

// Records what would have been sent; fails the first `failures` posts.
class FakeTransport : public Transport {
 public:
  Status Post(const HttpPost& post) override {
    posts.push_back(post);
    if (failures > 0) {
      --failures;
      return Status::Unavailable("HTTP 500");
    }
    return Status::OK();
  }
  Status RunCommand(const std::vector<std::string>& argv, const std::string& stdin_data,
                    int64_t) override {
    commands.push_back(stdin_data);
    return Status::OK();
  }
  std::vector<HttpPost> posts;
  std::vector<std::string> commands;
  int failures = 0;
};

class NotifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_.environment = "staging";
    spec_.state_dir = dir_.path();
    spec_.base_dir = dir_.path();
    NotifySpec hook;
    hook.name = "hook";
    hook.type = "webhook";
    hook.url = "http://127.0.0.1:1/hook?token=secret";
    hook.on = {"rollback_finished", "rollback_failed"};
    spec_.notify.push_back(hook);
    options_.random01 = [] { return 0.0; };
  }
  std::unique_ptr<StateDb> OpenDb() {
    auto db = StateDb::Open(dir_.Join("state.db"));
    EXPECT_TRUE(db.ok()) << db.status().message();
    return std::move(*db);
  }
  int64_t Append(StateDb& db, EventKind kind) {
    Event e = SampleEvent();
    e.kind = kind;
    e.at_us = clock_.WallMicros();
    auto id = db.AppendEvent(e);
    EXPECT_TRUE(id.ok());
    return *id;
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  Env env_ = testing::MakeEnvWithClock(&clock_);
  Spec spec_;
  FakeTransport transport_;
  NotifyOptions options_;
  std::vector<std::string> log_;
  NotifyLog Log() {
    return [this](const std::string& level, const std::string& line) {
      log_.push_back(level + " " + line);
    };
  }
};

TEST_F(NotifierTest, NewTargetStartsAtTheJournalsEndAndFiltersByOn) {
  auto db = OpenDb();
  Append(*db, EventKind::kRunFinished);  // before the target was first seen
  Notifier notifier(&env_, spec_, &transport_, Log(), options_);
  ASSERT_TRUE(notifier.Feed(*db).ok());
  const int64_t wanted = Append(*db, EventKind::kRunFinished);
  Append(*db, EventKind::kRunStarted);  // not in `on`
  ASSERT_TRUE(notifier.Feed(*db).ok());
  ASSERT_TRUE(notifier.Feed(*db).ok());  // idempotent
  auto all = db->Deliveries({});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ(all->front().event_id, wanted);
  EXPECT_EQ(all->front().target, "hook");
}

TEST_F(NotifierTest, RetriesWithBackoffAndIsNotSentAgainAfterARestart) {
  int64_t id = 0;
  {
    auto db = OpenDb();
    Notifier notifier(&env_, spec_, &transport_, Log(), options_);
    ASSERT_TRUE(notifier.Feed(*db).ok());
    id = Append(*db, EventKind::kRunFailed);
    ASSERT_TRUE(notifier.Feed(*db).ok());
    transport_.failures = 1;
    ASSERT_EQ(*notifier.DeliverDue(*db), 1);  // HTTP 500
    ASSERT_EQ(*notifier.DeliverDue(*db), 0);  // not due for 5 s
    auto rows = db->Deliveries({});
    ASSERT_EQ(rows->size(), 1u);
    EXPECT_EQ(rows->front().attempts, 1);
    EXPECT_EQ(rows->front().last_error, "HTTP 500");
    EXPECT_EQ(rows->front().next_attempt_us, clock_.WallMicros() + 5'000'000);
  }
  // Backstop restarts: the queue is on disk.
  clock_.AdvanceMs(5'000);
  {
    auto db = OpenDb();
    Notifier notifier(&env_, spec_, &transport_, Log(), options_);
    ASSERT_TRUE(notifier.Feed(*db).ok());
    ASSERT_EQ(*notifier.DeliverDue(*db), 1);
    auto rows = db->Deliveries({});
    EXPECT_EQ(rows->front().attempts, 2);
    EXPECT_EQ(rows->front().delivered_us, clock_.WallMicros());
  }
  {
    auto db = OpenDb();
    Notifier notifier(&env_, spec_, &transport_, Log(), options_);
    ASSERT_TRUE(notifier.Feed(*db).ok());
    clock_.AdvanceMs(3'600'000);
    ASSERT_EQ(*notifier.DeliverDue(*db), 0);  // delivered once, never again
  }
  ASSERT_EQ(transport_.posts.size(), 2u);
  const HttpPost& post = transport_.posts.back();
  EXPECT_EQ(post.connect_timeout_ms, 5'000);
  EXPECT_EQ(post.total_timeout_ms, 10'000);
  bool has_id = false;
  for (const auto& [name, value] : post.headers) {
    if (name == kEventIdHeader) has_id = value == "staging:" + std::to_string(id);
  }
  EXPECT_TRUE(has_id);
  for (const auto& line : log_) EXPECT_EQ(line.find("token=secret"), std::string::npos) << line;
}

TEST_F(NotifierTest, GivesUpAfterTheLastAttempt) {
  options_.retry.max_attempts = 2;
  auto db = OpenDb();
  Notifier notifier(&env_, spec_, &transport_, Log(), options_);
  ASSERT_TRUE(notifier.Feed(*db).ok());
  Append(*db, EventKind::kRunFailed);
  ASSERT_TRUE(notifier.Feed(*db).ok());
  transport_.failures = 5;
  ASSERT_EQ(*notifier.DeliverDue(*db), 1);
  clock_.AdvanceMs(5'000);
  ASSERT_EQ(*notifier.DeliverDue(*db), 1);
  clock_.AdvanceMs(3'600'000);
  ASSERT_EQ(*notifier.DeliverDue(*db), 0);
  auto rows = db->Deliveries({});
  EXPECT_GT(rows->front().failed_us, 0);
  ASSERT_FALSE(log_.empty());
  EXPECT_EQ(log_.back().rfind("error notify hook: gave up on run.failed", 0), 0u) << log_.back();
}

TEST_F(NotifierTest, SignsTheBodyWithTheKeyFromAFile) {
  testing::WriteFileOrDie(dir_.Join("hook.key"), "Jefe\n", 0600);
  spec_.notify[0].secret_file = "hook.key";
  auto db = OpenDb();
  Notifier notifier(&env_, spec_, &transport_, Log(), options_);
  ASSERT_TRUE(notifier.Feed(*db).ok());
  Append(*db, EventKind::kRunFinished);
  ASSERT_TRUE(notifier.Feed(*db).ok());
  ASSERT_EQ(*notifier.DeliverDue(*db), 1);
  ASSERT_EQ(transport_.posts.size(), 1u);
  std::string signature;
  for (const auto& [name, value] : transport_.posts[0].headers) {
    if (name == kSignatureHeader) signature = value;
  }
  EXPECT_EQ(signature, SignatureHeaderValue("Jefe", transport_.posts[0].body));
}

}  // namespace
}  // namespace backstop

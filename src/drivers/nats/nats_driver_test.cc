// Integration tests of the nats driver against a real nats-server with
// JetStream (src/testing/nats_server.h), started per test on free loopback ports.
#include "drivers/nats/nats_driver.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "spec/spec.h"
#include "store/store.h"
#include "testing/nats_server.h"
#include "testing/test_env.h"

namespace backstop::nats {
namespace {

using nlohmann::json;
using testing::FakeClock;
using testing::NatsServer;
using testing::NatsTestClient;
using testing::NatsTestMessage;
using testing::TempDir;

#define ASSERT_OK(expr)                                     \
  do {                                                      \
    const ::backstop::Status _s = (expr);                   \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s.ToString(); \
  } while (0)

// The value, or a test failure: the exception ends the test (GoogleTest
// catches it) and still runs the destructors that stop the server.
template <typename T>
T ValueOrDie(Result<T> r) {
  if (!r.ok()) throw std::runtime_error(r.status().ToString());
  return std::move(r).value();
}

std::vector<json> ReadJsonl(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(json::parse(line));
  }
  return out;
}

json StreamInfo(NatsTestClient& client, const std::string& stream) {
  return json::parse(ValueOrDie(client.RawRequest("$JS.API.STREAM.INFO." + stream, "")));
}

json ConsumerInfo(NatsTestClient& client, const std::string& stream, const std::string& name) {
  return json::parse(
      ValueOrDie(client.RawRequest("$JS.API.CONSUMER.INFO." + stream + "." + name, "")));
}

class NatsDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = NatsServer::Start();
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    client_ = ValueOrDie(NatsTestClient::Connect(server_->url()));
    env_ = std::make_unique<Env>(testing::MakeEnvWithClock(&clock_));
    store_ = ValueOrDie(Store::Open(Env::Default(), dir_.Join("store")));
    component_.name = "bus";
    component_.kind = ComponentKind::kStream;
    component_.driver = "nats";
    component_.settings = {{"url", server_->url()},
                           {"monitor", server_->monitor_url()},
                           {"streams", {"ORDERS"}},
                           {"connect_timeout", 2000},
                           {"request_timeout", 5000},
                           // Small chunks: many of them, as with a large stream.
                           {"chunk_size", 4096}};
    ctx_ = MakeContext("run-1");
  }

  DriverContext MakeContext(const std::string& run_id) {
    DriverContext ctx(*Env::Default());
    ctx.store = store_.get();
    ctx.state_dir = dir_.Join("state");
    ctx.run_id = run_id;
    ctx.run_dir = JoinPath(JoinPath(ctx.state_dir, "runs"), run_id);
    ctx.progress = [this](const std::string& line) { progress_.push_back(line); };
    return ctx;
  }

  // ORDERS with 200 messages on two subjects, message 5 deleted, and a durable
  // consumer "worker" that has acked the first 50 (sequences 1..51).
  void MakeOrders() {
    ASSERT_OK(client_->AddStream("ORDERS", {"orders.>"}));
    for (int i = 1; i <= 200; ++i) {
      std::string subject = i % 3 == 0 ? "orders.paid" : "orders.new";
      auto seq = client_->Publish(subject, "order-" + std::to_string(i));
      ASSERT_TRUE(seq.ok()) << seq.status().ToString();
      ASSERT_EQ(*seq, static_cast<uint64_t>(i));
    }
    ASSERT_OK(client_->DeleteMessage("ORDERS", 5));
    ASSERT_OK(client_->AddDurablePullConsumer("ORDERS", "worker", "", "ships orders"));
    ASSERT_OK(client_->FetchAndAck("ORDERS", "worker", 50));
  }

  bool ProgressContains(const std::string& text) const {
    for (const auto& line : progress_) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }

  TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<Env> env_;
  std::unique_ptr<NatsServer> server_;
  std::unique_ptr<NatsTestClient> client_;
  std::unique_ptr<Store> store_;
  ComponentSpec component_;
  DriverContext ctx_{*Env::Default()};
  std::vector<std::string> progress_;
  NatsDriver driver_;
};

TEST_F(NatsDriverTest, RegistryKnowsTheDriver) {
  const DriverInfo* info = DriverRegistry::Global().Find("nats");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->kinds, std::vector<std::string>{"stream"});
  bool url_required = false;
  for (const auto& s : info->settings) {
    if (s.key == "url") url_required = s.required;
  }
  EXPECT_TRUE(url_required);
  auto created = DriverRegistry::Global().Create("nats");
  ASSERT_TRUE(created.ok());
}

TEST_F(NatsDriverTest, SnapshotRecordsPositionConsumersAndBlob) {
  MakeOrders();
  json entry = ValueOrDie(driver_.Snapshot(component_, ctx_));
  const json& rec = entry["streams"]["ORDERS"];
  EXPECT_EQ(rec["position"]["last_seq"], 200);
  EXPECT_EQ(rec["position"]["first_seq"], 1);
  EXPECT_EQ(rec["position"]["messages"], 199);
  EXPECT_GT(rec["position"]["bytes"].get<uint64_t>(), 0u);
  ASSERT_TRUE(rec["consumers"].contains("worker"));
  EXPECT_EQ(rec["consumers"]["worker"]["ack_floor"]["stream_seq"], 51);
  EXPECT_EQ(rec["consumers"]["worker"]["config"]["description"], "ships orders");
  // The snapshot and the index of its messages (sequence and digest).
  ASSERT_EQ(entry["blobs"].size(), 2u);
  EXPECT_EQ(entry["blobs"][0], rec["blob"]);
  EXPECT_EQ(entry["blobs"][1], rec["index_blob"]);
  EXPECT_TRUE(store_->Has(rec["index_blob"].get<std::string>()));
  EXPECT_TRUE(store_->Has(rec["blob"].get<std::string>()));
  EXPECT_EQ(store_->SizeOf(rec["blob"].get<std::string>()).value(),
            rec["snapshot_bytes"].get<uint64_t>());
  // Several 4 KiB chunks were needed: the transfer loop really ran.
  EXPECT_GT(rec["snapshot_bytes"].get<uint64_t>(), 4096u);

  json described = ValueOrDie(driver_.Describe(component_, ctx_));
  EXPECT_EQ(described["streams"]["ORDERS"]["last_seq"], 200);
  EXPECT_EQ(described["streams"]["ORDERS"]["consumers"], json::array({"worker"}));
}

TEST_F(NatsDriverTest, SnapshotOfMissingStreamNamesIt) {
  auto entry = driver_.Snapshot(component_, ctx_);
  ASSERT_FALSE(entry.ok());
  EXPECT_TRUE(entry.status().IsNotFound());
  EXPECT_NE(entry.status().message().find("ORDERS"), std::string::npos);
  EXPECT_NE(entry.status().message().find("$JS.API.STREAM.INFO.ORDERS"), std::string::npos);
  EXPECT_NE(entry.status().message().find("stream not found"), std::string::npos);
}

TEST_F(NatsDriverTest, RestorePreservesSequencesAndConsumersAndSavesCurrentContent) {
  MakeOrders();
  NatsTestMessage m17 = ValueOrDie(client_->GetMessage("ORDERS", 17));
  json entry = ValueOrDie(driver_.Snapshot(component_, ctx_));

  // The bad deploy: 30 more messages, the worker acks 20 more, a new consumer.
  ASSERT_OK(client_->PublishMany("orders.bad", 30, 16, "bad"));
  ASSERT_OK(client_->FetchAndAck("ORDERS", "worker", 20));
  ASSERT_OK(client_->AddDurablePullConsumer("ORDERS", "late", "", ""));
  ASSERT_EQ(StreamInfo(*client_, "ORDERS")["state"]["last_seq"], 230);

  ASSERT_OK(driver_.Restore(component_, entry, ctx_));

  json info = StreamInfo(*client_, "ORDERS");
  EXPECT_EQ(info["state"]["first_seq"], 1);
  EXPECT_EQ(info["state"]["last_seq"], 200);
  EXPECT_EQ(info["state"]["messages"], 199);
  NatsTestMessage again = ValueOrDie(client_->GetMessage("ORDERS", 17));
  EXPECT_EQ(again.subject, m17.subject);
  EXPECT_EQ(again.data, m17.data);
  EXPECT_FALSE(client_->GetMessage("ORDERS", 5).ok()) << "the deleted message came back";
  EXPECT_FALSE(client_->GetMessage("ORDERS", 201).ok()) << "a message after the restore point";

  json worker = ConsumerInfo(*client_, "ORDERS", "worker");
  ASSERT_FALSE(worker.contains("error")) << worker.dump();
  EXPECT_EQ(worker["ack_floor"]["stream_seq"], 51);
  EXPECT_EQ(worker["config"]["description"], "ships orders");
  EXPECT_EQ(worker["config"]["ack_policy"], "explicit");
  json late = ConsumerInfo(*client_, "ORDERS", "late");
  EXPECT_TRUE(late.contains("error")) << "a consumer made after the restore point survived";

  ASSERT_OK(driver_.VerifyRestored(component_, entry, ctx_));
  auto checks = ValueOrDie(driver_.CheckIntegrity(component_, entry, ctx_));
  ASSERT_GE(checks.size(), 4u);
  for (const auto& c : checks) EXPECT_TRUE(c.passed) << c.name << ": " << c.detail;

  // The content the rollback replaced is in the store, recorded for the run.
  std::string saved_path = NatsDriver::SavedRecordPath(ctx_.run_dir, "bus");
  json saved = json::parse(ValueOrDie(Env::Default()->fs()->ReadFile(saved_path)));
  const json& before = saved["streams"]["ORDERS"];
  EXPECT_TRUE(before["existed"].get<bool>());
  EXPECT_EQ(before["position"]["last_seq"], 230);
  EXPECT_TRUE(store_->Has(before["blob"].get<std::string>()));
  EXPECT_EQ(before["consumers"]["worker"]["ack_floor"]["stream_seq"], 71);

  // Prune removes the record.
  ASSERT_OK(driver_.Prune(component_, "run-1", ctx_));
  EXPECT_FALSE(Env::Default()->fs()->Exists(saved_path));
}

TEST_F(NatsDriverTest, RestoreTwiceWithTheSameRunIdDoesNothingTheSecondTime) {
  MakeOrders();
  json entry = ValueOrDie(driver_.Snapshot(component_, ctx_));
  ASSERT_OK(client_->PublishMany("orders.bad", 10, 16));
  ASSERT_OK(driver_.Restore(component_, entry, ctx_));
  std::string saved_path = NatsDriver::SavedRecordPath(ctx_.run_dir, "bus");
  std::string saved_first = ValueOrDie(Env::Default()->fs()->ReadFile(saved_path));

  progress_.clear();
  NatsDriver fresh;  // as after a crash: a new process
  ASSERT_OK(fresh.Restore(component_, entry, ctx_));
  EXPECT_TRUE(ProgressContains("already restored")) << "progress: " << progress_.size();
  EXPECT_FALSE(ProgressContains("deleting stream"));
  EXPECT_EQ(ValueOrDie(Env::Default()->fs()->ReadFile(saved_path)), saved_first)
      << "the saved record was replaced by a snapshot of the restored stream";
  EXPECT_EQ(StreamInfo(*client_, "ORDERS")["state"]["last_seq"], 200);
}

TEST_F(NatsDriverTest, ResumeAfterCrashBetweenDeleteAndRestoreUsesTheSavedRecord) {
  MakeOrders();
  json entry = ValueOrDie(driver_.Snapshot(component_, ctx_));
  ASSERT_OK(client_->PublishMany("orders.bad", 10, 16));

  // First attempt fails half-way (transfer cut short): the saved content is put back.
  RestoreHooks cut;
  cut.truncate_after_chunks = 1;
  driver_.SetRestoreHooksForTest(cut);
  Status failed = driver_.Restore(component_, entry, ctx_);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(StreamInfo(*client_, "ORDERS")["state"]["last_seq"], 210);
  std::string saved_path = NatsDriver::SavedRecordPath(ctx_.run_dir, "bus");
  std::string saved_first = ValueOrDie(Env::Default()->fs()->ReadFile(saved_path));

  // A crash right after step 2 (stream deleted, nothing restored yet).
  ASSERT_OK(client_->DeleteStream("ORDERS"));
  NatsDriver resumed;
  ASSERT_OK(resumed.Restore(component_, entry, ctx_));
  EXPECT_EQ(StreamInfo(*client_, "ORDERS")["state"]["last_seq"], 200);
  json saved = json::parse(ValueOrDie(Env::Default()->fs()->ReadFile(saved_path)));
  EXPECT_EQ(saved["streams"]["ORDERS"]["blob"],
            json::parse(saved_first)["streams"]["ORDERS"]["blob"]);
  EXPECT_EQ(saved["streams"]["ORDERS"]["position"]["last_seq"], 210);
  EXPECT_EQ(saved["streams"]["ORDERS"]["restored"], true);
}

// A kill between deleting the stream and restoring it: the resumed run takes
// the ledger again, finds no stream, and must still list what the first
// attempt's ledger listed (those messages now exist only in the saved content).
TEST_F(NatsDriverTest, ResumeAfterCrashBetweenDeleteAndRestoreKeepsTheLedger) {
  MakeOrders();
  json entry = ValueOrDie(driver_.Snapshot(component_, ctx_));
  ASSERT_OK(client_->PublishMany("orders.bad", 10, 16));
  std::string ledger_path = JoinPath(ctx_.run_dir, "ledger-bus.jsonl");
  DataLossReport first = ValueOrDie(driver_.AssessLoss(component_, entry, ctx_));
  EXPECT_EQ(first.TotalMessages(), 10u);
  std::vector<json> lines_first = ReadJsonl(ledger_path);
  ASSERT_EQ(lines_first.size(), 10u);

  // The save is recorded, then the process dies right after the delete.
  RestoreHooks cut;
  cut.truncate_after_chunks = 1;
  driver_.SetRestoreHooksForTest(cut);
  ASSERT_FALSE(driver_.Restore(component_, entry, ctx_).ok());
  ASSERT_OK(client_->DeleteStream("ORDERS"));

  NatsDriver resumed;
  DataLossReport again = ValueOrDie(resumed.AssessLoss(component_, entry, ctx_));
  EXPECT_EQ(again.TotalMessages(), 10u);
  EXPECT_EQ(again.ledger_files, std::vector<std::string>{ledger_path});
  EXPECT_EQ(ReadJsonl(ledger_path), lines_first);
  ASSERT_OK(resumed.Restore(component_, entry, ctx_));
  EXPECT_EQ(StreamInfo(*client_, "ORDERS")["state"]["last_seq"], 200);
  EXPECT_EQ(ReadJsonl(ledger_path), lines_first);
}

// A kill right after the save, when the live stream has the target's
// position but other content: the resumed restore must not take it for
// already restored.
TEST_F(NatsDriverTest, ResumeAfterSaveOfADivergedStreamOfEqualLengthRestoresIt) {
  MakeOrders();
  json before = ValueOrDie(driver_.Snapshot(component_, ctx_));
  ASSERT_OK(client_->PublishMany("orders.more", 10, 16, "target"));
  DriverContext snap2 = MakeContext("snap-2");
  json target = ValueOrDie(driver_.Snapshot(component_, snap2));
  ASSERT_OK(driver_.Restore(component_, before, ctx_));
  ASSERT_OK(client_->PublishMany("orders.more", 10, 16, "other"));
  ASSERT_EQ(StreamInfo(*client_, "ORDERS")["state"]["last_seq"], 210);

  DriverContext undo = MakeContext("run-2");
  NatsDriver first;
  DataLossReport loss = ValueOrDie(first.AssessLoss(component_, target, undo));
  EXPECT_EQ(loss.items[0].inserted, 10u);
  first.SetAfterSaveHookForTest([](const std::string&) { throw std::runtime_error("killed"); });
  EXPECT_THROW((void)first.Restore(component_, target, undo), std::runtime_error);

  NatsDriver resumed;
  ASSERT_OK(resumed.Restore(component_, target, undo));
  NatsTestMessage m = ValueOrDie(client_->GetMessage("ORDERS", 205));
  EXPECT_EQ(m.data.substr(0, 6), "target");
}

// Undoing into a longer target: killed after the save, then a message
// arrives (sequence 201, not the target's) before the resume: the resumed
// run lists it, from where the first ledger stopped.
TEST_F(NatsDriverTest, ResumeListsMessagesPublishedAfterTheSaveOfAPrefixStream) {
  MakeOrders();
  json before = ValueOrDie(driver_.Snapshot(component_, ctx_));
  ASSERT_OK(client_->PublishMany("orders.more", 10, 16, "target"));
  DriverContext snap2 = MakeContext("snap-2");
  json target = ValueOrDie(driver_.Snapshot(component_, snap2));
  ASSERT_OK(driver_.Restore(component_, before, ctx_));

  DriverContext undo = MakeContext("run-2");
  NatsDriver first;
  EXPECT_EQ(ValueOrDie(first.AssessLoss(component_, target, undo)).TotalMessages(), 0u);
  first.SetAfterSaveHookForTest([](const std::string&) { throw std::runtime_error("killed"); });
  EXPECT_THROW((void)first.Restore(component_, target, undo), std::runtime_error);
  ASSERT_EQ(ValueOrDie(client_->Publish("orders.late", "late")), 201u);

  NatsDriver resumed;
  ValueOrDie(resumed.AssessLoss(component_, target, undo));
  ASSERT_OK(resumed.Restore(component_, target, undo));
  auto revised = resumed.LossRevisedByRestore(component_);
  ASSERT_TRUE(revised.has_value());
  EXPECT_EQ(revised->TotalMessages(), 1u);
  std::vector<uint64_t> listed;
  for (const auto& l : ReadJsonl(JoinPath(undo.run_dir, "ledger-bus.jsonl"))) {
    if (l["event"] == "published") listed.push_back(l["sequence"].get<uint64_t>());
  }
  EXPECT_EQ(listed, std::vector<uint64_t>{201});
}

TEST_F(NatsDriverTest, CorruptSnapshotRejectedByServerLeavesOriginalStream) {
  MakeOrders();
  json entry = ValueOrDie(driver_.Snapshot(component_, ctx_));
  ASSERT_OK(client_->PublishMany("orders.bad", 30, 16, "bad"));
  NatsTestMessage m220 = ValueOrDie(client_->GetMessage("ORDERS", 220));

  // A snapshot whose bytes are damaged in the middle, stored as a valid blob
  // so that only the server can notice.
  std::string digest = entry["streams"]["ORDERS"]["blob"].get<std::string>();
  std::string bytes = ValueOrDie(store_->Get(digest));
  ASSERT_GT(bytes.size(), 1000u);
  for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 64; ++i) bytes[i] ^= 0x5a;
  std::string broken = ValueOrDie(store_->Put(bytes));
  json bad_entry = entry;
  bad_entry["streams"]["ORDERS"]["blob"] = broken;
  bad_entry["blobs"] = json::array({broken});

  Status st = driver_.Restore(component_, bad_entry, ctx_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("ORDERS"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("$JS.API.STREAM.RESTORE.ORDERS"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("previous content is back"), std::string::npos) << st.message();

  json info = StreamInfo(*client_, "ORDERS");
  EXPECT_EQ(info["state"]["last_seq"], 230);
  EXPECT_EQ(info["state"]["messages"], 229);
  NatsTestMessage back = ValueOrDie(client_->GetMessage("ORDERS", 220));
  EXPECT_EQ(back.subject, m220.subject);
  EXPECT_EQ(back.data, m220.data);
  json worker = ConsumerInfo(*client_, "ORDERS", "worker");
  EXPECT_EQ(worker["ack_floor"]["stream_seq"], 51);

  // The good restore point still works afterwards, in the same run.
  ASSERT_OK(driver_.Restore(component_, entry, ctx_));
  EXPECT_EQ(StreamInfo(*client_, "ORDERS")["state"]["last_seq"], 200);
}

TEST_F(NatsDriverTest, TruncatedTransferLeavesOriginalStream) {
  MakeOrders();
  json entry = ValueOrDie(driver_.Snapshot(component_, ctx_));
  ASSERT_OK(client_->PublishMany("orders.bad", 30, 16, "bad"));
  RestoreHooks cut;
  cut.truncate_after_chunks = 1;
  driver_.SetRestoreHooksForTest(cut);
  Status st = driver_.Restore(component_, entry, ctx_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("previous content is back"), std::string::npos) << st.message();
  json info = StreamInfo(*client_, "ORDERS");
  EXPECT_EQ(info["state"]["last_seq"], 230);
  EXPECT_EQ(info["state"]["messages"], 229);
  EXPECT_EQ(ValueOrDie(client_->GetMessage("ORDERS", 230)).data.substr(0, 6), "bad-29");
}

TEST_F(NatsDriverTest, VerificationFailureAfterRestoreRemovesItAndPutsOriginalBack) {
  MakeOrders();
  json entry = ValueOrDie(driver_.Snapshot(component_, ctx_));
  ASSERT_OK(client_->PublishMany("orders.bad", 30, 16, "bad"));
  // The server accepts the snapshot, but the result does not match what the
  // entry promises: the restored stream must not stay.
  json wrong = entry;
  wrong["streams"]["ORDERS"]["position"]["last_seq"] = 199;
  Status st = driver_.Restore(component_, wrong, ctx_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("expected 199 messages, sequences 1..199, found 199 messages, "
                              "sequences 1..200"),
            std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("previous content is back"), std::string::npos) << st.message();
  json info = StreamInfo(*client_, "ORDERS");
  EXPECT_EQ(info["state"]["last_seq"], 230);
  EXPECT_EQ(info["state"]["messages"], 229);
}

TEST_F(NatsDriverTest, RestoreOfAStreamDeletedSinceTheRestorePoint) {
  MakeOrders();
  json entry = ValueOrDie(driver_.Snapshot(component_, ctx_));
  ASSERT_OK(client_->DeleteStream("ORDERS"));
  DataLossReport loss = ValueOrDie(driver_.AssessLoss(component_, entry, ctx_));
  EXPECT_EQ(loss.TotalMessages(), 0u);
  ASSERT_OK(driver_.Restore(component_, entry, ctx_));
  EXPECT_EQ(StreamInfo(*client_, "ORDERS")["state"]["last_seq"], 200);
  json saved = json::parse(
      ValueOrDie(Env::Default()->fs()->ReadFile(NatsDriver::SavedRecordPath(ctx_.run_dir, "bus"))));
  EXPECT_FALSE(saved["streams"]["ORDERS"]["existed"].get<bool>());
}

TEST_F(NatsDriverTest, LedgerListsExactlyTheMessagesAfterTheRestorePoint) {
  MakeOrders();
  json entry = ValueOrDie(driver_.Snapshot(component_, ctx_));
  std::string ledger_path = JoinPath(ctx_.run_dir, "ledger-bus.jsonl");

  DataLossReport none = ValueOrDie(driver_.AssessLoss(component_, entry, ctx_));
  ASSERT_EQ(none.items.size(), 1u);
  EXPECT_EQ(none.items[0].total(), 0u);
  EXPECT_EQ(none.TotalMessages(), 0u);
  EXPECT_TRUE(none.ledger_files.empty());
  EXPECT_TRUE(ReadJsonl(ledger_path).empty());

  std::vector<std::pair<uint64_t, std::string>> published;
  for (int i = 0; i < 7; ++i) {
    std::string subject = i % 2 ? "orders.refund" : "orders.new";
    published.emplace_back(ValueOrDie(client_->Publish(subject, "late-" + std::to_string(i))),
                           subject);
  }
  // One of the new messages is deleted again: it is not in the stream, so the
  // rollback cannot lose it.
  ASSERT_OK(client_->DeleteMessage("ORDERS", published[3].first));
  published.erase(published.begin() + 3);
  // Two of the restore point's messages are gone too (first_seq moves past 1).
  ASSERT_OK(client_->DeleteMessage("ORDERS", 1));
  ASSERT_OK(client_->DeleteMessage("ORDERS", 2));

  DataLossReport loss = ValueOrDie(driver_.AssessLoss(component_, entry, ctx_));
  ASSERT_EQ(loss.items.size(), 1u);
  EXPECT_EQ(loss.items[0].object, "ORDERS");
  EXPECT_EQ(loss.items[0].unit, "messages");
  EXPECT_EQ(loss.items[0].inserted, 6u);
  EXPECT_EQ(loss.items[0].deleted, 2u);
  ASSERT_EQ(loss.ledger_files, std::vector<std::string>{ledger_path});

  std::vector<json> lines = ReadJsonl(ledger_path);
  std::vector<std::pair<uint64_t, std::string>> listed;
  json deleted_line;
  for (const auto& l : lines) {
    EXPECT_EQ(l["stream"], "ORDERS");
    if (l["event"] == "published") {
      listed.emplace_back(l["sequence"].get<uint64_t>(), l["subject"].get<std::string>());
      EXPECT_EQ(l["size"], 6);  // "late-N"
      EXPECT_FALSE(l["time"].get<std::string>().empty());
    } else {
      deleted_line = l;
    }
  }
  EXPECT_EQ(listed, published);
  EXPECT_EQ(deleted_line["event"], "deleted");
  EXPECT_EQ(deleted_line["count"], 2);
  EXPECT_EQ(deleted_line["first_seq_now"], 3);
  // The ledger and the discarded messages are private, whatever the umask.
  for (const std::string& path :
       {ledger_path, NatsDriver::DiscardedPath(ctx_.run_dir, component_.name)}) {
    struct stat st;
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << path;
  }
}

TEST_F(NatsDriverTest, MessagesPublishedAfterTheLedgerOrTheSaveAreListedAndSaved) {
  MakeOrders();
  json entry = ValueOrDie(driver_.Snapshot(component_, ctx_));
  std::string ledger_path = JoinPath(ctx_.run_dir, "ledger-bus.jsonl");
  ASSERT_OK(client_->Publish("orders.new", "before-ledger").status());  // 201

  DataLossReport loss = ValueOrDie(driver_.AssessLoss(component_, entry, ctx_));
  EXPECT_EQ(loss.items[0].inserted, 1u);
  // After the ledger, before the rollback saves the stream: 202.
  ASSERT_OK(client_->Publish("orders.late", "after-ledger").status());
  // After the save, before the stream is deleted: 203 (the stream is saved again).
  int hook_calls = 0;
  driver_.SetAfterSaveHookForTest([&](const std::string&) {
    if (hook_calls++ == 0) ASSERT_OK(client_->Publish("orders.late", "after-save").status());
  });
  ASSERT_OK(driver_.Restore(component_, entry, ctx_));
  EXPECT_EQ(hook_calls, 1);
  EXPECT_TRUE(ProgressContains("saving it again")) << ::testing::PrintToString(progress_);

  auto revised = driver_.LossRevisedByRestore(component_);
  ASSERT_TRUE(revised.has_value());
  EXPECT_EQ(revised->items[0].inserted, 3u);
  std::vector<uint64_t> listed;
  for (const auto& l : ReadJsonl(ledger_path)) {
    if (l["event"] == "published") listed.push_back(l["sequence"].get<uint64_t>());
  }
  EXPECT_EQ(listed, (std::vector<uint64_t>{201, 202, 203}));

  // The saved content holds every one of them.
  json saved = json::parse(
      ValueOrDie(Env::Default()->fs()->ReadFile(NatsDriver::SavedRecordPath(ctx_.run_dir, "bus"))));
  EXPECT_EQ(saved["streams"]["ORDERS"]["position"]["last_seq"], 203);

  // A resumed restore step takes the ledger again: the stream is already
  // restored, so its lines are kept, not lost.
  DataLossReport again = ValueOrDie(driver_.AssessLoss(component_, entry, ctx_));
  EXPECT_EQ(again.items[0].inserted, 3u);
  std::vector<uint64_t> relisted;
  for (const auto& l : ReadJsonl(ledger_path)) {
    if (l["event"] == "published") relisted.push_back(l["sequence"].get<uint64_t>());
  }
  EXPECT_EQ(relisted, listed);
}

TEST_F(NatsDriverTest, ConsumerAckFloorsMovedBackAreListedAsRewinds) {
  MakeOrders();
  json entry = ValueOrDie(driver_.Snapshot(component_, ctx_));
  uint64_t floor_then = ConsumerInfo(*client_, "ORDERS", "worker")["ack_floor"]["stream_seq"];
  ASSERT_OK(client_->FetchAndAck("ORDERS", "worker", 30));
  uint64_t floor_now = ConsumerInfo(*client_, "ORDERS", "worker")["ack_floor"]["stream_seq"];
  ASSERT_EQ(floor_now, floor_then + 30);
  std::string ledger_path = JoinPath(ctx_.run_dir, "ledger-bus.jsonl");

  DataLossReport loss = ValueOrDie(driver_.AssessLoss(component_, entry, ctx_));
  EXPECT_EQ(loss.TotalMessages(), 0u);
  ASSERT_EQ(loss.rewinds.size(), 1u);
  EXPECT_EQ(loss.rewinds[0].component, "bus");
  EXPECT_EQ(loss.rewinds[0].object, "ORDERS/worker");
  EXPECT_EQ(loss.rewinds[0].unit, "messages redelivered");
  EXPECT_EQ(loss.rewinds[0].count(), 30u);
  EXPECT_NE(loss.Summary().find("30 messages redelivered by ORDERS/worker"), std::string::npos)
      << loss.Summary();
  std::vector<json> lines = ReadJsonl(ledger_path);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["event"], "rewound");
  EXPECT_EQ(lines[0]["consumer"], "worker");
  EXPECT_EQ(lines[0]["count"], 30);
  EXPECT_EQ(loss.ledger_files, std::vector<std::string>{ledger_path});

  // Restored, then the ledger taken again by a resumed step: the rewind stays.
  ASSERT_OK(driver_.Restore(component_, entry, ctx_));
  EXPECT_EQ(ConsumerInfo(*client_, "ORDERS", "worker")["ack_floor"]["stream_seq"], floor_then);
  NatsDriver resumed;
  DataLossReport again = ValueOrDie(resumed.AssessLoss(component_, entry, ctx_));
  ASSERT_EQ(again.rewinds.size(), 1u);
  EXPECT_EQ(again.rewinds[0].count(), 30u);
  EXPECT_EQ(ReadJsonl(ledger_path), lines);
}

TEST_F(NatsDriverTest, LedgerOfARecreatedStreamCountsEverything) {
  MakeOrders();
  json entry = ValueOrDie(driver_.Snapshot(component_, ctx_));
  ASSERT_OK(client_->DeleteStream("ORDERS"));
  ASSERT_OK(client_->AddStream("ORDERS", {"orders.>"}));
  ASSERT_OK(client_->PublishMany("orders.new", 3, 8));
  DataLossReport loss = ValueOrDie(driver_.AssessLoss(component_, entry, ctx_));
  ASSERT_EQ(loss.items.size(), 1u);
  // Every live message differs from the restore point's at its sequence.
  EXPECT_EQ(loss.items[0].inserted, 3u);
  // Sequences 1..3 of the restore point are no longer held; those past the
  // live stream's end come back without anything being discarded.
  EXPECT_EQ(loss.items[0].deleted, 3u);
}

// Undoing a rollback: the target (here the content before it) holds MORE
// messages than live, and live is an exact prefix of it: nothing is
// discarded, whatever the sequences say.
TEST_F(NatsDriverTest, LiveStreamThatIsAPrefixOfTheTargetDiscardsNothing) {
  MakeOrders();
  json before = ValueOrDie(driver_.Snapshot(component_, ctx_));
  ASSERT_OK(client_->PublishMany("orders.more", 40, 16, "more"));
  DriverContext snap2 = MakeContext("snap-2");
  json longer = ValueOrDie(driver_.Snapshot(component_, snap2));
  ASSERT_OK(driver_.Restore(component_, before, ctx_));
  ASSERT_EQ(StreamInfo(*client_, "ORDERS")["state"]["last_seq"], 200);

  DriverContext undo = MakeContext("run-undo");
  DataLossReport loss = ValueOrDie(driver_.AssessLoss(component_, longer, undo));
  ASSERT_EQ(loss.items.size(), 1u);
  EXPECT_EQ(loss.items[0].total(), 0u) << loss.Summary();
  EXPECT_EQ(loss.Summary(), "Data loss: none");
  for (const auto& l : ReadJsonl(JoinPath(undo.run_dir, "ledger-bus.jsonl"))) {
    ADD_FAILURE() << "unexpected ledger line " << l.dump();
  }

  // Diverged: after the restore, other messages took sequences 201.. that
  // the target holds with other content: those are discarded, by content.
  ASSERT_OK(client_->PublishMany("orders.other", 5, 16, "other"));
  DataLossReport diverged = ValueOrDie(driver_.AssessLoss(component_, longer, undo));
  EXPECT_EQ(diverged.items[0].inserted, 5u);
  EXPECT_EQ(diverged.items[0].deleted, 5u);  // 201..205 of the target come back
  std::vector<uint64_t> listed;
  for (const auto& l : ReadJsonl(JoinPath(undo.run_dir, "ledger-bus.jsonl"))) {
    if (l["event"] == "published") listed.push_back(l["sequence"].get<uint64_t>());
    EXPECT_NE(l["event"], "recreated");
  }
  EXPECT_EQ(listed, (std::vector<uint64_t>{201, 202, 203, 204, 205}));
}

TEST_F(NatsDriverTest, SalvageExportsAndRepublishesTheDiscardedMessages) {
  MakeOrders();
  json entry = ValueOrDie(driver_.Snapshot(component_, ctx_));
  for (int i = 1; i <= 3; ++i) {
    ASSERT_OK(client_->Publish("orders.late", "late-" + std::to_string(i)).status());
  }
  ValueOrDie(driver_.AssessLoss(component_, entry, ctx_));
  ASSERT_OK(driver_.Restore(component_, entry, ctx_));
  ASSERT_EQ(StreamInfo(*client_, "ORDERS")["state"]["last_seq"], 200);

  SalvageRequest req;
  req.run_id = ctx_.run_id;
  req.run_dir = ctx_.run_dir;
  req.object = "ORDERS";
  req.output_path = dir_.Join("export.jsonl");
  SalvageResult all = ValueOrDie(driver_.Salvage(component_, req, ctx_));
  EXPECT_EQ(all.exported, 3u);
  std::vector<json> exported = ReadJsonl(req.output_path);
  ASSERT_EQ(exported.size(), 3u);
  EXPECT_EQ(exported[1]["sequence"], 202);
  EXPECT_EQ(exported[1]["subject"], "orders.late");
  EXPECT_EQ(ValueOrDie(Base64Decode(exported[1]["data"].get<std::string>())), "late-2");
  EXPECT_FALSE(exported[1]["time"].get<std::string>().empty());

  // A sequence the run did not discard is named, nothing is written.
  req.keys = {json(150)};
  EXPECT_TRUE(driver_.Salvage(component_, req, ctx_).status().IsNotFound());
  req.output_path = dir_.Join("chosen.jsonl");
  req.keys = {json(202)};
  req.apply = true;
  SalvageResult applied = ValueOrDie(driver_.Salvage(component_, req, ctx_));
  EXPECT_EQ(applied.exported, 1u);
  EXPECT_EQ(applied.applied, 1u);
  EXPECT_TRUE(applied.conflicts.empty());
  EXPECT_EQ(ReadJsonl(req.output_path).size(), 1u);
  EXPECT_EQ(StreamInfo(*client_, "ORDERS")["state"]["last_seq"], 201);
  NatsTestMessage back = ValueOrDie(client_->GetMessage("ORDERS", 201));
  EXPECT_EQ(back.subject, "orders.late");
  EXPECT_EQ(back.data, "late-2");
  // A second apply of the same message is a conflict: it is not delivered twice.
  SalvageResult again = ValueOrDie(driver_.Salvage(component_, req, ctx_));
  EXPECT_EQ(again.applied, 0u);
  ASSERT_EQ(again.conflicts.size(), 1u);
  EXPECT_NE(again.conflicts[0].find("republished it, as sequence 201"), std::string::npos)
      << again.conflicts[0];
  EXPECT_EQ(StreamInfo(*client_, "ORDERS")["state"]["last_seq"], 201);

  req.object = "NOPE";
  EXPECT_TRUE(driver_.Salvage(component_, req, ctx_).status().IsNotFound());

  // Pruned with the run's saved content: salvage says what is missing.
  ASSERT_OK(driver_.Prune(component_, ctx_.run_id, ctx_));
  req.object = "ORDERS";
  Status pruned = driver_.Salvage(component_, req, ctx_).status();
  EXPECT_TRUE(pruned.IsNotFound()) << pruned.ToString();
  EXPECT_NE(pruned.message().find("kept no discarded messages"), std::string::npos);
  EXPECT_FALSE(
      Env::Default()->fs()->Exists(NatsDriver::RepublishedPath(ctx_.run_dir, component_.name)))
      << "the record of republished messages goes with them";
}

TEST_F(NatsDriverTest, HealthReportsConnectionAndDisconnectionTime) {
  ASSERT_OK(client_->AddStream("ORDERS", {"orders.>"}));
  DriverContext ctx = ctx_;
  ctx.env = env_.get();  // fake clock

  HealthResult up = driver_.Health(component_, ctx);
  EXPECT_TRUE(up.pass()) << up.detail;
  EXPECT_EQ(up.signals.at("disconnected_ms"), 0);
  EXPECT_TRUE(up.signals.count("connect_time_ms"));
  EXPECT_NE(up.detail.find("/healthz"), std::string::npos) << up.detail;

  client_.reset();
  ASSERT_OK(server_->Stop());
  clock_.AdvanceMs(1500);
  HealthResult down = driver_.Health(component_, ctx);
  EXPECT_EQ(down.state, HealthResult::State::kFail);
  EXPECT_GE(down.signals.at("disconnected_ms"), 1500);
  clock_.AdvanceMs(60'000);
  HealthResult later = driver_.Health(component_, ctx);
  EXPECT_EQ(later.signals.at("disconnected_ms") - down.signals.at("disconnected_ms"), 60'000);

  // A new process knows when the server was last seen.
  NatsDriver fresh;
  HealthResult fresh_down = fresh.Health(component_, ctx);
  EXPECT_EQ(fresh_down.signals.at("disconnected_ms"), later.signals.at("disconnected_ms"));

  ASSERT_OK(server_->Restart());
  HealthResult back = driver_.Health(component_, ctx);
  EXPECT_TRUE(back.pass()) << back.detail;
  EXPECT_EQ(back.signals.at("disconnected_ms"), 0);
}

TEST_F(NatsDriverTest, CheckIntegrityReportsMissingStreamAndConsumer) {
  MakeOrders();
  json entry = ValueOrDie(driver_.Snapshot(component_, ctx_));
  ASSERT_OK(client_->PublishMany("orders.new", 2, 8));
  auto checks = ValueOrDie(driver_.CheckIntegrity(component_, entry, ctx_));
  std::map<std::string, bool> by_name;
  for (const auto& c : checks) by_name[c.name] = c.passed;
  EXPECT_TRUE(by_name.at("stream ORDERS exists"));
  EXPECT_FALSE(by_name.at("message count ORDERS"));
  EXPECT_FALSE(by_name.at("last sequence ORDERS"));
  EXPECT_TRUE(by_name.at("consumer ORDERS/worker"));

  ASSERT_OK(client_->DeleteStream("ORDERS"));
  checks = ValueOrDie(driver_.CheckIntegrity(component_, json(), ctx_));
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_FALSE(checks[0].passed);
  Status verify = driver_.VerifyRestored(component_, entry, ctx_);
  EXPECT_FALSE(verify.ok());
}

TEST_F(NatsDriverTest, PrepareRefusesAMissingBlob) {
  MakeOrders();
  json entry = ValueOrDie(driver_.Snapshot(component_, ctx_));
  ASSERT_OK(driver_.Prepare(component_, entry, ctx_));
  json missing = entry;
  missing["streams"]["ORDERS"]["blob"] = std::string(64, 'a');
  EXPECT_TRUE(driver_.Prepare(component_, missing, ctx_).IsNotFound());
}

TEST(NatsSpecTest, SettingsParseWithDefaultsAndRequiredKeys) {
  const std::string yaml =
      "environment: test\n"
      "components:\n"
      "  bus:\n"
      "    kind: stream\n"
      "    driver: nats\n"
      "    url: nats://127.0.0.1:4222\n"
      "    streams: [A, B]\n"
      "    request_timeout: 30s\n";
  auto spec = ParseSpec(yaml, "/tmp/backstop.yaml", DriverRegistry::Global());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  const json& s = spec->components.at("bus").settings;
  EXPECT_EQ(s["streams"], json::array({"A", "B"}));
  EXPECT_EQ(s["request_timeout"], 30000);
  EXPECT_EQ(s["connect_timeout"], 5000);
  EXPECT_EQ(s["chunk_size"], 131072);

  auto missing = ParseSpec(
      "environment: test\ncomponents:\n  bus:\n    kind: stream\n    driver: nats\n"
      "    streams: [A]\n",
      "/tmp/backstop.yaml", DriverRegistry::Global());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("url"), std::string::npos)
      << missing.status().message();
}

TEST(NatsRedactTest, PasswordsAndTokensAreHidden) {
  EXPECT_EQ(RedactUrl("nats://app:s3cret@10.0.0.5:4222"), "nats://app:***@10.0.0.5:4222");
  EXPECT_EQ(RedactUrl("nats://tok3n@h:4222,nats://h2:4222"), "nats://***@h:4222,nats://h2:4222");
  EXPECT_EQ(RedactUrl("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
}

// About 100k messages through snapshot, restore and the ledger; prints the
// throughput (measured, never asserted).
TEST_F(NatsDriverTest, HundredThousandMessages) {
  const int kMessages = 100'000;
  ASSERT_OK(client_->AddStream("ORDERS", {"orders.>"}));
  ASSERT_OK(client_->PublishMany("orders.new", kMessages, 128));
  component_.settings["chunk_size"] = 131072;
  auto t0 = std::chrono::steady_clock::now();
  json entry = ValueOrDie(driver_.Snapshot(component_, ctx_));
  auto t1 = std::chrono::steady_clock::now();
  ASSERT_OK(client_->PublishMany("orders.new", kMessages / 10, 128));
  auto t2 = std::chrono::steady_clock::now();
  DataLossReport loss = ValueOrDie(driver_.AssessLoss(component_, entry, ctx_));
  auto t3 = std::chrono::steady_clock::now();
  ASSERT_OK(driver_.Restore(component_, entry, ctx_));
  auto t4 = std::chrono::steady_clock::now();
  EXPECT_EQ(loss.TotalMessages(), static_cast<uint64_t>(kMessages / 10));
  EXPECT_EQ(StreamInfo(*client_, "ORDERS")["state"]["last_seq"], kMessages);
  // Restore alone: the stream is absent, so nothing is saved first.
  ASSERT_OK(client_->DeleteStream("ORDERS"));
  DriverContext ctx2 = MakeContext("run-2");
  auto t5 = std::chrono::steady_clock::now();
  ASSERT_OK(driver_.Restore(component_, entry, ctx2));
  auto t6 = std::chrono::steady_clock::now();
  EXPECT_EQ(StreamInfo(*client_, "ORDERS")["state"]["messages"], kMessages);
  auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  auto rate = [&](double n, auto a, auto b) { return n / (ms(a, b) / 1000); };
  std::printf(
      "[nats throughput] snapshot of %d msgs of 128 B (%llu snapshot bytes, stored): %.1f ms, "
      "%.0f msg/s\n"
      "[nats throughput] ledger of %d msgs: %.1f ms, %.0f msg/s\n"
      "[nats throughput] rollback (save %d current msgs, delete, restore %d, verify): %.1f ms, "
      "%.0f restored msg/s\n"
      "[nats throughput] restore alone of %d msgs (read blob, restore, verify): %.1f ms, %.0f "
      "msg/s\n",
      kMessages, static_cast<unsigned long long>(entry["streams"]["ORDERS"]["snapshot_bytes"]),
      ms(t0, t1), rate(kMessages, t0, t1), kMessages / 10, ms(t2, t3), rate(kMessages / 10, t2, t3),
      kMessages + kMessages / 10, kMessages, ms(t3, t4), rate(kMessages, t3, t4), kMessages,
      ms(t5, t6), rate(kMessages, t5, t6));
}

}  // namespace
}  // namespace backstop::nats

#include "drivers/nginx/nginx_driver.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <set>
#include <sstream>
#include <thread>

#include "base/hash.h"
#include "drivers/config_hash.h"
#include "spec/spec.h"
#include "store/store.h"
#include "testing/nginx_server.h"
#include "testing/test_env.h"

namespace backstop::nginx {
namespace {

using nlohmann::json;
using testing::NginxServer;
using testing::TempDir;
using testing::WriteFileOrDie;

std::string ReadOrEmpty(const std::string& path) {
  auto r = Env::Default()->fs()->ReadFile(path);
  return r.ok() ? *r : "";
}

// The master's current generation of workers (old ones shutting down after
// a reload are not counted: they may exit at any moment).
std::set<pid_t> Workers(pid_t master) {
  std::istringstream words(ReadOrEmpty("/proc/" + std::to_string(master) + "/task/" +
                                       std::to_string(master) + "/children"));
  std::set<pid_t> out;
  long pid = 0;
  while (words >> pid) {
    const std::string title = ReadOrEmpty("/proc/" + std::to_string(pid) + "/cmdline");
    if (title.find("shutting down") == std::string::npos) out.insert(static_cast<pid_t>(pid));
  }
  return out;
}

class NginxDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = NginxServer::Start("first\n");
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    nginx_ = std::move(server).value();
    auto store = Store::Open(Env::Default(), dir_.Join("store"));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    driver_ = NginxDriverInfo().factory();
    spec_.name = "web";
    spec_.kind = ComponentKind::kTraffic;
    spec_.driver = "nginx";
    spec_.settings = {{"site", nginx_->site_config()},
                      {"main_config", nginx_->main_config()},
                      {"pid_file", nginx_->pid_file()},
                      {"prefix", nginx_->dir() + "/"},
                      {"error_log", nginx_->error_log()}};
    ctx_.store = store_.get();
    ctx_.state_dir = dir_.Join("state");
    ctx_.run_id = "run-1";
  }

  json SnapshotOrDie() {
    auto entry = driver_->Snapshot(spec_, ctx_);
    EXPECT_TRUE(entry.ok()) << entry.status().ToString();
    return entry.ok() ? *entry : json();
  }

  // Writes the site answering `body` and reloads nginx by hand (as an
  // operator's deploy would), waiting until it answers with it.
  void DeploySite(const std::string& body) {
    WriteFileOrDie(nginx_->site_config(), nginx_->SiteAnswering(body));
    ASSERT_EQ(::kill(nginx_->master_pid(), SIGHUP), 0);
    ASSERT_TRUE(AnswersWithin(body)) << nginx_->LogTail();
  }

  // Waits (up to 10 s) for new connections to be answered with `body`: after
  // a reload, an old worker may accept until the master tells it to stop.
  bool AnswersWithin(const std::string& body) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      auto got = nginx_->Get();
      if (got.ok() && *got == body) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  TempDir dir_;
  std::unique_ptr<NginxServer> nginx_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Driver> driver_;
  ComponentSpec spec_;
  DriverContext ctx_{*Env::Default()};
};

TEST_F(NginxDriverTest, SnapshotStoresTheSiteConfigAndItsHash) {
  json entry = SnapshotOrDie();
  const std::string site = nginx_->site_config();
  const std::string digest = Sha256Hex(ReadOrEmpty(site));
  EXPECT_EQ(entry["site"]["path"], site);
  EXPECT_EQ(entry["site"]["sha256"], digest);
  EXPECT_EQ(entry["blobs"], json::array({digest}));
  EXPECT_EQ(entry["config_hash"], ConfigHash({{site, digest}}));
  auto stored = store_->Get(digest);
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(*stored, nginx_->SiteAnswering("first\n"));
}

TEST_F(NginxDriverTest, RestorePutsTheRecordedSiteBackAndNginxServesIt) {
  json first = SnapshotOrDie();
  DeploySite("second\n");

  Status st = driver_->Restore(spec_, first, ctx_);
  ASSERT_TRUE(st.ok()) << st.ToString() << "\n" << nginx_->LogTail();

  EXPECT_EQ(ReadOrEmpty(nginx_->site_config()), nginx_->SiteAnswering("first\n"));
  EXPECT_EQ(*nginx_->Get(), "first\n");  // Restore returned once the old workers stopped accepting
  EXPECT_TRUE(driver_->VerifyRestored(spec_, first, ctx_).ok());
  EXPECT_FALSE(Env::Default()->fs()->Exists(dir_.Join("state/components/web/restore.json")));
  auto names = Env::Default()->fs()->ListDir(nginx_->dir() + "/sites");
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"site.conf"});  // nothing staged left behind
}

TEST_F(NginxDriverTest, RefusesASiteThatFailsNginxTAndKeepsServingTheRunningOne) {
  const std::string good = ReadOrEmpty(nginx_->site_config());
  WriteFileOrDie(nginx_->site_config(), "server { no_such_directive on; }\n");
  json broken = SnapshotOrDie();
  WriteFileOrDie(nginx_->site_config(), good);
  const std::set<pid_t> workers = Workers(nginx_->master_pid());

  Status st = driver_->Restore(spec_, broken, ctx_);

  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("unknown directive \"no_such_directive\""), std::string::npos)
      << st.ToString();
  EXPECT_EQ(ReadOrEmpty(nginx_->site_config()), good);
  EXPECT_EQ(*nginx_->Get(), "first\n");
  EXPECT_EQ(Workers(nginx_->master_pid()), workers);  // never signalled
  EXPECT_FALSE(Env::Default()->fs()->Exists(dir_.Join("state/components/web/restore.json")));
  EXPECT_FALSE(driver_->VerifyRestored(spec_, broken, ctx_).ok());
}

TEST_F(NginxDriverTest, ASecondRestoreOfTheSameEntryChangesNothingAndDoesNotReload) {
  json first = SnapshotOrDie();
  DeploySite("second\n");
  ASSERT_TRUE(driver_->Restore(spec_, first, ctx_).ok());
  ASSERT_TRUE(AnswersWithin("first\n"));
  const std::set<pid_t> workers = Workers(nginx_->master_pid());

  Status again = driver_->Restore(spec_, first, ctx_);

  ASSERT_TRUE(again.ok()) << again.ToString();
  EXPECT_EQ(Workers(nginx_->master_pid()), workers);
  EXPECT_EQ(*nginx_->Get(), "first\n");
}

TEST_F(NginxDriverTest, AResumedRestoreFindingTheCandidateUnvalidatedPutsTheOldOneBackFirst) {
  // What a crash between the swap and nginx -t leaves: the broken candidate
  // live, the running site aside, the journal saying "validating".
  const std::string good = ReadOrEmpty(nginx_->site_config());
  json first = SnapshotOrDie();
  const std::string previous = nginx_->site_config() + ".backstop-previous-run-1";
  WriteFileOrDie(previous, good);
  WriteFileOrDie(nginx_->site_config(), "server { no_such_directive on; }\n");
  WriteFileOrDie(
      dir_.Join("state/components/web/restore.json"),
      json({{"run_id", "run-1"}, {"phase", "validating"}, {"previous", previous}}).dump());

  Status st = driver_->Restore(spec_, first, ctx_);

  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(ReadOrEmpty(nginx_->site_config()), good);
  EXPECT_FALSE(Env::Default()->fs()->Exists(previous));
  EXPECT_TRUE(driver_->VerifyRestored(spec_, first, ctx_).ok());
}

TEST_F(NginxDriverTest, HealthPassesWhileTheMasterRunsAndFailsOnceItStopped) {
  HealthResult up = driver_->Health(spec_, ctx_);
  EXPECT_EQ(up.state, HealthResult::State::kPass) << up.detail;
  ASSERT_TRUE(nginx_->Stop().ok());
  HealthResult down = driver_->Health(spec_, ctx_);
  EXPECT_EQ(down.state, HealthResult::State::kFail);
  EXPECT_NE(down.detail.find("nginx of web is not running"), std::string::npos) << down.detail;
}

}  // namespace
}  // namespace backstop::nginx

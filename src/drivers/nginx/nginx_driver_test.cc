#include "drivers/nginx/nginx_driver.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <set>
#include <sstream>
#include <thread>

#include "base/hash.h"
#include "drivers/config_hash.h"
#include "spec/spec.h"
#include "store/store.h"
#include "testing/nginx_server.h"
#include "testing/ports.h"
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

// How many children the master has, old generations shutting down included.
size_t AllChildren(pid_t master) {
  std::istringstream words(ReadOrEmpty("/proc/" + std::to_string(master) + "/task/" +
                                       std::to_string(master) + "/children"));
  size_t n = 0;
  for (long pid = 0; words >> pid;) ++n;
  return n;
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

  // Waits (up to 10 s) for new connections to be answered with `body` and
  // for the workers of every older generation to exit: after a reload, an
  // old worker may accept until the master tells it to stop.
  bool AnswersWithin(const std::string& body) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      auto got = nginx_->Get();
      if (got.ok() && *got == body && AllChildren(nginx_->master_pid()) == 1) return true;
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

// Routing: the site's front (the server's port) proxies to upstream `app`;
// two backends in the same nginx, on their own ports, answer "blue" and
// "green". Route writes upstreams/app.conf, which nginx.conf includes.
class NginxRouteTest : public NginxDriverTest {
 protected:
  void SetUp() override {
    NginxDriverTest::SetUp();
    auto blue = testing::ReserveLoopbackPort();
    auto green = testing::ReserveLoopbackPort();
    ASSERT_TRUE(blue.ok() && green.ok());
    blue_ = "127.0.0.1:" + std::to_string(*blue);
    green_ = "127.0.0.1:" + std::to_string(*green);
    spec_.settings["upstreams"] = nginx_->upstreams_dir();
    // The first route, before the site refers to the upstream (as a user's
    // first setup would be), then the site that proxies to it.
    Status st = driver_->Route(spec_, "app", {blue_}, ctx_);
    ASSERT_TRUE(st.ok()) << st.ToString() << "\n" << nginx_->LogTail();
    WriteFileOrDie(nginx_->site_config(), ProxySite());
    ASSERT_EQ(::kill(nginx_->master_pid(), SIGHUP), 0);
    ASSERT_TRUE(AnswersWithin("blue\n")) << nginx_->LogTail();
  }

  std::string ProxySite() const {
    auto backend = [](const std::string& address, const std::string& body) {
      return "server {\n  listen " + address + ";\n  location / { default_type text/plain; " +
             "return 200 \"" + body + "\\n\"; }\n}\n";
    };
    return "server {\n  listen 127.0.0.1:" + std::to_string(nginx_->port()) +
           ";\n  location / { proxy_pass http://app; }\n}\n" + backend(blue_, "blue") +
           backend(green_, "green");
  }

  std::vector<std::string> RoutedOrDie() {
    auto routed = driver_->Routed(spec_, "app", ctx_);
    EXPECT_TRUE(routed.ok()) << routed.status().ToString();
    return routed.ok() ? *routed : std::vector<std::string>{};
  }

  std::string blue_, green_;
};

TEST_F(NginxRouteTest, RouteSwitchesTheUpstreamUnderARequestLoopWithNoFailedRequest) {
  EXPECT_EQ(RoutedOrDie(), std::vector<std::string>{blue_});
  std::atomic<bool> stop{false};
  std::atomic<int> requests{0}, failed{0};
  std::string first_failure;  // written by the loop only, read after join
  std::thread loop([&] {
    while (!stop) {
      auto got = nginx_->Get();
      ++requests;
      if (!got.ok() || (*got != "blue\n" && *got != "green\n")) {
        if (failed++ == 0) first_failure = got.ok() ? *got : got.status().ToString();
      }
    }
  });
  while (requests < 5) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  Status st = driver_->Route(spec_, "app", {green_}, ctx_);
  const auto after = nginx_->Get();  // Route returned once new connections go to green
  const int at_switch = requests;
  while (requests < at_switch + 5) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  stop = true;
  loop.join();

  ASSERT_TRUE(st.ok()) << st.ToString() << "\n" << nginx_->LogTail();
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(*after, "green\n");
  EXPECT_EQ(failed, 0) << "of " << requests << " requests; the first: " << first_failure;
  EXPECT_EQ(RoutedOrDie(), std::vector<std::string>{green_});
  auto info = Env::Default()->fs()->Stat(nginx_->upstreams_dir() + "/app.conf");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->mode, 0600u);
  auto names = Env::Default()->fs()->ListDir(nginx_->upstreams_dir());
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"app.conf"});  // nothing staged left behind
}

TEST_F(NginxRouteTest, RoutingAgainToTheSameServersDoesNotReload) {
  const std::set<pid_t> workers = Workers(nginx_->master_pid());
  Status st = driver_->Route(spec_, "app", {blue_}, ctx_);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Workers(nginx_->master_pid()), workers);
}

TEST_F(NginxRouteTest, ARefusedRouteLeavesTheOldOneServing) {
  const std::string before = ReadOrEmpty(nginx_->upstreams_dir() + "/app.conf");
  const std::set<pid_t> workers = Workers(nginx_->master_pid());

  Status st = driver_->Route(spec_, "app", {"127.0.0.1:0"}, ctx_);

  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("routing upstream app of web to 127.0.0.1:0 fails nginx -t"),
            std::string::npos)
      << st.ToString();
  EXPECT_NE(st.message().find("invalid port in upstream"), std::string::npos) << st.ToString();
  EXPECT_EQ(ReadOrEmpty(nginx_->upstreams_dir() + "/app.conf"), before);
  EXPECT_EQ(RoutedOrDie(), std::vector<std::string>{blue_});
  EXPECT_EQ(*nginx_->Get(), "blue\n");
  EXPECT_EQ(Workers(nginx_->master_pid()), workers);  // never signalled
  EXPECT_FALSE(Env::Default()->fs()->Exists(dir_.Join("state/components/web/restore.json")));
}

TEST_F(NginxRouteTest, ARouteThatIsNotHostPortIsRefusedBeforeAnythingIsWritten) {
  const std::string before = ReadOrEmpty(nginx_->upstreams_dir() + "/app.conf");
  for (const std::vector<std::string>& servers :
       std::vector<std::vector<std::string>>{{}, {"127.0.0.1:80; }"}, {"no-port"}}) {
    Status st = driver_->Route(spec_, "app", servers, ctx_);
    EXPECT_TRUE(st.code() == Status::Code::kInvalidArgument) << st.ToString();
  }
  EXPECT_TRUE(driver_->Route(spec_, "../app", {green_}, ctx_).code() ==
              Status::Code::kInvalidArgument);
  EXPECT_EQ(ReadOrEmpty(nginx_->upstreams_dir() + "/app.conf"), before);
}

TEST_F(NginxRouteTest, ASiteRestoreDoesNotUndoRouting) {
  json proxying = SnapshotOrDie();
  ASSERT_TRUE(driver_->Route(spec_, "app", {green_}, ctx_).ok());
  DeploySite("maintenance\n");

  Status st = driver_->Restore(spec_, proxying, ctx_);

  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(*nginx_->Get(), "green\n");
  EXPECT_EQ(RoutedOrDie(), std::vector<std::string>{green_});
}

TEST_F(NginxRouteTest, AResumedRouteFindingAnUnvalidatedNewFileRemovesItFirst) {
  // What a crash between the swap and nginx -t of a first route leaves.
  const std::string other = nginx_->upstreams_dir() + "/other.conf";
  WriteFileOrDie(other, "upstream other { server 127.0.0.1:0; }\n", 0600);
  WriteFileOrDie(dir_.Join("state/components/web/restore.json"), json({{"run_id", "run-1"},
                                                                       {"phase", "validating"},
                                                                       {"file", other},
                                                                       {"previous", ""},
                                                                       {"created", true}})
                                                                     .dump());

  Status st = driver_->Route(spec_, "app", {green_}, ctx_);

  ASSERT_TRUE(st.ok()) << st.ToString() << "\n" << nginx_->LogTail();
  EXPECT_FALSE(Env::Default()->fs()->Exists(other));
  EXPECT_EQ(*nginx_->Get(), "green\n");
}

TEST_F(NginxDriverTest, RouteNeedsTheUpstreamsSetting) {
  Status st = driver_->Route(spec_, "app", {"127.0.0.1:1"}, ctx_);
  EXPECT_TRUE(st.code() == Status::Code::kFailedPrecondition) << st.ToString();
  EXPECT_NE(st.message().find("setting 'upstreams' is not set"), std::string::npos);
}

TEST_F(NginxDriverTest, RouteRefusesAnUpstreamsDirectoryOthersCanWrite) {
  spec_.settings["upstreams"] = nginx_->upstreams_dir();
  ASSERT_EQ(::chmod(nginx_->upstreams_dir().c_str(), 0777), 0);
  Status st = driver_->Route(spec_, "app", {"127.0.0.1:1"}, ctx_);
  EXPECT_TRUE(st.code() == Status::Code::kFailedPrecondition) << st.ToString();
  EXPECT_NE(st.message().find("chmod 700"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace backstop::nginx

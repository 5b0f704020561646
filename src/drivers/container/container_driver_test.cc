// The container driver's settings, Describe and Health: the verdicts from
// inspect answers, then against a real podman service.
#include "drivers/container/container_driver.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "base/env.h"
#include "store/store.h"
#include "testing/podman_service.h"
#include "testing/test_env.h"

namespace backstop::container {
namespace {

using nlohmann::json;
using State = HealthResult::State;
using testing::PodmanService;
using testing::TempDir;

json Running(json health = nullptr) {
  json c = {{"Id", "abc"},
            {"Name", "/orchestrator"},
            {"Image", "sha256:1111"},
            {"Config", {{"Image", "localhost/orch:2"}}},
            {"State", {{"Status", "running"}, {"Running", true}, {"ExitCode", 0}}}};
  if (!health.is_null()) c["State"]["Health"] = health;
  return c;
}

HealthResult ProbeResult(State state, std::string detail) {
  return HealthResult::Make(state, 1, std::move(detail));
}

TEST(ContainerHealth, AnExitedContainerFailsWithItsExitCode) {
  json c = Running();
  c["State"] = {{"Status", "exited"}, {"Running", false}, {"ExitCode", 3}};
  HealthResult r = JudgeHealth(c, HealthCheckSource::kAuto, std::nullopt);
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "container orchestrator is exited (exit code 3)");
}

TEST(ContainerHealth, AnUnhealthyHealthcheckFailsWithItsLastOutput) {
  json health = {{"Status", "unhealthy"},
                 {"Log", {{{"ExitCode", 1}, {"Output", "db unreachable\n"}}}}};
  HealthResult r =
      JudgeHealth(Running(health), HealthCheckSource::kAuto, ProbeResult(State::kPass, "HTTP 200"));
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "container orchestrator is unhealthy (its HEALTHCHECK): db unreachable");
}

TEST(ContainerHealth, AFailingProbeFailsAHealthyContainer) {
  HealthResult r = JudgeHealth(Running({{"Status", "healthy"}}), HealthCheckSource::kAuto,
                               ProbeResult(State::kFail, "connection refused"));
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "container orchestrator is running and healthy; probe: connection refused");
}

TEST(ContainerHealth, ProbeSourceIgnoresTheEngineHealth) {
  HealthResult r = JudgeHealth(Running({{"Status", "unhealthy"}}), HealthCheckSource::kProbe,
                               ProbeResult(State::kPass, "HTTP 200"));
  EXPECT_EQ(r.state, State::kPass);
  EXPECT_EQ(r.detail, "container orchestrator is running; probe: HTTP 200");
}

TEST(ContainerHealth, ImageSourceFailsWithoutAHealthcheck) {
  HealthResult r = JudgeHealth(Running(), HealthCheckSource::kImage, std::nullopt);
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_EQ(r.detail, "container orchestrator has no HEALTHCHECK; set health_check: probe or auto");
}

TEST(ContainerHealth, AStartingHealthcheckIsNeverAPass) {
  HealthResult r =
      JudgeHealth(Running({{"Status", "starting"}}), HealthCheckSource::kAuto, std::nullopt);
  EXPECT_EQ(r.state, State::kUnknown);
  EXPECT_EQ(r.detail, "container orchestrator: its HEALTHCHECK is still starting");
}

TEST(ContainerHealth, RunningWithNoCheckPasses) {
  HealthResult r = JudgeHealth(Running(), HealthCheckSource::kAuto, std::nullopt);
  EXPECT_EQ(r.state, State::kPass);
  EXPECT_EQ(r.detail, "container orchestrator is running (no health check configured)");
}

TEST(ContainerDescribe, NamesTheImageByDigestAndTheState) {
  json image = {{"Id", "sha256:1111"}, {"RepoDigests", {"localhost/orch@sha256:2222"}}};
  json d = DescribeContainer(Running({{"Status", "healthy"}}), image);
  EXPECT_EQ(d["container"], "orchestrator");
  EXPECT_EQ(d["release"], "2");
  EXPECT_EQ(d["image"], "localhost/orch:2");
  EXPECT_EQ(d["image_id"], "sha256:1111");
  EXPECT_EQ(d["repo_digests"], json({"localhost/orch@sha256:2222"}));
  EXPECT_EQ(d["state"], "running");
  EXPECT_EQ(d["health"], "healthy");
}

ComponentSpec Component(json settings) {
  ComponentSpec c;
  c.name = "orchestrator";
  c.driver = "container";
  c.settings = std::move(settings);
  return c;
}

TEST(ContainerSettingsTest, ContainerAndImageAreRequired) {
  auto missing = ReadSettings(Component({{"image", "localhost/orch:2"}}));
  EXPECT_EQ(missing.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(missing.status().message(),
            "component orchestrator (container): container is required: the container's name");
}

TEST(ContainerSettingsTest, AnUnknownHealthCheckSourceIsRefused) {
  auto bad =
      ReadSettings(Component({{"container", "o"}, {"image", "i"}, {"health_check", "sometimes"}}));
  EXPECT_EQ(bad.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(bad.status().message(),
            "component orchestrator (container): health_check must be auto, image or probe, not "
            "sometimes");
}

TEST(ContainerSettingsTest, DefaultsAreTheDockerSocketAndAuto) {
  auto s = ReadSettings(Component({{"container", "o"}, {"image", "i"}}));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->socket, "/var/run/docker.sock");
  EXPECT_EQ(s->health_check, HealthCheckSource::kAuto);
  EXPECT_EQ(s->stop_timeout_ms, 10'000);
}

// --- Against a real podman service ------------------------------------------------

class ContainerDriverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!PodmanService::Installed()) return;
    auto started = PodmanService::Start();
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    service_ = started->release();
    auto id = service_->ImportBusyboxImage("localhost/backstop-orch:1",
                                           {"CMD [\"sleep\", \"600\"]"}, "one");
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    image_id_ = new std::string(*id);
  }
  static void TearDownTestSuite() {
    delete service_;
    service_ = nullptr;
    delete image_id_;
    image_id_ = nullptr;
  }
  void SetUp() override {
    if (!PodmanService::Installed()) GTEST_SKIP() << PodmanService::NotInstalledReason();
    ASSERT_NE(service_, nullptr);
  }
  ComponentSpec Spec(const std::string& container, const std::string& health_check = "auto") {
    return Component({{"socket", service_->socket_path()},
                      {"container", container},
                      {"image", "localhost/backstop-orch:1"},
                      {"health_check", health_check}});
  }
  // Creates and starts `name` from the test image (no network), with `extra` merged in.
  void Run(const std::string& name, const json& extra = json::object()) {
    DockerClientOptions options;
    options.socket_path = service_->socket_path();
    DockerClient client(options);
    json config = {{"Image", "localhost/backstop-orch:1"},
                   {"Cmd", {"sleep", "600"}},
                   {"HostConfig", {{"NetworkMode", "none"}}}};
    config.update(extra);
    auto id = client.CreateContainer(name, config);
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    ASSERT_TRUE(client.StartContainer(name).ok());
  }
  Status Stop(const std::string& name) {
    DockerClientOptions options;
    options.socket_path = service_->socket_path();
    return DockerClient(options).StopContainer(name, 0);
  }

  ContainerDriver driver_;
  DriverContext ctx_{*Env::Default()};
  static PodmanService* service_;
  static std::string* image_id_;
};

PodmanService* ContainerDriverTest::service_ = nullptr;
std::string* ContainerDriverTest::image_id_ = nullptr;

TEST_F(ContainerDriverTest, DescribeNamesTheRunningImageByDigest) {
  Run("describe-me");
  auto d = driver_.Describe(Spec("describe-me"), ctx_);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ((*d)["container"], "describe-me");
  EXPECT_EQ((*d)["release"], "1");
  EXPECT_EQ((*d)["image"], "localhost/backstop-orch:1");
  EXPECT_EQ((*d)["image_id"], *image_id_);
  EXPECT_EQ((*d)["state"], "running");
  EXPECT_EQ((*d)["health"], "none");
}

TEST_F(ContainerDriverTest, DescribeOfAMissingContainerIsNotFound) {
  auto d = driver_.Describe(Spec("never-created"), ctx_);
  EXPECT_EQ(d.status().code(), Status::Code::kNotFound) << d.status().ToString();
}

TEST_F(ContainerDriverTest, HealthFollowsTheContainerAndTheProbe) {
  Run("healthy-one");
  ComponentSpec c = Spec("healthy-one");
  HealthResult running = driver_.Health(c, ctx_);
  EXPECT_EQ(running.state, State::kPass) << running.detail;

  c.health.type = ProbeSpec::Type::kExec;
  c.health.command = {"false"};
  HealthResult probe_fails = driver_.Health(c, ctx_);
  EXPECT_EQ(probe_fails.state, State::kFail) << probe_fails.detail;

  ASSERT_TRUE(Stop("healthy-one").ok());
  HealthResult stopped = driver_.Health(Spec("healthy-one"), ctx_);
  EXPECT_EQ(stopped.state, State::kFail);
  EXPECT_EQ(stopped.detail.rfind("container healthy-one is exited (exit code ", 0), 0u)
      << stopped.detail;
}

TEST_F(ContainerDriverTest, AMissingContainerFailsHealth) {
  HealthResult r = driver_.Health(Spec("not-there"), ctx_);
  EXPECT_EQ(r.state, State::kFail);
  EXPECT_NE(r.detail.find("inspect container not-there"), std::string::npos) << r.detail;
}

TEST_F(ContainerDriverTest, AnImageHealthcheckNotYetRunIsUnknown) {
  // Podman runs HEALTHCHECKs from systemd timers; without systemd it stays "starting".
  Run("with-healthcheck",
      {{"Healthcheck", {{"Test", {"CMD", "true"}}, {"Interval", 1'000'000'000}}}});
  HealthResult r = driver_.Health(Spec("with-healthcheck", "image"), ctx_);
  auto d = driver_.Describe(Spec("with-healthcheck"), ctx_);
  ASSERT_TRUE(d.ok());
  if ((*d)["health"] == "starting") {
    EXPECT_EQ(r.state, State::kUnknown) << r.detail;
  } else {
    EXPECT_EQ((*d)["health"], "healthy");
    EXPECT_EQ(r.state, State::kPass) << r.detail;
  }
}

TEST_F(ContainerDriverTest, SnapshotSavesTheImageAndTheConfigurationOnce) {
  Run("snap-me", {{"Env", {"MODE=blue"}}, {"Labels", {{"team", "ops"}}}});
  TempDir dir;
  auto store = Store::Open(Env::Default(), dir.Join("store"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ctx_.store = store->get();
  auto first = driver_.Snapshot(Spec("snap-me"), ctx_);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const json& e = *first;
  EXPECT_EQ(e["release"], "1");
  EXPECT_EQ(e["image"], "localhost/backstop-orch:1");
  EXPECT_EQ(e["image_id"], *image_id_);
  EXPECT_EQ(e["create"]["Image"], *image_id_);
  EXPECT_EQ(e["create"]["Labels"]["team"], "ops");
  EXPECT_EQ(e["config_hash"].get<std::string>().rfind("sha256:", 0), 0u);
  ASSERT_FALSE(e["blobs"].empty());
  uint64_t archived = 0;
  for (const auto& d : e["archive"]) {
    ASSERT_TRUE((*store)->Has(d.get<std::string>())) << d;
    auto size = (*store)->SizeOf(d.get<std::string>());
    ASSERT_TRUE(size.ok());
    archived += *size;
  }
  EXPECT_EQ(archived, e["archive_bytes"].get<uint64_t>());
  EXPECT_GT(archived, 100'000u);  // the static busybox is in there

  auto blobs_before = (*store)->ListBlobs();
  ASSERT_TRUE(blobs_before.ok());
  auto second = driver_.Snapshot(Spec("snap-me"), ctx_);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  auto blobs_after = (*store)->ListBlobs();
  ASSERT_TRUE(blobs_after.ok());
  // The same image again writes no new blob: every piece was already there.
  EXPECT_EQ(*blobs_after, *blobs_before);
  EXPECT_EQ((*second)["archive"], e["archive"]);
}

TEST_F(ContainerDriverTest, TheRememberedArchiveIsUsedOnlyWhileEveryPieceIsStored) {
  Run("cache-me");
  TempDir dir;
  auto store = Store::Open(Env::Default(), dir.Join("store"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ctx_.store = store->get();
  ctx_.state_dir = dir.Join("state");
  auto first = driver_.Snapshot(Spec("cache-me"), ctx_);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto remembered =
      Env::Default()->fs()->ReadFile(dir.Join("state/components/orchestrator/image-archive.json"));
  ASSERT_TRUE(remembered.ok()) << remembered.status().ToString();
  EXPECT_NE(remembered->find(*image_id_), std::string::npos);

  // A piece lost from the store: the next snapshot exports again and stores it.
  std::string piece = (*first)["archive"][0];
  ASSERT_TRUE((*store)->RemoveBlob(piece).ok());
  auto second = driver_.Snapshot(Spec("cache-me"), ctx_);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ((*second)["archive"], (*first)["archive"]);
  EXPECT_TRUE((*store)->Has(piece));
}

TEST_F(ContainerDriverTest, DescribeListsTheTagsOfTheImageRepositoryAsReleases) {
  ASSERT_TRUE(
      service_->Podman({"tag", "localhost/backstop-orch:1", "localhost/backstop-orch:7"}).ok());
  Run("releases-of-me");
  auto d = driver_.Describe(Spec("releases-of-me"), ctx_);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ((*d)["release"], "1");
  std::vector<std::string> releases = (*d)["releases"];
  EXPECT_NE(std::find(releases.begin(), releases.end(), "1"), releases.end());
  EXPECT_NE(std::find(releases.begin(), releases.end(), "7"), releases.end());
}

}  // namespace
}  // namespace backstop::container

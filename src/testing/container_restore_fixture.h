// Test-only: the fixture of the container driver's rollback tests against a
// real podman service (container_restore_test.cc, container_crash_test.cc):
// a component `webN` whose image serves /release on a published loopback
// port, probed over HTTP; a store and a state directory of its own.
#pragma once

#include <map>
#include <sstream>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "drivers/container/container_driver.h"
#include "drivers/container/container_restore.h"
#include "probe/probe.h"
#include "store/store.h"
#include "testing/podman_service.h"
#include "testing/ports.h"
#include "testing/test_env.h"

namespace backstop::container {

using nlohmann::json;
using testing::PodmanService;
using testing::TempDir;

// Serves /release (the image's marker) on 8080; release "bad" never serves.
inline const char* kServe = "CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/\"]";
inline const char* kBroken = "CMD [\"sh\", \"-c\", \"echo boom: config missing; sleep 600\"]";

class ContainerRestoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!PodmanService::Installed()) return;
    auto started = PodmanService::Start();
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    service_ = started->release();
  }
  static void TearDownTestSuite() {
    delete service_;
    service_ = nullptr;
  }
  void SetUp() override {
    if (!PodmanService::Installed()) GTEST_SKIP() << PodmanService::NotInstalledReason();
    ASSERT_NE(service_, nullptr);
    auto port = testing::ReserveLoopbackPort();
    ASSERT_TRUE(port.ok());
    port_ = *port;
    // Each test its own repository and container, so tests do not meet.
    name_ = "web" + std::to_string(++counter_);
    repo_ = "localhost/backstop-" + name_;
    auto store = Store::Open(Env::Default(), dir_.Join("store"));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    ctx_.store = store_.get();
    ctx_.state_dir = dir_.Join("state");
    c_.name = name_;
    c_.driver = "container";
    c_.settings = {{"socket", service_->socket_path()},
                   {"container", name_},
                   {"image", repo_ + ":1"},
                   {"stop_timeout", 1000}};
    c_.health.type = ProbeSpec::Type::kHttp;
    c_.health.target = "http://127.0.0.1:" + std::to_string(port_) + "/release";
    c_.health.timeout_ms = 1000;
    c_.health.interval_ms = 1000;
    c_.health.start_period_ms = 3000;
  }
  DockerClient Client() {
    DockerClientOptions options;
    options.socket_path = service_->socket_path();
    return DockerClient(options);
  }
  std::string Image(const std::string& release, const char* cmd) {
    auto id = service_->ImportBusyboxImage(repo_ + ":" + release, {cmd}, "release-" + release);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? *id : "";
  }
  // The component's container on release 1, serving on port_.
  void RunFirst() {
    Image("1", kServe);
    json config = {
        {"Image", repo_ + ":1"},
        {"Env", {"GREETING=hello"}},
        {"ExposedPorts", {{"8080/tcp", json::object()}}},
        {"HostConfig",
         {{"PortBindings",
           {{"8080/tcp", {{{"HostIp", "127.0.0.1"}, {"HostPort", std::to_string(port_)}}}}}}}}};
    DockerClient client = Client();
    ASSERT_TRUE(client.CreateContainer(name_, config).ok());
    ASSERT_TRUE(client.StartContainer(name_).ok());
    HealthResult h = WaitHealthy(c_.health.ForPort(port_), Env::Default(), 100, nullptr, nullptr);
    ASSERT_EQ(h.state, HealthResult::State::kPass) << h.detail;
  }
  json Snapshot() {
    auto entry = driver_.Snapshot(c_, ctx_);
    EXPECT_TRUE(entry.ok()) << entry.status().ToString();
    return entry.ok() ? *entry : json();
  }
  // The component's containers: name -> image id, state.
  std::map<std::string, std::pair<std::string, std::string>> Containers() {
    auto out = service_->Podman({"ps", "-a", "--format", "{{.Names}}"});
    EXPECT_TRUE(out.ok());
    std::map<std::string, std::pair<std::string, std::string>> result;
    std::istringstream lines(out.ok() ? *out : "");
    std::string n;
    while (lines >> n) {
      if (n != name_ && n.rfind(name_ + "-", 0) != 0) continue;
      auto inspected = Client().InspectContainer(n);
      if (!inspected.ok()) continue;
      result[n] = {inspected->value("Image", "").substr(0, 19),
                   (*inspected)["State"].value("Status", "")};
    }
    return result;
  }
  std::string Served() {
    ProbeSpec p = c_.health;
    HealthResult h = RunProbe(p, Env::Default());
    return h.state == HealthResult::State::kPass ? "up" : "down: " + h.detail;
  }
  static std::string Short(const std::string& id) { return id.substr(0, 19); }

  static inline PodmanService* service_ = nullptr;
  static inline int counter_ = 0;
  TempDir dir_;
  int port_ = 0;
  std::string name_, repo_;
  std::unique_ptr<Store> store_;
  ComponentSpec c_;
  ContainerDriver driver_;
  DriverContext ctx_{*Env::Default()};
};

}  // namespace backstop::container

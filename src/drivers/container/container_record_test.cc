// The recorded create request: from inspect answers, and a round trip
// through a real podman service (create from the record, inspect again).
#include "drivers/container/container_record.h"

#include <gtest/gtest.h>

#include "drivers/container/docker_client.h"
#include "testing/podman_service.h"

namespace backstop::container {
namespace {

using nlohmann::json;
using testing::PodmanService;

TEST(ContainerRecord, WithoutImageDefaultsKeepsOnlyWhatTheContainerWasGiven) {
  json create = {{"Image", "sha256:1111"},
                 {"Cmd", {"httpd", "-f"}},
                 {"Entrypoint", {"/bin/run"}},
                 {"Env", {"PATH=/bin", "MODE=prod"}},
                 {"Labels", {{"team", "core"}, {"vendor", "acme"}}},
                 {"HostConfig", {{"NetworkMode", "none"}}}};
  json image = {{"Cmd", {"httpd", "-f"}},
                {"Entrypoint", {"/bin/other"}},
                {"Env", {"PATH=/bin"}},
                {"Labels", {{"vendor", "acme"}}}};
  EXPECT_EQ(WithoutImageDefaults(create, image), json({{"Image", "sha256:1111"},
                                                       {"Entrypoint", {"/bin/run"}},
                                                       {"Env", {"MODE=prod"}},
                                                       {"Labels", {{"team", "core"}}},
                                                       {"HostConfig", {{"NetworkMode", "none"}}}}));
  EXPECT_EQ(WithoutImageDefaults(create, nullptr), create);
}

TEST(ContainerRecord, NamesTheImageByIdAndDropsTheOldHostname) {
  json inspected = {{"Image", "sha256:1111"},
                    {"Config",
                     {{"Image", "localhost/orch:2"},
                      {"Hostname", "abc123"},
                      {"Cmd", {"orch", "--serve"}},
                      {"Env", {"PATH=/bin", "HOSTNAME=abc123", "MODE=prod"}},
                      {"Labels", {{"team", "core"}}}}},
                    {"HostConfig",
                     {{"RestartPolicy", {{"Name", "always"}, {"MaximumRetryCount", 0}}},
                      {"NetworkMode", "none"},
                      {"Binds", {"/srv/data:/data"}},
                      {"Ulimits", {{{"Name", "RLIMIT_NOFILE"}, {"Soft", 1024}, {"Hard", 1024}}}},
                      {"Memory", 0}}},
                    {"State", {{"Running", true}}}};
  auto request = CreateRequestFromInspect(inspected);
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  EXPECT_EQ(*request,
            json({{"Image", "sha256:1111"},
                  {"Cmd", {"orch", "--serve"}},
                  {"Env", {"PATH=/bin", "MODE=prod"}},
                  {"Labels", {{"team", "core"}}},
                  {"HostConfig",
                   {{"RestartPolicy", {{"Name", "always"}, {"MaximumRetryCount", 0}}},
                    {"NetworkMode", "none"},
                    {"Binds", {"/srv/data:/data"}},
                    {"Ulimits", {{{"Name", "nofile"}, {"Soft", 1024}, {"Hard", 1024}}}}}}}));
}

TEST(ContainerRecord, AnAnswerWithoutAnImageIsRefused) {
  auto request = CreateRequestFromInspect(json({{"Config", json::object()}}));
  EXPECT_EQ(request.status().code(), Status::Code::kInvalidArgument);
}

TEST(ContainerRecordPodman, AContainerMadeFromTheRecordHasTheSameConfiguration) {
  if (!PodmanService::Installed()) GTEST_SKIP() << PodmanService::NotInstalledReason();
  auto service = PodmanService::Start();
  ASSERT_TRUE(service.ok()) << service.status().ToString();
  auto image_id = (*service)->ImportBusyboxImage("localhost/backstop-record:1", {}, "record");
  ASSERT_TRUE(image_id.ok()) << image_id.status().ToString();
  DockerClientOptions options;
  options.socket_path = (*service)->socket_path();
  DockerClient client(options);
  json original = {{"Image", "localhost/backstop-record:1"},
                   {"Cmd", {"sleep", "600"}},
                   {"Env", {"MODE=prod"}},
                   {"Labels", {{"team", "core"}}},
                   {"Healthcheck", {{"Test", {"CMD", "true"}}, {"Interval", 5'000'000'000}}},
                   {"HostConfig",
                    {{"NetworkMode", "none"},
                     {"RestartPolicy", {{"Name", "on-failure"}, {"MaximumRetryCount", 2}}}}}};
  ASSERT_TRUE(client.CreateContainer("record-old", original).ok());
  auto old_inspect = client.InspectContainer("record-old");
  ASSERT_TRUE(old_inspect.ok());
  auto request = CreateRequestFromInspect(*old_inspect);
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  EXPECT_EQ((*request)["Image"], *image_id);

  auto made = client.CreateContainer("record-new", *request);
  ASSERT_TRUE(made.ok()) << made.status().ToString() << "\n" << request->dump();
  auto new_inspect = client.InspectContainer("record-new");
  ASSERT_TRUE(new_inspect.ok());
  const json& a = *old_inspect;
  const json& b = *new_inspect;
  EXPECT_EQ(b["Image"], a["Image"]);
  EXPECT_EQ(b["Config"]["Cmd"], a["Config"]["Cmd"]);
  EXPECT_EQ(b["Config"]["Labels"], a["Config"]["Labels"]);
  EXPECT_EQ(b["Config"]["Healthcheck"], a["Config"]["Healthcheck"]);
  EXPECT_EQ(b["HostConfig"]["RestartPolicy"], a["HostConfig"]["RestartPolicy"]);
  EXPECT_EQ(b["HostConfig"]["NetworkMode"], a["HostConfig"]["NetworkMode"]);
  auto has_env = [](const json& inspect, const std::string& entry) {
    for (const auto& e : inspect["Config"]["Env"]) {
      if (e == entry) return true;
    }
    return false;
  };
  EXPECT_TRUE(has_env(b, "MODE=prod")) << b["Config"]["Env"].dump();
}

}  // namespace
}  // namespace backstop::container

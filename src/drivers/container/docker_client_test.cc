// DockerClient against a real podman API service (testing/podman_service.h).
#include "drivers/container/docker_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/env.h"
#include "testing/podman_service.h"

namespace backstop::container {
namespace {

using nlohmann::json;
using testing::PodmanService;

class DockerClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!PodmanService::Installed()) return;
    auto started = PodmanService::Start();
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    service_ = started->release();
    auto id = service_->ImportBusyboxImage("localhost/backstop-test:1",
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
  DockerClient Client() const {
    DockerClientOptions options;
    options.socket_path = service_->socket_path();
    return DockerClient(options);
  }
  static json SleepConfig() {
    return {{"Image", "localhost/backstop-test:1"},
            {"Cmd", {"sleep", "600"}},
            {"Labels", {{"backstop.test", "yes"}}},
            {"HostConfig", {{"NetworkMode", "none"}}}};
  }

  static PodmanService* service_;
  static std::string* image_id_;
};

PodmanService* DockerClientTest::service_ = nullptr;
std::string* DockerClientTest::image_id_ = nullptr;

TEST_F(DockerClientTest, VersionAnswersOverTheSocket) {
  auto version = Client().Version();
  ASSERT_TRUE(version.ok()) << version.status().ToString();
  EXPECT_TRUE(version->contains("ApiVersion")) << version->dump();
}

TEST_F(DockerClientTest, InspectImageGivesTheImportedId) {
  auto image = Client().InspectImage("localhost/backstop-test:1");
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ((*image)["Id"], *image_id_);
}

TEST_F(DockerClientTest, MissingContainerIsNotFoundWithTheApiMessage) {
  auto missing = Client().InspectContainer("no-such-container");
  ASSERT_EQ(missing.status().code(), Status::Code::kNotFound) << missing.status().ToString();
  EXPECT_NE(missing.status().message().find("inspect container no-such-container: "),
            std::string::npos)
      << missing.status().message();
  EXPECT_NE(missing.status().message().find("(HTTP 404)"), std::string::npos)
      << missing.status().message();
}

TEST_F(DockerClientTest, CreateStartStopRemoveAreEachIdempotent) {
  DockerClient client = Client();
  auto id = client.CreateContainer("lifecycle", SleepConfig());
  ASSERT_TRUE(id.ok()) << id.status().ToString();

  auto created = client.InspectContainer("lifecycle");
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ((*created)["Id"], *id);
  EXPECT_EQ((*created)["State"]["Status"], "created");
  EXPECT_EQ((*created)["Config"]["Labels"]["backstop.test"], "yes");
  EXPECT_EQ((*created)["Image"], *image_id_);

  ASSERT_TRUE(client.StartContainer("lifecycle").ok());
  Status again = client.StartContainer("lifecycle");
  EXPECT_TRUE(again.ok()) << again.ToString();
  auto running = client.InspectContainer(*id);
  ASSERT_TRUE(running.ok());
  EXPECT_EQ((*running)["State"]["Running"], true);

  Status stopped = client.StopContainer("lifecycle", 0);
  ASSERT_TRUE(stopped.ok()) << stopped.ToString();
  Status stopped_again = client.StopContainer("lifecycle", 0);
  EXPECT_TRUE(stopped_again.ok()) << stopped_again.ToString();
  auto exited = client.InspectContainer("lifecycle");
  ASSERT_TRUE(exited.ok());
  EXPECT_EQ((*exited)["State"]["Running"], false);

  ASSERT_TRUE(client.RemoveContainer("lifecycle", false).ok());
  EXPECT_TRUE(client.RemoveContainer("lifecycle", false).ok());
  EXPECT_EQ(client.InspectContainer("lifecycle").status().code(), Status::Code::kNotFound);
}

TEST_F(DockerClientTest, ATakenNameIsAConflict) {
  DockerClient client = Client();
  ASSERT_TRUE(client.CreateContainer("taken", SleepConfig()).ok());
  auto second = client.CreateContainer("taken", SleepConfig());
  EXPECT_EQ(second.status().code(), Status::Code::kFailedPrecondition)
      << second.status().ToString();
  EXPECT_TRUE(client.RemoveContainer("taken", true).ok());
}

TEST_F(DockerClientTest, RemovingARunningContainerWithoutForceIsRefused) {
  DockerClient client = Client();
  ASSERT_TRUE(client.CreateContainer("busy", SleepConfig()).ok());
  ASSERT_TRUE(client.StartContainer("busy").ok());
  Status refused = client.RemoveContainer("busy", false);
  EXPECT_FALSE(refused.ok());
  EXPECT_TRUE(client.InspectContainer("busy").ok());
  EXPECT_TRUE(client.RemoveContainer("busy", true).ok());
  EXPECT_EQ(client.InspectContainer("busy").status().code(), Status::Code::kNotFound);
}

TEST_F(DockerClientTest, AnExportedImageLoadsBackAfterItWasDeleted) {
  ASSERT_TRUE(service_
                  ->ImportBusyboxImage("localhost/backstop-export:1", {"CMD [\"sleep\", \"600\"]"},
                                       "export")
                  .ok());
  DockerClient client = Client();
  auto before = client.InspectImage("localhost/backstop-export:1");
  ASSERT_TRUE(before.ok()) << before.status().ToString();

  FileSystem* fs = Env::Default()->fs();
  std::string tar = JoinPath(service_->dir(), "export.tar");
  {
    auto file = fs->NewWritableFile(tar);
    ASSERT_TRUE(file.ok());
    auto written = client.ExportImage("localhost/backstop-export:1", file->get());
    ASSERT_TRUE(written.ok()) << written.status().ToString();
    ASSERT_TRUE((*file)->Close().ok());
    auto info = fs->Stat(tar);
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->size, *written);
    EXPECT_GT(*written, 0u);
  }
  ASSERT_TRUE(client.RemoveImage("localhost/backstop-export:1", false).ok());
  EXPECT_EQ(client.InspectImage("localhost/backstop-export:1").status().code(),
            Status::Code::kNotFound);

  auto in = fs->NewSequentialFile(tar);
  ASSERT_TRUE(in.ok());
  auto loaded = client.LoadImage(in->get());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  auto after = client.InspectImage("localhost/backstop-export:1");
  ASSERT_TRUE(after.ok()) << after.status().ToString() << "; load said " << *loaded;
  EXPECT_EQ((*after)["Id"], (*before)["Id"]);
}

TEST_F(DockerClientTest, ExportingAMissingImageWritesNothing) {
  FileSystem* fs = Env::Default()->fs();
  std::string tar = JoinPath(service_->dir(), "missing.tar");
  auto file = fs->NewWritableFile(tar);
  ASSERT_TRUE(file.ok());
  auto written = Client().ExportImage("localhost/no-such-image:1", file->get());
  EXPECT_EQ(written.status().code(), Status::Code::kNotFound) << written.status().ToString();
  ASSERT_TRUE((*file)->Close().ok());
  auto info = fs->Stat(tar);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, 0u);
}

// The socket checks below need no service.

TEST(DockerClientSocket, NoServiceIsUnavailableNamingTheSocket) {
  DockerClientOptions options;
  options.socket_path = "/nonexistent/backstop-test/docker.sock";
  auto version = DockerClient(options).Version();
  EXPECT_EQ(version.status().code(), Status::Code::kUnavailable) << version.status().ToString();
  EXPECT_NE(version.status().message().find(options.socket_path), std::string::npos)
      << version.status().message();
}

TEST(DockerClientSocket, AServiceThatNeverAnswersTimesOut) {
  // A listening socket nobody serves: the connection is queued, no answer comes.
  char dir_template[] = "/tmp/backstop-silent-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  std::string path = JoinPath(dir_template, "silent.sock");
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 4), 0);

  DockerClientOptions options;
  options.socket_path = path;
  options.request_timeout_ms = 200;
  auto version = DockerClient(options).Version();
  EXPECT_EQ(version.status().code(), Status::Code::kTimeout) << version.status().ToString();

  ::close(fd);
  (void)Env::Default()->fs()->RemoveAll(dir_template);
}

}  // namespace
}  // namespace backstop::container

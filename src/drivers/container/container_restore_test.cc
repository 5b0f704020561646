// The container driver's rollback against a real podman service: deploy by
// release, roll back after the old image was deleted locally (loaded from the
// store), a release that fails its health gate (the replaced container comes
// back). Crashes: container_crash_test.cc.
#include "drivers/container/container_restore.h"

#include "testing/container_restore_fixture.h"

namespace backstop::container {
namespace {

TEST_F(ContainerRestoreTest, DeployByReleaseThenRollBackAfterTheOldImageIsDeleted) {
  RunFirst();
  json good = Snapshot();
  std::string v1 = good["image_id"];
  std::string v2 = Image("2", kServe);

  ctx_.run_id = "run-deploy";
  ASSERT_TRUE(driver_.Stop(c_, ctx_).ok());
  Status deployed = driver_.Restore(c_, {{"release", "2"}}, ctx_);
  ASSERT_TRUE(deployed.ok()) << deployed.ToString();
  ASSERT_TRUE(driver_.Start(c_, ctx_).ok());
  auto d = driver_.Describe(c_, ctx_);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ((*d)["release"], "2");
  EXPECT_EQ((*d)["image_id"], v2);
  EXPECT_EQ(Served(), "up");
  // The configuration came along: the environment of the replaced container.
  auto inspected = Client().InspectContainer(name_);
  ASSERT_TRUE(inspected.ok());
  EXPECT_NE((*inspected)["Config"]["Env"].dump().find("GREETING=hello"), std::string::npos);

  // Release 1 is gone from the engine: only the store has it now.
  ASSERT_TRUE(service_->Podman({"rmi", repo_ + ":1"}).ok());
  ASSERT_EQ(Client().InspectImage(v1).status().code(), Status::Code::kNotFound);

  ctx_.run_id = "run-rollback";
  ASSERT_TRUE(driver_.Stop(c_, ctx_).ok());
  Status rolled = driver_.Restore(c_, good, ctx_);
  ASSERT_TRUE(rolled.ok()) << rolled.ToString();
  ASSERT_TRUE(driver_.Start(c_, ctx_).ok());
  d = driver_.Describe(c_, ctx_);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)["image_id"], v1);
  EXPECT_EQ((*d)["release"], "1");  // the load brought the tag back
  EXPECT_EQ(Served(), "up");
  auto containers = Containers();
  EXPECT_EQ(containers.size(), 1u);  // the replaced ones are gone
  EXPECT_EQ(containers[name_].first, Short(v1));
  EXPECT_FALSE(Env::Default()->fs()->Exists(RestoreJournalPath(c_, ctx_)));

  // Again with the same target: nothing to do.
  ctx_.run_id = "run-again";
  ASSERT_TRUE(driver_.Restore(c_, good, ctx_).ok());
  EXPECT_EQ(Containers().size(), 1u);
  EXPECT_EQ(Containers()[name_].first, Short(v1));
}

TEST_F(ContainerRestoreTest, AReleaseFailingItsGateLeavesTheReplacedOneRunning) {
  RunFirst();
  std::string v1 = Client().InspectContainer(name_)->value("Image", "");
  Image("bad", kBroken);
  ctx_.run_id = "run-bad";
  ASSERT_TRUE(driver_.Stop(c_, ctx_).ok());
  Status st = driver_.Restore(c_, {{"release", "bad"}}, ctx_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("release bad of " + name_ + " failed its health gate"),
            std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("boom: config missing"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("the replaced container was started again"), std::string::npos);
  auto containers = Containers();
  EXPECT_EQ(containers.size(), 1u);
  EXPECT_EQ(containers[name_].first, Short(v1));
  EXPECT_EQ(containers[name_].second, "running");
  HealthResult h = WaitHealthy(c_.health, Env::Default(), 100, nullptr, nullptr);
  EXPECT_EQ(h.state, HealthResult::State::kPass) << h.detail;
  EXPECT_NE(driver_.Diagnose(c_, ctx_), "");
}

TEST_F(ContainerRestoreTest, ACreateThatFailsStartsTheReplacedOneAgain) {
  RunFirst();
  json entry = Snapshot();
  entry["create"]["HostConfig"]["NetworkMode"] = "container:no-such-backstop-container";
  ctx_.run_id = "run-create-fails";
  ASSERT_TRUE(driver_.Stop(c_, ctx_).ok());
  Status st = driver_.Restore(c_, entry, ctx_);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message().rfind("the replaced container was started again after this failure: "
                               "create container " +
                                   name_ + "-run-create-fails",
                               0),
            0u)
      << st.message();
  auto containers = Containers();
  EXPECT_EQ(containers.size(), 1u);
  EXPECT_EQ(containers[name_].second, "running");
  EXPECT_FALSE(Env::Default()->fs()->Exists(RestoreJournalPath(c_, ctx_)));
}

}  // namespace
}  // namespace backstop::container

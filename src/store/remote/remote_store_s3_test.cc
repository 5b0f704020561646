// The remote store over a real S3 stand-in (s3rver), through the fault proxy
// (tests/tools/s3-fault-proxy.mjs) that also checks every request's
// Signature V4: dropped uploads, 500s and a stalled server never leave a
// restore point listed in the bucket before its last blob is whole there.
#include <gtest/gtest.h>

#include "store/remote/remote_store.h"
#include "store/remote/s3_object_store.h"
#include "testing/s3rver.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

using testing::RandomBytes;
using testing::TempDir;

constexpr char kKey[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
constexpr int64_t kT0 = 1'795'659'587'000'000;  // 2026-11-26T02:19:47Z

class RemoteStoreS3Test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = testing::S3rver::Start("backstop", BACKSTOP_SOURCE_DIR);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    auto proxy = testing::S3FaultProxy::Start(server_->endpoint(), BACKSTOP_SOURCE_DIR,
                                              testing::S3rver::kSecretAccessKey);
    ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
    proxy_ = std::move(proxy).value();
  }

  std::unique_ptr<Store> OpenLocal(const std::string& name) {
    auto s = Store::Open(Env::Default(), dir_.Join(name));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return std::move(s).value();
  }
  // Through the proxy (`direct`: to s3rver itself, to look behind a fault).
  std::unique_ptr<RemoteStore> OpenRemote(Store* local, bool direct = false) {
    auto location =
        ParseS3Url("s3://backstop/prod/db", direct ? server_->endpoint() : proxy_->endpoint());
    EXPECT_TRUE(location.ok()) << location.status().ToString();
    S3Credentials credentials{testing::S3rver::kAccessKeyId, testing::S3rver::kSecretAccessKey, ""};
    S3Options options;
    options.max_attempts = 3;
    options.first_backoff_ms = 10;
    options.max_backoff_ms = 50;
    options.timeout_s = 2;
    auto objects = S3ObjectStore::Open(*location, credentials, options);
    EXPECT_TRUE(objects.ok()) << objects.status().ToString();
    std::unique_ptr<ObjectStore> base = std::move(objects).value();
    auto remote = RemoteStore::Open(local, std::move(base), *StoreKey::FromText(kKey, "test"));
    EXPECT_TRUE(remote.ok()) << remote.status().ToString();
    return remote.ok() ? std::move(remote).value() : nullptr;
  }
  RestorePoint Take(Store& store, const std::string& id) {
    RestorePoint rp;
    rp.id = id;
    rp.label = "before-the-migration";
    rp.created_wall_us = kT0;
    nlohmann::json blobs = nlohmann::json::array();
    for (int i = 0; i < 3; ++i) blobs.push_back(*store.Put(RandomBytes(300'000, i + 1)));
    rp.components["db"] = {{"blobs", blobs}};
    EXPECT_TRUE(WriteRestorePoint(store, rp).ok());
    return rp;
  }

  TempDir dir_;
  std::unique_ptr<testing::S3rver> server_;
  std::unique_ptr<testing::S3FaultProxy> proxy_;
};

TEST_F(RemoteStoreS3Test, SignedRequestsSyncFetchAndVerifyARestorePoint) {
  auto here = OpenLocal("here");
  RestorePoint rp = Take(*here, "rp-20261126T021947Z-aaaaaa");
  auto remote = OpenRemote(here.get());
  auto summary = remote->Sync(nullptr);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->uploaded, std::vector<std::string>{rp.id});
  EXPECT_EQ(summary->blobs_sent, 3u);
  auto check = remote->Verify(rp);
  ASSERT_TRUE(check.ok()) << check.status().ToString();
  EXPECT_TRUE(check->ok());
  auto there = OpenLocal("there");
  auto fetched = OpenRemote(there.get())->Fetch(rp.id, nullptr);
  ASSERT_TRUE(fetched.ok()) << fetched.status().ToString();
  EXPECT_EQ(fetched->blobs_fetched, 3u);
  EXPECT_TRUE(VerifyRestorePoint(*there, *ReadRestorePoint(*there, rp.id)).ok());
}

TEST_F(RemoteStoreS3Test, UploadsDroppedMidwayAreNeverListed_AndTheNextSyncSendsThemWhole) {
  auto here = OpenLocal("here");
  RestorePoint rp = Take(*here, "rp-20261126T021947Z-aaaaaa");
  auto remote = OpenRemote(here.get());
  ASSERT_TRUE(proxy_->SetMode("drop-mid-upload").ok());
  auto summary = remote->Sync(nullptr, nullptr, /*threads=*/1);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_TRUE(summary->uploaded.empty());
  ASSERT_EQ(summary->failed.size(), 1u);
  EXPECT_TRUE(OpenRemote(here.get(), /*direct=*/true)->ListIds()->empty());

  // s3rver keeps what a dropped PUT sent under the key: such a blob is not
  // taken for present, it is sent again.
  ASSERT_TRUE(proxy_->SetMode("pass").ok());
  auto again = remote->Sync(nullptr);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->uploaded, std::vector<std::string>{rp.id});
  EXPECT_EQ(again->blobs_sent, 3u);
  auto there = OpenLocal("there");
  EXPECT_TRUE(OpenRemote(there.get(), /*direct=*/true)->Fetch(rp.id, nullptr).ok());
}

TEST_F(RemoteStoreS3Test, TwoServerErrorsAreRetriedIntoACompleteSync) {
  auto here = OpenLocal("here");
  RestorePoint rp = Take(*here, "rp-20261126T021947Z-aaaaaa");
  auto remote = OpenRemote(here.get());
  ASSERT_TRUE(proxy_->SetMode("fail500 2").ok());
  auto summary = remote->Sync(nullptr, nullptr, /*threads=*/1);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->uploaded, std::vector<std::string>{rp.id});
  EXPECT_TRUE(summary->failed.empty());
}

TEST_F(RemoteStoreS3Test, AStalledServerFailsTheSyncAndListsNothing) {
  auto here = OpenLocal("here");
  Take(*here, "rp-20261126T021947Z-aaaaaa");
  auto remote = OpenRemote(here.get());
  ASSERT_TRUE(proxy_->SetMode("stall").ok());
  auto summary = remote->Sync(nullptr, nullptr, /*threads=*/1);
  EXPECT_TRUE(!summary.ok() || summary->uploaded.empty());
  if (!summary.ok()) {
    EXPECT_EQ(summary.status().code(), Status::Code::kUnavailable);
  }
  EXPECT_TRUE(OpenRemote(here.get(), /*direct=*/true)->ListIds()->empty());
  EXPECT_EQ(remote->NotReplicated().size(), 1u);
}

}  // namespace
}  // namespace backstop

#include "store/remote/remote_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "store/remote/dir_object_store.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

using testing::RandomBytes;
using testing::TempDir;

constexpr char kKeyA[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
constexpr char kKeyB[] = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

// 2026-11-26T02:19:47Z.
constexpr int64_t kT0 = 1'795'659'587'000'000;

StoreKey KeyOrDie(const char* hex) { return *StoreKey::FromText(hex, "test"); }

// An ObjectStore that fails the Put of the `fail_put_number`-th object
// (1-based) whose key starts with `fail_prefix`, as a dropped upload would.
class FailingObjectStore : public ObjectStore {
 public:
  explicit FailingObjectStore(std::unique_ptr<ObjectStore> target) : target_(std::move(target)) {}
  std::string Describe() const override { return target_->Describe(); }
  Status Put(const std::string& key, std::string_view data) override {
    if (ShouldFail(key)) return Status::Unavailable("connection reset while sending " + key);
    return target_->Put(key, data);
  }
  Status PutFile(const std::string& key, const std::string& path) override {
    if (ShouldFail(key)) return Status::Unavailable("connection reset while sending " + key);
    return target_->PutFile(key, path);
  }
  Result<std::string> Get(const std::string& key) override { return target_->Get(key); }
  Status GetToFile(const std::string& key, const std::string& path) override {
    return target_->GetToFile(key, path);
  }
  Result<uint64_t> Size(const std::string& key) override { return target_->Size(key); }
  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override {
    return target_->List(prefix);
  }
  Status Delete(const std::string& key) override { return target_->Delete(key); }

  std::string fail_prefix;
  int fail_put_number = 0;
  int puts_seen = 0;
  int puts_total = 0;

 private:
  bool ShouldFail(const std::string& key) {
    ++puts_total;
    if (fail_prefix.empty() || key.compare(0, fail_prefix.size(), fail_prefix) != 0) return false;
    return ++puts_seen == fail_put_number;
  }
  std::unique_ptr<ObjectStore> target_;
};

class RemoteStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> OpenLocal(const std::string& name) {
    auto s = Store::Open(Env::Default(), dir_.Join(name));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return std::move(s).value();
  }
  std::unique_ptr<ObjectStore> Bucket() {
    auto b = DirObjectStore::Open(Env::Default()->fs(), dir_.Join("bucket"));
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    return std::move(b).value();
  }
  std::unique_ptr<RemoteStore> OpenRemote(Store* local, std::optional<StoreKey> key,
                                          std::unique_ptr<ObjectStore> objects = nullptr) {
    auto r = RemoteStore::Open(local, objects ? std::move(objects) : Bucket(), std::move(key));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }
  // A restore point of two blobs, one of them `shared`.
  RestorePoint Take(Store& store, const std::string& id, const std::string& label,
                    const std::string& shared, int64_t when) {
    RestorePoint rp;
    rp.id = id;
    rp.label = label;
    rp.created_wall_us = when;
    std::string a = *store.Put(shared);
    std::string b = *store.Put("dump of " + id + RandomBytes(200000, when));
    rp.components["app"] = {{"release", id}, {"blobs", {a}}};
    rp.components["db"] = {{"blobs", {b}}};
    EXPECT_TRUE(WriteRestorePoint(store, rp).ok());
    return rp;
  }
  std::vector<std::string> BucketKeys() {
    std::vector<std::string> keys;
    auto listed = Bucket()->List("");  // kept alive through the loop
    EXPECT_TRUE(listed.ok()) << listed.status().ToString();
    for (const auto& o : *listed) keys.push_back(o.key);
    return keys;
  }

  TempDir dir_;
};

TEST_F(RemoteStoreTest, ARestorePointSyncedFromOneHostIsFetchedWhole_IntoAnEmptyStoreOnAnother) {
  auto here = OpenLocal("here");
  RestorePoint rp = Take(*here, "rp-20261126T021947Z-aaaaaa", "v1", "release tree", kT0);
  auto remote = OpenRemote(here.get(), KeyOrDie(kKeyA));
  auto summary = remote->Sync(nullptr);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->uploaded, std::vector<std::string>{rp.id});
  EXPECT_EQ(summary->blobs_sent, 2u);
  EXPECT_TRUE(summary->failed.empty());

  auto there = OpenLocal("there");  // the new host: nothing but the bucket and the key
  auto remote_there = OpenRemote(there.get(), KeyOrDie(kKeyA));
  auto fetched = remote_there->Fetch(rp.id, nullptr);
  ASSERT_TRUE(fetched.ok()) << fetched.status().ToString();
  EXPECT_EQ(fetched->blobs_fetched, 2u);
  auto back = ReadRestorePoint(*there, rp.id);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->checksum, rp.checksum);
  for (const auto& digest : rp.AllBlobs()) {
    EXPECT_EQ(*there->Get(digest), *here->Get(digest));
  }
  EXPECT_TRUE(VerifyRestorePoint(*there, *back).ok());
}

TEST_F(RemoteStoreTest, ASecondSyncWithNothingNewSendsNothing_AndANewRestorePointOnlyItsNewBlobs) {
  auto local = OpenLocal("here");
  Take(*local, "rp-20261126T021947Z-aaaaaa", "v1", "shared release", kT0);
  auto remote = OpenRemote(local.get(), KeyOrDie(kKeyA));
  ASSERT_EQ(remote->Sync(nullptr)->blobs_sent, 2u);
  auto again = remote->Sync(nullptr);
  EXPECT_EQ(again->blobs_sent, 0u);
  EXPECT_EQ(again->bytes_sent, 0u);
  EXPECT_EQ(again->already_there, 1u);
  EXPECT_TRUE(again->uploaded.empty());
  Take(*local, "rp-20261126T022047Z-bbbbbb", "v2", "shared release", kT0 + 60'000'000);
  auto third = remote->Sync(nullptr);
  EXPECT_EQ(third->uploaded, std::vector<std::string>{"rp-20261126T022047Z-bbbbbb"});
  EXPECT_EQ(third->blobs_sent, 1u);
  EXPECT_EQ(third->blobs_present, 1u);
}

TEST_F(RemoteStoreTest, TheBucketRevealsNoDigestAndNoPlaintext) {
  auto local = OpenLocal("here");
  RestorePoint rp = Take(*local, "rp-20261126T021947Z-aaaaaa", "secret-label", "tree", kT0);
  ASSERT_TRUE(OpenRemote(local.get(), KeyOrDie(kKeyA))->Sync(nullptr).ok());
  for (const auto& key : BucketKeys()) {
    for (const auto& digest : rp.AllBlobs()) EXPECT_EQ(key.find(digest), std::string::npos);
    auto content = *Bucket()->Get(key);
    EXPECT_EQ(content.find("secret-label"), std::string::npos) << key;
  }
  EXPECT_EQ(BucketKeys().size(), 4u);  // config, two blobs, one manifest
}

TEST_F(RemoteStoreTest, AWrongKeyIsRefusedBeforeAnythingIsReadOrWritten) {
  auto local = OpenLocal("here");
  Take(*local, "rp-20261126T021947Z-aaaaaa", "v1", "tree", kT0);
  ASSERT_TRUE(OpenRemote(local.get(), KeyOrDie(kKeyA))->Sync(nullptr).ok());
  auto before = BucketKeys();
  auto wrong = RemoteStore::Open(local.get(), Bucket(), KeyOrDie(kKeyB));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(wrong.status().message().find("does not open the remote store"), std::string::npos)
      << wrong.status().message();
  EXPECT_NE(wrong.status().message().find(KeyOrDie(kKeyA).fingerprint()), std::string::npos);
  EXPECT_EQ(BucketKeys(), before);
}

TEST_F(RemoteStoreTest, EncryptedAndPlainStoresRefuseTheOtherSetting) {
  auto local = OpenLocal("here");
  ASSERT_NE(OpenRemote(local.get(), std::nullopt), nullptr);  // created plain
  auto with_key = RemoteStore::Open(local.get(), Bucket(), KeyOrDie(kKeyA));
  ASSERT_FALSE(with_key.ok());
  EXPECT_NE(with_key.status().message().find("created without encryption"), std::string::npos);

  TempDir other;
  auto encrypted_bucket = DirObjectStore::Open(Env::Default()->fs(), other.Join("b"));
  std::unique_ptr<ObjectStore> first = std::move(encrypted_bucket).value();
  ASSERT_TRUE(RemoteStore::Open(local.get(), std::move(first), KeyOrDie(kKeyA)).ok());
  std::unique_ptr<ObjectStore> again =
      std::move(DirObjectStore::Open(Env::Default()->fs(), other.Join("b"))).value();
  auto no_key = RemoteStore::Open(local.get(), std::move(again), std::nullopt);
  ASSERT_FALSE(no_key.ok());
  EXPECT_NE(no_key.status().message().find("is encrypted"), std::string::npos);
}

TEST_F(RemoteStoreTest, AnUploadCutOffBeforeTheLastBlobLeavesTheRestorePointUnlisted_UntilSynced) {
  auto local = OpenLocal("here");
  RestorePoint rp = Take(*local, "rp-20261126T021947Z-aaaaaa", "v1", "tree", kT0);
  auto failing = std::make_unique<FailingObjectStore>(Bucket());
  failing->fail_prefix = "blobs/";
  failing->fail_put_number = 2;
  auto remote = OpenRemote(local.get(), KeyOrDie(kKeyA), std::move(failing));
  auto summary = remote->Sync(nullptr, nullptr, /*threads=*/1);
  ASSERT_TRUE(summary.ok());
  EXPECT_TRUE(summary->uploaded.empty());
  ASSERT_EQ(summary->failed.size(), 1u);
  EXPECT_NE(summary->failed[0].find("connection reset"), std::string::npos);
  EXPECT_TRUE(remote->ListIds()->empty());
  EXPECT_EQ(remote->NotReplicated(), std::vector<std::string>{rp.id});

  auto healthy = OpenRemote(local.get(), KeyOrDie(kKeyA));
  auto retry = healthy->Sync(nullptr);
  EXPECT_EQ(retry->uploaded, std::vector<std::string>{rp.id});
  EXPECT_EQ(retry->blobs_sent, 1u);  // the one that made it is not sent again
  EXPECT_TRUE(healthy->NotReplicated().empty());
}

TEST_F(RemoteStoreTest, ATruncatedBlobLeftInTheBucketIsSentAgainNotTrusted) {
  auto local = OpenLocal("here");
  RestorePoint rp = Take(*local, "rp-20261126T021947Z-aaaaaa", "v1", "tree", kT0);
  auto remote = OpenRemote(local.get(), KeyOrDie(kKeyA));
  // What a dropped upload leaves in a store that keeps partial bodies.
  std::string digest = rp.components["db"]["blobs"][0];
  std::string key = "blobs/" + KeyOrDie(kKeyA).BlobObjectId(digest).substr(0, 2) + "/" +
                    KeyOrDie(kKeyA).BlobObjectId(digest);
  ASSERT_TRUE(Bucket()->Put(key, "BSTPENC1 cut short").ok());
  auto summary = remote->Sync(nullptr);
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ(summary->blobs_sent, 2u);
  EXPECT_EQ(summary->blobs_present, 0u);
  auto there = OpenLocal("there");
  EXPECT_TRUE(OpenRemote(there.get(), KeyOrDie(kKeyA))->Fetch(rp.id, nullptr).ok());
}

TEST_F(RemoteStoreTest, VerifyReadsEveryBlobBackAndNamesTheTamperedAndTheMissing) {
  auto local = OpenLocal("here");
  RestorePoint rp = Take(*local, "rp-20261126T021947Z-aaaaaa", "v1", "tree", kT0);
  auto remote = OpenRemote(local.get(), KeyOrDie(kKeyA));
  ASSERT_TRUE(remote->Sync(nullptr).ok());
  auto clean = remote->Verify(rp);
  ASSERT_TRUE(clean.ok()) << clean.status().ToString();
  EXPECT_TRUE(clean->ok());

  std::vector<std::string> blob_keys;
  for (const auto& k : BucketKeys()) {
    if (k.rfind("blobs/", 0) == 0) blob_keys.push_back(k);
  }
  ASSERT_EQ(blob_keys.size(), 2u);
  std::string path0 = dir_.Join("bucket/" + blob_keys[0]);
  std::string content = *Env::Default()->fs()->ReadFile(path0);
  content[content.size() / 2] ^= 1;
  ASSERT_TRUE(Env::Default()->fs()->WriteFileAtomic(path0, content).ok());
  ASSERT_TRUE(Env::Default()->fs()->Remove(dir_.Join("bucket/" + blob_keys[1])).ok());
  auto damaged = remote->Verify(rp);
  ASSERT_TRUE(damaged.ok());
  auto failures = damaged->Failures();
  ASSERT_EQ(failures.size(), 2u);
  int corrupted = 0, missing = 0;
  for (const auto& f : failures) {
    if (f.state == BlobCheck::State::kCorrupted) ++corrupted;
    if (f.state == BlobCheck::State::kMissing) ++missing;
  }
  EXPECT_EQ(corrupted, 1);
  EXPECT_EQ(missing, 1);
}

TEST_F(RemoteStoreTest, ABlobSwappedIntoAnotherPlaceIsRefusedAndNoManifestIsWrittenLocally) {
  auto here = OpenLocal("here");
  RestorePoint rp = Take(*here, "rp-20261126T021947Z-aaaaaa", "v1", "tree", kT0);
  ASSERT_TRUE(OpenRemote(here.get(), KeyOrDie(kKeyA))->Sync(nullptr).ok());
  std::vector<std::string> blob_keys;
  for (const auto& k : BucketKeys()) {
    if (k.rfind("blobs/", 0) == 0) blob_keys.push_back(k);
  }
  ASSERT_EQ(blob_keys.size(), 2u);
  // Both objects are genuine, each under the other's name.
  FileSystem* fs = Env::Default()->fs();
  std::string a = *fs->ReadFile(dir_.Join("bucket/" + blob_keys[0]));
  std::string b = *fs->ReadFile(dir_.Join("bucket/" + blob_keys[1]));
  ASSERT_TRUE(fs->WriteFileAtomic(dir_.Join("bucket/" + blob_keys[0]), b).ok());
  ASSERT_TRUE(fs->WriteFileAtomic(dir_.Join("bucket/" + blob_keys[1]), a).ok());

  auto there = OpenLocal("there");
  auto fetched = OpenRemote(there.get(), KeyOrDie(kKeyA))->Fetch(rp.id, nullptr);
  ASSERT_FALSE(fetched.ok());
  EXPECT_EQ(fetched.status().code(), Status::Code::kCorruption);
  EXPECT_FALSE(ReadRestorePoint(*there, rp.id).ok());
}

TEST_F(RemoteStoreTest, ADamagedLocalBlobIsNotUploaded) {
  auto local = OpenLocal("here");
  RestorePoint rp = Take(*local, "rp-20261126T021947Z-aaaaaa", "v1", "tree", kT0);
  std::string victim = rp.components["db"]["blobs"][0];
  std::string path = local->BlobPath(victim);
  ::chmod(path.c_str(), 0600);
  std::string raw = *Env::Default()->fs()->ReadFile(path);
  raw[raw.size() - 3] ^= 0x7f;
  ASSERT_TRUE(Env::Default()->fs()->WriteFileAtomic(path, raw).ok());
  auto remote = OpenRemote(local.get(), KeyOrDie(kKeyA));
  auto summary = remote->Sync(nullptr);
  ASSERT_TRUE(summary.ok());
  EXPECT_TRUE(summary->uploaded.empty());
  ASSERT_EQ(summary->failed.size(), 1u);
  EXPECT_NE(summary->failed[0].find("not uploaded"), std::string::npos) << summary->failed[0];
  EXPECT_TRUE(remote->ListIds()->empty());
}

TEST_F(RemoteStoreTest, ResolveFindsLatestPreviousLabelAndPrefixAmongRemoteRestorePoints) {
  auto local = OpenLocal("here");
  Take(*local, "rp-20261126T021947Z-aaaaaa", "v1", "t", kT0);
  Take(*local, "rp-20261126T022047Z-bbbbbb", "v2", "t", kT0 + 60'000'000);
  auto remote = OpenRemote(local.get(), KeyOrDie(kKeyA));
  ASSERT_TRUE(remote->Sync(nullptr).ok());
  EXPECT_EQ(remote->Resolve("latest", false)->id, "rp-20261126T022047Z-bbbbbb");
  EXPECT_EQ(remote->Resolve("previous", false)->id, "rp-20261126T021947Z-aaaaaa");
  EXPECT_EQ(remote->Resolve("v1", false)->id, "rp-20261126T021947Z-aaaaaa");
  EXPECT_EQ(remote->Resolve("rp-20261126T022047Z-bbbbbb", false)->label, "v2");
  EXPECT_EQ(remote->Resolve("rp-20261126T022", false)->id, "rp-20261126T022047Z-bbbbbb");
  auto ambiguous = remote->Resolve("rp-20261126T02", false);
  EXPECT_EQ(ambiguous.status().code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(remote->Resolve("v9", false).status().IsNotFound());
}

TEST_F(RemoteStoreTest, APlainStoreHoldsTheLocalFilesAsTheyAre) {
  auto local = OpenLocal("here");
  RestorePoint rp = Take(*local, "rp-20261126T021947Z-aaaaaa", "v1", "tree", kT0);
  auto remote = OpenRemote(local.get(), std::nullopt);
  ASSERT_TRUE(remote->Sync(nullptr).ok());
  for (const auto& digest : rp.AllBlobs()) {
    auto raw = Bucket()->Get("blobs/" + digest.substr(0, 2) + "/" + digest);
    ASSERT_TRUE(raw.ok()) << raw.status().ToString();
    EXPECT_EQ(*raw, *Env::Default()->fs()->ReadFile(local->BlobPath(digest)));
  }
  auto there = OpenLocal("there");
  EXPECT_TRUE(OpenRemote(there.get(), std::nullopt)->Fetch(rp.id, nullptr).ok());
  EXPECT_TRUE(ReadRestorePoint(*there, rp.id).ok());
}

}  // namespace
}  // namespace backstop

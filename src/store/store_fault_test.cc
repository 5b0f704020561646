// What a full disk, a failing device or a failed rename leaves in the store:
// never a blob or a restore point that looks complete, and no temporary file
// that lingers.
#include <gtest/gtest.h>

#include <functional>

#include "base/hash.h"
#include "store/restore_point.h"
#include "store/store.h"
#include "testing/fault_fs.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

using testing::FaultFileSystem;
using testing::RandomBytes;
using testing::TempDir;
using testing::WriteFileOrDie;

// A rule pattern for everything in `dir` (the test's own folder may itself
// sit under a "tmp" folder, so patterns are anchored).
std::string Under(const std::string& dir) { return dir + "/*"; }

class StoreFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = Store::Open(&env_, dir_.Join("store"));
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(*opened);
  }

  // Nothing the failed write made may remain: no blob, no temporary file.
  void ExpectNoBlobAndNoLeftovers(const std::string& digest) {
    EXPECT_FALSE(store_->Has(digest));
    EXPECT_EQ(store_->Check(digest).state, BlobCheck::State::kMissing);
    auto blobs = store_->ListBlobs();
    ASSERT_TRUE(blobs.ok());
    EXPECT_TRUE(blobs->empty());
    auto tmp = faults_.ListDir(store_->TmpDir());
    ASSERT_TRUE(tmp.ok());
    EXPECT_TRUE(tmp->empty()) << (*tmp)[0];
  }

  // After the fault is gone, the same content goes in and verifies.
  void ExpectPutWorksAgain(const std::string& data) {
    faults_.Clear();
    auto digest = store_->Put(data);
    ASSERT_TRUE(digest.ok()) << digest.status().ToString();
    EXPECT_EQ(store_->Check(*digest).state, BlobCheck::State::kOk);
  }

  TempDir dir_;
  FaultFileSystem faults_{Env::Default()->fs()};
  Env env_{Env::Default()->clock(), &faults_, Env::Default()->processes()};
  std::unique_ptr<Store> store_;
  const std::string data_ = RandomBytes(300 << 10, 7);  // several writes' worth
  const std::string digest_ = Sha256Hex(data_);
};

TEST_F(StoreFaultTest, DiskFullOnAWriteLeavesNoBlob) {
  faults_.FailWriteNumber(Under(store_->TmpDir()), 2);
  auto put = store_->Put(data_);
  EXPECT_EQ(put.status().code(), Status::Code::kIOError);
  EXPECT_NE(put.status().message().find("No space left"), std::string::npos);
  ExpectNoBlobAndNoLeftovers(digest_);
  ExpectPutWorksAgain(data_);
}

TEST_F(StoreFaultTest, DiskFullAfterSomeBytesLeavesNoBlob) {
  faults_.FailWritesAfterBytes(Under(store_->TmpDir()), 100 << 10);
  EXPECT_FALSE(store_->Put(data_).ok());
  ExpectNoBlobAndNoLeftovers(digest_);
  ExpectPutWorksAgain(data_);
}

TEST_F(StoreFaultTest, ATornWriteLeavesNoBlob) {
  faults_.TearWriteNumber(Under(store_->TmpDir()), 2, 1000);
  EXPECT_EQ(store_->Put(data_).status().code(), Status::Code::kIOError);
  ExpectNoBlobAndNoLeftovers(digest_);
  ExpectPutWorksAgain(data_);
}

TEST_F(StoreFaultTest, AFailedFsyncLeavesNoBlob) {
  faults_.FailSyncs(Under(store_->TmpDir()));
  EXPECT_EQ(store_->Put(data_).status().code(), Status::Code::kIOError);
  ExpectNoBlobAndNoLeftovers(digest_);
  ExpectPutWorksAgain(data_);
}

TEST_F(StoreFaultTest, AFailedRenameLeavesNoBlob) {
  faults_.FailRenames(Under(JoinPath(store_->root(), "blobs")));
  EXPECT_EQ(store_->Put(data_).status().code(), Status::Code::kIOError);
  ExpectNoBlobAndNoLeftovers(digest_);
  ExpectPutWorksAgain(data_);
}

TEST_F(StoreFaultTest, ALargeFileStreamedToAFullDiskLeavesNoBlob) {
  // Over PutFile's 4 MiB limit: hashed and compressed in one pass.
  std::string big = RandomBytes(5 << 20, 11);
  std::string path = dir_.Join("dump");
  WriteFileOrDie(path, big);
  faults_.FailWritesAfterBytes(Under(store_->TmpDir()), 1 << 20);
  auto put = store_->PutFile(path);
  EXPECT_EQ(put.status().code(), Status::Code::kIOError);
  ExpectNoBlobAndNoLeftovers(Sha256Hex(big));
  faults_.Clear();
  auto again = store_->PutFile(path);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, Sha256Hex(big));
}

TEST_F(StoreFaultTest, AFailedRestoreLeavesTheTargetAsItWas) {
  auto digest = store_->Put(data_);
  ASSERT_TRUE(digest.ok());
  std::string target = dir_.Join("out/config.yaml");
  WriteFileOrDie(target, "the old content");
  faults_.FailWriteNumber(Under(dir_.Join("out")), 2);  // of two
  EXPECT_EQ(store_->GetToFile(*digest, target, 0644).code(), Status::Code::kIOError);
  EXPECT_EQ(*faults_.ReadFile(target), "the old content");
  EXPECT_EQ(*faults_.ListDir(dir_.Join("out")), std::vector<std::string>{"config.yaml"});
}

class RestorePointFaultTest : public StoreFaultTest {
 protected:
  RestorePoint NewPoint(const std::string& id) {
    RestorePoint rp;
    rp.id = id;
    rp.created_wall_us = 1'790'000'000'000'000;
    return rp;
  }
  void ExpectNoRestorePointListed() {
    std::vector<std::string> errors;
    EXPECT_TRUE(ListRestorePoints(*store_, &errors).empty());
    EXPECT_TRUE(errors.empty()) << errors[0];
    EXPECT_TRUE(faults_.ListDir(store_->ManifestDir())->empty());
    EXPECT_TRUE(faults_.ListDir(store_->TmpDir())->empty());
  }
};

TEST_F(RestorePointFaultTest, AManifestThatFailsToBeWrittenIsNotListed) {
  auto blob = store_->Put(data_);
  ASSERT_TRUE(blob.ok());
  for (auto inject : std::vector<std::function<void()>>{
           [&] { faults_.FailWriteNumber(Under(store_->TmpDir()), 1); },
           [&] { faults_.TearWriteNumber(Under(store_->TmpDir()), 1, 20); },
           [&] { faults_.FailSyncs(Under(store_->TmpDir())); },
           [&] { faults_.FailRenames(Under(store_->ManifestDir())); },
       }) {
    faults_.Clear();
    inject();
    RestorePoint rp = NewPoint("rp-20260101T000000Z-bbbbbb");
    rp.components["app"] = {{"blobs", {*blob}}};
    EXPECT_EQ(WriteRestorePoint(*store_, rp).code(), Status::Code::kIOError);
    ExpectNoRestorePointListed();
  }
  faults_.Clear();
  RestorePoint rp = NewPoint("rp-20260101T000000Z-bbbbbb");
  rp.components["app"] = {{"blobs", {*blob}}};
  ASSERT_TRUE(WriteRestorePoint(*store_, rp).ok());
  EXPECT_TRUE(VerifyRestorePoint(*store_, rp).ok());
}

}  // namespace
}  // namespace backstop

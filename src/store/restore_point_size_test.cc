// A restore point's sizes over a real store: what it names in all, and what
// it added that no older one names; a shared blob is counted once per
// restore point but added only by the first; a missing blob is counted apart.
#include "store/restore_point_size.h"

#include <gtest/gtest.h>

#include "testing/test_env.h"

namespace backstop {
namespace {

class RestorePointSizeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::Open(Env::Default(), dir_.Join("store"));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }
  std::string Put(const std::string& data) {
    auto d = store_->Put(data);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? *d : "";
  }
  uint64_t Stored(const std::string& digest) {
    auto info = Env::Default()->fs()->Stat(store_->BlobPath(digest));
    EXPECT_TRUE(info.ok());
    return info.ok() ? info->size : 0;
  }
  static RestorePoint Naming(const std::string& id, std::vector<std::string> app_blobs,
                             std::vector<std::string> db_blobs = {}) {
    RestorePoint rp;
    rp.id = id;
    rp.components["app"] = {{"blobs", app_blobs}};
    if (!db_blobs.empty()) rp.components["db"] = {{"blobs", db_blobs}};
    return rp;
  }

  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(RestorePointSizeTest, ASharedBlobCountsInEachButIsAddedOnlyByTheFirst) {
  const std::string release = Put(std::string(10'000, 'r'));
  const std::string dump1 = Put("COPY tasks FROM stdin;\n1\tpending\n\\.\n");
  const std::string dump2 = Put("COPY tasks FROM stdin;\n1\tdone\n\\.\n");
  // The release blob is named twice by the first (two components): once.
  std::vector<RestorePoint> points = {Naming("rp-1", {release}, {dump1, release}),
                                      Naming("rp-2", {release}, {dump2})};
  std::vector<RestorePointSize> sizes = MeasureRestorePoints(*store_, points);
  ASSERT_EQ(sizes.size(), 2u);
  EXPECT_EQ(sizes[0].stored_bytes, Stored(release) + Stored(dump1));
  EXPECT_EQ(sizes[0].added_bytes, Stored(release) + Stored(dump1));
  EXPECT_EQ(sizes[1].stored_bytes, Stored(release) + Stored(dump2));
  EXPECT_EQ(sizes[1].added_bytes, Stored(dump2));
  EXPECT_EQ(sizes[1].missing_blobs, 0u);
}

TEST_F(RestorePointSizeTest, AMissingBlobIsCountedApartAndWeighsNothing) {
  const std::string kept = Put("kept");
  const std::string gone = Put("gone");
  ASSERT_TRUE(store_->RemoveBlob(gone).ok());
  std::vector<RestorePointSize> sizes = MeasureRestorePoints(*store_, {Naming("rp-1", {kept, gone})});
  ASSERT_EQ(sizes.size(), 1u);
  EXPECT_EQ(sizes[0].stored_bytes, Stored(kept));
  EXPECT_EQ(sizes[0].added_bytes, Stored(kept));
  EXPECT_EQ(sizes[0].missing_blobs, 1u);
}

}  // namespace
}  // namespace backstop

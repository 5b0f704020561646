// The image archive as pieces: byte-exact round trips, a piece per member,
// large members chunked, unchanged members stored once; and release names.
#include "drivers/container/image_archive.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <set>

#include "drivers/container/image_ref.h"
#include "testing/test_env.h"

namespace backstop::container {
namespace {

using testing::TempDir;

// A ustar header for a regular file `name` of `size` bytes.
std::string Header(const std::string& name, uint64_t size) {
  std::string h(512, '\0');
  h.replace(0, name.size(), name);
  std::snprintf(h.data() + 100, 8, "%07o", 0644);
  std::snprintf(h.data() + 124, 12, "%011llo", static_cast<unsigned long long>(size));
  std::snprintf(h.data() + 136, 12, "%011o", 0);
  h[156] = '0';
  h.replace(257, 6, std::string("ustar\0", 6));
  h.replace(148, 8, "        ");
  unsigned sum = 0;
  for (unsigned char ch : h) sum += ch;
  std::snprintf(h.data() + 148, 8, "%06o", sum);
  return h;
}

std::string Member(const std::string& name, const std::string& data) {
  std::string m = Header(name, data.size()) + data;
  m.append((512 - data.size() % 512) % 512, '\0');
  return m;
}

std::string Tar(const std::vector<std::pair<std::string, std::string>>& members) {
  std::string tar;
  for (const auto& [name, data] : members) tar += Member(name, data);
  return tar + std::string(1024, '\0');
}

class ImageArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::Open(Env::Default(), dir_.Join("store"));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
  }
  StoredArchive StoreTar(const std::string& tar, uint64_t chunk) {
    std::string path = dir_.Join("in.tar");
    EXPECT_TRUE(fs_->WriteFileAtomic(path, tar, 0600).ok());
    auto stored = StoreArchive(*store_, fs_, path, chunk);
    EXPECT_TRUE(stored.ok()) << stored.status().ToString();
    return stored.ok() ? *stored : StoredArchive{};
  }
  std::string Rebuilt(const StoredArchive& a) {
    std::string path = dir_.Join("out.tar");
    EXPECT_TRUE(WriteArchive(*store_, fs_, a.pieces, path).ok());
    auto text = fs_->ReadFile(path);
    return text.ok() ? *text : std::string("<unreadable>");
  }
  uint64_t BlobBytes() {
    uint64_t total = 0;
    auto blobs = store_->ListBlobs();
    EXPECT_TRUE(blobs.ok());
    if (!blobs.ok()) return 0;
    for (const auto& d : *blobs) {
      auto size = store_->SizeOf(d);
      if (size.ok()) total += *size;
    }
    return total;
  }

  TempDir dir_;
  FileSystem* fs_ = Env::Default()->fs();
  std::unique_ptr<Store> store_;
};

TEST_F(ImageArchiveTest, APiecePerMemberAndLargeMembersChunked) {
  std::string tar = Tar({{"manifest.json", "[]"}, {"layer.tar", std::string(5000, 'x')}});
  StoredArchive a = StoreTar(tar, 2048);
  // manifest (1 piece), layer: 512 + 5120 bytes in pieces of 2048 (3), trailer (1).
  EXPECT_EQ(a.pieces.size(), 5u);
  EXPECT_EQ(a.bytes, tar.size());
  EXPECT_EQ(Rebuilt(a), tar);
}

TEST_F(ImageArchiveTest, AnUnchangedMemberCostsNothingTheSecondTime) {
  std::string layer(100'000, 'a');
  for (size_t i = 0; i < layer.size(); i += 7) layer[i] = static_cast<char>('a' + i % 26);
  StoredArchive first = StoreTar(Tar({{"config.json", "{\"v\":1}"}, {"layer.tar", layer}}), 4096);
  uint64_t after_first = BlobBytes();
  StoredArchive second = StoreTar(Tar({{"config.json", "{\"v\":2}"}, {"layer.tar", layer}}), 4096);
  // Only the changed config member is new (its header and one data block),
  // nothing of the 100 KB layer.
  EXPECT_EQ(BlobBytes() - after_first, 1024u);
  std::set<std::string> old(first.pieces.begin(), first.pieces.end());
  size_t shared = 0;
  for (const auto& p : second.pieces) shared += old.count(p);
  EXPECT_EQ(shared, second.pieces.size() - 1);
}

TEST_F(ImageArchiveTest, WhatIsNotATarIsStillKeptByteForByte) {
  std::string junk = "not a tar archive at all";
  StoredArchive a = StoreTar(junk, 4096);
  EXPECT_EQ(Rebuilt(a), junk);
  EXPECT_EQ(Rebuilt(StoreTar("", 4096)), "");
}

TEST(ImageRefTest, ReleasesAreTagsOfTheSettingsRepository) {
  EXPECT_EQ(ReleaseOfRef("localhost/web:1.4"), "1.4");
  EXPECT_EQ(ReleaseOfRef("localhost:5000/web"), "latest");
  EXPECT_EQ(ReleaseOfRef("sha256:0123456789abcdef0123"), "0123456789ab");
  EXPECT_EQ(RefOfRelease("localhost/web:1.4", "1.5"), "localhost/web:1.5");
  nlohmann::json images = {{{"RepoTags", {"localhost/web:2", "localhost/other:9"}}},
                           {{"RepoTags", {"localhost/web:1"}}},
                           {{"RepoTags", nullptr}}};
  EXPECT_EQ(ReleasesIn(images, "web"), (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(ReleasesIn(images, "localhost/web"), (std::vector<std::string>{"1", "2"}));
}

}  // namespace
}  // namespace backstop::container

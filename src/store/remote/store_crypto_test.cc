#include "store/remote/store_crypto.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "testing/test_env.h"

namespace backstop {
namespace {

using testing::RandomBytes;
using testing::TempDir;
using testing::WriteFileOrDie;

constexpr char kKeyA[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
constexpr char kKeyB[] = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

StoreKey KeyOrDie(const char* hex) {
  auto k = StoreKey::FromText(hex, "test");
  EXPECT_TRUE(k.ok()) << k.status().ToString();
  return *k;
}

TEST(StoreKeyTest, FromTextAcceptsSixtyFourHexDigitsWithSurroundingWhitespace) {
  auto k = StoreKey::FromText(std::string("  ") + kKeyA + "\n", "test");
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  EXPECT_EQ(k->fingerprint().size(), 16u);
  EXPECT_EQ(k->fingerprint(), KeyOrDie(kKeyA).fingerprint());
  EXPECT_NE(k->fingerprint(), KeyOrDie(kKeyB).fingerprint());
}

TEST(StoreKeyTest, FromTextRefusesAShortKeyNamingWhereItCameFrom) {
  auto k = StoreKey::FromText("abcd", "the key file /k");
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(k.status().message().find("the key file /k"), std::string::npos);
  EXPECT_NE(k.status().message().find("found 4 characters"), std::string::npos);
}

TEST(StoreKeyTest, FromTextRefusesANonHexCharacterAndSaysWhich) {
  std::string bad = kKeyA;
  bad[10] = 'g';
  auto k = StoreKey::FromText(bad, "test");
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("character 11 is not a hex digit"), std::string::npos)
      << k.status().message();
}

TEST(StoreKeyTest, GenerateGivesSixtyFourHexDigitsThatLoadAndDiffer) {
  auto a = StoreKey::Generate();
  auto b = StoreKey::Generate();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), 64u);
  EXPECT_NE(*a, *b);
  EXPECT_TRUE(StoreKey::FromText(*a, "generated").ok());
}

TEST(StoreKeyTest, LoadRefusesAKeyFileOtherUsersCanRead) {
  TempDir dir;
  WriteFileOrDie(dir.Join("key"), kKeyA, 0640);
  auto k = StoreKey::Load(Env::Default()->fs(), dir.Join("key"));
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(k.status().message().find("has mode 0640"), std::string::npos) << k.status().message();
  ::chmod(dir.Join("key").c_str(), 0600);
  EXPECT_TRUE(StoreKey::Load(Env::Default()->fs(), dir.Join("key")).ok());
}

TEST(StoreKeyTest, LoadDoesNotFollowASymbolicLink) {
  TempDir dir;
  WriteFileOrDie(dir.Join("key"), kKeyA, 0600);
  ASSERT_EQ(::symlink(dir.Join("key").c_str(), dir.Join("link").c_str()), 0);
  auto k = StoreKey::Load(Env::Default()->fs(), dir.Join("link"));
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), Status::Code::kFailedPrecondition);
}

TEST(StoreKeyTest, LoadWithoutAFileReadsTheEnvironmentAndSaysWhatToDoWhenUnset) {
  ::unsetenv("BACKSTOP_STORE_KEY");
  auto none = StoreKey::Load(Env::Default()->fs(), "");
  ASSERT_FALSE(none.ok());
  EXPECT_TRUE(none.status().IsNotFound());
  EXPECT_NE(none.status().message().find("backstop store key new"), std::string::npos);
  ::setenv("BACKSTOP_STORE_KEY", kKeyB, 1);
  auto k = StoreKey::Load(Env::Default()->fs(), "");
  ::unsetenv("BACKSTOP_STORE_KEY");
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  EXPECT_EQ(k->fingerprint(), KeyOrDie(kKeyB).fingerprint());
}

TEST(StoreKeyTest, BlobObjectIdIsKeyedAndStable) {
  const std::string digest(64, 'a');
  EXPECT_EQ(KeyOrDie(kKeyA).BlobObjectId(digest), KeyOrDie(kKeyA).BlobObjectId(digest));
  EXPECT_NE(KeyOrDie(kKeyA).BlobObjectId(digest), KeyOrDie(kKeyB).BlobObjectId(digest));
  EXPECT_NE(KeyOrDie(kKeyA).BlobObjectId(digest), digest);
  EXPECT_EQ(KeyOrDie(kKeyA).BlobObjectId(digest).size(), 64u);
}

TEST(EncryptionTest, BytesRoundTripAndAddExactlyTheOverhead) {
  StoreKey key = KeyOrDie(kKeyA);
  std::string plain = RandomBytes(3 << 20, 7);  // more than one chunk
  auto sealed = EncryptBytes(key, "blobs/ab/abc", plain);
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->size(), plain.size() + kEncryptionOverhead);
  EXPECT_EQ(sealed->substr(0, 8), "BSTPENC1");
  auto back = DecryptBytes(key, "blobs/ab/abc", *sealed);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, plain);
}

TEST(EncryptionTest, TheSamePlaintextEncryptsDifferentlyEachTime) {
  StoreKey key = KeyOrDie(kKeyA);
  EXPECT_NE(*EncryptBytes(key, "k", "same"), *EncryptBytes(key, "k", "same"));
}

TEST(EncryptionTest, AnotherKeyAnotherNameOrOneFlippedBitFailsAuthentication) {
  StoreKey key = KeyOrDie(kKeyA);
  std::string sealed = *EncryptBytes(key, "restore-points/rp-1.json", "{\"id\":\"rp-1\"}");
  EXPECT_EQ(DecryptBytes(KeyOrDie(kKeyB), "restore-points/rp-1.json", sealed).status().code(),
            Status::Code::kCorruption);
  EXPECT_EQ(DecryptBytes(key, "restore-points/rp-2.json", sealed).status().code(),
            Status::Code::kCorruption);
  std::string flipped = sealed;
  flipped[25] ^= 1;
  EXPECT_EQ(DecryptBytes(key, "restore-points/rp-1.json", flipped).status().code(),
            Status::Code::kCorruption);
  EXPECT_EQ(DecryptBytes(key, "restore-points/rp-1.json", sealed.substr(0, sealed.size() - 1))
                .status()
                .code(),
            Status::Code::kCorruption);
}

TEST(EncryptionTest, FilesRoundTripStreaming) {
  TempDir dir;
  StoreKey key = KeyOrDie(kKeyA);
  std::string plain = RandomBytes((5 << 20) + 17, 3);
  WriteFileOrDie(dir.Join("plain"), plain, 0600);
  FileSystem* fs = Env::Default()->fs();
  ASSERT_TRUE(EncryptFile(key, "blobs/x", fs, dir.Join("plain"), dir.Join("sealed")).ok());
  auto sealed = fs->ReadFile(dir.Join("sealed"));
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->size(), plain.size() + kEncryptionOverhead);
  // The file format and the in-memory one are the same.
  EXPECT_EQ(*DecryptBytes(key, "blobs/x", *sealed), plain);
  ASSERT_TRUE(DecryptFile(key, "blobs/x", fs, dir.Join("sealed"), dir.Join("back"), 0400).ok());
  EXPECT_EQ(*fs->ReadFile(dir.Join("back")), plain);
  auto info = fs->Stat(dir.Join("back"));
  EXPECT_EQ(info->mode, 0400u);
}

TEST(EncryptionTest, DecryptFileOfATamperedObjectLeavesNoOutput) {
  TempDir dir;
  StoreKey key = KeyOrDie(kKeyA);
  FileSystem* fs = Env::Default()->fs();
  std::string sealed = *EncryptBytes(key, "blobs/x", RandomBytes(100000, 1));
  sealed[5000] ^= 0x40;
  WriteFileOrDie(dir.Join("sealed"), sealed, 0600);
  Status st = DecryptFile(key, "blobs/x", fs, dir.Join("sealed"), dir.Join("out"), 0600);
  EXPECT_EQ(st.code(), Status::Code::kCorruption);
  EXPECT_FALSE(fs->Exists(dir.Join("out")));
}

TEST(HexTest, EncodeDecodeRoundTripAndRefuseNonHex) {
  EXPECT_EQ(HexEncode(std::string("\x00\xff\x10", 3)), "00ff10");
  EXPECT_EQ(*HexDecode("00ff10"), std::string("\x00\xff\x10", 3));
  EXPECT_FALSE(HexDecode("0g").ok());
  EXPECT_FALSE(HexDecode("abc").ok());
}

}  // namespace
}  // namespace backstop

#include "store/store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "base/hash.h"
#include "testing/test_env.h"

namespace backstop {
namespace {

using testing::FakeClock;
using testing::RandomBytes;
using testing::TempDir;
using testing::WriteFileOrDie;
using State = BlobCheck::State;

// Text-like content that zstd shrinks a lot.
std::string Compressible(size_t n) {
  std::string out;
  out.reserve(n + 64);
  for (uint64_t i = 0; out.size() < n; ++i) {
    out += "INSERT INTO tasks VALUES (" + std::to_string(i) + ", 'pending', 'agent-" +
           std::to_string(i % 17) + "');\n";
  }
  out.resize(n);
  return out;
}

std::string ReadRaw(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteRaw(const std::string& path, const std::string& data) {
  ::chmod(path.c_str(), 0644);  // blobs are stored read-only
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  ASSERT_TRUE(out.good()) << path;
}

struct stat StatOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st;
}

int64_t RealWallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::vector<std::string> ListNames(const std::string& dir) {
  auto names = Env::Default()->fs()->ListDir(dir);
  EXPECT_TRUE(names.ok()) << names.status().ToString();
  return names.ok() ? *names : std::vector<std::string>{};
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = OpenStore(Env::Default()); }
  std::unique_ptr<Store> OpenStore(Env* env) {
    auto s = Store::Open(env, dir_.Join("store"));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  std::string PutOrDie(const std::string& data) {
    auto d = store_->Put(data);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? *d : "";
  }
  // Applies `edit` to the blob file of `digest`.
  template <typename Fn>
  void EditBlob(const std::string& digest, Fn edit) {
    std::string path = store_->BlobPath(digest);
    std::string raw = ReadRaw(path);
    ASSERT_GT(raw.size(), 0u);
    edit(raw);
    WriteRaw(path, raw);
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, PutGetRoundTripsSmallEmptyAndLargeContent) {
  const std::vector<std::string> contents = {"hello, backstop\n", "", RandomBytes(5 << 20, 1),
                                             Compressible(6 << 20)};
  for (const auto& content : contents) {
    std::string digest = PutOrDie(content);
    EXPECT_EQ(digest, Sha256Hex(content));
    EXPECT_TRUE(store_->Has(digest));
    // Layout: blobs/<first two hex chars>/<digest>, header then a zstd frame.
    std::string path = dir_.Join("store/blobs/" + digest.substr(0, 2) + "/" + digest);
    EXPECT_EQ(store_->BlobPath(digest), path);
    std::string raw = ReadRaw(path);
    ASSERT_GE(raw.size(), 16u + 4u);
    EXPECT_EQ(raw.substr(0, 8), "BSTPBLB1");
    uint64_t recorded = 0;
    for (int i = 0; i < 8; ++i) {
      recorded |= static_cast<uint64_t>(static_cast<unsigned char>(raw[8 + i])) << (8 * i);
    }
    EXPECT_EQ(recorded, content.size());
    EXPECT_EQ(raw.substr(16, 4), std::string("\x28\xb5\x2f\xfd", 4));  // zstd frame magic
    auto size = store_->SizeOf(digest);
    ASSERT_TRUE(size.ok());
    EXPECT_EQ(*size, content.size());
    auto back = store_->Get(digest);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(*back == content);
    BlobCheck check = store_->Check(digest);
    EXPECT_EQ(check.state, State::kOk) << check.detail;
  }
  // The compressible one was really compressed.
  std::string big = Sha256Hex(contents[3]);
  EXPECT_LT(StatOf(store_->BlobPath(big)).st_size, static_cast<off_t>(contents[3].size() / 5));
  auto listed = store_->ListBlobs();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), contents.size());
}

TEST_F(StoreTest, PutFileAndGetToFileRoundTripWithMode) {
  struct Case {
    std::string content;
    uint32_t mode;
  };
  // 1 MiB goes through the read-whole path; 6 MiB and 24 MiB stream (the
  // latter with compression on a worker thread).
  const std::vector<Case> cases = {{"config: true\n", 0640},
                                   {"", 0600},
                                   {RandomBytes(1 << 20, 2), 0755},
                                   {RandomBytes(6 << 20, 3), 0751},
                                   {Compressible(24 << 20), 0644}};
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string src = dir_.Join("src/file" + std::to_string(i));
    WriteFileOrDie(src, cases[i].content);
    auto digest = store_->PutFile(src);
    ASSERT_TRUE(digest.ok()) << digest.status().ToString();
    EXPECT_EQ(*digest, Sha256Hex(cases[i].content));
    EXPECT_EQ(store_->Check(*digest).state, State::kOk);

    std::string dst = dir_.Join("restored/sub/file" + std::to_string(i));
    Status st = store_->GetToFile(*digest, dst, cases[i].mode);
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_TRUE(ReadRaw(dst) == cases[i].content);
    EXPECT_EQ(StatOf(dst).st_mode & 07777, cases[i].mode);
  }
  std::string big = Sha256Hex(cases[4].content);
  EXPECT_LT(StatOf(store_->BlobPath(big)).st_size, static_cast<off_t>(cases[4].content.size() / 5));
  // Nothing left behind next to the targets or in tmp/.
  EXPECT_EQ(ListNames(dir_.Join("restored/sub")).size(), cases.size());
  EXPECT_TRUE(ListNames(store_->TmpDir()).empty());
}

TEST_F(StoreTest, GetToFileReplacesAnExistingTarget) {
  std::string digest = PutOrDie("new content\n");
  std::string dst = dir_.Join("target.conf");
  WriteFileOrDie(dst, "old content\n", 0600);
  ASSERT_TRUE(store_->GetToFile(digest, dst, 0644).ok());
  EXPECT_EQ(ReadRaw(dst), "new content\n");
  EXPECT_EQ(StatOf(dst).st_mode & 07777, 0644u);
}

TEST_F(StoreTest, PutFileRejectsMissingFilesAndDirectories) {
  auto missing = store_->PutFile(dir_.Join("nope"));
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
  auto directory = store_->PutFile(dir_.path());
  EXPECT_EQ(directory.status().code(), Status::Code::kInvalidArgument);
}

// Delegates to the real file system, counting the calls that change
// anything outside `scratch_dir` (when set).
class CountingFileSystem : public FileSystemWrapper {
 public:
  CountingFileSystem() : FileSystemWrapper(Env::Default()->fs()) {}
  int mutations = 0;
  std::string scratch_dir;

  void Count(const std::string& path) {
    if (scratch_dir.empty() || path.rfind(scratch_dir + "/", 0) != 0) ++mutations;
  }
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& p, uint32_t m,
                                                        WriteMode how) override {
    Count(p);
    return FileSystemWrapper::NewWritableFile(p, m, how);
  }
  Status WriteFileAtomic(const std::string& p, std::string_view d, uint32_t m) override {
    Count(p);
    return FileSystemWrapper::WriteFileAtomic(p, d, m);
  }
  Status AppendFile(const std::string& p, std::string_view d) override {
    Count(p);
    return FileSystemWrapper::AppendFile(p, d);
  }
  Status CreateDirs(const std::string& p, uint32_t m) override {
    Count(p);
    return FileSystemWrapper::CreateDirs(p, m);
  }
  Status Remove(const std::string& p) override {
    Count(p);
    return FileSystemWrapper::Remove(p);
  }
  Status RemoveAll(const std::string& p) override {
    Count(p);
    return FileSystemWrapper::RemoveAll(p);
  }
  Status Rename(const std::string& f, const std::string& t) override {
    Count(f);
    Count(t);
    return FileSystemWrapper::Rename(f, t);
  }
  Status RenameNoReplace(const std::string& f, const std::string& t) override {
    Count(f);
    Count(t);
    return FileSystemWrapper::RenameNoReplace(f, t);
  }
  Status SyncDir(const std::string& d) override {
    Count(d);
    return FileSystemWrapper::SyncDir(d);
  }
  Status SymlinkAtomic(const std::string& t, const std::string& l) override {
    Count(l);
    return FileSystemWrapper::SymlinkAtomic(t, l);
  }
  Status Chmod(const std::string& p, uint32_t m) override {
    Count(p);
    return FileSystemWrapper::Chmod(p, m);
  }
};

TEST_F(StoreTest, PutOfPresentContentWritesNothing) {
  CountingFileSystem counting;
  Env env(Env::Default()->clock(), &counting, Env::Default()->processes());
  auto opened = Store::Open(&env, dir_.Join("store"));
  ASSERT_TRUE(opened.ok());
  Store& store = **opened;
  // PutFile of a large file compresses to tmp/ while it hashes, then drops
  // that copy; the blobs are what must stay untouched.
  counting.scratch_dir = store.TmpDir();
  const std::string small = "same content";
  const std::string large = RandomBytes(12 << 20, 4);
  for (const std::string* content : {&small, &large}) {
    auto first = store.Put(*content);
    ASSERT_TRUE(first.ok());
    std::string digest = *first;
    struct stat before = StatOf(store.BlobPath(digest));
    std::string src = dir_.Join("copy");
    WriteFileOrDie(src, *content);
    // Put again, and PutFile of a file with the same content (a cache miss).
    int mutations = counting.mutations;
    auto again = store.Put(*content);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, digest);
    auto from_file = store.PutFile(src);
    ASSERT_TRUE(from_file.ok());
    EXPECT_EQ(*from_file, digest);
    EXPECT_EQ(counting.mutations, mutations);
    struct stat after = StatOf(store.BlobPath(digest));
    EXPECT_EQ(after.st_ino, before.st_ino);
    EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
    EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
    EXPECT_EQ(after.st_ctim.tv_nsec, before.st_ctim.tv_nsec);
    EXPECT_TRUE(ListNames(store.TmpDir()).empty());
  }
}

TEST_F(StoreTest, ConcurrentPutsOfTheSameContent) {
  const std::string content = RandomBytes(2 << 20, 5);
  std::string src = dir_.Join("concurrent");
  WriteFileOrDie(src, Compressible(10 << 20));
  std::vector<std::string> digests(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto d = i % 2 == 0 ? store_->Put(content) : store_->PutFile(src);
      digests[i] = d.ok() ? *d : d.status().ToString();
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(digests[i], i % 2 == 0 ? Sha256Hex(content) : Sha256Hex(Compressible(10 << 20)));
    EXPECT_EQ(store_->Check(digests[i]).state, State::kOk);
  }
  EXPECT_TRUE(ListNames(store_->TmpDir()).empty());
}

// ---- Damage detection ----

TEST_F(StoreTest, DetectsAFlippedBitInThePayload) {
  for (const std::string& content : {RandomBytes(200'000, 6), Compressible(300'000)}) {
    std::string digest = PutOrDie(content);
    EditBlob(digest, [](std::string& raw) { raw[16 + (raw.size() - 16) / 2] ^= 0x10; });
    BlobCheck c = store_->Check(digest);
    EXPECT_EQ(c.state, State::kCorrupted) << c.detail;
    EXPECT_EQ(c.digest, digest);
    EXPECT_FALSE(c.detail.empty());
    auto got = store_->Get(digest);
    EXPECT_EQ(got.status().code(), Status::Code::kCorruption);
  }
}

TEST_F(StoreTest, DetectsAFlippedBitInTheHeaderSize) {
  const std::string content = RandomBytes(100'000, 7);  // 0x186a0: bit 0 clear, bit 5 set
  std::string digest = PutOrDie(content);
  std::string original = ReadRaw(store_->BlobPath(digest));

  // Recorded size one larger than the content.
  EditBlob(digest, [](std::string& raw) { raw[8] ^= 0x01; });
  BlobCheck larger = store_->Check(digest);
  EXPECT_EQ(larger.state, State::kTruncated) << larger.detail;
  EXPECT_NE(larger.detail.find("100,000 bytes but the header records 100,001"), std::string::npos)
      << larger.detail;
  EXPECT_EQ(store_->Get(digest).status().code(), Status::Code::kCorruption);

  // Recorded size smaller than the content.
  WriteRaw(store_->BlobPath(digest), original);
  EditBlob(digest, [](std::string& raw) { raw[8] ^= 0x20; });
  BlobCheck smaller = store_->Check(digest);
  EXPECT_EQ(smaller.state, State::kCorrupted) << smaller.detail;
  EXPECT_NE(smaller.detail.find("longer than the 99,968 bytes"), std::string::npos)
      << smaller.detail;

  // A high bit: an absurd size must not be trusted for anything.
  WriteRaw(store_->BlobPath(digest), original);
  EditBlob(digest, [](std::string& raw) { raw[15] ^= 0x40; });
  EXPECT_EQ(store_->Check(digest).state, State::kTruncated);
  EXPECT_EQ(store_->Get(digest).status().code(), Status::Code::kCorruption);
}

TEST_F(StoreTest, DetectsTruncation) {
  std::string digest = PutOrDie(RandomBytes(300'000, 8));
  std::string original = ReadRaw(store_->BlobPath(digest));

  EditBlob(digest, [](std::string& raw) { raw.resize(16 + (raw.size() - 16) / 2); });
  BlobCheck half = store_->Check(digest);
  EXPECT_EQ(half.state, State::kTruncated) << half.detail;
  EXPECT_NE(half.detail.find("incomplete"), std::string::npos) << half.detail;
  EXPECT_EQ(store_->Get(digest).status().code(), Status::Code::kCorruption);

  WriteRaw(store_->BlobPath(digest), original.substr(0, 16));
  EXPECT_EQ(store_->Check(digest).state, State::kTruncated);

  WriteRaw(store_->BlobPath(digest), original.substr(0, 10));
  BlobCheck header = store_->Check(digest);
  EXPECT_EQ(header.state, State::kTruncated);
  EXPECT_NE(header.detail.find("10 of the 16 header bytes"), std::string::npos) << header.detail;

  WriteRaw(store_->BlobPath(digest), original.substr(0, original.size() - 1));
  EXPECT_EQ(store_->Check(digest).state, State::kTruncated);
}

TEST_F(StoreTest, DetectsExtraTrailingBytes) {
  std::string digest = PutOrDie(Compressible(50'000));
  EditBlob(digest, [](std::string& raw) { raw.push_back('\0'); });
  BlobCheck c = store_->Check(digest);
  EXPECT_EQ(c.state, State::kCorrupted);
  EXPECT_NE(c.detail.find("1 byte of extra data"), std::string::npos) << c.detail;
  EXPECT_EQ(store_->Get(digest).status().code(), Status::Code::kCorruption);
}

TEST_F(StoreTest, DetectsBadMagic) {
  std::string digest = PutOrDie("abc");
  EditBlob(digest, [](std::string& raw) { raw[3] = 'X'; });
  BlobCheck c = store_->Check(digest);
  EXPECT_EQ(c.state, State::kCorrupted);
  EXPECT_NE(c.detail.find("bad magic"), std::string::npos) << c.detail;
  EXPECT_EQ(store_->SizeOf(digest).status().code(), Status::Code::kCorruption);
}

TEST_F(StoreTest, DetectsAValidBlobOfOtherContent) {
  std::string a = PutOrDie("content A");
  std::string b = PutOrDie("content B");
  WriteRaw(store_->BlobPath(a), ReadRaw(store_->BlobPath(b)));
  BlobCheck c = store_->Check(a);
  EXPECT_EQ(c.state, State::kCorrupted);
  EXPECT_EQ(c.detail, "hash mismatch: content hashes to " + b);
}

TEST_F(StoreTest, ReportsMissingBlobs) {
  std::string digest = PutOrDie("soon gone");
  ASSERT_TRUE(store_->RemoveBlob(digest).ok());
  EXPECT_FALSE(store_->Has(digest));
  EXPECT_EQ(store_->Check(digest).state, State::kMissing);
  EXPECT_EQ(store_->Get(digest).status().code(), Status::Code::kNotFound);
  EXPECT_EQ(store_->SizeOf(digest).status().code(), Status::Code::kNotFound);
  EXPECT_EQ(store_->GetToFile(digest, dir_.Join("x"), 0644).code(), Status::Code::kNotFound);
  EXPECT_FALSE(Env::Default()->fs()->Exists(dir_.Join("x")));
  // Not a digest at all.
  EXPECT_EQ(store_->Get("../../etc/passwd").status().code(), Status::Code::kInvalidArgument);
  EXPECT_FALSE(store_->Has("abc"));
  EXPECT_EQ(store_->Check("abc").state, State::kCorrupted);
}

TEST_F(StoreTest, NeverReadsThroughALink) {
  // A file that is a link is refused, not read: it could point at a root-only file.
  WriteFileOrDie(dir_.Join("secret"), "root-only content", 0600);
  ASSERT_EQ(::symlink(dir_.Join("secret").c_str(), dir_.Join("link").c_str()), 0);
  auto put = store_->PutFile(dir_.Join("link"));
  EXPECT_EQ(put.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(put.status().message().find("symbolic link"), std::string::npos);
  EXPECT_FALSE(store_->Has(Sha256Hex("root-only content")));
  EXPECT_EQ(Sha256File(dir_.Join("link")).status().code(), Status::Code::kFailedPrecondition);
  // A blob replaced by a link to a valid blob elsewhere is damaged.
  std::string digest = PutOrDie("blob content");
  std::string path = store_->BlobPath(digest);
  ASSERT_EQ(::rename(path.c_str(), dir_.Join("moved").c_str()), 0);
  ASSERT_EQ(::symlink(dir_.Join("moved").c_str(), path.c_str()), 0);
  EXPECT_EQ(store_->Check(digest).state, State::kCorrupted);
  EXPECT_NE(store_->Check(digest).detail.find("symbolic link"), std::string::npos);
  EXPECT_FALSE(store_->Get(digest).ok());
  // So is a blob whose shard folder is a link to a folder of valid blobs.
  std::string other = PutOrDie("other content");
  std::string shard = Dirname(store_->BlobPath(other));
  ASSERT_EQ(::rename(shard.c_str(), dir_.Join("shard").c_str()), 0);
  ASSERT_EQ(::symlink(dir_.Join("shard").c_str(), shard.c_str()), 0);
  EXPECT_EQ(store_->Check(other).state, State::kCorrupted);
  EXPECT_NE(store_->Check(other).detail.find("symbolic link"), std::string::npos);
}

TEST_F(StoreTest, AStoreFolderThatIsALinkIsRefused) {
  ASSERT_TRUE(Env::Default()->fs()->CreateDirs(dir_.Join("elsewhere")).ok());
  ASSERT_TRUE(Env::Default()->fs()->CreateDirs(dir_.Join("linked")).ok());
  ASSERT_EQ(::symlink(dir_.Join("elsewhere").c_str(), dir_.Join("linked/restore-points").c_str()),
            0);
  auto s = Store::Open(Env::Default(), dir_.Join("linked"));
  EXPECT_EQ(s.status().code(), Status::Code::kFailedPrecondition);
}

TEST_F(StoreTest, BlobsAndFoldersArePrivateWhateverTheUmask) {
  mode_t old = ::umask(0);
  auto store = Store::Open(Env::Default(), dir_.Join("open-umask"));
  ASSERT_TRUE(store.ok());
  auto digest = (*store)->Put("dump");
  ::umask(old);
  ASSERT_TRUE(digest.ok());
  std::string blob = (*store)->BlobPath(*digest);
  EXPECT_EQ(StatOf(blob).st_mode & 07777, 0400u);
  EXPECT_EQ(StatOf(Dirname(blob)).st_mode & 07777, 0700u);
  EXPECT_EQ(StatOf(dir_.Join("open-umask/restore-points")).st_mode & 07777, 0700u);
  EXPECT_EQ(StatOf(dir_.Join("open-umask")).st_mode & 07777, 0700u);
}

TEST_F(StoreTest, GetToFileOfACorruptBlobLeavesTheTargetUntouched) {
  std::string digest = PutOrDie(RandomBytes(3 << 20, 9));
  EditBlob(digest, [](std::string& raw) { raw[raw.size() - 1000] ^= 0x01; });
  std::string dst = dir_.Join("live/config.bin");
  const std::string precious = "the live configuration\n";
  WriteFileOrDie(dst, precious, 0600);
  struct stat before = StatOf(dst);

  Status st = store_->GetToFile(digest, dst, 0644);
  EXPECT_EQ(st.code(), Status::Code::kCorruption) << st.ToString();
  EXPECT_NE(st.message().find(dst), std::string::npos) << st.message();
  EXPECT_EQ(ReadRaw(dst), precious);
  struct stat after = StatOf(dst);
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_mode, before.st_mode);
  EXPECT_EQ(ListNames(dir_.Join("live")), std::vector<std::string>{"config.bin"});

  // Same for a truncated blob.
  EditBlob(digest, [](std::string& raw) { raw.resize(raw.size() / 2); });
  EXPECT_EQ(store_->GetToFile(digest, dst, 0644).code(), Status::Code::kCorruption);
  EXPECT_EQ(ReadRaw(dst), precious);
  EXPECT_EQ(ListNames(dir_.Join("live")), std::vector<std::string>{"config.bin"});
}

TEST_F(StoreTest, ScratchCopiesAndStreamsAreVerifiedLikeGetToFile) {
  const std::string content = Compressible(6 << 20);
  std::string digest = PutOrDie(content);
  std::string dst = dir_.Join("scratch/dump.dat");
  ASSERT_TRUE(store_->GetToScratchFile(digest, dst, 0600).ok());
  EXPECT_TRUE(ReadRaw(dst) == content);
  EXPECT_EQ(StatOf(dst).st_mode & 07777, 0600u);
  std::string streamed;
  ASSERT_TRUE(store_
                  ->StreamContent(digest,
                                  [&](std::string_view chunk) {
                                    streamed.append(chunk);
                                    return Status::OK();
                                  })
                  .ok());
  EXPECT_TRUE(streamed == content);
  // A sink error stops the stream and is returned.
  Status st = store_->StreamContent(
      digest, [](std::string_view) { return Status::Aborted("reader went away"); });
  EXPECT_EQ(st.code(), Status::Code::kAborted);

  // Damaged: the scratch target is left untouched; the stream ends in Corruption.
  EditBlob(digest, [](std::string& raw) { raw[raw.size() - 100] ^= 0x01; });
  WriteFileOrDie(dst, "previous\n", 0600);
  EXPECT_EQ(store_->GetToScratchFile(digest, dst, 0600).code(), Status::Code::kCorruption);
  EXPECT_EQ(ReadRaw(dst), "previous\n");
  EXPECT_EQ(ListNames(dir_.Join("scratch")), std::vector<std::string>{"dump.dat"});
  size_t got = 0;
  st = store_->StreamContent(digest, [&](std::string_view chunk) {
    got += chunk.size();
    return Status::OK();
  });
  EXPECT_EQ(st.code(), Status::Code::kCorruption) << st.ToString();
  EXPECT_GT(got, 0u);  // what was streamed is only tentative until the end
  EXPECT_EQ(store_->StreamContent("nothex", [](std::string_view) { return Status::OK(); }).code(),
            Status::Code::kInvalidArgument);
}

// ---- Leftovers of a crash ----

TEST_F(StoreTest, LeftoversFromACrashConfuseNothing) {
  const std::string content = RandomBytes(64 << 10, 10);
  const std::string digest = Sha256Hex(content);
  std::string tmp = store_->TmpDir();
  // A half-written blob (as if killed before the rename), named as Put names them.
  WriteFileOrDie(JoinPath(tmp, digest.substr(0, 16) + ".1234-1.tmp"), "BSTPBLB1\x05");
  WriteFileOrDie(JoinPath(tmp, "file.1234-2.tmp"), RandomBytes(1000, 11));
  // An old one, from a crash long ago.
  std::string old = JoinPath(tmp, "file.99-7.tmp");
  WriteFileOrDie(old, "stale");
  struct timespec times[2] = {{RealWallMicros() / 1'000'000 - 3 * 86400, 0},
                              {RealWallMicros() / 1'000'000 - 3 * 86400, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, old.c_str(), times, 0), 0);
  // Junk inside blobs/ too.
  WriteFileOrDie(dir_.Join("store/blobs/zz/not-a-blob"), "x");
  WriteFileOrDie(JoinPath(Dirname(store_->BlobPath(digest)), "partial.tmp"), "x");

  store_.reset();
  store_ = OpenStore(Env::Default());
  ASSERT_NE(store_, nullptr);
  // Reopening removed only what nobody can still be writing.
  EXPECT_FALSE(Env::Default()->fs()->Exists(old));
  EXPECT_EQ(ListNames(tmp).size(), 2u);

  EXPECT_FALSE(store_->Has(digest));
  EXPECT_EQ(store_->Check(digest).state, State::kMissing);
  auto listed = store_->ListBlobs();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());

  EXPECT_EQ(PutOrDie(content), digest);
  auto back = store_->Get(digest);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == content);
  listed = store_->ListBlobs();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(*listed, std::vector<std::string>{digest});
}

// ---- Stat cache ----

class StoreCacheTest : public ::testing::Test {
 protected:
  // The clock runs an hour ahead of the files' timestamps, so they are not
  // "racy" (see store.h) and may be cached.
  StoreCacheTest()
      : clock_(1'000'000'000, RealWallMicros() + 3600LL * 1'000'000),
        env_(testing::MakeEnvWithClock(&clock_)) {}
  std::unique_ptr<Store> Open() {
    auto s = Store::Open(&env_, dir_.Join("store"));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  std::string PutFileOrDie(Store& store, const std::string& path) {
    auto d = store.PutFile(path);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? *d : "";
  }

  TempDir dir_;
  FakeClock clock_;
  Env env_;
};

TEST_F(StoreCacheTest, UnchangedFileIsNotReadAgain) {
  auto store = Open();
  std::string small = dir_.Join("app.conf");
  std::string large = dir_.Join("dump.sql");
  WriteFileOrDie(small, "listen 8080;\n");
  WriteFileOrDie(large, Compressible(9 << 20));
  std::string small_digest = PutFileOrDie(*store, small);
  std::string large_digest = PutFileOrDie(*store, large);
  EXPECT_EQ(store->files_hashed_for_test(), 2u);

  EXPECT_EQ(PutFileOrDie(*store, small), small_digest);
  EXPECT_EQ(PutFileOrDie(*store, large), large_digest);
  // Relative spelling of the same file hits the same entry.
  std::string cwd = CurrentDir();
  ASSERT_EQ(::chdir(dir_.path().c_str()), 0);
  EXPECT_EQ(PutFileOrDie(*store, "./app.conf"), small_digest);
  ASSERT_EQ(::chdir(cwd.c_str()), 0);
  EXPECT_EQ(store->files_hashed_for_test(), 2u);
}

TEST_F(StoreCacheTest, CacheSurvivesReopening) {
  std::string file = dir_.Join("release/bin/app");
  WriteFileOrDie(file, RandomBytes(100'000, 12), 0755);
  std::string digest;
  {
    auto store = Open();
    digest = PutFileOrDie(*store, file);
    EXPECT_EQ(store->files_hashed_for_test(), 1u);
  }  // the destructor flushes
  auto cache = nlohmann::json::parse(ReadRaw(dir_.Join("store/cache/file-digests.json")));
  EXPECT_EQ(cache["files"][file]["digest"], digest);

  auto store = Open();
  EXPECT_EQ(PutFileOrDie(*store, file), digest);
  EXPECT_EQ(store->files_hashed_for_test(), 0u);
}

TEST_F(StoreCacheTest, ModifiedFileIsHashedAgain) {
  auto store = Open();
  std::string file = dir_.Join("settings.yaml");
  WriteFileOrDie(file, "replicas: 3\n");
  std::string first = PutFileOrDie(*store, file);

  // Rewritten with the same size (a new inode, mtime, ctime).
  WriteFileOrDie(file, "replicas: 5\n");
  std::string second = PutFileOrDie(*store, file);
  EXPECT_EQ(store->files_hashed_for_test(), 2u);
  EXPECT_NE(second, first);
  EXPECT_EQ(second, Sha256Hex("replicas: 5\n"));

  // Edited in place, same size, and its mtime put back as it was (touch -r):
  // only ctime tells, and it is enough.
  struct stat before = StatOf(file);
  {
    int fd = ::open(file.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "7", 1, 10), 1);
    ::close(fd);
  }
  struct timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, file.c_str(), times, 0), 0);
  ASSERT_EQ(StatOf(file).st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  std::string third = PutFileOrDie(*store, file);
  EXPECT_EQ(store->files_hashed_for_test(), 3u);
  EXPECT_EQ(third, Sha256Hex("replicas: 7\n"));
}

TEST_F(StoreCacheTest, EntryIsIgnoredWhenItsBlobIsGone) {
  auto store = Open();
  std::string file = dir_.Join("f");
  WriteFileOrDie(file, "content");
  std::string digest = PutFileOrDie(*store, file);
  ASSERT_TRUE(store->RemoveBlob(digest).ok());
  EXPECT_EQ(PutFileOrDie(*store, file), digest);
  EXPECT_EQ(store->files_hashed_for_test(), 2u);
  EXPECT_EQ(store->Check(digest).state, State::kOk);
}

TEST_F(StoreCacheTest, RecentlyModifiedFilesAreNotCached) {
  std::string file = dir_.Join("racy");
  WriteFileOrDie(file, "being written");
  struct stat st = StatOf(file);
  // "Now" is one second after the file's last change: inside the 2 s window.
  int64_t changed_us = std::max<int64_t>(st.st_mtim.tv_sec * 1'000'000 + st.st_mtim.tv_nsec / 1000,
                                         st.st_ctim.tv_sec * 1'000'000 + st.st_ctim.tv_nsec / 1000);
  FakeClock racy_clock(1'000'000'000, changed_us + 1'000'000);
  Env racy_env = testing::MakeEnvWithClock(&racy_clock);
  auto store = Store::Open(&racy_env, dir_.Join("store"));
  ASSERT_TRUE(store.ok());
  std::string digest = PutFileOrDie(**store, file);
  EXPECT_EQ(PutFileOrDie(**store, file), digest);
  EXPECT_EQ((*store)->files_hashed_for_test(), 2u);

  // Three seconds later it is old enough.
  racy_clock.AdvanceMs(2'000);
  EXPECT_EQ(PutFileOrDie(**store, file), digest);
  EXPECT_EQ(PutFileOrDie(**store, file), digest);
  EXPECT_EQ((*store)->files_hashed_for_test(), 3u);
}

TEST_F(StoreCacheTest, FilesWithARecentCtimeAreNotCached) {
  std::string file = dir_.Join("restored-mtime");
  WriteFileOrDie(file, "content");
  // An old mtime (as `touch -r` or `rsync -t` leave), but a fresh ctime.
  struct timespec times[2] = {{1'700'000'000, 0}, {1'700'000'000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, file.c_str(), times, 0), 0);
  struct stat st = StatOf(file);
  FakeClock racy_clock(1'000'000'000, st.st_ctim.tv_sec * 1'000'000 + 1'000'000);
  Env racy_env = testing::MakeEnvWithClock(&racy_clock);
  auto store = Store::Open(&racy_env, dir_.Join("store"));
  ASSERT_TRUE(store.ok());
  PutFileOrDie(**store, file);
  PutFileOrDie(**store, file);
  EXPECT_EQ((*store)->files_hashed_for_test(), 2u);
}

TEST_F(StoreCacheTest, DamagedCacheFileIsIgnored) {
  std::string file = dir_.Join("f");
  WriteFileOrDie(file, "content");
  WriteFileOrDie(dir_.Join("store/cache/file-digests.json"), "{not json");
  auto store = Open();
  std::string digest = PutFileOrDie(*store, file);
  EXPECT_EQ(digest, Sha256Hex("content"));
  ASSERT_TRUE(store->FlushCache().ok());
  auto cache = nlohmann::json::parse(ReadRaw(dir_.Join("store/cache/file-digests.json")));
  EXPECT_EQ(cache["files"][file]["digest"], digest);
}

}  // namespace
}  // namespace backstop

// Unit tests of DumpFeeder with a real store and a reader thread standing in
// for pg_restore.
#include "drivers/postgres/pg_dump_feed.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <thread>

#include "testing/test_env.h"

namespace backstop::postgres {
namespace {

using testing::RandomBytes;
using testing::TempDir;

// Reads `path` like pg_restore does (blocking open, read to the end), or
// only `limit` bytes before closing it.
std::string ReadPipe(const std::string& path, size_t limit = SIZE_MAX) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "open failed: " + std::string(std::strerror(errno));
  std::string out;
  char buf[4096];
  while (out.size() < limit) {
    ssize_t n = ::read(fd, buf, std::min(sizeof buf, limit - out.size()));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

bool IsFifo(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
}

class DumpFeederTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::Open(Env::Default(), tmp_.Join("store"));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    dir_ = tmp_.Join("dump");
    ASSERT_TRUE(Env::Default()->fs()->CreateDirs(dir_).ok());
    contents_ = {{"toc.dat", RandomBytes(3000, 1)},
                 {"3001.dat", RandomBytes(3 << 20, 2)},
                 {"3002.dat", RandomBytes(2 << 20, 3)},
                 {"3003.dat", RandomBytes(100, 4)}};
    for (const auto& [name, content] : contents_) {
      auto d = store_->Put(content);
      ASSERT_TRUE(d.ok());
      files_.push_back({name, *d, content.size()});
    }
  }

  const std::string& DigestOf(const std::string& name) const {
    for (const auto& f : files_) {
      if (f.name == name) return f.digest;
    }
    static const std::string kNone;
    return kNone;
  }

  // Flips a byte in the middle of a blob's compressed data.
  void Damage(const std::string& digest) {
    auto raw = Env::Default()->fs()->ReadFile(store_->BlobPath(digest));
    ASSERT_TRUE(raw.ok());
    std::string d = *raw;
    d[d.size() / 2] ^= 0x40;
    ASSERT_TRUE(Env::Default()->fs()->WriteFileAtomic(store_->BlobPath(digest), d).ok());
  }

  TempDir tmp_;
  std::unique_ptr<Store> store_;
  std::string dir_;
  std::map<std::string, std::string> contents_;
  std::vector<DumpFile> files_;
  const FeedOptions one_stream_{
      .extract_threads = 2, .stream_min_bytes = 1 << 20, .max_streams = 1};
};

TEST_F(DumpFeederTest, StreamsTheLargestFilesAndExtractsTheRest) {
  auto f = DumpFeeder::Create(store_.get(), dir_, files_, one_stream_);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->streamed(), 1u);
  EXPECT_EQ((*f)->extracted(), 3u);
  EXPECT_TRUE(IsFifo(JoinPath(dir_, "3001.dat")));
  EXPECT_FALSE(IsFifo(JoinPath(dir_, "3002.dat")));  // large, but over max_streams
  for (const char* name : {"toc.dat", "3002.dat", "3003.dat"}) {
    auto got = Env::Default()->fs()->ReadFile(JoinPath(dir_, name));
    ASSERT_TRUE(got.ok()) << name;
    EXPECT_TRUE(*got == contents_[name]) << name;
  }
  (*f)->Start();
  std::string streamed;
  std::thread reader([&] { streamed = ReadPipe(JoinPath(dir_, "3001.dat")); });
  reader.join();
  EXPECT_TRUE(streamed == contents_["3001.dat"]);
  Status st = (*f)->Finish();
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST_F(DumpFeederTest, APipeNobodyReadIsAnError) {
  FeedOptions all{.extract_threads = 1, .stream_min_bytes = 1 << 20, .max_streams = 8};
  auto f = DumpFeeder::Create(store_.get(), dir_, files_, all);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->streamed(), 2u);
  (*f)->Start();
  std::string streamed;
  std::thread reader([&] { streamed = ReadPipe(JoinPath(dir_, "3002.dat")); });
  reader.join();
  EXPECT_TRUE(streamed == contents_["3002.dat"]);
  Status st = (*f)->Finish();
  EXPECT_EQ(st.code(), Status::Code::kFailedPrecondition) << st.ToString();
  EXPECT_NE(st.message().find("3001.dat"), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find("3002.dat"), std::string::npos) << st.message();
}

TEST_F(DumpFeederTest, AReaderThatStopsEarlyFailsTheFeedNotTheProcess) {
  auto f = DumpFeeder::Create(store_.get(), dir_, files_, one_stream_);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  (*f)->Start();
  std::string head;
  std::thread reader([&] { head = ReadPipe(JoinPath(dir_, "3001.dat"), 1000); });
  reader.join();
  EXPECT_EQ(head, contents_["3001.dat"].substr(0, 1000));
  // The stream then writes into a pipe without reader: EPIPE, no SIGPIPE death.
  Status st = (*f)->Finish();
  EXPECT_EQ(st.code(), Status::Code::kAborted) << st.ToString();
  EXPECT_NE(st.message().find("stopped reading"), std::string::npos) << st.message();
}

TEST_F(DumpFeederTest, ADamagedStreamedBlobFailsAtTheEnd) {
  Damage(DigestOf("3001.dat"));  // the streamed one
  auto f = DumpFeeder::Create(store_.get(), dir_, files_, one_stream_);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  (*f)->Start();
  std::string streamed;
  std::thread reader([&] { streamed = ReadPipe(JoinPath(dir_, "3001.dat")); });
  reader.join();
  EXPECT_FALSE(streamed == contents_["3001.dat"]);
  Status st = (*f)->Finish();
  EXPECT_EQ(st.code(), Status::Code::kCorruption) << st.ToString();
  EXPECT_NE(st.message().find(DigestOf("3001.dat")), std::string::npos) << st.message();
}

TEST_F(DumpFeederTest, ADamagedExtractedBlobOrABadNameFailsCreate) {
  Damage(DigestOf("3003.dat"));  // extracted
  auto f = DumpFeeder::Create(store_.get(), dir_, files_, one_stream_);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), Status::Code::kCorruption) << f.status().ToString();
  EXPECT_NE(f.status().message().find("3003.dat"), std::string::npos);

  TempDir other;
  std::vector<DumpFile> bad = {{"../escape.dat", DigestOf("toc.dat"), 10}};
  auto g = DumpFeeder::Create(store_.get(), other.path(), bad, one_stream_);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), Status::Code::kCorruption);
}

TEST_F(DumpFeederTest, FinishWithoutStartReportsEveryPipeUnread) {
  auto f = DumpFeeder::Create(store_.get(), dir_, files_, one_stream_);
  ASSERT_TRUE(f.ok());
  Status st = (*f)->Finish();
  EXPECT_EQ(st.code(), Status::Code::kFailedPrecondition);
  // Idempotent, and the destructor after it is harmless.
  EXPECT_EQ((*f)->Finish().code(), Status::Code::kFailedPrecondition);
}

}  // namespace
}  // namespace backstop::postgres

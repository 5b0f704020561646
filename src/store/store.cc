// Store: blob files, their verification, and PutFile's stat cache. See store.h.
//
// Every file of the store is written and read through the Env's FileSystem
// (WritableFile, SequentialFile), with the same guarantees as
// FileSystem::WriteFileAtomic: write a temporary file, fsync it, rename it
// into place, fsync the directory. Only PutFile reads the files it stores
// through a descriptor of its own: it needs fstat() on the open file to see
// whether the file changed while it was read.
#include "store/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>

#include "base/fd.h"
#include "base/hash.h"
#include "base/remove_on_exit.h"
#include "base/units.h"

namespace backstop {
namespace {

constexpr char kMagic[8] = {'B', 'S', 'T', 'P', 'B', 'L', 'B', '1'};
constexpr size_t kHeaderSize = 16;
constexpr int kCompressionLevel = 1;
constexpr size_t kReadChunk = 1 << 20;
constexpr size_t kWriteBuffer = 1 << 20;
constexpr size_t kDecodeChunk = 256 << 10;
// Files up to this size are read whole and stored like Put: hashed first, so
// content already present costs no compression and no write at all.
constexpr uint64_t kSmallFileBytes = 4 << 20;
// From this size on, zstd compresses on a worker thread while this thread
// reads and hashes (one frame either way; only the speed differs).
constexpr uint64_t kParallelCompressBytes = 8 << 20;
// The "racy clean" window: files modified this recently are not cached.
constexpr int64_t kRacyWindowNs = 2'000'000'000;
// Files in tmp/ untouched this long belong to no live writer.
constexpr int64_t kStaleTmpMicros = 24LL * 3600 * 1'000'000;
constexpr int kPutFileAttempts = 3;
constexpr int kCacheFormatVersion = 1;
constexpr mode_t kBlobMode = 0400;

// Reads up to `n` bytes; fewer only at the end of the file.
Result<size_t> ReadUpTo(int fd, char* data, size_t n, const std::string& what) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, data + got, n - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("read " + what, errno);
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

void PutLittleEndian64(char* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint64_t GetLittleEndian64(const char* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v |= static_cast<uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  return v;
}

std::string Bytes(uint64_t n) { return FormatThousands(n) + (n == 1 ? " byte" : " bytes"); }

// "BSTP\x00..." for a detail message.
std::string Printable(const char* data, size_t n) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(data[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return "\"" + out + "\"";
}

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}
int64_t CtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
}

// Streams content into a blob file: the header (the size is pledged up
// front and zstd refuses content of another size), then one zstd frame. The
// caller removes the file (RemoveOnExit) unless it was committed.
class BlobWriter {
 public:
  explicit BlobWriter(FileSystem* fs) : fs_(fs) {}
  ~BlobWriter() { ZSTD_freeCCtx(cctx_); }
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;

  // `size`: the exact content size.
  Status Open(const std::string& path, uint64_t size, bool parallel) {
    path_ = path;
    // Read-only, and private: blobs hold database dumps and config secrets.
    BACKSTOP_ASSIGN_OR_RETURN(file_, fs_->NewWritableFile(path, kBlobMode, WriteMode::kCreateNew));
    char header[kHeaderSize];
    std::memcpy(header, kMagic, sizeof kMagic);
    PutLittleEndian64(header + 8, size);
    BACKSTOP_RETURN_IF_ERROR(file_->Append(std::string_view(header, sizeof header)));
    cctx_ = ZSTD_createCCtx();
    if (cctx_ == nullptr) return Status::Internal("ZSTD_createCCtx failed (out of memory?)");
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, kCompressionLevel);
    // A per-frame xxhash of the content: a damaged payload is reported by the
    // decoder itself, before the sha256 comparison at the end.
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1);
    if (parallel) {
      // Fails harmlessly (single-threaded) on a libzstd built without threads.
      ZSTD_CCtx_setParameter(cctx_, ZSTD_c_nbWorkers, 1);
    }
    size_t r = ZSTD_CCtx_setPledgedSrcSize(cctx_, size);
    if (ZSTD_isError(r)) return ZstdFailure(r);
    out_.resize(kWriteBuffer);
    return Status::OK();
  }

  Status Append(std::string_view data) {
    ZSTD_inBuffer in{data.data(), data.size(), 0};
    while (in.pos < in.size) {
      BACKSTOP_RETURN_IF_ERROR(Step(&in, ZSTD_e_continue, nullptr));
    }
    return Status::OK();
  }

  // Ends the frame (zstd checks that the content had the size the header
  // records), fsyncs and closes.
  Status Finish() {
    ZSTD_inBuffer in{nullptr, 0, 0};
    size_t remaining = 1;
    while (remaining != 0) BACKSTOP_RETURN_IF_ERROR(Step(&in, ZSTD_e_end, &remaining));
    BACKSTOP_RETURN_IF_ERROR(FlushOut());
    BACKSTOP_RETURN_IF_ERROR(file_->Sync());
    return file_->Close();
  }

  const std::string& path() const { return path_; }

 private:
  Status ZstdFailure(size_t code) const {
    if (ZSTD_getErrorCode(code) == ZSTD_error_srcSize_wrong) {
      return Status::Aborted("the content size changed while " + path_ + " was written");
    }
    return Status::Internal(std::string("zstd compression failed for ") + path_ + ": " +
                            ZSTD_getErrorName(code));
  }

  Status Step(ZSTD_inBuffer* in, ZSTD_EndDirective mode, size_t* remaining) {
    ZSTD_outBuffer out{out_.data(), out_.size(), out_used_};
    size_t r = ZSTD_compressStream2(cctx_, &out, in, mode);
    if (ZSTD_isError(r)) return ZstdFailure(r);
    out_used_ = out.pos;
    if (remaining != nullptr) *remaining = r;
    if (out_used_ == out_.size()) return FlushOut();
    return Status::OK();
  }

  Status FlushOut() {
    Status st = file_->Append(std::string_view(out_.data(), out_used_));
    out_used_ = 0;
    return st;
  }

  FileSystem* fs_;
  std::string path_;
  std::unique_ptr<WritableFile> file_;
  ZSTD_CCtx* cctx_ = nullptr;
  std::string out_;
  size_t out_used_ = 0;
};

struct DCtxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

using Sink = std::function<Status(std::string_view)>;

// Reads blob file `path`, decompressing and hashing as it goes; passes the
// content to `sink` (if any) chunk by chunk. The content is only known good
// when the returned check is kOk: a sink must treat what it got as tentative.
// A sink error stops the stream and is returned in `*sink_status`.
BlobCheck StreamBlob(FileSystem* fs, const std::string& path, const std::string& digest,
                     const Sink& sink, Status* sink_status) {
  BlobCheck check;
  check.digest = digest;
  auto fail = [&check](BlobCheck::State state, std::string detail) {
    check.state = state;
    check.detail = std::move(detail);
    return check;
  };
  using State = BlobCheck::State;
  if (!IsSha256Hex(digest)) return fail(State::kCorrupted, "not a sha256 hex digest");
  // SequentialFile never follows a link at the blob itself; its shard
  // folder is checked here.
  auto shard = fs->Stat(Dirname(path));
  if (shard.ok() && shard->is_symlink) {
    return fail(State::kCorrupted,
                "the folder " + Dirname(path) + " is a symbolic link, not one Backstop made");
  }

  auto opened = fs->NewSequentialFile(path);
  if (!opened.ok()) {
    if (opened.status().IsNotFound()) return fail(State::kMissing, "no blob file " + path);
    if (opened.status().code() == Status::Code::kFailedPrecondition) {
      return fail(State::kCorrupted, path + " is a symbolic link, not a blob Backstop wrote");
    }
    return fail(State::kCorrupted, "cannot open " + path + ": " + opened.status().message());
  }
  SequentialFile& file = **opened;
  // For messages only: how long the file is.
  auto info = fs->Stat(path);
  const uint64_t file_size = info.ok() ? info->size : 0;

  char header[kHeaderSize];
  Result<std::string_view> header_read = file.Read(sizeof header, header);
  if (!header_read.ok()) return fail(State::kCorrupted, header_read.status().message());
  const size_t got = header_read->size();
  if (std::memcmp(header, kMagic, std::min(got, sizeof kMagic)) != 0) {
    return fail(State::kCorrupted, "bad magic: expected \"BSTPBLB1\", found " +
                                       Printable(header, std::min(got, sizeof kMagic)));
  }
  if (got < kHeaderSize) {
    return fail(State::kTruncated,
                "file ends after " + FormatThousands(got) + " of the 16 header bytes");
  }
  const uint64_t recorded = GetLittleEndian64(header + 8);

  std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx(ZSTD_createDCtx());
  if (!dctx) return fail(State::kCorrupted, "ZSTD_createDCtx failed (out of memory?)");
  std::string in_buf(kDecodeChunk, '\0');
  std::string out_buf(std::max<size_t>(ZSTD_DStreamOutSize(), kDecodeChunk), '\0');
  Sha256 hash;
  uint64_t produced = 0;
  uint64_t consumed = kHeaderSize;  // file offset of in_buf[0]
  bool frame_done = false;
  for (;;) {
    Result<std::string_view> chunk_read = file.Read(in_buf.size(), in_buf.data());
    if (!chunk_read.ok()) return fail(State::kCorrupted, chunk_read.status().message());
    const size_t n = chunk_read->size();
    if (n == 0) break;
    ZSTD_inBuffer in{in_buf.data(), n, 0};
    bool out_full = false;
    do {
      if (frame_done) {
        if (in.pos < in.size) {
          uint64_t frame_end = consumed + in.pos;
          return fail(State::kCorrupted, Bytes(file_size - frame_end) +
                                             " of extra data after the zstd frame, which "
                                             "ends at offset " +
                                             FormatThousands(frame_end));
        }
        break;
      }
      ZSTD_outBuffer out{out_buf.data(), out_buf.size(), 0};
      size_t r = ZSTD_decompressStream(dctx.get(), &out, &in);
      if (ZSTD_isError(r)) {
        return fail(State::kCorrupted, std::string("zstd error near file offset ") +
                                           FormatThousands(consumed + in.pos) + ": " +
                                           ZSTD_getErrorName(r));
      }
      if (out.pos > 0) {
        produced += out.pos;
        if (produced > recorded) {
          return fail(State::kCorrupted,
                      "content is longer than the " + Bytes(recorded) + " the header records");
        }
        std::string_view chunk(out_buf.data(), out.pos);
        hash.Update(chunk);
        if (sink) {
          Status s = sink(chunk);
          if (!s.ok()) {
            *sink_status = s;
            return check;
          }
        }
      }
      out_full = out.pos == out.size;
      if (r == 0) frame_done = true;
    } while (in.pos < in.size || out_full);
    consumed += n;
  }
  if (!frame_done) {
    return fail(State::kTruncated, "zstd frame incomplete: the file ends after " +
                                       Bytes(file_size) + ", having decoded " +
                                       FormatThousands(produced) + " of the " + Bytes(recorded) +
                                       " the header records");
  }
  if (produced < recorded) {
    return fail(State::kTruncated, "the zstd frame decodes to " + Bytes(produced) +
                                       " but the header records " + Bytes(recorded) +
                                       " (content cut short, or the header's size damaged)");
  }
  std::string actual = hash.FinishHex();
  if (actual != digest) {
    return fail(State::kCorrupted, "hash mismatch: content hashes to " + actual);
  }
  return check;
}

Status CheckToStatus(const BlobCheck& c, const std::string& root) {
  switch (c.state) {
    case BlobCheck::State::kOk:
      return Status::OK();
    case BlobCheck::State::kMissing:
      return Status::NotFound("blob " + c.digest + " is not in the store " + root + " (" +
                              c.detail + ")");
    case BlobCheck::State::kTruncated:
    case BlobCheck::State::kCorrupted:
      break;
  }
  return Status::Corruption("blob " + c.digest + " in " + root + " is " +
                            BlobCheck::StateName(c.state) + ": " + c.detail +
                            "; it cannot be used (restore from another restore point, or remove "
                            "it and snapshot again)");
}

bool IsShardName(std::string_view s) {
  return s.size() == 2 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

const char* BlobCheck::StateName(State s) {
  switch (s) {
    case State::kOk:
      return "ok";
    case State::kMissing:
      return "missing";
    case State::kTruncated:
      return "truncated";
    case State::kCorrupted:
      return "corrupted";
  }
  return "unknown";
}

Result<std::unique_ptr<Store>> Store::Open(Env* env, const std::string& root) {
  if (root.empty()) return Status::InvalidArgument("the store directory is empty");
  std::string abs = AbsolutePath(root, CurrentDir());
  FileSystem* fs = env->fs();
  // The store's own folders are never links: a link could send dumps to, or
  // read blobs from, a place nobody chose. CreateDirs makes them 0700.
  for (const char* sub : {"", "blobs", "restore-points", "tmp", "cache"}) {
    std::string dir = *sub ? JoinPath(abs, sub) : abs;
    auto info = fs->Stat(dir);
    if (info.ok() && info->is_symlink) {
      return Status::FailedPrecondition(
          "the store folder " + dir +
          " is a symbolic link; Backstop does not follow links inside its store (move the "
          "folder there, or point `store:` in the spec at its real location)");
    }
    Status st = fs->CreateDirs(dir);
    if (!st.ok()) return st.WithContext("cannot open the store at " + abs);
  }
  std::unique_ptr<Store> store(new Store(env, abs));
  {
    std::lock_guard<std::mutex> lock(store->cache_mu_);
    store->MergeCacheFromDiskLocked();
  }
  store->RemoveStaleTmp();
  return store;
}

Store::~Store() { (void)FlushCache(); }

std::string Store::ManifestDir() const { return JoinPath(root_, "restore-points"); }

std::string Store::TmpDir() const { return JoinPath(root_, "tmp"); }

std::string Store::BlobPath(const std::string& digest) const {
  std::string shard = digest.size() >= 2 ? digest.substr(0, 2) : "__";
  return JoinPath(JoinPath(JoinPath(root_, "blobs"), shard), digest);
}

std::string Store::NewTmpPath(const std::string& hint) {
  return JoinPath(TmpDir(), hint + "." + std::to_string(::getpid()) + "-" +
                                std::to_string(++tmp_counter_) + ".tmp");
}

void Store::RemoveStaleTmp() {
  FileSystem* fs = env_->fs();
  auto names = fs->ListDir(TmpDir());
  if (!names.ok()) return;
  const int64_t cutoff_ns = (env_->clock()->WallMicros() - kStaleTmpMicros) * 1000;
  for (const auto& name : *names) {
    std::string p = JoinPath(TmpDir(), name);
    auto info = fs->Stat(p);
    if (info.ok() && info->mtime_ns < cutoff_ns) (void)fs->RemoveAll(p);
  }
}

bool Store::Has(const std::string& digest) {
  return IsSha256Hex(digest) && env_->fs()->Exists(BlobPath(digest));
}

Status Store::CommitBlob(const std::string& tmp_path, const std::string& digest) {
  FileSystem* fs = env_->fs();
  std::string final_path = BlobPath(digest);
  std::string shard = Dirname(final_path);
  if (!fs->Exists(shard)) {
    BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(shard));
    BACKSTOP_RETURN_IF_ERROR(fs->SyncDir(Dirname(shard)));
  }
  // Already there (another thread or process won the race): keep that file.
  if (fs->Exists(final_path)) return fs->Remove(tmp_path);
  BACKSTOP_RETURN_IF_ERROR(fs->Rename(tmp_path, final_path));
  return fs->SyncDir(shard);
}

Result<std::string> Store::Put(std::string_view data) {
  std::string digest = Sha256Hex(data);
  if (Has(digest)) return digest;
  std::string tmp = NewTmpPath(digest.substr(0, 16));
  RemoveOnExit guard(env_->fs(), tmp);
  BlobWriter writer(env_->fs());
  BACKSTOP_RETURN_IF_ERROR(writer.Open(tmp, data.size(), /*parallel=*/false));
  BACKSTOP_RETURN_IF_ERROR(writer.Append(data));
  BACKSTOP_RETURN_IF_ERROR(writer.Finish());
  BACKSTOP_RETURN_IF_ERROR(CommitBlob(tmp, digest));
  guard.Dismiss();
  return digest;
}

Result<std::string> Store::PutFile(const std::string& path) {
  std::string abs = AbsolutePath(path, CurrentDir());
  for (int attempt = 0; attempt < kPutFileAttempts; ++attempt) {
    std::string digest;
    bool changed = false;
    BACKSTOP_RETURN_IF_ERROR(PutFileOnce(abs, &digest, &changed));
    if (!changed) return digest;
  }
  return Status::Aborted(abs + " changed while it was being read, " +
                         std::to_string(kPutFileAttempts) +
                         " times in a row; snapshot it when nothing is writing to it");
}

Status Store::PutFileOnce(const std::string& abs, std::string* digest, bool* changed) {
  struct stat before;
  if (::lstat(abs.c_str(), &before) != 0) {
    if (errno == ENOENT) return Status::NotFound(abs + ": no such file");
    return Status::FromErrno("stat " + abs, errno);
  }
  if (S_ISLNK(before.st_mode)) {
    return Status::InvalidArgument(abs +
                                   " is a symbolic link; the store never reads through one "
                                   "(store the link itself, or the file it points to)");
  }
  if (!S_ISREG(before.st_mode)) {
    return Status::InvalidArgument(abs + " is not a regular file; only regular files are stored");
  }
  auto stat_entry = [](const struct stat& st) {
    CachedDigest e;
    e.size = static_cast<uint64_t>(st.st_size);
    e.mtime_ns = MtimeNs(st);
    e.ctime_ns = CtimeNs(st);
    e.inode = st.st_ino;
    e.device = st.st_dev;
    return e;
  };
  auto same = [](const CachedDigest& a, const CachedDigest& b) {
    return a.size == b.size && a.mtime_ns == b.mtime_ns && a.ctime_ns == b.ctime_ns &&
           a.inode == b.inode && a.device == b.device;
  };

  CachedDigest seen = stat_entry(before);
  std::string cached;
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(abs);
    if (it != cache_.end() && same(it->second, seen)) cached = it->second.digest;
  }
  if (!cached.empty() && Has(cached)) {
    *digest = cached;
    return Status::OK();
  }

  // O_NOFOLLOW: a file swapped for a link since lstat() is not read through.
  UniqueFd fd(::open(abs.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd.valid()) {
    if (errno == ELOOP) {
      *changed = true;  // replaced by a link since lstat(): look again
      return Status::OK();
    }
    return Status::FromErrno("open " + abs, errno);
  }
  struct stat opened;
  if (::fstat(fd.get(), &opened) != 0) return Status::FromErrno("stat " + abs, errno);
  if (!S_ISREG(opened.st_mode)) {
    *changed = true;  // replaced by something else since lstat(): look again
    return Status::OK();
  }
  seen = stat_entry(opened);  // the file we read, even if it was replaced since stat()
  ++files_hashed_;
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  auto unchanged_since_open = [&]() -> Result<bool> {
    struct stat after;
    if (::fstat(fd.get(), &after) != 0) return Status::FromErrno("stat " + abs, errno);
    return same(stat_entry(after), seen);
  };

  const uint64_t size = seen.size;
  if (size <= kSmallFileBytes) {
    std::string data(size + 1, '\0');  // one more byte: notices a file that grew
    BACKSTOP_ASSIGN_OR_RETURN(size_t n, ReadUpTo(fd.get(), data.data(), data.size(), abs));
    BACKSTOP_ASSIGN_OR_RETURN(bool unchanged, unchanged_since_open());
    if (n != size || !unchanged) {
      *changed = true;
      return Status::OK();
    }
    data.resize(n);
    BACKSTOP_ASSIGN_OR_RETURN(*digest, Put(data));
  } else {
    std::string tmp = NewTmpPath("file");
    RemoveOnExit guard(env_->fs(), tmp);
    BlobWriter writer(env_->fs());
    BACKSTOP_RETURN_IF_ERROR(writer.Open(tmp, size, size >= kParallelCompressBytes));
    Sha256 hash;
    std::string buf(kReadChunk, '\0');
    uint64_t total = 0;
    for (;;) {
      BACKSTOP_ASSIGN_OR_RETURN(size_t n, ReadUpTo(fd.get(), buf.data(), buf.size(), abs));
      if (n == 0) break;
      total += n;
      if (total > size) break;  // grew: the pledged size would be violated
      std::string_view chunk(buf.data(), n);
      hash.Update(chunk);
      BACKSTOP_RETURN_IF_ERROR(writer.Append(chunk));
    }
    BACKSTOP_ASSIGN_OR_RETURN(bool unchanged, unchanged_since_open());
    if (total != size || !unchanged) {
      *changed = true;
      return Status::OK();
    }
    *digest = hash.FinishHex();
    // Present already: drop the compressed copy (the guard removes it).
    if (!Has(*digest)) {
      BACKSTOP_RETURN_IF_ERROR(writer.Finish());
      BACKSTOP_RETURN_IF_ERROR(CommitBlob(tmp, *digest));
      guard.Dismiss();
    }
  }

  // Racy-clean rule (store.h): a file modified within the window may change
  // again without its stat fields changing, so it is not remembered.
  const int64_t now_ns = env_->clock()->WallMicros() * 1000;
  if (seen.mtime_ns <= now_ns - kRacyWindowNs && seen.ctime_ns <= now_ns - kRacyWindowNs) {
    seen.digest = *digest;
    std::lock_guard<std::mutex> lock(cache_mu_);
    cache_[abs] = std::move(seen);
    cache_dirty_ = true;
  }
  return Status::OK();
}

Result<std::string> Store::Get(const std::string& digest) {
  if (!IsSha256Hex(digest)) {
    return Status::InvalidArgument("'" + digest + "' is not a sha256 hex digest");
  }
  std::string content;
  Status sink_status;
  BlobCheck c = StreamBlob(
      env_->fs(), BlobPath(digest), digest,
      [&content](std::string_view chunk) {
        content.append(chunk);
        return Status::OK();
      },
      &sink_status);
  BACKSTOP_RETURN_IF_ERROR(sink_status);
  BACKSTOP_RETURN_IF_ERROR(CheckToStatus(c, root_));
  return content;
}

Status Store::GetToFile(const std::string& digest, const std::string& path, uint32_t mode) {
  return GetToFileImpl(digest, path, mode, /*durable=*/true);
}

Status Store::GetToScratchFile(const std::string& digest, const std::string& path, uint32_t mode) {
  return GetToFileImpl(digest, path, mode, /*durable=*/false);
}

Status Store::GetToFileImpl(const std::string& digest, const std::string& path, uint32_t mode,
                            bool durable) {
  if (!IsSha256Hex(digest)) {
    return Status::InvalidArgument("'" + digest + "' is not a sha256 hex digest");
  }
  FileSystem* fs = env_->fs();
  if (!fs->Exists(BlobPath(digest))) {
    return Status::NotFound("blob " + digest + " is not in the store " + root_ + " (needed for " +
                            path + ")");
  }
  std::string dir = Dirname(path);
  BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(dir));
  // Next to the target, so the rename stays within one file system.
  std::string tmp = JoinPath(dir, "." + Basename(path) + ".backstop-" + std::to_string(::getpid()) +
                                      "-" + std::to_string(++tmp_counter_) + ".tmp");
  BACKSTOP_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file,
                            fs->NewWritableFile(tmp, 0600, WriteMode::kCreateNew));
  RemoveOnExit guard(fs, tmp);
  Status sink_status;
  BlobCheck c = StreamBlob(
      fs, BlobPath(digest), digest, [&](std::string_view chunk) { return file->Append(chunk); },
      &sink_status);
  BACKSTOP_RETURN_IF_ERROR(sink_status);
  BACKSTOP_RETURN_IF_ERROR(CheckToStatus(c, root_).WithContext("not restoring " + path));
  // Private until verified; the mode asked for is set before the fsync that
  // makes it durable.
  BACKSTOP_RETURN_IF_ERROR(file->Flush());
  BACKSTOP_RETURN_IF_ERROR(fs->Chmod(tmp, mode & 07777));
  if (durable) BACKSTOP_RETURN_IF_ERROR(file->Sync());
  BACKSTOP_RETURN_IF_ERROR(file->Close());
  BACKSTOP_RETURN_IF_ERROR(fs->Rename(tmp, path));
  guard.Dismiss();
  return durable ? fs->SyncDir(dir) : Status::OK();
}

Status Store::StreamContent(const std::string& digest,
                            const std::function<Status(std::string_view)>& sink) {
  if (!IsSha256Hex(digest)) {
    return Status::InvalidArgument("'" + digest + "' is not a sha256 hex digest");
  }
  Status sink_status;
  BlobCheck c = StreamBlob(env_->fs(), BlobPath(digest), digest, sink, &sink_status);
  BACKSTOP_RETURN_IF_ERROR(sink_status);
  return CheckToStatus(c, root_);
}

Result<uint64_t> Store::SizeOf(const std::string& digest) {
  if (!IsSha256Hex(digest)) {
    return Status::InvalidArgument("'" + digest + "' is not a sha256 hex digest");
  }
  auto file = env_->fs()->NewSequentialFile(BlobPath(digest));
  if (!file.ok()) {
    if (file.status().IsNotFound()) {
      return Status::NotFound("blob " + digest + " is not in the store " + root_);
    }
    if (file.status().code() == Status::Code::kFailedPrecondition) {
      return Status::Corruption("blob " + digest + " in " + root_ + " is a symbolic link");
    }
    return file.status();
  }
  char header[kHeaderSize];
  BACKSTOP_ASSIGN_OR_RETURN(std::string_view got, (*file)->Read(sizeof header, header));
  if (got.size() < kHeaderSize || std::memcmp(header, kMagic, sizeof kMagic) != 0) {
    return Status::Corruption("blob " + digest + " in " + root_ + " has no valid header");
  }
  return GetLittleEndian64(header + 8);
}

BlobCheck Store::Check(const std::string& digest) {
  Status unused;
  return StreamBlob(env_->fs(), BlobPath(digest), digest, Sink(), &unused);
}

BlobCheck Store::CheckBlobFile(const std::string& path, const std::string& digest) {
  Status unused;
  return StreamBlob(env_->fs(), path, digest, Sink(), &unused);
}

Status Store::ImportBlobFile(const std::string& path, const std::string& digest) {
  RemoveOnExit guard(env_->fs(), path);
  BlobCheck check = CheckBlobFile(path, digest);
  if (check.state != BlobCheck::State::kOk) {
    return Status::Corruption("blob " + digest + " is " + BlobCheck::StateName(check.state) + ": " +
                              check.detail);
  }
  BACKSTOP_RETURN_IF_ERROR(env_->fs()->Chmod(path, kBlobMode));
  BACKSTOP_RETURN_IF_ERROR(CommitBlob(path, digest));
  guard.Dismiss();
  return Status::OK();
}

Result<std::vector<std::string>> Store::ListBlobs() {
  FileSystem* fs = env_->fs();
  std::string blobs = JoinPath(root_, "blobs");
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<std::string> shards, fs->ListDir(blobs));
  std::vector<std::string> out;
  for (const auto& shard : shards) {
    if (!IsShardName(shard)) continue;
    auto names = fs->ListDir(JoinPath(blobs, shard));
    if (!names.ok()) {
      if (names.status().IsNotFound()) continue;  // removed concurrently
      return names.status();
    }
    for (const auto& name : *names) {
      if (IsSha256Hex(name) && name.compare(0, 2, shard) == 0) out.push_back(name);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

Status Store::RemoveBlob(const std::string& digest) {
  if (!IsSha256Hex(digest)) {
    return Status::InvalidArgument("'" + digest + "' is not a sha256 hex digest");
  }
  std::string path = BlobPath(digest);
  BACKSTOP_RETURN_IF_ERROR(env_->fs()->Remove(path));
  Status st = env_->fs()->SyncDir(Dirname(path));
  if (!st.ok() && !env_->fs()->Exists(Dirname(path))) return Status::OK();
  return st;
}

Status Store::CreateFileNoReplace(const std::string& path, std::string_view data, uint32_t mode) {
  FileSystem* fs = env_->fs();
  std::string tmp = NewTmpPath(Basename(path));
  BACKSTOP_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file,
                            fs->NewWritableFile(tmp, mode & 07777, WriteMode::kCreateNew));
  RemoveOnExit guard(fs, tmp);
  BACKSTOP_RETURN_IF_ERROR(file->Append(data));
  BACKSTOP_RETURN_IF_ERROR(file->Sync());
  BACKSTOP_RETURN_IF_ERROR(file->Close());
  BACKSTOP_RETURN_IF_ERROR(fs->RenameNoReplace(tmp, path));
  guard.Dismiss();
  return fs->SyncDir(Dirname(path));
}

// ---- Stat cache ----

namespace {

std::string CachePath(const std::string& root) {
  return JoinPath(JoinPath(root, "cache"), "file-digests.json");
}

}  // namespace

void Store::MergeCacheFromDiskLocked() {
  auto text = env_->fs()->ReadFile(CachePath(root_));
  if (!text.ok()) return;  // none yet, or unreadable: nothing to merge
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(*text);
  } catch (const std::exception&) {
    return;  // damaged: it only saved work, and the next flush replaces it
  }
  if (!j.is_object() || j.value("version", 0) != kCacheFormatVersion || !j.contains("files") ||
      !j["files"].is_object()) {
    return;
  }
  for (const auto& [path, e] : j["files"].items()) {
    if (cache_.count(path) != 0) continue;  // ours is at least as recent
    try {
      CachedDigest d;
      d.size = e.at("size").get<uint64_t>();
      d.mtime_ns = e.at("mtime_ns").get<int64_t>();
      d.ctime_ns = e.at("ctime_ns").get<int64_t>();
      d.inode = e.at("inode").get<uint64_t>();
      d.device = e.at("device").get<uint64_t>();
      d.digest = e.at("digest").get<std::string>();
      if (IsSha256Hex(d.digest)) cache_[path] = std::move(d);
    } catch (const std::exception&) {
      // A malformed entry is skipped; that file is re-hashed.
    }
  }
}

Status Store::FlushCache() {
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (!cache_dirty_) return Status::OK();
  // Keep what another process added since we loaded; every entry is
  // re-validated against stat() before use anyway.
  MergeCacheFromDiskLocked();
  nlohmann::json files = nlohmann::json::object();
  for (const auto& [path, d] : cache_) {
    nlohmann::json key = path;
    try {
      (void)key.dump();  // file names are bytes; JSON needs UTF-8
    } catch (const std::exception&) {
      continue;  // such a file is simply re-hashed every time
    }
    files[path] = {{"size", d.size},   {"mtime_ns", d.mtime_ns}, {"ctime_ns", d.ctime_ns},
                   {"inode", d.inode}, {"device", d.device},     {"digest", d.digest}};
  }
  nlohmann::json j = {{"version", kCacheFormatVersion}, {"files", std::move(files)}};
  Status st = env_->fs()->WriteFileAtomic(CachePath(root_), j.dump());
  if (!st.ok()) return st.WithContext("cannot save the file digest cache");
  cache_dirty_ = false;
  return Status::OK();
}

}  // namespace backstop

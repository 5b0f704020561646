// Store: content-addressed blobs plus restore-point manifests.
//
// Layout under the root directory:
//   blobs/<aa>/<sha256 hex>     a blob: header + zstd frame of the content
//   restore-points/<id>.json    a manifest (restore_point.h), written last
//   tmp/                        partial writes; safe to delete when no backstop runs
//                               (Open removes entries untouched for a day)
//   cache/file-digests.json     PutFile's stat cache (below); a hint, safe to delete
// A blob is named by the sha256 of its uncompressed content, so putting the
// same content twice costs one hash and no write. Every file is written as
// temp + fsync + rename + directory fsync; a crash leaves either the old state
// or the new one plus garbage in tmp/.
//
// Everything is private: folders 0700, blobs 0400, other files 0600 (they
// hold database dumps), whatever the umask. Open refuses a store whose
// folders are symbolic links; blobs are never read through a link.
//
// Blob file format: 8-byte magic "BSTPBLB1", 8-byte little-endian uncompressed
// size, then one zstd frame. Reading verifies the size and the hash.
//
// Thread-safety: a Store may be used from several threads; concurrent Puts of
// the same content are safe (the rename is atomic and the content equal).
//
// Stat cache: PutFile remembers, per absolute path, the (size, mtime_ns,
// ctime_ns, inode, device) it saw and the digest it computed, in
// cache/file-digests.json. An unchanged file is then not read again, which
// makes an unchanged re-snapshot cost one stat() per file. An entry is trusted
// only when every stat field matches and its blob still exists. A file whose
// mtime or ctime is within 2 s of now (Env clock) is never cached: a write in
// the same timestamp tick as our read could leave the stat fields unchanged
// while the content changed (git's "racy clean" problem); such a file is simply
// re-hashed next time. Any write changes ctime, which nobody can set by hand,
// so even a tool that restores mtime (touch -r, rsync -t) is noticed. The
// cache is only a hint: losing it costs a re-hash, nothing else.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/env.h"
#include "base/status.h"

namespace backstop {

struct BlobCheck {
  enum class State { kOk, kMissing, kTruncated, kCorrupted };
  std::string digest;
  State state = State::kOk;
  std::string detail;  // "hash mismatch: got 3f2a…", "file ends after 1,024 of 4,096 bytes"
  static const char* StateName(State s);
};

class Store {
 public:
  // Opens (creating if needed) the store at `root`. `env` must outlive the store.
  static Result<std::unique_ptr<Store>> Open(Env* env, const std::string& root);
  ~Store();

  const std::string& root() const { return root_; }

  // Adds `data`; returns its sha256 hex digest. Cheap when already present.
  Result<std::string> Put(std::string_view data);
  // Adds a file by streaming it (bounded memory, for dumps of any size).
  // Regular files only: a symbolic link is refused (InvalidArgument), never
  // read through. Uses the stat cache (above).
  // Files up to 4 MiB are hashed before anything is written; larger ones are
  // hashed and compressed in one pass (zstd on a worker thread), and the
  // compressed copy is dropped if the blob turns out to exist. A file that
  // changes while it is read is read again; Aborted after 3 attempts.
  Result<std::string> PutFile(const std::string& path);
  // Returns the content of `digest`, verified. NotFound, or Corruption naming what is wrong.
  Result<std::string> Get(const std::string& digest);
  // Writes the content of `digest` to `path` atomically with `mode`, verified
  // while streaming: a corrupt blob leaves `path` untouched.
  Status GetToFile(const std::string& digest, const std::string& path, uint32_t mode);
  bool Has(const std::string& digest);
  // Uncompressed size recorded in the blob header.
  Result<uint64_t> SizeOf(const std::string& digest);
  // Reads the whole blob and re-hashes it.
  BlobCheck Check(const std::string& digest);
  // Every digest present.
  Result<std::vector<std::string>> ListBlobs();
  Status RemoveBlob(const std::string& digest);

  // Raw access to manifests (see restore_point.h for the typed API).
  std::string ManifestDir() const;
  std::string BlobPath(const std::string& digest) const;

  // --- Added after the first contract (all additive) ---

  Env* env() const { return env_; }
  // <root>/tmp: where partial writes live until they are renamed into place.
  std::string TmpDir() const;
  // Creates `path` (a file inside the store, e.g. a manifest) with `data`:
  // written under tmp/, fsynced, linked into place only if `path` does not
  // exist yet (atomic, also against other processes), directory fsynced.
  // FailedPrecondition if `path` already exists; it is left unchanged.
  Status CreateFileNoReplace(const std::string& path, std::string_view data, uint32_t mode = 0600);
  // Writes the stat cache (see above) to cache/file-digests.json if it
  // changed, atomically, merged with entries another process may have added.
  // Also called by the destructor (errors there are ignored: it is a cache).
  Status FlushCache();
  // Like GetToFile, for scratch copies a crash may lose (a dump extracted for
  // pg_restore, redone after a crash): the same verification while streaming,
  // and `path` appears by rename only once complete and verified, but neither
  // the file nor its directory is fsynced.
  Status GetToScratchFile(const std::string& digest, const std::string& path, uint32_t mode);
  // Passes the content of `digest` to `sink` chunk by chunk while decoding
  // and hashing it (bounded memory), e.g. into a pipe read by another
  // program. Unlike Get, the content is only known good when this returns OK:
  // the receiver must treat what it got as tentative until then (NotFound,
  // Corruption naming what is wrong, or the sink's own error, which stops
  // the stream).
  Status StreamContent(const std::string& digest,
                       const std::function<Status(std::string_view)>& sink);
  // Verifies a blob file that is not (yet) in the store, e.g. one fetched
  // from a remote replica: its header, its zstd frame, and that its content
  // hashes to `digest`.
  BlobCheck CheckBlobFile(const std::string& path, const std::string& digest);
  // Moves such a file into the store as blob `digest` once CheckBlobFile
  // passes (Corruption naming what is wrong otherwise, and `path` is removed).
  // REQUIRES: `path` is in TmpDir() (the rename must not cross file systems)
  // and was fsynced by its writer.
  Status ImportBlobFile(const std::string& path, const std::string& digest);
  // <root>/tmp/<hint>.<pid>-<n>.tmp: a fresh name for a partial write.
  std::string NewTmpFilePath(const std::string& hint) { return NewTmpPath(hint); }
  // Test hook: how many files PutFile has opened and read (cache misses).
  uint64_t files_hashed_for_test() const { return files_hashed_.load(); }

 private:
  struct CachedDigest {
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
    uint64_t inode = 0;
    uint64_t device = 0;
    std::string digest;
  };

  Store(Env* env, std::string root) : env_(env), root_(std::move(root)) {}
  Status PutFileOnce(const std::string& path, std::string* digest, bool* changed_while_reading);
  Status CommitBlob(const std::string& tmp_path, const std::string& digest);
  Status GetToFileImpl(const std::string& digest, const std::string& path, uint32_t mode,
                       bool durable);
  std::string NewTmpPath(const std::string& hint);
  // Adds the entries of cache/file-digests.json that cache_ lacks. REQUIRES: cache_mu_ held.
  void MergeCacheFromDiskLocked();
  void RemoveStaleTmp();

  Env* env_;
  std::string root_;
  std::atomic<uint64_t> files_hashed_{0};
  std::atomic<uint64_t> tmp_counter_{0};
  std::mutex cache_mu_;
  std::map<std::string, CachedDigest> cache_;  // absolute path -> what PutFile saw; cache_mu_
  bool cache_dirty_ = false;                   // guarded by cache_mu_
};

}  // namespace backstop

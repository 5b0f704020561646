// Store: content-addressed blobs plus restore-point manifests.
//
// Layout under the root directory:
//   blobs/<aa>/<sha256 hex>     a blob: header + zstd frame of the content
//   restore-points/<id>.json    a manifest (restore_point.h), written last
//   tmp/                        partial writes; safe to delete when no backstop runs
// A blob is named by the sha256 of its uncompressed content, so putting the
// same content twice costs one hash and no write. Every file is written as
// temp + fsync + rename + directory fsync; a crash leaves either the old state
// or the new one plus garbage in tmp/.
//
// Blob file format: 8-byte magic "BSTPBLB1", 8-byte little-endian uncompressed
// size, then one zstd frame. Reading verifies the size and the hash.
//
// Thread-safety: a Store may be used from several threads; concurrent Puts of
// the same content are safe (the rename is atomic and the content equal).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "env.h"
#include "status.h"

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

 private:
  Store(Env* env, std::string root) : env_(env), root_(std::move(root)) {}
  Env* env_;
  std::string root_;
};

}  // namespace backstop

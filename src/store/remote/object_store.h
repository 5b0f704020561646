// ObjectStore: the seam between Backstop's remote replica (store/remote_store.h)
// and where its objects really live: an S3-compatible bucket (s3_object_store.h)
// or a plain directory (dir_object_store.h: a mounted backup disk, and the
// fake for unit tests of everything above the seam).
//
// Contract:
// - Keys are '/'-separated relative names ("blobs/ab/ab12…", "restore-points/rp-…");
//   the implementation adds its own prefix. Keys never start with '/', never
//   hold "..", never hold characters other than [A-Za-z0-9._/-].
// - Put* replace the object whole or fail leaving the old one (or none): a
//   reader never sees half an object under its key. Multipart uploads are the
//   implementation's business (S3 completes them atomically).
// - Get* return NotFound when the key does not exist, Unavailable after
//   transient failures outlived the retries (network, 5xx, timeouts), any
//   other code for a definite refusal (403, a missing bucket: FailedPrecondition).
// - Describe() and every error message name the location, never a secret.
//
// Thread-safety: implementations are safe to call from several threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace backstop {

struct ObjectInfo {
  std::string key;  // relative to the store's prefix, as passed to Put
  uint64_t size = 0;
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  // Where the objects are, for messages: "s3://bucket/prefix (http://127.0.0.1:9000)".
  virtual std::string Describe() const = 0;

  virtual Status Put(const std::string& key, std::string_view data) = 0;
  // Uploads the file at `path` streaming it (bounded memory, any size).
  virtual Status PutFile(const std::string& key, const std::string& path) = 0;
  virtual Result<std::string> Get(const std::string& key) = 0;
  // Downloads into `path` (created 0600, replaced whole: written beside it and
  // renamed once complete), streaming.
  virtual Status GetToFile(const std::string& key, const std::string& path) = 0;
  // The object's size; NotFound when it does not exist.
  virtual Result<uint64_t> Size(const std::string& key) = 0;
  // Every object whose key starts with `prefix`, all pages, sorted by key.
  virtual Result<std::vector<ObjectInfo>> List(const std::string& prefix) = 0;
  // OK when the object did not exist.
  virtual Status Delete(const std::string& key) = 0;
};

// Whether `key` obeys the contract above (InvalidArgument naming it if not).
Status CheckObjectKey(std::string_view key);

}  // namespace backstop

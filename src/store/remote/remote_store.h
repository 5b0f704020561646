// RemoteStore: a copy of the local store's restore points somewhere that
// survives the host (an S3-compatible bucket, or a directory on another disk),
// behind the ObjectStore seam. Layout and format: docs/store.md.
//
//   <prefix>/config                         what the store is: format, whether it is
//                                           encrypted, a key check (JSON, plain)
//   <prefix>/blobs/<aa>/<object id>         a blob file as the local store keeps it
//                                           (header + zstd frame), encrypted
//   <prefix>/restore-points/<id>.json       a manifest, byte for byte, encrypted
//
// With encryption (the default; store_crypto.h) the object id of a blob is
// the keyed HMAC of its digest, and every object is AES-256-GCM with its key
// as associated data. Without it, the id is the sha256 digest and objects are
// the local files as they are.
//
// Completeness: a manifest is uploaded only after every blob it names is in
// the bucket (a PUT is atomic; listing the bucket tells which blobs are
// there), so a restore point that is listed remotely is usable, whatever
// crash or dropped connection interrupted an upload. Fetching writes the
// blobs into the local store first (each verified: decrypted, authenticated,
// decompressed and re-hashed) and the manifest last, by the same rule.
//
// What has been replicated is remembered locally in
// <store>/replicas/<digest of the replica's name>/<restore point id> (an empty marker written
// after the manifest's upload), so `backstop status` can say what is not yet
// off the host without asking the bucket.
//
// Thread-safety: Sync, Fetch and Verify may run concurrently with each other
// and with snapshots (every step is idempotent and ordered as above); one
// RemoteStore may be shared by threads.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/status.h"
#include "store/remote/object_store.h"
#include "store/remote/store_crypto.h"
#include "store/restore_point.h"
#include "store/store.h"

namespace backstop {

struct ReplicationProgress {
  std::string restore_point;  // the one being uploaded or fetched
  size_t blobs_done = 0;      // of this restore point's blobs that had to move
  size_t blobs_to_move = 0;
  uint64_t bytes_moved = 0;  // over the whole call, as stored (compressed, encrypted)
};
using ReplicationProgressFn = std::function<void(const ReplicationProgress&)>;

struct SyncSummary {
  std::vector<std::string> uploaded;  // restore points now complete in the remote store
  size_t already_there = 0;           // restore points that were already complete there
  size_t blobs_sent = 0;
  size_t blobs_present = 0;  // named by an uploaded restore point and already in the bucket
  uint64_t bytes_sent = 0;
  // Restore points that could not be uploaded ("rp-…: why"); the others were.
  std::vector<std::string> failed;
};

struct FetchSummary {
  size_t blobs_fetched = 0;
  size_t blobs_present = 0;  // already in the local store
  uint64_t bytes_fetched = 0;
};

class RemoteStore {
 public:
  // Reads the remote `config` (writing it when the store is new) and checks
  // that `key` opens it: a wrong key, a missing key for an encrypted store or
  // a key for a plain one is FailedPrecondition before anything else is read
  // or written. `local` must outlive the RemoteStore. `key` is empty for
  // `encrypt: false`.
  // `replica_name` names this remote among the ones the local store has
  // known (the local markers below); empty: objects->Describe().
  static Result<std::unique_ptr<RemoteStore>> Open(Store* local,
                                                   std::unique_ptr<ObjectStore> objects,
                                                   std::optional<StoreKey> key,
                                                   const std::string& replica_name = "");

  // "s3://bucket/prefix (http://…), encrypted with key 3f2a91c0…"
  std::string Describe() const;
  ObjectStore& objects() { return *objects_; }

  // Uploads every restore point of the local store that the remote lacks
  // (or only `only`, when given), blobs first, manifest last; blobs the bucket
  // already has are not sent again. A damaged local restore point (a manifest
  // modified, a blob that fails its hash) is not uploaded and is listed in
  // `failed`. `threads` blobs move at once.
  Result<SyncSummary> Sync(const ReplicationProgressFn& progress,
                           const std::vector<std::string>* only = nullptr, int threads = 4);

  // Ids of the restore points complete in the remote store, sorted.
  Result<std::vector<std::string>> ListIds();
  // Reads one remote manifest (decrypted, its checksum checked).
  Result<RestorePoint> Read(const std::string& id);
  // Resolves a selector the way the local store does (latest, previous, id,
  // label, unique id prefix) among the remote restore points.
  Result<RestorePoint> Resolve(const std::string& selector, bool include_safety);
  // Copies restore point `id` into the local store (blobs verified, manifest
  // last). A no-op for what the local store already has.
  Result<FetchSummary> Fetch(const std::string& id, const ReplicationProgressFn& progress,
                             int threads = 4);
  // Re-reads every blob of `rp` from the remote store, decrypts,
  // authenticates and re-hashes it, and checks the remote manifest's
  // checksum; nothing is written to the local store.
  Result<RestorePointCheck> Verify(const RestorePoint& rp, int threads = 4);

  // Whether `id` was uploaded by this host (the local marker; no request).
  bool MarkedReplicated(const std::string& id);
  // The local restore points this host has not replicated yet, oldest first.
  std::vector<std::string> NotReplicated();
  // The same without opening the remote (no request, no key): for `status`.
  static std::vector<std::string> NotReplicated(Store& local, const std::string& replica_name);

 private:
  RemoteStore(Store* local, std::unique_ptr<ObjectStore> objects, std::optional<StoreKey> key,
              std::string replica_name);
  static std::string MarkerDirOf(Store& local, const std::string& replica_name);
  Status CheckConfig();
  std::string BlobKey(const std::string& digest) const;
  static std::string ManifestKey(const std::string& id);
  std::string MarkerDir() const;
  // The decrypted bytes of manifest `id` (NotFound naming the store).
  Result<std::string> ReadManifestText(const std::string& id);
  Status Mark(const std::string& id);
  // Uploads one local blob (verified first).
  Status UploadBlob(const std::string& digest, uint64_t* bytes);
  // Downloads one blob into `local_tmp` as the local store's file format,
  // decrypted and authenticated (not yet verified against its digest).
  Status DownloadBlob(const std::string& digest, const std::string& local_tmp, uint64_t* bytes);
  // Every blob object in the bucket with its size.
  Result<std::map<std::string, uint64_t>> RemoteBlobSizes();
  // The size blob `digest` has in the bucket when whole.
  Result<uint64_t> ExpectedObjectSize(const std::string& digest);

  Store* local_;
  std::unique_ptr<ObjectStore> objects_;
  std::optional<StoreKey> key_;
  std::string replica_name_;
};

}  // namespace backstop

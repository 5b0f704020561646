#include "store/remote/remote_store.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>

#include "base/crash_point.h"
#include "base/hash.h"
#include "base/parallel_for.h"
#include "base/remove_on_exit.h"
#include "base/units.h"

namespace backstop {
namespace {

constexpr char kConfigKey[] = "config";
constexpr char kConfigFormat[] = "backstop-remote-store";
constexpr int kConfigVersion = 1;
constexpr char kKeyCheckPlaintext[] = "backstop-store-v1 key check";
constexpr char kManifestPrefix[] = "restore-points/";
constexpr char kManifestSuffix[] = ".json";
constexpr size_t kMinRemotePrefix = 6;

std::string RemoteRestorePointName(const RestorePoint& rp) {
  return rp.id + (rp.label.empty() || rp.label == rp.id ? "" : " (" + rp.label + ")");
}

}  // namespace

RemoteStore::RemoteStore(Store* local, std::unique_ptr<ObjectStore> objects,
                         std::optional<StoreKey> key, std::string replica_name)
    : local_(local),
      objects_(std::move(objects)),
      key_(std::move(key)),
      replica_name_(std::move(replica_name)) {
  if (replica_name_.empty()) replica_name_ = objects_->Describe();
}

Result<std::unique_ptr<RemoteStore>> RemoteStore::Open(Store* local,
                                                       std::unique_ptr<ObjectStore> objects,
                                                       std::optional<StoreKey> key,
                                                       const std::string& replica_name) {
  std::unique_ptr<RemoteStore> remote(
      new RemoteStore(local, std::move(objects), std::move(key), replica_name));
  BACKSTOP_RETURN_IF_ERROR(remote->CheckConfig());
  return remote;
}

std::string RemoteStore::Describe() const {
  return objects_->Describe() +
         (key_ ? ", encrypted with key " + key_->fingerprint() : ", not encrypted");
}

Status RemoteStore::CheckConfig() {
  const std::string where = objects_->Describe();
  auto text = objects_->Get(kConfigKey);
  if (!text.ok() && !text.status().IsNotFound()) {
    return text.status().WithContext("cannot read the remote store's config");
  }
  if (!text.ok()) {
    // A new store: say what it is before anything else goes in.
    nlohmann::json config = {
        {"format", kConfigFormat}, {"version", kConfigVersion}, {"encrypted", key_.has_value()}};
    if (key_) {
      BACKSTOP_ASSIGN_OR_RETURN(std::string check,
                                EncryptBytes(*key_, kConfigKey, kKeyCheckPlaintext));
      config["key_fingerprint"] = key_->fingerprint();
      config["key_check"] = HexEncode(check);
    }
    return objects_->Put(kConfigKey, config.dump(2) + "\n")
        .WithContext("cannot create the remote store at " + where);
  }
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(*text);
  } catch (const std::exception& e) {
    return Status::Corruption("the remote store's config at " + where +
                              " is not JSON: " + e.what());
  }
  if (!config.is_object() || config.value("format", "") != kConfigFormat) {
    return Status::FailedPrecondition(
        where + " holds something other than a Backstop store (its config has no format \"" +
        kConfigFormat + "\"); choose another prefix");
  }
  if (config.value("version", 0) != kConfigVersion) {
    return Status::FailedPrecondition("the remote store at " + where + " has format version " +
                                      std::to_string(config.value("version", 0)) +
                                      "; this Backstop reads version " +
                                      std::to_string(kConfigVersion));
  }
  const bool encrypted = config.value("encrypted", false);
  if (encrypted && !key_) {
    return Status::FailedPrecondition(
        "the remote store at " + where +
        " is encrypted but the spec says `encrypt: false`; name its key in `key_file:` (or "
        "BACKSTOP_STORE_KEY) and remove `encrypt: false`");
  }
  if (!encrypted && key_) {
    return Status::FailedPrecondition(
        "the remote store at " + where +
        " was created without encryption; write `encrypt: false` in the spec's store section "
        "to use it as it is, or point the store at a new prefix to start an encrypted one");
  }
  if (!encrypted) return Status::OK();
  auto sealed = HexDecode(config.value("key_check", ""));
  auto plain = sealed.ok() ? DecryptBytes(*key_, kConfigKey, *sealed) : sealed.status();
  if (!plain.ok() || *plain != kKeyCheckPlaintext) {
    return Status::FailedPrecondition(
        "the store key (fingerprint " + key_->fingerprint() +
        ") does not open the remote store at " + where +
        ", which was created with the key of fingerprint " +
        config.value("key_fingerprint", std::string("(unknown)")) +
        "; nothing was read or written. Use the key this store was made with");
  }
  return Status::OK();
}

std::string RemoteStore::BlobKey(const std::string& digest) const {
  std::string id = key_ ? key_->BlobObjectId(digest) : digest;
  return "blobs/" + id.substr(0, 2) + "/" + id;
}

std::string RemoteStore::ManifestKey(const std::string& id) {
  return kManifestPrefix + id + kManifestSuffix;
}

std::string RemoteStore::MarkerDirOf(Store& local, const std::string& replica_name) {
  // One folder per replica (a spec can move to another bucket): named by a
  // digest of where it is, so that a marker never vouches for another one.
  return JoinPath(JoinPath(local.root(), "replicas"), Sha256Hex(replica_name).substr(0, 16));
}

std::string RemoteStore::MarkerDir() const { return MarkerDirOf(*local_, replica_name_); }

Status RemoteStore::Mark(const std::string& id) {
  FileSystem* fs = local_->env()->fs();
  BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(MarkerDir(), 0700));
  return fs->WriteFileAtomic(JoinPath(MarkerDir(), id), replica_name_ + "\n", 0600);
}

bool RemoteStore::MarkedReplicated(const std::string& id) {
  return local_->env()->fs()->Exists(JoinPath(MarkerDir(), id));
}

std::vector<std::string> RemoteStore::NotReplicated() {
  return NotReplicated(*local_, replica_name_);
}

std::vector<std::string> RemoteStore::NotReplicated(Store& local, const std::string& replica_name) {
  const std::string dir = MarkerDirOf(local, replica_name);
  std::vector<std::string> out;
  for (const auto& rp : ListRestorePoints(local, nullptr)) {
    if (!local.env()->fs()->Exists(JoinPath(dir, rp.id))) out.push_back(rp.id);
  }
  return out;
}

Result<std::map<std::string, uint64_t>> RemoteStore::RemoteBlobSizes() {
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, objects_->List("blobs/"));
  std::map<std::string, uint64_t> sizes;
  for (auto& o : objects) sizes[std::move(o.key)] = o.size;
  return sizes;
}

Result<uint64_t> RemoteStore::ExpectedObjectSize(const std::string& digest) {
  BACKSTOP_ASSIGN_OR_RETURN(FileInfo info, local_->env()->fs()->Stat(local_->BlobPath(digest)));
  return info.size + (key_ ? kEncryptionOverhead : 0);
}

Status RemoteStore::UploadBlob(const std::string& digest, uint64_t* bytes) {
  const std::string path = local_->BlobPath(digest);
  // Never spread damage: a blob that fails its hash here stays here.
  BlobCheck check = local_->Check(digest);
  if (check.state != BlobCheck::State::kOk) {
    return Status::Corruption("local blob " + digest + " is " + BlobCheck::StateName(check.state) +
                              " (" + check.detail + "); not uploaded");
  }
  const std::string key = BlobKey(digest);
  FileSystem* fs = local_->env()->fs();
  if (!key_) {
    BACKSTOP_ASSIGN_OR_RETURN(FileInfo info, fs->Stat(path));
    *bytes = info.size;
    return objects_->PutFile(key, path);
  }
  const std::string sealed = local_->NewTmpFilePath("upload-" + digest.substr(0, 16));
  RemoveOnExit remove_sealed(fs, sealed);
  BACKSTOP_RETURN_IF_ERROR(EncryptFile(*key_, key, fs, path, sealed));
  BACKSTOP_ASSIGN_OR_RETURN(FileInfo info, fs->Stat(sealed));
  *bytes = info.size;
  return objects_->PutFile(key, sealed);
}

Result<SyncSummary> RemoteStore::Sync(const ReplicationProgressFn& progress,
                                      const std::vector<std::string>* only, int threads) {
  SyncSummary summary;
  std::vector<std::string> errors;
  std::vector<RestorePoint> local_rps = ListRestorePoints(*local_, &errors);
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<std::string> remote_ids, ListIds());
  std::set<std::string> remote(remote_ids.begin(), remote_ids.end());
  BACKSTOP_ASSIGN_OR_RETURN(auto remote_blobs, RemoteBlobSizes());
  std::set<std::string> wanted;
  if (only != nullptr) wanted.insert(only->begin(), only->end());

  for (const RestorePoint& rp : local_rps) {
    if (only != nullptr && wanted.count(rp.id) == 0) continue;
    if (remote.count(rp.id)) {
      ++summary.already_there;
      if (!MarkedReplicated(rp.id)) (void)Mark(rp.id);
      continue;
    }
    // The manifest as read must still be the one Backstop wrote.
    if (rp.ComputeChecksum() != rp.checksum) {
      summary.failed.push_back(rp.id + ": its manifest was modified; not uploaded");
      continue;
    }
    std::vector<std::string> to_send;
    for (const auto& digest : rp.AllBlobs()) {
      // Present only when whole: a store that keeps what a dropped upload
      // sent (some S3 stand-ins, a file system) must not vouch for it.
      auto there = remote_blobs.find(BlobKey(digest));
      auto expected = ExpectedObjectSize(digest);
      if (there != remote_blobs.end() && expected.ok() && there->second == *expected) {
        ++summary.blobs_present;
      } else {
        to_send.push_back(digest);
      }
    }
    ReplicationProgress p;
    p.restore_point = rp.id;
    p.blobs_to_move = to_send.size();
    p.bytes_moved = summary.bytes_sent;
    if (progress) progress(p);
    std::mutex mu;
    Status st = ParallelFor(to_send.size(), threads, [&](size_t i) -> Status {
      uint64_t bytes = 0;
      BACKSTOP_RETURN_IF_ERROR(UploadBlob(to_send[i], &bytes));
      CrashPointForTest("store.remote_blob_uploaded");
      std::lock_guard<std::mutex> lock(mu);
      remote_blobs[BlobKey(to_send[i])] = bytes;
      ++summary.blobs_sent;
      summary.bytes_sent += bytes;
      ++p.blobs_done;
      p.bytes_moved = summary.bytes_sent;
      if (progress) progress(p);
      return Status::OK();
    });
    if (!st.ok()) {
      summary.failed.push_back(rp.id + ": " + st.ToString());
      if (st.code() == Status::Code::kUnavailable) break;  // the rest would fail the same way
      continue;
    }
    // Every blob is in the bucket: now, and only now, the manifest.
    CrashPointForTest("store.remote_before_manifest");
    auto text =
        local_->env()->fs()->ReadFileNoFollow(JoinPath(local_->ManifestDir(), rp.id + ".json"));
    if (!text.ok()) {
      summary.failed.push_back(rp.id + ": " + text.status().ToString());
      continue;
    }
    const std::string key = ManifestKey(rp.id);
    Status put;
    if (key_) {
      auto sealed = EncryptBytes(*key_, key, *text);
      put = sealed.ok() ? objects_->Put(key, *sealed) : sealed.status();
    } else {
      put = objects_->Put(key, *text);
    }
    if (!put.ok()) {
      summary.failed.push_back(rp.id + ": " + put.ToString());
      if (put.code() == Status::Code::kUnavailable) break;
      continue;
    }
    CrashPointForTest("store.remote_manifest_uploaded");
    BACKSTOP_RETURN_IF_ERROR(Mark(rp.id));
    summary.uploaded.push_back(rp.id);
  }
  return summary;
}

Result<std::vector<std::string>> RemoteStore::ListIds() {
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, objects_->List(kManifestPrefix));
  std::vector<std::string> ids;
  const std::string_view suffix = kManifestSuffix;
  for (const auto& o : objects) {
    std::string_view name(o.key);
    name.remove_prefix(std::string_view(kManifestPrefix).size());
    if (name.size() <= suffix.size() || name.substr(name.size() - suffix.size()) != suffix ||
        name.find('/') != std::string_view::npos) {
      continue;
    }
    ids.emplace_back(name.substr(0, name.size() - suffix.size()));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

Result<std::string> RemoteStore::ReadManifestText(const std::string& id) {
  const std::string key = ManifestKey(id);
  auto text = objects_->Get(key);
  if (!text.ok()) {
    if (text.status().IsNotFound()) {
      return Status::NotFound("restore point " + id + " is not in the remote store " +
                              objects_->Describe());
    }
    return text.status();
  }
  std::string plain = std::move(text).value();
  if (key_) {
    BACKSTOP_ASSIGN_OR_RETURN(plain, DecryptBytes(*key_, key, plain));
  }
  return plain;
}

Result<RestorePoint> RemoteStore::Read(const std::string& id) {
  BACKSTOP_ASSIGN_OR_RETURN(std::string plain, ReadManifestText(id));
  return ParseRestorePoint(plain, id, objects_->Describe());
}

Result<RestorePoint> RemoteStore::Resolve(const std::string& selector, bool include_safety) {
  BACKSTOP_ASSIGN_OR_RETURN(std::vector<std::string> ids, ListIds());
  if (std::binary_search(ids.begin(), ids.end(), selector)) return Read(selector);
  std::vector<RestorePoint> all;
  for (const auto& id : ids) {
    BACKSTOP_ASSIGN_OR_RETURN(RestorePoint rp, Read(id));
    all.push_back(std::move(rp));
  }
  std::sort(all.begin(), all.end(), [](const RestorePoint& a, const RestorePoint& b) {
    return a.created_wall_us != b.created_wall_us ? a.created_wall_us < b.created_wall_us
                                                  : a.id < b.id;
  });
  const std::string where = objects_->Describe();
  if (selector == "latest" || selector == "previous") {
    std::vector<const RestorePoint*> candidates;
    for (const auto& rp : all) {
      if (include_safety || rp.kind != RestorePointKind::kSafety) candidates.push_back(&rp);
    }
    size_t want = selector == "latest" ? 1 : 2;
    if (candidates.size() < want) {
      return Status::NotFound("no '" + selector + "' restore point in the remote store " + where +
                              " (it holds " + std::to_string(candidates.size()) + " that count)");
    }
    return *candidates[candidates.size() - want];
  }
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (!it->label.empty() && it->label == selector) return *it;
  }
  if (selector.size() >= kMinRemotePrefix) {
    std::vector<const RestorePoint*> matches;
    for (const auto& rp : all) {
      if (rp.id.compare(0, selector.size(), selector) == 0) matches.push_back(&rp);
    }
    if (matches.size() == 1) return *matches.front();
    if (matches.size() > 1) {
      return Status::InvalidArgument("restore point prefix '" + selector + "' matches " +
                                     std::to_string(matches.size()) +
                                     " restore points in the remote store; give more of the id");
    }
  }
  return Status::NotFound(
      "no restore point matches '" + selector + "' in the remote store " + where + " (" +
      std::to_string(all.size()) + " there" +
      (all.empty() ? "" : ", the newest " + RemoteRestorePointName(all.back())) + ")");
}

Status RemoteStore::DownloadBlob(const std::string& digest, const std::string& local_tmp,
                                 uint64_t* bytes) {
  const std::string key = BlobKey(digest);
  FileSystem* fs = local_->env()->fs();
  if (!key_) {
    BACKSTOP_RETURN_IF_ERROR(objects_->GetToFile(key, local_tmp));
    BACKSTOP_ASSIGN_OR_RETURN(FileInfo info, fs->Stat(local_tmp));
    *bytes = info.size;
    return Status::OK();
  }
  const std::string sealed = local_->NewTmpFilePath("download-" + digest.substr(0, 16));
  RemoveOnExit remove_sealed(fs, sealed);
  BACKSTOP_RETURN_IF_ERROR(objects_->GetToFile(key, sealed));
  BACKSTOP_ASSIGN_OR_RETURN(FileInfo info, fs->Stat(sealed));
  *bytes = info.size;
  return DecryptFile(*key_, key, fs, sealed, local_tmp, 0400);
}

Result<FetchSummary> RemoteStore::Fetch(const std::string& id,
                                        const ReplicationProgressFn& progress, int threads) {
  FileSystem* fs = local_->env()->fs();
  const std::string manifest_path = JoinPath(local_->ManifestDir(), id + ".json");
  FetchSummary summary;
  // The manifest's bytes, kept to be written locally as they are (its checksum).
  BACKSTOP_ASSIGN_OR_RETURN(std::string plain, ReadManifestText(id));
  BACKSTOP_ASSIGN_OR_RETURN(RestorePoint rp, ParseRestorePoint(plain, id, objects_->Describe()));
  std::vector<std::string> missing;
  for (const auto& digest : rp.AllBlobs()) {
    if (local_->Has(digest)) {
      ++summary.blobs_present;
    } else {
      missing.push_back(digest);
    }
  }
  ReplicationProgress p;
  p.restore_point = id;
  p.blobs_to_move = missing.size();
  if (progress) progress(p);
  std::mutex mu;
  BACKSTOP_RETURN_IF_ERROR(ParallelFor(missing.size(), threads, [&](size_t i) -> Status {
    const std::string& digest = missing[i];
    std::string tmp = local_->NewTmpFilePath("fetch-" + digest.substr(0, 16));
    uint64_t bytes = 0;
    Status st = DownloadBlob(digest, tmp, &bytes);
    if (st.ok()) st = local_->ImportBlobFile(tmp, digest);
    if (!st.ok()) {
      (void)fs->Remove(tmp);
      return st.WithContext("cannot fetch blob " + digest + " of restore point " + id);
    }
    CrashPointForTest("store.remote_blob_fetched");
    std::lock_guard<std::mutex> lock(mu);
    ++summary.blobs_fetched;
    summary.bytes_fetched += bytes;
    ++p.blobs_done;
    p.bytes_moved = summary.bytes_fetched;
    if (progress) progress(p);
    return Status::OK();
  }));
  if (!fs->Exists(manifest_path)) {
    Status st = local_->CreateFileNoReplace(manifest_path, plain, 0600);
    // Another fetch of the same restore point won the race: the same bytes.
    if (!st.ok() && !fs->Exists(manifest_path)) return st;
  }
  (void)Mark(id);
  return summary;
}

Result<RestorePointCheck> RemoteStore::Verify(const RestorePoint& rp, int threads) {
  RestorePointCheck result;
  auto remote = Read(rp.id);
  if (!remote.ok()) {
    result.manifest_ok = false;
    result.manifest_detail = remote.status().ToString();
  }
  std::vector<std::string> digests = rp.AllBlobs();
  result.blobs.resize(digests.size());
  FileSystem* fs = local_->env()->fs();
  BACKSTOP_RETURN_IF_ERROR(ParallelFor(digests.size(), threads, [&](size_t i) -> Status {
    const std::string& digest = digests[i];
    BlobCheck& check = result.blobs[i];
    check.digest = digest;
    const std::string plain = local_->NewTmpFilePath("verify-" + digest.substr(0, 16));
    RemoveOnExit remove_plain(fs, plain);
    uint64_t bytes = 0;
    Status st = DownloadBlob(digest, plain, &bytes);
    if (!st.ok()) {
      if (st.IsNotFound()) {
        check.state = BlobCheck::State::kMissing;
        check.detail = "no object " + BlobKey(digest) + " in " + objects_->Describe();
        return Status::OK();
      }
      if (st.code() == Status::Code::kCorruption) {
        check.state = BlobCheck::State::kCorrupted;
        check.detail = st.message();
        return Status::OK();
      }
      return st;  // the bucket cannot be read: not a verdict on the blob
    }
    check = local_->CheckBlobFile(plain, digest);
    return Status::OK();
  }));
  return result;
}

}  // namespace backstop

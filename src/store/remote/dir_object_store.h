// DirObjectStore: an ObjectStore in a plain directory (`file:///path` in the
// spec's store section): a backup disk or a network file system mounted on
// this host, and the stand-in for a bucket in unit tests of the remote store.
//
// Objects are files under the root, named by their key; each is written
// beside its place, fsynced and renamed over it, so a reader sees a whole
// object or none. Files are 0600, folders 0700. Nothing is read or written
// through a symbolic link: a link in the tree is refused, not followed.
//
// Thread-safety: safe from several threads (each call works on its own files).
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "base/env.h"
#include "store/remote/object_store.h"

namespace backstop {

class DirObjectStore : public ObjectStore {
 public:
  // Creates `root` (0700) when missing. `fs` must outlive the store.
  static Result<std::unique_ptr<DirObjectStore>> Open(FileSystem* fs, const std::string& root);

  std::string Describe() const override { return "file://" + root_; }
  Status Put(const std::string& key, std::string_view data) override;
  Status PutFile(const std::string& key, const std::string& path) override;
  Result<std::string> Get(const std::string& key) override;
  Status GetToFile(const std::string& key, const std::string& path) override;
  Result<uint64_t> Size(const std::string& key) override;
  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override;
  Status Delete(const std::string& key) override;

 private:
  DirObjectStore(FileSystem* fs, std::string root) : fs_(fs), root_(std::move(root)) {}
  // The object's path, its folders created (0700) when `create_dirs`.
  Result<std::string> PathOf(const std::string& key, bool create_dirs);
  // Streams `from` into a fresh file beside `to`, fsyncs it, renames it over `to`.
  Status CopyReplacing(const std::string& from, const std::string& to);

  FileSystem* fs_;
  std::string root_;
  std::atomic<uint64_t> counter_{0};
};

}  // namespace backstop

#include "store/remote/remote_store_open.h"

#include "store/remote/dir_object_store.h"
#include "store/remote/s3_object_store.h"

namespace backstop {

Result<std::unique_ptr<ObjectStore>> OpenObjectStore(Env* env, const RemoteStoreSpec& remote) {
  if (remote.url.rfind("file://", 0) == 0) {
    BACKSTOP_ASSIGN_OR_RETURN(std::unique_ptr<DirObjectStore> dir,
                              DirObjectStore::Open(env->fs(), remote.url.substr(7)));
    return std::unique_ptr<ObjectStore>(std::move(dir));
  }
  if (remote.url.rfind("s3://", 0) == 0) {
    BACKSTOP_ASSIGN_OR_RETURN(S3Location location,
                              ParseS3Url(remote.url, remote.endpoint, remote.region));
    BACKSTOP_ASSIGN_OR_RETURN(S3Credentials credentials, LoadS3Credentials());
    BACKSTOP_ASSIGN_OR_RETURN(std::unique_ptr<S3ObjectStore> s3,
                              S3ObjectStore::Open(std::move(location), std::move(credentials)));
    return std::unique_ptr<ObjectStore>(std::move(s3));
  }
  return Status::InvalidArgument("the store address " + remote.url +
                                 " is neither s3://BUCKET[/PREFIX] nor file:///PATH");
}

std::string ReplicaName(const RemoteStoreSpec& remote) {
  return remote.url + (remote.endpoint.empty() ? "" : " at " + remote.endpoint);
}

Result<std::unique_ptr<RemoteStore>> OpenRemoteStore(Env* env, const Spec& spec, Store* local) {
  if (!spec.remote_store) {
    return Status::NotFound("the spec names no remote store (store.url or store.replicate_to)");
  }
  const RemoteStoreSpec& remote = *spec.remote_store;
  std::optional<StoreKey> key;
  if (remote.encrypt) {
    auto loaded = StoreKey::Load(env->fs(), remote.key_file);
    if (!loaded.ok()) {
      return loaded.status().WithContext("the remote store " + remote.url +
                                         " is encrypted (the default)");
    }
    key = std::move(loaded).value();
  }
  BACKSTOP_ASSIGN_OR_RETURN(std::unique_ptr<ObjectStore> objects, OpenObjectStore(env, remote));
  return RemoteStore::Open(local, std::move(objects), std::move(key), ReplicaName(remote));
}

}  // namespace backstop

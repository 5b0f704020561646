// Opens the remote store a spec names (`store: {url: ...}` or
// `store.replicate_to`): the ObjectStore for its address (s3:// or file://),
// the key for its encryption, the RemoteStore over the local store.
//
// Thread-safety: a plain function.
#pragma once

#include <memory>

#include "base/env.h"
#include "base/status.h"
#include "spec/spec.h"
#include "store/remote/remote_store.h"

namespace backstop {

// The ObjectStore behind an address: "s3://bucket/prefix" (credentials from
// the environment or the AWS shared credentials file) or "file:///dir".
Result<std::unique_ptr<ObjectStore>> OpenObjectStore(Env* env, const RemoteStoreSpec& remote);

// The name under which the local store remembers what it replicated there.
std::string ReplicaName(const RemoteStoreSpec& remote);

// NotFound when the spec names no remote store. `local` must outlive the result.
Result<std::unique_ptr<RemoteStore>> OpenRemoteStore(Env* env, const Spec& spec, Store* local);

}  // namespace backstop

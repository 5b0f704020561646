// The Watcher as the API's backend for restore points (api.h): the list and
// the verification of one, on the API's threads, with their own store.
#include <set>
#include <string>
#include <vector>

#include "base/units.h"
#include "store/remote/remote_store_open.h"
#include "store/restore_point.h"
#include "store/restore_point_size.h"
#include "store/store.h"
#include "watch/watch.h"

namespace backstop {

ApiReply Watcher::GetRestorePoints() {
  auto store = Store::Open(env_, spec_.store_path);
  if (!store.ok()) return {503, {{"error", store.status().message()}, {"code", "unavailable"}}};
  std::vector<std::string> errors;
  const std::vector<RestorePoint> points = ListRestorePoints(**store, &errors);
  const std::vector<RestorePointSize> sizes = MeasureRestorePoints(**store, points);
  // With a remote store: whether each one is off the host yet (the local
  // markers; the page must not wait for the bucket).
  std::set<std::string> pending;
  if (spec_.remote_store) {
    for (auto& id : RemoteStore::NotReplicated(**store, ReplicaName(*spec_.remote_store))) {
      pending.insert(std::move(id));
    }
  }
  nlohmann::json list = nlohmann::json::array();
  for (size_t i = points.size(); i-- > 0;) {  // newest first
    const RestorePoint& rp = points[i];
    nlohmann::json components = nlohmann::json::array();
    for (const auto& [name, entry] : rp.components.items()) components.push_back(name);
    list.push_back({{"id", rp.id},
                    {"label", rp.label},
                    {"kind", rp.kind},
                    {"run", rp.run_id},
                    {"created", FormatRfc3339(rp.created_wall_us, true)},
                    {"components", components},
                    {"blobs", rp.AllBlobs().size()},
                    {"stored_bytes", sizes[i].stored_bytes},
                    {"added_bytes", sizes[i].added_bytes},
                    {"missing_blobs", sizes[i].missing_blobs}});
    if (spec_.remote_store) list.back()["replicated"] = pending.count(rp.id) == 0;
  }
  nlohmann::json reply = {{"restore_points", list}, {"errors", errors}};
  if (spec_.remote_store) reply["remote"] = spec_.remote_store->url;
  return {200, reply};
}

ApiReply Watcher::VerifyRestorePoint(const std::string& id) {
  auto store = Store::Open(env_, spec_.store_path);
  if (!store.ok()) return {503, {{"error", store.status().message()}, {"code", "unavailable"}}};
  // Read without trusting the manifest's checksum: the verification reports it.
  auto rp = ReadRestorePoint(**store, id, /*check_checksum=*/false);
  if (!rp.ok()) {
    const int code = rp.status().IsNotFound() ? 404 : 500;
    return {code,
            {{"error", rp.status().message()}, {"code", code == 404 ? "not_found" : "internal"}}};
  }
  RestorePointCheck check = backstop::VerifyRestorePoint(**store, *rp);
  nlohmann::json failures = nlohmann::json::array();
  for (const auto& b : check.Failures()) {
    failures.push_back(
        {{"digest", b.digest}, {"state", BlobCheck::StateName(b.state)}, {"detail", b.detail}});
  }
  return {200,
          {{"id", rp->id},
           {"ok", check.ok()},
           {"manifest_ok", check.manifest_ok},
           {"manifest_detail", check.manifest_detail},
           {"blobs", check.blobs.size()},
           {"failures", failures}}};
}

}  // namespace backstop

#include "store/restore_point_size.h"

#include <map>
#include <optional>
#include <set>
#include <string>

namespace backstop {

std::vector<RestorePointSize> MeasureRestorePoints(Store& store,
                                                   const std::vector<RestorePoint>& points) {
  std::map<std::string, std::optional<uint64_t>> blob_bytes;  // nullopt: missing
  std::set<std::string> named_before;
  std::vector<RestorePointSize> sizes;
  sizes.reserve(points.size());
  for (const RestorePoint& rp : points) {
    RestorePointSize size;
    for (const std::string& digest : rp.AllBlobs()) {
      auto [it, inserted] = blob_bytes.try_emplace(digest);
      if (inserted) {
        auto info = store.env()->fs()->Stat(store.BlobPath(digest));
        if (info.ok() && info->is_regular) it->second = info->size;
      }
      if (!it->second) {
        ++size.missing_blobs;
        continue;
      }
      size.stored_bytes += *it->second;
      if (named_before.insert(digest).second) size.added_bytes += *it->second;
    }
    sizes.push_back(size);
  }
  return sizes;
}

}  // namespace backstop

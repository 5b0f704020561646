#include "drivers/config_hash.h"

#include <algorithm>

#include "base/hash.h"

namespace backstop {

std::string ConfigHash(std::vector<std::pair<std::string, std::string>> path_digests) {
  std::sort(path_digests.begin(), path_digests.end());
  Sha256 h;
  for (const auto& [path, digest] : path_digests) {
    h.Update(path);
    h.Update(std::string_view("\0", 1));
    h.Update(digest.empty() ? "absent" : digest);
    h.Update("\n");
  }
  return "sha256:" + h.FinishHex();
}

}  // namespace backstop

// The config_hash of a manifest entry (driver.h): "sha256:<hex>" over a
// component's config files, the same for every driver that has some (files,
// nginx), so that two drivers capturing the same files agree on it.
//
// Thread-safety: a pure function.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace backstop {

// The sha256 over the lines "<path>\0<digest>\n", sorted by path; an empty
// digest means the file is absent (hashed as "absent"). Callers pass
// "symlink:<target>" for a link recorded as a link.
std::string ConfigHash(std::vector<std::pair<std::string, std::string>> path_digests);

}  // namespace backstop

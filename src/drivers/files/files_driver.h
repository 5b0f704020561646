// The `files` driver (kind config): a set of configuration files.
//
// Settings (see FilesDriverInfo for the schema):
//   files           the files (required); a file may be absent
//   reload          argv run after a restore that changed something
//                   (e.g. [nginx, -s, reload]); its failure fails the restore
//   reload_timeout  how long the reload may take (default 30s)
//
// Manifest entry (Snapshot):
//   {"files": [{"path", "sha256", "mode", "size"} | {"path", "absent": true}, ...],
//    "blobs": [...], "config_hash": "sha256:<hex>"}
// config_hash is the sha256 over the lines "<path>\0<sha256>\n" (sorted by path;
// "absent" in place of the digest for a missing file), the seed's config_hash.
//
// Restore replaces only the files that differ, each atomically and with its
// recorded mode. Every changed file is first staged next to its target from
// the store (verified while streaming), and the live files are replaced only
// once all of them staged: a corrupt or missing blob leaves every live file
// untouched. A path that is a symlink is followed: its target is rewritten.
// The reload runs when something changed, and again on the next Restore if a
// crash or a failure came between the replacement and a successful reload
// (a marker in <state_dir>/components/<name>/ remembers it).
//
// Thread-safety: a FilesDriver is used by one thread at a time.
#pragma once

#include <string>
#include <vector>

#include "driver.h"

namespace backstop::files {

// Name, kinds, summary, settings schema and factory of the driver.
DriverInfo FilesDriverInfo();

// The config_hash of a set of (path, sha256) pairs; an empty digest means absent.
std::string ConfigHash(std::vector<std::pair<std::string, std::string>> path_digests);

}  // namespace backstop::files

// The `files` driver (kind config): a set of configuration files.
//
// Settings (see FilesDriverInfo for the schema):
//   files            the files (required); a file may be absent
//   follow_symlinks  files among `files` whose symbolic links are followed
//   reload           argv run after a restore that changed something
//                    (e.g. [nginx, -s, reload]); its failure fails the restore
//   reload_timeout   how long the reload may take (default 30s)
//
// Manifest entry (Snapshot):
//   {"files": [{"path", "sha256", "mode", "size"} | {"path", "symlink": "<target>"} |
//              {"path", "absent": true}, ...],
//    "blobs": [...], "config_hash": "sha256:<hex>"}
// config_hash (drivers/config_hash.h) is the sha256 over the lines "<path>\0<sha256>\n" (sorted by
// path; "absent" in place of the digest for a missing file, "symlink:<target>" for a link), the
// seed's config_hash.
//
// Symbolic links are state, never a way through: a file that is a link is
// captured as its target text and restored as a link (nothing is read from
// or written to where it points), unless the file is listed under
// follow_symlinks. A link among a file's folders is refused unless only root
// or Backstop's user could have placed it (see CheckFolders), or the file is
// listed under follow_symlinks.
//
// Restore replaces only the files that differ, each atomically and with its
// recorded mode. Every changed file is first staged next to its target from
// the store (verified while streaming), and the live files are replaced only
// once all of them staged: a corrupt or missing blob leaves every live file
// untouched. The reload runs when something changed, and again on the next
// Restore if a crash or a failure came between the replacement and a
// successful reload (a marker in <state_dir>/components/<name>/ remembers it).
// Crash points: files.after-stage, files.after-file (after each file),
// files.before-reload.
//
// Drift: Health fails naming each difference ("<file> changed (sha256 ...,
// expected ...)", joined with "; ") when the files differ from the
// reference state: the newer of the last restore of the component
// (<state_dir>/components/<name>/restored.json, written by Restore) and the newest non-safety restore point holding it.
// Not while a restore point is being taken (its baseline): what it captures
// becomes the reference.
//
// Thread-safety: a FilesDriver is used by one thread at a time.
#pragma once

#include <string>
#include <vector>

#include "drivers/driver.h"

namespace backstop::files {

// Name, kinds, summary, settings schema and factory of the driver.
DriverInfo FilesDriverInfo();

}  // namespace backstop::files

// The `process` driver (kind service): a service run as a local process from
// a Capistrano-style release layout.
//
//   <releases>/v1/...          one directory per version (what was deployed)
//   <releases>/v2/...
//   <current> -> <releases>/v2 the deployed release (a symlink, swapped atomically)
//
// Settings (see ProcessDriverInfo for the schema):
//   releases      directory with one subdirectory per release (required)
//   current       the symlink (default: `current` next to the releases directory)
//   command       argv; argv[0] is relative to the release directory unless it is
//                 absolute or a bare name found in PATH (required)
//   env           extra environment variables
//   stop_timeout  how long SIGTERM may take before SIGKILL (default 10s)
//   log           where stdout and stderr are appended (default <state_dir>/logs/<name>.log)
//
// The running process is recorded in <state_dir>/components/<name>/process.json
// ({pid, start_ticks, release, started_at, command}) so that any later backstop
// process knows it. The recorded start time (clock ticks since boot) tells the
// recorded pid from a recycled one: a pid whose start time differs is never
// signalled.
//
// Manifest entry (Snapshot):
//   {"release": "v2", "release_tree": "<digest>", "blobs": [...], "current": path}
// where release_tree names a JSON blob listing every entry under the release
// directory (path, type, mode, size, sha256 or symlink target), and every file
// is stored as a blob too. Nothing deployed: {"release": null, "blobs": []}.
// An entry without release_tree ({"release": "v1"}, from `--to v1` or the
// history) only requires that the release directory exists.
//
// Restore never destroys a release directory: one whose files differ from the
// restore point is moved aside to <releases>/.<release>.replaced-<run_id> and a
// fresh copy is built from the store (in a temporary directory next to it,
// renamed into place only when complete).
//
// Thread-safety: a ProcessDriver is used by one thread at a time; the free
// functions below are safe to call from any thread.
#pragma once

#include <string>
#include <vector>

#include "driver.h"
#include "env.h"

namespace backstop::process {

// Name, kinds, summary, settings schema and factory of the driver.
DriverInfo ProcessDriverInfo();

// The releases available for `c` (subdirectories of its releases directory,
// hidden ones excluded), sorted naturally: v2 < v10. NotFound if the releases
// directory does not exist.
Result<std::vector<std::string>> ListReleases(const ComponentSpec& c, Env* env = Env::Default());

// The release the `current` symlink points at. NotFound ("nothing deployed")
// when there is no current symlink.
Result<std::string> CurrentRelease(const ComponentSpec& c, Env* env = Env::Default());

// Natural order of release names: digit runs compare as numbers ("v2" < "v10").
bool NaturalLess(const std::string& a, const std::string& b);

}  // namespace backstop::process

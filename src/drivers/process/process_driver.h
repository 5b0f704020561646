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
//   check_listener the health probe's loopback port must be served by the
//                 service's own processes (default true; false for a probe
//                 that goes through a local proxy)
//
// The running process is recorded in <state_dir>/components/<name>/process.json
// ({pid, pgid, start_ticks, release, started_at, command, log, released}) so that
// any later backstop process knows it. The recorded start time (clock ticks
// since boot) tells the recorded pid from a recycled one: a pid whose start
// time differs is never signalled.
//
// No orphans: a service is started in its own session, held before exec
// until its record is written (temp file, fsync, rename); a backstop killed
// before that leaves a held process that exits having run nothing. The record
// says "released": false until the start is confirmed; a live process with
// such a record is stopped and started afresh, never trusted. Every process
// of the service carries BACKSTOP_COMPONENT=<name> and
// BACKSTOP_STATE_DIR=<state dir> in its environment, so Stop and Start also
// find and stop processes of the service that no record names.
//
// No impostors: Health passes only when every socket listening on the
// probe's loopback port belongs to the started process's session; otherwise
// it fails naming the process that holds the port (proc_table.h).
//
// Blue/green (a spec `traffic:` block): StartSlot runs a release's directory
// directly (not through `current`) as an instance of its own, recorded in
// <state_dir>/components/<name>/slot-<slot>.json before it may run, with
// BACKSTOP_SLOT=<slot> in its marker so that one slot is stopped without the
// other; "{port}" in the command and env becomes the slot's port, also given
// as BACKSTOP_PORT. Start refuses such a service (it runs only in slots); Stop
// stops both slots. The run engine points `current` at the live release.
//
// Before anything is stopped, Prepare makes sure the target release can be
// switched to: its directory is rebuilt from the store when it is missing
// (from the entry's tree, or for an entry naming only a release, from the
// newest restore point holding it), and CheckRestorable names any blob such
// a rebuild would lack.
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

#include "base/env.h"
#include "drivers/driver.h"

namespace backstop::process {

// Name, kinds, summary, settings schema and factory of the driver.
DriverInfo ProcessDriverInfo();

// The releases available for `c` (subdirectories of its releases directory,
// hidden ones excluded), sorted naturally: v2 < v10. NotFound if the releases
// directory does not exist.
Result<std::vector<std::string>> ListReleases(const ComponentSpec& c, Env* env);

// The release the `current` symlink points at. NotFound ("nothing deployed")
// when there is no current symlink.
Result<std::string> CurrentRelease(const ComponentSpec& c, Env* env);

// Natural order of release names: digit runs compare as numbers ("v2" < "v10").
bool NaturalLess(const std::string& a, const std::string& b);

}  // namespace backstop::process

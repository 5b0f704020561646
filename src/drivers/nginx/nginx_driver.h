// The `nginx` driver (kind traffic): the nginx site config a traffic
// component owns, captured in restore points and put back with a validated,
// graceful reload, and the upstreams it routes (Driver::Route, for
// blue/green services and the fallback standby).
//
// Settings (see NginxDriverInfo for the schema):
//   site            the site config file the component owns (required)
//   main_config     the nginx.conf `nginx -t` validates, which includes `site` (required)
//   pid_file        the running master's pid file (required)
//   nginx           the nginx binary (default "nginx", looked up in PATH)
//   prefix          nginx's -p, when not the compiled-in one
//   error_log       nginx's -e, when not the compiled-in one
//   upstreams       a directory Backstop owns (0700) where Route writes
//                   <upstream>.conf; the user's config includes it with
//                   `include <upstreams>/*.conf;` (needed to route only)
//   reload_timeout  how long a reload may take to start new workers (default 10s)
//
// Manifest entry (Snapshot):
//   {"site": {"path", "sha256", "mode", "size"}, "blobs": [<sha256>],
//    "config_hash": "sha256:<hex>"}   (drivers/config_hash.h, as the files driver)
//
// Restore never lets nginx load a config that fails `nginx -t`: the recorded
// site is staged from the store beside the live one (verified while
// streaming), the live one is copied aside, the journal
// <state_dir>/components/<name>/restore.json says "validating", the staged
// file is renamed over the live one and `nginx -t -c main_config` runs. If it
// fails, the copy is renamed back and the restore fails with nginx's own
// message: the running nginx was never signalled and keeps serving. If it
// passes, the journal says "reloading", the master gets SIGHUP (through the
// Env's ProcessRunner; open connections finish in the old workers), and the
// restore waits until the master has a worker it did not have before (a new
// generation: the reload took; nginx starts none when the reload fails) and
// every old worker is gone or titled "shutting down" (it has stopped
// accepting, so new connections meet the restored config).
// A resumed restore finding "validating" first puts the copy back, then
// starts over; finding "reloading", it signals again. A site already equal
// to the entry, with no journal, is left alone (no reload).
// Crash points: nginx.after-stage, nginx.after-swap, nginx.before-reload.
//
// Route(upstream, servers) writes <upstreams>/<upstream>.conf =
// `upstream <upstream> { server A; server B; }` (nginx_upstream.h) with the
// same swap: staged beside it, journaled in the same restore.json, nginx -t
// with the candidate in place, put back (or removed, for a first route) when
// refused, SIGHUP, new generation confirmed; equal routing is left alone.
// The upstream files are not part of the site: a restore point does not hold
// them and a site restore leaves routing as it is. Routed reads the file back
// (empty when Backstop never routed that upstream).
//
// Health: the master named by pid_file runs, then the spec's probe if any.
//
// Thread-safety: a driver instance is used by one thread at a time.
#pragma once

#include "drivers/driver.h"

namespace backstop::nginx {

// Name, kinds, summary, settings schema and factory of the driver.
DriverInfo NginxDriverInfo();

}  // namespace backstop::nginx

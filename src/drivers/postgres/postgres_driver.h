// The `postgres` driver (kind database): restore points of a PostgreSQL
// database made with pg_dump, rollbacks that never destroy live data.
//
// Restore point (Snapshot): pg_dump -Fd -j <jobs> -Z0 inside an exported
// REPEATABLE READ snapshot, each file into the store, plus the position (WAL
// LSN, per-table row counts and max integer keys, sequence values) taken in
// that same snapshot, the FK constraints, the roles the dump needs, database
// properties and the snapshot's xmin (for the incremental ledger below).
// When staged (setting `staged`: always, or auto for databases up to
// staged_max_size, 2GB by default: a staged copy costs a pg_restore at
// snapshot time, about 1.3 s per 160 MB here, and the disk space of a second
// database), the dump is also restored right away into <db>_bs_staged_<rp>
// with ALLOW_CONNECTIONS false; only the newest `staged_keep` copies are kept.
// A safety snapshot (ctx.snapshot_kind == "safety") only records the name
// Restore will give the replaced database, <db>_pre_rollback_<run>; restoring
// that entry (undo) swaps the retained database back in.
//
// Rollback:
//   Prepare     builds <db>_bs_shadow_<run> from the staged database or from
//               the dump (template0 + pg_restore -j, then the database's
//               connection limit, settings and ACL, which pg_dump only writes
//               with --create), then verifies it (row counts, FKs, the spec's
//               integrity queries). Any failure drops the shadow; the live
//               database is only ever read. A verified shadow carries the
//               comment "backstop:shadow db=.. rp=.. run=.. from=.. verified"
//               (a staged copy: "backstop:staged db=.. rp=..").
//               The staged copy is renamed, not cloned: a rename takes ~1 ms
//               whatever the size, CREATE DATABASE .. TEMPLATE .. FILE_COPY took
//               400 ms at 160 MB and grows with it. So the swap consumes the
//               staged copy (a later rollback to the same point restores from
//               the dump); a shadow that is never swapped in is renamed back by
//               Prune, or adopted by the next Prepare of that restore point.
//   AssessLoss  per table by primary key: rows inserted, deleted, changed since
//               the restore point, written to <run_dir>/ledger-<component>.jsonl.
//               When the live database is the one the restore point was taken
//               from (same cluster, same database and table oids), a row whose
//               xmin precedes the snapshot's xmin is in the restore point
//               unchanged; only the others (the "candidates") are hashed and
//               looked up by key in the restore point's copy, and deleted rows
//               are found by count (then by a key-only merge). That costs one
//               scan computing age(xmin) per table instead of hashing every
//               row of both sides. Otherwise (an undo, a database swapped since,
//               tables without a key that changed) both sides are streamed with
//               COPY (key, md5 of the row) and merge-joined: O(n), bounded memory.
//               Tables without a primary key are compared as multisets of whole
//               rows (their ledger lines carry "row_md5" instead of a key).
//   Restore     the swap: refuse connections, terminate sessions, rename live
//               -> <db>_pre_rollback_<run>, shadow -> live, allow connections.
//               A failure midway puts the names back. Re-running it after a
//               crash at any point completes the swap.
//   Prune       drops <db>_pre_rollback_<run>; an unused shadow made from a
//               staged copy is renamed back to the staged name.
//
// Passwords from the conninfo never appear in messages or command lines
// (child programs get PGPASSWORD).
//
// Thread-safety: one thread per driver instance (driver.h).
#pragma once

#include "driver.h"

namespace backstop::postgres {

DriverInfo PostgresDriverInfo();

}  // namespace backstop::postgres

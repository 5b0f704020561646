// The `postgres` driver (kind database): restore points of a PostgreSQL
// database made with pg_dump, rollbacks that never destroy live data.
//
// Restore point (Snapshot): pg_dump -Fd -j <jobs> -Z0 inside an exported
// REPEATABLE READ snapshot, each file into the store, plus the position (WAL
// LSN, per-table row counts and max integer keys, sequence values) taken in
// that same snapshot, the FK constraints, the roles the dump needs, database
// properties and the snapshot's xmin (for the incremental ledger below).
// When staged (setting `staged`), the dump is also restored right away into
// <db>_bs_staged_<rp> with ALLOW_CONNECTIONS false.
// A safety snapshot (ctx.snapshot_kind == "safety") only records the name
// Restore will give the replaced database, <db>_pre_rollback_<run>; restoring
// that entry (undo) swaps the retained database back in.
//
// Rollback:
//   Prepare     builds <db>_bs_shadow_<run> from the staged database (renamed:
//               O(1), the staged copy is consumed) or from the dump (template0 +
//               pg_restore -j), then verifies it (row counts, FKs, the spec's
//               integrity queries). Any failure drops the shadow; the live
//               database is only ever read. A verified shadow carries the
//               comment "backstop:shadow db=.. rp=.. run=.. from=.. verified"
//               (a staged copy: "backstop:staged db=.. rp=..").
//   AssessLoss  per table by primary key: rows inserted, deleted, changed since
//               the restore point, written to <run_dir>/ledger-<component>.jsonl.
//               When the live database is the one the restore point was taken
//               from, only rows whose xmin is not older than the snapshot's
//               xmin can differ: one cheap scan finds them (an O(changes)
//               ledger); otherwise both sides are streamed with COPY and
//               merge-joined (O(n), bounded memory).
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

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
// Stage verifies the copy (row counts, FKs) in its last session and records
// in the entry ("staged_verified") the copy's oid and how many sessions were
// ever opened on it (pg_stat_database.sessions, PostgreSQL 14+). Deleting the
// restore point (`backstop prune`) drops its staged copy (DiscardSnapshot).
// A safety snapshot (ctx.snapshot_kind == RestorePointKind::kSafety) only records the name
// Restore will give the replaced database, <db>_pre_rollback_<run>, and the
// live database's oid and write stamp; restoring that entry (undo) swaps the
// retained database back in (checked by oid against the one the run set
// aside). If the run never replaced the database (refused before the swap),
// the entry holds no copy: it restores the database only while that is
// provably unchanged (same oid and write stamp, checked again with every
// other session ended), else it refuses. An undo that swaps a retained
// database back in records it in the original run's directory, so that
// CheckRestorable (`snapshots verify`) reports the entry as used up.
//
// Rollback:
//   BlobsNeeded none when the staged copy is intact (its marker names this
//               database and restore point) or this run's shadow exists:
//               Prepare then reads no dump blob. Otherwise every dump blob.
//   Prepare     builds <db>_bs_shadow_<run> from the staged database or from
//               the dump (template0 + pg_restore -j, then the database's
//               connection limit, settings and ACL, which pg_dump only writes
//               with --create), then verifies it (row counts, FKs, the spec's
//               integrity queries). Any failure drops the shadow; the live
//               database is only ever read. A verified shadow carries the
//               comment "backstop:shadow db=.. rp=.. run=.. from=.. verified"
//               (a staged copy: "backstop:staged db=.. rp=..").
//               From the dump: toc.dat and small files are extracted as
//               scratch files (no fsync: a crash redoes Prepare); the large
//               data files are streamed from the store into pg_restore through
//               named pipes, decoded and hash-checked while it loads them (a
//               damaged blob fails Prepare at the end of its stream, the
//               shadow is dropped). pg_restore runs with synchronous_commit
//               off: nobody uses the shadow until it is verified.
//               From a staged copy proven untouched since Stage verified it
//               (same oid, no session opened on it since, statistics never
//               reset: a crash or a reset zeroes the count, so it can only
//               err towards recounting), the row counts are not recounted;
//               FKs and the spec's integrity queries are checked as always.
//               The shadow is closed to everyone but the driver from its
//               verification to the swap: the driver opens a closed copy only
//               for the milliseconds of its own connect and then ends any
//               other session (ConnectToClosed). Prepare records what it
//               verified (oid, cluster) in <run_dir>/postgres-<c>.verified.
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
//               Each ascending sequence the restore moves back is a
//               PositionRewind (values reissued) and a ledger line
//               {"sequence", "change": "rewound", "from", "to"}.
//   Restore     the swap: refuse connections, terminate sessions, rename live
//               -> <db>_pre_rollback_<run>, shadow -> live, allow connections.
//               A failure midway puts the names back. Re-running it after a
//               crash at any point completes the swap.
//               Late writes: when AssessLoss took the ledger just before (the
//               run's restore step), Restore opens a session on the live
//               database before refusing connections and, once every other
//               session has ended, compares the tables' write stamp (row
//               counters, file, columns) with the one read before the
//               ledger's snapshot. If anything was written in between (or
//               track_counts is off), the ledger is taken again on that
//               session, with everyone else locked out, and the run reports
//               the revised loss (LossRevisedByRestore). Client sessions are
//               signalled and watched every millisecond (pg_terminate_backend's
//               own wait, like ALTER DATABASE's, sleeps in 100 ms steps);
//               autovacuum is left to ALTER DATABASE. A session the role may
//               not end (a superuser's, for a role that is neither superuser
//               nor in pg_signal_backend) and that does not leave within 2 s
//               refuses the swap, naming its role; the live database stays
//               in place.
//   VerifyRestored  when the live database provably is the shadow Prepare
//               verified (same oid in the same cluster, from the record
//               above), only the FKs are checked: the rows were verified
//               before the swap, and services restarted since may have
//               written. Otherwise (an undo, no record, a database swapped by
//               hand) the rows are recounted. `verify --data`
//               (CheckIntegrity) always checks everything.
//   Prune       drops <db>_pre_rollback_<run>; an unused shadow made from a
//               staged copy is renamed back to the staged name. Without a
//               run id, and at the start of every Prepare, shadows and
//               scratch directories of other (finished or abandoned) runs
//               are removed the same way.
//   Salvage     reads the inserted and changed rows of a run's ledger back
//               from <db>_pre_rollback_<run> (opened for its own session
//               only, read-only transaction), filtered by table, SQL
//               condition or keys, exported as JSON lines {table, key, row};
//               with apply, inserts them in one transaction (rows whose
//               referenced row is among them retried after it), and applies
//               nothing if any row conflicts, listing every conflict.
//
// Flashback (setting `flashback`, docs/flashback.md; pg_flashback.h,
// pg_rollback_by_undo.cc): with wal_level=logical and a superuser role, a
// restore point also keeps a logical slot (test_decoding) created on a
// replication connection whose exported snapshot the dump uses, and records
// the sequences' positions. A rollback to it then undoes the changes since in
// the live database (no shadow, no swap), the ledger comes from the stream,
// and VerifyRestored checks the stream nets to nothing. What undo cannot
// reverse (TRUNCATE, DDL, a table without REPLICA IDENTITY FULL, a released
// slot) is named and the rollback takes the path above instead. The slot is
// dropped with its restore point; prune drops orphans, and prune and each
// new flashback restore point release slots past flashback_max_wal.
//
// Passwords from the conninfo never appear in messages or command lines
// (child programs get PGPASSWORD).
//
// Thread-safety: one thread per driver instance (driver.h).
#pragma once

#include "drivers/driver.h"

namespace backstop::postgres {

DriverInfo PostgresDriverInfo();

}  // namespace backstop::postgres

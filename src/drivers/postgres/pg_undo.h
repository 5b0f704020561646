// Flashback's undo: the row changes a logical slot decoded since a restore
// point (pg_change_stream.h), reversed inside the live database instead of
// restoring a dump.
//
// Each change is inverted, last first: an INSERT becomes the DELETE of that
// exact row, a DELETE the INSERT of the old row, an UPDATE sets the old
// values (key columns included) on the row that now holds the new ones. A
// row changed many times is walked back through every version, so it ends
// at its first. Each statement touches exactly one row, found by every
// column (NULL-safe, and compared as the column type's text so that json,
// point or xml match too), and must find it: a row that is not as the
// stream left it means the database was changed in a way the stream does
// not explain, and the undo fails (the caller rolls back; nothing changes).
// Values are passed as parameters (`$n::<column type>`), never spliced in.
//
// What undo cannot reverse is refused before anything is touched, naming
// the table and the reason: TRUNCATE, a change without its full old row (the
// table's replica identity is not FULL), logical messages, a table dropped
// since or whose columns differ from the stream's (DDL). The caller then
// falls back to restoring the dump. Not detectable from the stream, so not
// refused here: large objects (pg_largeobject is not decoded).
//
// REQUIRES: a superuser connection (session_replication_role is
// superuser-only), so that triggers and foreign-key checks behave as they do
// during a restore; and that the output settings of the session that peeked
// match those of the session that applies (PeekChangeStream and
// ApplyUndoInTransaction both set them).
//
// Thread-safety: none; one thread per connection.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "drivers/postgres/pg_change_stream.h"
#include "drivers/postgres/pg_conn.h"

namespace backstop::postgres {

// Reads every change of `slot` up to `upto_lsn` (all when empty) without
// consuming them (pg_logical_slot_peek_changes), in a transaction of its own
// with the output settings the undo relies on. First flushes the WAL (a
// restore-point record committed synchronously), since decoding reads only
// flushed WAL and a commit made with synchronous_commit off may not be yet.
// The slot must use test_decoding. REQUIRES: no transaction open on `conn`.
Result<ChangeStream> PeekChangeStream(PgConn& conn, const std::string& slot,
                                      const std::string& upto_lsn = "");

// Prefix of the transactional logical message an undo commits with
// (pg_logical_emit_message(true, prefix, <run id>)): a resumed rollback finds
// it in the stream and knows the undo committed. SelectForUndo leaves such
// messages out (they are markers, not changes).
constexpr char kUndoMessagePrefix[] = "backstop-flashback";

// The transactions to undo: every one, or those committed strictly after
// `after_wall_micros` (microseconds since the epoch, UTC). FailedPrecondition
// naming each table and reason when the stream shows something undo cannot
// reverse (TRUNCATE, a missing old row, a logical message other than an
// undo's marker, also one between transactions).
Result<std::vector<Transaction>> SelectForUndo(const ChangeStream& stream,
                                               std::optional<int64_t> after_wall_micros);

struct UndoStats {
  size_t transactions = 0;
  size_t statements = 0;            // one per change undone
  std::vector<std::string> tables;  // "schema.table", sorted
};

// Undoes `txns` (from SelectForUndo) inside the transaction the caller has
// open: SET LOCAL session_replication_role = replica and the output
// settings, LOCK the tables IN EXCLUSIVE MODE (readers go on, writers wait),
// checks every table against the catalog (exists, REPLICA IDENTITY FULL,
// same columns as the stream), then one statement per change, last first.
// On error the transaction is left for the caller to ROLLBACK.
Result<UndoStats> ApplyUndoInTransaction(PgConn& conn, const std::vector<Transaction>& txns);

// BEGIN, ApplyUndoInTransaction, COMMIT; ROLLBACK on any error, so the
// database is either rolled back to the restore point or unchanged.
// REQUIRES: no transaction open on `conn`.
Result<UndoStats> ApplyUndo(PgConn& conn, const std::vector<Transaction>& txns);

// A row as text values by column name; NULL columns are absent.
using RowImage = std::map<std::string, std::string>;

// What the undo of one table discards, from the stream alone.
struct TableLoss {
  std::string schema;
  std::string table;
  std::vector<RowImage> inserted;  // written since: the undo removes them
  std::vector<RowImage> deleted;   // deleted since: the undo puts them back
  // Changed since: {as at the restore point, as now}; the undo discards "now".
  std::vector<std::pair<RowImage, RowImage>> changed;
};

// The net effect of `txns` (from SelectForUndo) per table, in order of first
// change: each row followed through its versions, so a row inserted then
// deleted, or changed and changed back, is no loss, and a row deleted then
// inserted again with the same values neither.
Result<std::vector<TableLoss>> SummarizeLoss(const std::vector<Transaction>& txns);

}  // namespace backstop::postgres

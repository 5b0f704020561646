// The change stream of a logical replication slot, parsed: what the
// `test_decoding` plugin (shipped with PostgreSQL) prints when peeked with
//
//   SELECT lsn, data FROM pg_logical_slot_peek_changes(slot, upto, NULL,
//       'include-xids', '1', 'include-timestamp', '1', 'skip-empty-xacts', '1')
//
// turned into transactions of row changes that flashback undoes
// (pg_undo.h). Each row of that result is one item: "BEGIN 742",
// "COMMIT 742 (at 2024-05-01 12:00:00.123456+00)", "message: ..." or
//
//   table public."order items": UPDATE: old-key: id[integer]:1 note[text]:'it''s'
//       new-tuple: id[integer]:2 note[text]:'x' big[text]:unchanged-toast-datum
//
// Items are parsed per row, never per text line: a text value is printed raw
// inside its quotes, newlines included.
//
// What test_decoding prints, and what this parser relies on:
//  - identifiers as quote_identifier makes them: bare, or in double quotes
//    with embedded quotes doubled; a table as schema.table;
//  - a column as ` name[type]:value`, the type as format_type_be prints it
//    (no typmod: "character varying", "integer[]", `public."My Type"`);
//  - a value as `null`, `unchanged-toast-datum` (an out-of-line TOAST value
//    the change did not touch), a bare number (integer, float, numeric, oid
//    types), `true`/`false`, B'0101' (bit strings), or '...' with quotes
//    doubled (everything else);
//  - an old tuple (UPDATE's old-key, DELETE) without its NULL columns: with
//    REPLICA IDENTITY FULL a column missing there is NULL; without it only
//    the key is printed, and an UPDATE that keeps its key prints no old part;
//  - TRUNCATE as `table a, b: TRUNCATE: (no-flags)` (or restart_seqs/cascade);
//  - transactional logical messages inside a transaction, non-transactional
//    ones between transactions.
//
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace backstop::postgres {

// One column of a printed tuple.
struct StreamColumn {
  std::string name;                  // unquoted
  std::string type;                  // as printed: "integer", "text[]", `public."My Type"`
  std::optional<std::string> value;  // the type's text output; nullopt for NULL or unchanged TOAST
  bool unchanged_toast = false;      // printed as unchanged-toast-datum: same as before the change

  bool operator==(const StreamColumn&) const = default;
};

enum class ChangeOp { kInsert, kUpdate, kDelete, kTruncate, kMessage };
const char* ChangeOpName(ChangeOp op);  // "INSERT", ..., "TRUNCATE", "message"

struct Change {
  ChangeOp op = ChangeOp::kInsert;
  std::string schema;  // unquoted; empty for a message
  std::string table;
  // UPDATE's old-key part or DELETE's tuple: false when the stream has none
  // (an UPDATE that kept its key under a non-FULL replica identity, or
  // "(no-tuple-data)").
  bool has_old = false;
  std::vector<StreamColumn> old_columns;  // without NULL columns (see above)
  bool has_new = false;                   // INSERT's or UPDATE's new tuple
  std::vector<StreamColumn> new_columns;  // every column, NULLs included
  std::string text;                       // a message or a TRUNCATE: the row as printed
  std::string lsn;                        // the row's lsn ("0/16B3748")
};

struct Transaction {
  uint32_t xid = 0;
  int64_t commit_wall_micros = 0;  // commit time, microseconds since the epoch, UTC
  std::string commit_lsn;          // the lsn of its COMMIT row
  std::vector<Change> changes;     // in the order they were made
};

// One row of pg_logical_slot_peek_changes (or _get_changes).
struct StreamRow {
  std::string lsn;
  std::string data;
};

struct ChangeStream {
  std::vector<Transaction> transactions;  // in commit order
  // Non-transactional logical messages, printed between transactions.
  std::vector<std::string> loose_messages;
};

// Parses the rows in order. InvalidArgument naming the row (its number from
// 1 and lsn), the position and an excerpt when one cannot be read, when a
// change is outside a transaction, a transaction is not closed, or a COMMIT
// carries no time (the slot was peeked without 'include-timestamp').
Result<ChangeStream> ParseChangeStream(const std::vector<StreamRow>& rows);

// Parses one "table ...:" row: one change, or one per table for a TRUNCATE.
// Errors say what was expected where.
Result<std::vector<Change>> ParseTableRow(std::string_view data);

}  // namespace backstop::postgres

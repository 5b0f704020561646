// Flashback's driver side (docs/flashback.md): the logical replication slot a
// restore point keeps when the component sets `flashback: true`, and the
// decisions made from it.
//
// A slot is named after its restore point and database (SlotName), so that a
// slot whose restore point was never written (a crash between the slot and
// the manifest) is recognised by its name alone and dropped by the next
// prune (DropOrphanSlots).
//
// Thread-safety: free functions; one thread per connection.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "drivers/postgres/pg_change_stream.h"
#include "drivers/postgres/pg_conn.h"
#include "drivers/postgres/pg_sequences.h"
#include "drivers/postgres/pg_undo.h"

namespace backstop::postgres {

// Prefix of every slot Backstop makes.
constexpr char kSlotPrefix[] = "backstop_";

// "backstop_<restore point id>_<database>", lowercase, [a-z0-9_] only, at
// most 63 characters (the rest of the database name is cut).
std::string SlotName(const std::string& restore_point_id, const std::string& db);

// Why this server and role cannot keep a slot for flashback, "" when they
// can: wal_level, a free replication slot and wal sender, a superuser role
// (REPLICATION suffices for the slot, but the undo sets
// session_replication_role).
Result<std::string> FlashbackUnavailableReason(PgConn& live);

// A slot just made on a replication connection, and the snapshot it exported
// (valid while `conn` stays open and idle).
struct CreatedSlot {
  std::unique_ptr<PgConn> conn;
  std::string slot;
  std::string consistent_point;
  std::string snapshot_name;
};

// CREATE_REPLICATION_SLOT <slot> LOGICAL test_decoding EXPORT_SNAPSHOT on a
// new replication connection to `db`.
Result<CreatedSlot> CreateSlotWithSnapshot(const ConnParams& params, const std::string& db,
                                           int64_t connect_timeout_ms, const std::string& slot);

// Drops `slot` if it exists (no error when it does not). FailedPrecondition
// when a session is using it.
Status DropSlot(PgConn& conn, const std::string& slot);

// Backstop's slots of database `db` that no name in `keep` is: dropped (a
// crash left them). Returns the dropped names.
Result<std::vector<std::string>> DropOrphanSlots(PgConn& conn, const std::string& db,
                                                 const std::set<std::string>& keep);

// A digest of every user table's definition (schema, name, and each
// column's position, name and type), as `conn`'s transaction sees it. The
// change stream carries no DDL: a restore point records this in its
// snapshot, and a rollback by undo is refused when it differs now.
Result<std::string> SchemaFingerprint(PgConn& conn);

// Bytes of WAL `slot` retains (current WAL position minus its restart_lsn);
// nullopt when the slot does not exist.
Result<std::optional<int64_t>> SlotRetainedWal(PgConn& conn, const std::string& slot);

// Bytes free on the file system holding the server's data directory is not
// readable over SQL for every role; `flashback_max_wal` defaults to 10% of
// the free space of `path` (the state directory's disk) instead.
uint64_t DefaultMaxWal(const std::string& path);

// The "flashback" object of a restore point's entry.
nlohmann::json SequencesToJson(const std::vector<SequencePosition>& seqs);
std::vector<SequencePosition> SequencesFromJson(const nlohmann::json& j);

// Whether the stream holds the undo message of `run_id` (it committed).
bool HasUndoMessage(const ChangeStream& stream, const std::string& run_id);

// The net loss (SummarizeLoss) as ledger lines in the format of
// pg_ledger_scan.cc: {"table", "change": inserted|deleted|changed, "key"}, the
// key by primary key columns (`pk` maps "schema.table" to them; a table
// without one gets {"row_sha256"} of its row image), plus "row" (the row as
// the rollback discards it, or for deleted as it brings it back).
std::vector<nlohmann::json> LossLedgerLines(
    const std::vector<TableLoss>& loss, const std::map<std::string, std::vector<std::string>>& pk);

}  // namespace backstop::postgres

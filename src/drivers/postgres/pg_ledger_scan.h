// The table-by-table comparison behind the postgres data-loss ledger: for
// each table, the rows inserted, deleted and changed on the live database
// since the restore point, found either by the xmin shortcut (only rows
// written since the restore point's snapshot are looked up in its copy) or by
// a full merge-join of both sides (pg_ledger.h); every row found is written
// as a ledger line. Also the sequences a restore moves back, and the report
// of a ledger file already written.
//
// Thread-safety: free functions; a LedgerContext and its connections belong
// to one thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/env.h"
#include "base/status.h"
#include "drivers/driver.h"
#include "drivers/postgres/pg_catalog.h"
#include "drivers/postgres/pg_conn.h"

namespace backstop::postgres {

using json = nlohmann::json;

// The ledger of one rollback, as ScanLedger found it.
struct LedgerScan {
  DataLossReport report;
  bool incremental = false;  // the xmin shortcut was used (else every row was compared)
};

// Compares every table and ascending sequence of the live database (`live`)
// with the restore point's copy (`rp`: a shadow, staged or retained
// database), each in a REPEATABLE READ READ ONLY transaction begun here, and
// writes one line per row inserted, deleted or changed since the restore
// point (and per sequence moved back) to `ledger_path` (none when empty),
// committed before this returns. `live_oid` is the live database's oid: the
// xmin shortcut needs the very database the restore point `entry` was taken
// from.
// REQUIRES: `live` and `rp` run nothing else meanwhile.
Result<LedgerScan> ScanLedger(PgConn* live, PgConn* rp, const json& entry, uint32_t live_oid,
                              const PgSettings& settings, const std::string& component,
                              const std::string& ledger_path, const DriverContext& ctx);

// The report of a ledger file this run already wrote (one line per row:
// table, change, key).
Result<DataLossReport> ReportFromLedger(FileSystem* fs, const std::string& component,
                                        const std::string& path);

}  // namespace backstop::postgres

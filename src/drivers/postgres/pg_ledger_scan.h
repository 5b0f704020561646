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
#include "drivers/postgres/pg_ledger_writer.h"

namespace backstop::postgres {

using json = nlohmann::json;

struct LedgerContext {
  PgConn* live = nullptr;
  PgConn* rp = nullptr;
  LedgerWriter* writer =
      nullptr;  // Set when the xmin shortcut applies: age() of the restore point's snapshot
  // xmin (rows with age(xmin) <= it may be newer than the restore point; age()
  // is stable within the live transaction), and the restore point's row
  // counts and table oids.
  std::optional<int64_t> horizon_age;
  const json* row_counts = nullptr;
  std::map<std::string, uint32_t> table_oids;
  // Rows written per table (n_tup_ins + n_tup_upd + n_tup_del) at the restore
  // point and now: a hint for choosing how to scan, never for the result.
  std::map<std::string, int64_t> writes_at_rp, writes_now;
};

Result<DataLossItem> CompareTable(LedgerContext& lc, const std::string& component,
                                  const TableInfo* live, const TableInfo* rp);

// The last value each ascending sequence of `schemas` has handed out (a
// sequence never used: its start value minus one step). Descending ones are
// left out: a rewind there moves the other way, and none was seen in use.
Result<std::map<std::string, int64_t>> SequencePositions(PgConn& conn, const PgSettings& settings);

// The table each sequence belongs to (serial and identity columns), by
// schema-qualified names: a rewound sequence's ledger line names its table,
// so that `backstop ledger --table T` shows the values T will reissue.
Result<std::map<std::string, std::string>> SequenceTables(PgConn& conn);

// The report of a ledger file this run already wrote (one line per row:
// table, change, key).
Result<DataLossReport> ReportFromLedger(FileSystem* fs, const std::string& component,
                                        const std::string& path);

}  // namespace backstop::postgres

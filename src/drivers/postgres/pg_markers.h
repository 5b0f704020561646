// What identifies the databases and restore points of the postgres driver:
// the comments (markers) on the databases it keeps (shadow, staged), the
// records it leaves in a run's directory (swapped, verified, swapped back),
// and the proofs that a database is still the one it saw (oid, session
// statistics, write stamp).
//
// Thread-safety: free functions; each call uses the connection it is given.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "drivers/driver.h"
#include "drivers/postgres/pg_catalog.h"
#include "drivers/postgres/pg_conn.h"
#include "spec/spec.h"

namespace backstop::postgres {

using json = nlohmann::json;

// Restore leaves <run_dir>/postgres-<component>.swapped once it has set the
// live database aside, so that an undo can tell "never swapped" (nothing to
// undo) from "swapped, then pruned" (cannot undo).
std::string SwapMarkerPath(const DriverContext& ctx, const std::string& component,
                           const std::string& run_id);

// Prepare leaves <run_dir>/postgres-<component>.verified once it has verified
// the shadow and closed it to everyone else: which database (oid, cluster) it
// verified, for which restore point. VerifyRestored proves with it that the
// live database after the swap is that very database.
std::string IdentityPath(const DriverContext& ctx, const std::string& component,
                         const std::string& run_id);

// The cluster's system identifier; "" when pg_control_system() is not allowed.
std::string SystemIdentifier(PgConn& conn);

bool NeverSwapped(const DriverContext& ctx, const ComponentSpec& c, const json& entry);

// A JSON file the driver wrote under the state dir (a marker or a record);
// null when absent or unreadable.
json ReadRecord(const DriverContext& ctx, const std::string& path);

Status WriteRecord(const DriverContext& ctx, const std::string& path, const json& record);

// An undo that swapped run R's retained database back in leaves
// <state_dir>/runs/R/postgres-<component>.swapped-back naming the undo: R's
// safety entry holds nothing any more, and says by whom it was used.
std::string SwappedBackPath(const DriverContext& ctx, const std::string& component,
                            const std::string& run_id);

bool IsRetainedEntry(const json& entry);

std::string EntryRestorePointId(const json& entry);

// Marker values cannot hold spaces (tokens are space-separated).
std::string MarkerValue(const std::string& v);

std::string LikePrefix(const std::string& v);

// The comments that say what a database managed by this driver is. They name
// the live database too: one restore point covers every component, and two
// components may live in the same cluster.
std::string ShadowMarker(const std::string& db, const std::string& rp, const std::string& run,
                         const std::string& from);

std::string StagedMarker(const std::string& db, const std::string& rp);

bool IsStagedCopy(const std::optional<std::string>& comment, const std::string& db,
                  const std::string& rp);

// A shadow verified by Prepare; `run` empty: of any run.
bool IsVerifiedShadow(const std::optional<std::string>& comment, const std::string& db,
                      const std::string& rp, const std::string& run);

std::string MarkerDecode(std::string v);

std::string MarkerFrom(const std::optional<std::string>& comment);

// True when `name` is the staged copy Stage verified (entry.staged_verified)
// and no session has been opened on it since: same oid, no session open, the
// same number of sessions ever opened, statistics never reset. Its row counts
// and foreign keys are then those Stage verified. Otherwise false, with the
// reason in *why_not (PostgreSQL before 14 has no session count).
bool StagedCopyUntouched(PgConn& admin, const std::string& name, const json& entry,
                         std::string* why_not);

// What has been written to the tables of `schemas` in the connected
// database, as far as the cumulative statistics and the catalog tell: per
// table its oid, its file (TRUNCATE and rewrites change it), its columns and
// its counts of inserted, updated and deleted rows. Two equal stamps, the
// second read once every other session has ended (a backend flushes its
// statistics before it leaves pg_stat_activity), mean no row was written in
// between; statistics that lag can only make them differ. Empty when
// track_counts is off: then nothing can be told.
Result<std::string> WriteStamp(PgConn& conn, const PgSettings& settings);

// A safety entry whose run never set the database aside (refused before the
// swap) holds no copy of it: it restores the database only while that is
// provably the one the entry saw, the same database (oid) with nothing
// written since (write stamp). `live` is a session on it; for a proof that
// nothing is still being written, every other session must have ended.
Status UnchangedSinceSafety(PgConn& live, const PgSettings& settings, const json& entry,
                            uint32_t live_oid, const std::string& db);

}  // namespace backstop::postgres

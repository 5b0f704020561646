// PostgresDriver, the Driver of kind database (postgres_driver.h says what
// it does): the class shared by the files that define its methods.
//   postgres_driver.cc  the admin connection, AssessLoss, Restore,
//                       VerifyRestored, Health, Prune, BlobsNeeded,
//                       DiscardSnapshot and the driver's registration
//   pg_snapshot.cc      Snapshot (pg_dump, staged copy, safety entry), Describe
//   pg_prepare.cc       Prepare (the shadow), CheckRestorable, the identity
//                       records VerifyRestored relies on
//   pg_salvage.cc       Salvage
//   pg_performance.cc   MeasurePerformance (the baseline query)
//   pg_rollback_by_undo.cc  flashback: rollback by undo (Prepare's decision,
//                       the ledger from the stream, Restore, VerifyRestored)
//
// Ownership: created by PostgresDriverInfo().factory, owned by the caller.
// Thread-safety: one thread per driver instance (driver.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "drivers/driver.h"
#include "drivers/postgres/pg_catalog.h"
#include "drivers/postgres/pg_component.h"
#include "drivers/postgres/pg_conn.h"
#include "drivers/postgres/pg_undo.h"

namespace backstop::postgres {

using json = nlohmann::json;

// The format of a restore point's entry made from a dump.
constexpr char kFormat[] = "pg_dump-directory";

class PostgresDriver : public Driver {
 public:
  Result<json> Snapshot(const ComponentSpec& c, DriverContext& ctx) override;
  Result<json> Describe(const ComponentSpec& c, DriverContext& ctx) override;
  Status Prepare(const ComponentSpec& c, const json& entry, DriverContext& ctx) override;
  Result<DataLossReport> AssessLoss(const ComponentSpec& c, const json& entry,
                                    DriverContext& ctx) override;
  Status Restore(const ComponentSpec& c, const json& entry, DriverContext& ctx) override;
  Status VerifyRestored(const ComponentSpec& c, const json& entry, DriverContext& ctx) override;
  HealthResult Health(const ComponentSpec& c, DriverContext& ctx) override;
  Result<std::vector<IntegrityCheck>> CheckIntegrity(const ComponentSpec& c, const json& entry,
                                                     DriverContext& ctx) override;
  Result<std::vector<IntegrityCheck>> CheckInvariants(const ComponentSpec& c, const json& entry,
                                                      DriverContext& ctx) override;
  Status Prune(const ComponentSpec& c, const std::string& run_id, DriverContext& ctx) override;
  std::vector<std::string> BlobsNeeded(const ComponentSpec& c, const json& entry,
                                       DriverContext& ctx) override;
  Status DiscardSnapshot(const ComponentSpec& c, const json& entry, DriverContext& ctx) override;
  Status CheckRestorable(const ComponentSpec& c, const json& entry, DriverContext& ctx) override;
  Result<SalvageResult> Salvage(const ComponentSpec& c, const SalvageRequest& req,
                                DriverContext& ctx) override;
  Result<std::vector<PerformanceMetric>> MeasurePerformance(const ComponentSpec& c,
                                                            DriverContext& ctx) override;

 private:
  // What a safety entry (a retained database) can restore now. True: nothing
  // to undo (its run never replaced the database, which is proven unchanged
  // since; or the database did not exist then and still does not). False:
  // the retained database is there, is the very one the run set aside (same
  // oid), and can be swapped back in. FailedPrecondition saying why the entry
  // cannot restore the database otherwise.
  // Drops (or, made from a staged copy, renames back) the unused shadow `shadow`.
  Status ReleaseShadow(const Loaded& l, PgConn& admin, const std::string& shadow,
                       DriverContext& ctx);
  // What killed runs left: every shadow of this database but `keep_shadow`
  // and those verified for `adoptable_rp` (a Prepare adopts them), and the
  // scratch directories of other runs' restores. REQUIRES: no other run is
  // unfinished (a run starts, and prune acts, only then).
  Status RemoveLeftovers(const ComponentSpec& c, const Loaded& l, PgConn& admin, DriverContext& ctx,
                         const std::string& keep_shadow, const std::string& adoptable_rp);
  // Prune's upkeep of flashback slots (no run unfinished): drops this
  // database's Backstop slots no restore point holds (a crash between the
  // slot and the manifest), and releases a slot that retains more WAL than
  // flashback_max_wal (its restore point then rolls back from its dump).
  // `drop_orphans` false: only the WAL limit (Snapshot, whose own new slot
  // no manifest names yet).
  Status FlashbackUpkeep(const ComponentSpec& c, const Loaded& l, PgConn& admin,
                         DriverContext& ctx, bool drop_orphans = true);
  Result<bool> RetainedNothingToUndo(const ComponentSpec& c, const Loaded& l, const json& entry,
                                     DriverContext& ctx);
  Result<json> SafetySnapshot(const Loaded& l, DriverContext& ctx);
  Status Stage(const Loaded& l, DriverContext& ctx, const std::string& bin_dir,
               const std::string& dump_dir, const DatabaseInfo& props, json& entry);
  Status PrepareRetained(const ComponentSpec& c, const Loaded& l, const json& entry,
                         DriverContext& ctx);
  Status BuildFromDump(const ComponentSpec& c, const Loaded& l, PgConn& admin, const json& entry,
                       DriverContext& ctx, const std::string& shadow);
  // `recount`: false for a staged copy proven untouched since Stage counted it.
  Status VerifyShadow(const Loaded& l, PgConn& admin, const json& entry, const std::string& shadow,
                      bool recount);
  // `counted`: whether Prepare counted the rows itself (else Stage did).
  Status RecordIdentity(const ComponentSpec& c, const Loaded& l, PgConn& admin, DriverContext& ctx,
                        const std::string& shadow, const std::string& rp, const std::string& from,
                        bool counted);
  // For a safety entry: which database (`name`, `oid`) this run makes the
  // live one, recorded once before it does, for VerifyRestored.
  // Restore of a safety entry whose run never replaced the database: with
  // every other session ended and connections refused, proves nothing was
  // written since the entry (else fails, the database untouched), and
  // records the live database as the restored one.
  Status RestoreUnchanged(const ComponentSpec& c, const Loaded& l, PgConn& admin, const json& entry,
                          DriverContext& ctx, const DatabaseInfo& live);
  Status RecordRetainedIdentity(const ComponentSpec& c, const Loaded& l, PgConn& admin,
                                DriverContext& ctx, const json& entry, const std::string& name,
                                uint32_t oid);
  // True when the live database is the shadow Prepare of this run verified;
  // otherwise false with the reason in *why_not.
  bool ProveIdentity(const ComponentSpec& c, const Loaded& l, PgConn& live, const json& entry,
                     DriverContext& ctx, std::string* why_not);
  // The connection to the admin database, kept between the calls of a run
  // (each new session costs the server a process: ~5 ms). Made again when it
  // was idle longer than kAdminIdleMs, no longer answers, or the settings
  // changed. The pointer is valid until the next call.
  Result<PgConn*> Admin(const Loaded& l);

  // The ledger; `live_in_window` is a connection to the live database that
  // Restore keeps while every other session is locked out (nullptr: connect).
  Result<DataLossReport> TakeLedger(const ComponentSpec& c, const json& entry, DriverContext& ctx,
                                    PgConn* live_in_window);
  // Inside the swap's window, with connections refused: ends every session
  // on the live database but `guard`'s, then takes the ledger again on
  // `guard` if any table was written since AssessLoss took it.
  Status CheckLateWrites(const ComponentSpec& c, const Loaded& l, PgConn& admin, PgConn& guard,
                         const json& entry, DriverContext& ctx);
  std::optional<DataLossReport> LossRevisedByRestore(const ComponentSpec& c) override {
    return revised_loss_;
  }

  // Flashback (pg_rollback_by_undo.cc). What a rollback to an entry with a
  // slot can do: undo (`done` when this run's undo already committed), or
  // not, and why.
  struct UndoPlan {
    std::string slot;
    bool undo = false;
    bool done = false;
    std::string why_not;
    ChangeStream stream;
    std::vector<Transaction> txns;
  };
  Result<UndoPlan> PlanUndo(const Loaded& l, PgConn& live, const json& entry, DriverContext& ctx);
  // Prepare's decision: true when the run rolls back by undo (recorded for
  // the run's later calls); false (with a progress line saying why) for the
  // ordinary path.
  Result<bool> PrepareUndo(const ComponentSpec& c, const Loaded& l, const json& entry,
                           DriverContext& ctx);
  // Whether Prepare of this run decided on the undo.
  bool DecidedUndo(const ComponentSpec& c, const json& entry, DriverContext& ctx);
  // The ledger from the stream (`undone`: these transactions, else peeked).
  Result<DataLossReport> UndoLedger(const ComponentSpec& c, const Loaded& l, const json& entry,
                                    DriverContext& ctx, const std::vector<Transaction>* undone);
  Status RestoreByUndo(const ComponentSpec& c, const Loaded& l, const json& entry,
                       DriverContext& ctx);
  Status VerifyUndo(const Loaded& l, const json& entry, DriverContext& ctx);
  std::optional<size_t> undo_ledger_txns_;  // transactions the last UndoLedger counted

  std::unique_ptr<PgConn> admin_;
  std::string admin_key_;
  std::chrono::steady_clock::time_point admin_used_;
  // The last ledger AssessLoss took in a run: for which run, and the write
  // stamp of the live database read just before its snapshot.
  struct LedgerTaken {
    std::string run_id;
    std::string write_stamp;
  };
  std::optional<LedgerTaken> ledger_taken_;
  std::optional<DataLossReport> revised_loss_;  // by the last Restore
};

}  // namespace backstop::postgres

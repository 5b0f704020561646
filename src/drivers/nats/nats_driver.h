// The `nats` driver (kind `stream`): NATS JetStream streams.
//
// Restore point entry, one record per configured stream:
//   {"url": "nats://…", "blobs": [<digest>…],
//    "streams": {"ORDERS": {
//        "blob": <sha256 of the snapshot: the S2-compressed tar the server streams>,
//        "snapshot_bytes": N, "config": {…}, "state": {…}, "created": "…",
//        "consumers": {"worker": {"config": {…}, "delivered": {…}, "ack_floor": {…}, …}},
//        "position": {"first_seq": A, "last_seq": B, "messages": M, "bytes": Y},
//        "index_blob": <sha256 of the message index: "<sequence> <digest>" a line,
//                       the digest over subject, headers and data>}}}
// (index_blob is absent from entries of older Backstops and when messages
// went between the snapshot and the index walk; both blobs are in "blobs").
//
// Rollback (Restore), per stream, idempotent for a run id:
//   1. the stream's current content is snapshotted into the store first and
//      recorded in <run_dir>/nats-<component>-saved.json (a resumed run reuses
//      that record instead of snapshotting what may already be restored);
//      if the stream moved on after the save (a publisher the run did not
//      stop), it is saved again (up to 3 times, then the run stops, asking
//      for the publishers to be stopped), and the messages published after
//      the ledger was taken are added to it (LossRevisedByRestore);
//   2. the stream is deleted;
//   3. it is restored from the restore point ($JS.API.STREAM.RESTORE);
//   4. message count, first and last sequence and the consumers are checked,
//      and the saved record marks the stream "restored".
//   If 3 or 4 fails, the half-made stream is deleted and the saved content is
//   restored the same way; the error says what failed and that the previous
//   content is back. A resumed run leaves alone only a stream it marked
//   restored that still has the restore point's position.
//   Crash points: nats.after-ledger, nats.after-save, nats.after-delete,
//   nats.restore-chunk (after each chunk sent), nats.after-restore.
//
// Data-loss ledger (AssessLoss): <run_dir>/ledger-<component>.jsonl. Contents
// are compared with the restore point's message index: a live message the
// restore point holds at the same sequence with the same digest is kept; any
// other live message is discarded, one line each
//   {"stream","event":"published","sequence","subject","time","size"};
// restore-point messages up to the live last sequence that live no longer
// holds (they come back) make one line per stream
//   {"stream","event":"deleted","count","restore_point_first_seq","first_seq_now"};
// so a live stream that is a prefix of the restore point's discards nothing.
// Without an index, sequences are trusted: messages after the restore
// point's last sequence are discarded, and if the last sequence went
// backwards (deleted and re-created) every current message counts as
// published and every restore-point message as "recreated".
// One line per durable consumer whose ack floor the restore moves back
//   {"stream","event":"rewound","consumer","unit":"messages redelivered",
//    "ack_floor_now","ack_floor_restored","count"}
// (also DataLossReport::rewinds, object "STREAM/consumer").
// Every discarded message is also kept whole in DiscardedPath (for Salvage).
// A stream an earlier attempt of the same run saved keeps the lines (and the
// messages) that attempt listed for it: a kill after the delete or during the
// restore leaves what it discards only in the saved content.
//
// Health: connect (connect_time_ms), $JS.API.INFO, the monitoring port's
// /healthz (which includes the JetStream checks); disconnected_ms is the time
// since this component was last seen connected, kept in the driver and in
// <state_dir>/components/<name>/nats-health.json so a new process knows it.
//
// Thread-safety: one thread at a time (the Driver contract).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "drivers/driver.h"
#include "drivers/nats/nats_client.h"

namespace backstop::nats {

// The registry entry: name "nats", kind "stream", the settings schema.
DriverInfo NatsDriverInfo();

class NatsDriver : public Driver {
 public:
  Result<nlohmann::json> Snapshot(const ComponentSpec& c, DriverContext& ctx) override;
  Result<nlohmann::json> Describe(const ComponentSpec& c, DriverContext& ctx) override;
  Status Prepare(const ComponentSpec& c, const nlohmann::json& entry, DriverContext& ctx) override;
  Result<DataLossReport> AssessLoss(const ComponentSpec& c, const nlohmann::json& entry,
                                    DriverContext& ctx) override;
  Status Restore(const ComponentSpec& c, const nlohmann::json& entry, DriverContext& ctx) override;
  Status VerifyRestored(const ComponentSpec& c, const nlohmann::json& entry,
                        DriverContext& ctx) override;
  HealthResult Health(const ComponentSpec& c, DriverContext& ctx) override;
  Result<std::vector<IntegrityCheck>> CheckIntegrity(const ComponentSpec& c,
                                                     const nlohmann::json& entry,
                                                     DriverContext& ctx) override;
  Status Prune(const ComponentSpec& c, const std::string& run_id, DriverContext& ctx) override;
  // Exports the messages run req.run_id discarded from stream req.object
  // (from DiscardedPath, written before the restore), optionally only the
  // sequences in req.keys (numbers, or {"sequence": N}); with req.apply,
  // republishes them to the live stream in sequence order. Messages cannot
  // go back in one transaction: everything is checked first (the stream
  // exists, each message decodes), then a failed publish stops the apply,
  // naming it and the sequences already republished.
  Result<SalvageResult> Salvage(const ComponentSpec& c, const SalvageRequest& req,
                                DriverContext& ctx) override;
  // Core publish/consume rates on a private subject (nats_performance.cc).
  Result<std::vector<PerformanceMetric>> MeasurePerformance(const ComponentSpec& c,
                                                            DriverContext& ctx) override;

  // Test hook: applied when restoring from the restore point (never when
  // putting the saved content back), e.g. to cut the transfer short.
  void SetRestoreHooksForTest(const RestoreHooks& hooks) { restore_hooks_ = hooks; }

  // Test hook: called after the current content of a stream was saved,
  // before the stream is deleted (e.g. to publish in that window).
  void SetAfterSaveHookForTest(std::function<void(const std::string& stream)> hook) {
    after_save_hook_ = std::move(hook);
  }

  // <run_dir>/nats-<component>-saved.json
  static std::string SavedRecordPath(const std::string& run_dir, const std::string& component);
  // <run_dir>/nats-<component>-discarded.jsonl: every message the ledger
  // lists as discarded, whole (subject, sequence, headers, data in base64,
  // time), written with the ledger; what Salvage exports and republishes.
  static std::string DiscardedPath(const std::string& run_dir, const std::string& component);
  // <run_dir>/nats-<component>-republished.jsonl: the discarded messages a
  // salvage --apply put back (stream, sequence, republished_as), so that a
  // second --apply of them is a conflict rather than a second delivery.
  static std::string RepublishedPath(const std::string& run_dir, const std::string& component);

  std::optional<DataLossReport> LossRevisedByRestore(const ComponentSpec& c) override {
    return revised_loss_;
  }

 private:
  // Lists the messages of `stream` after those the last ledger of this run
  // listed, up to `last_seq`, adding them to the ledger file and to the
  // revised report. Returns how many.
  Result<uint64_t> ListLatePublishes(Connection& conn, const std::string& stream, uint64_t last_seq,
                                     DriverContext& ctx);

  // The last ledger AssessLoss wrote in a run: up to which sequence it listed
  // each stream's messages, its report and its file.
  struct LedgerTaken {
    std::string run_id;
    std::map<std::string, uint64_t> listed_to;
    DataLossReport report;
    std::string path;
    std::string discarded_path;
  };
  std::optional<LedgerTaken> ledger_taken_;
  std::optional<DataLossReport> revised_loss_;  // by the last Restore
  RestoreHooks restore_hooks_;
  std::function<void(const std::string&)> after_save_hook_;
  // Wall-clock time (µs) this instance last saw the server connected.
  std::optional<int64_t> last_connected_wall_us_;
};

}  // namespace backstop::nats

// Driver: how Backstop acts on one kind of component (a process service,
// config files, a PostgreSQL database, NATS streams, an nginx front).
//
// A rollback is a sequence of driver calls made by the run engine (run.h):
//   Snapshot          -> manifest entry stored in a restore point
//   Prepare           -> expensive staging that leaves live state alone
//   AssessLoss        -> what restoring would discard (the data-loss ledger)
//   Stop / Start      -> services only
//   Restore           -> make the live state equal the entry
//   VerifyRestored    -> check the live state equals the entry
// Every call that changes anything must be idempotent: after a crash the run
// engine calls it again with the same arguments and the same run id.
//
// Manifest entries are JSON objects owned by the driver, with two conventions
// the rest of Backstop relies on:
//   "blobs":   array of sha256 hex digests of every store blob the entry needs
//              (verified before any rollback touches anything);
//   "release": for services, the release name (the seed's "image").
//   "config_hash": "sha256:<hex>" over the component's config files, where it has any.
//   "to_time_us": added by the planner for `rollback --to-time` (wall micros):
//              restore the state at that moment, not at the entry's; only
//              entries that hold "flashback" get it.
//
// Ownership: drivers are created by the DriverRegistry and owned by the caller.
// Thread-safety: a Driver instance is used by one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/env.h"
#include "base/json_lines.h"  // ReadJsonLines, for the drivers' ledgers
#include "base/status.h"
#include "drivers/slot.h"
#include "probe/health.h"
#include "probe/progress.h"
#include "spec/driver_catalog.h"
#include "spec/setting_schema.h"
#include "spec/spec.h"
#include "store/restore_point_kind.h"

namespace backstop {

class Store;

struct DriverContext {
  // Every driver call reaches the file system, processes, the clock and /proc
  // through `env` (tests fake them there): a context cannot be built without
  // one.
  explicit DriverContext(Env& env) : env(&env) {}
  Env* env;  // never null
  Store* store = nullptr;
  const Spec* spec = nullptr;
  std::string state_dir;  // drivers may keep files under <state_dir>/components/<name>/
  std::string run_id;     // empty outside a run
  std::string run_dir;    // <state_dir>/runs/<run_id>, for artifacts such as the ledger
  // During Snapshot: the id of the restore point being taken, and its kind
  // (manual, safety, pre-deploy...). A safety snapshot is taken by
  // a rollback just before it acts; a driver may make it cheaper by
  // referring to what its own Restore keeps aside (e.g. the replaced database).
  std::string restore_point_id;
  RestorePointKind snapshot_kind = RestorePointKind::kManual;
  bool dry_run = false;
  ProgressFn progress;  // may be empty
  void Progress(const std::string& line) const {
    if (progress) progress(line);
  }
};

// What a restore would discard, per table or stream.
struct DataLossItem {
  std::string component;
  std::string object;  // table or stream name
  std::string unit;    // "rows" or "messages"
  uint64_t inserted = 0;
  uint64_t deleted = 0;
  uint64_t changed = 0;
  uint64_t total() const { return inserted + deleted + changed; }
};

// A position that a restore moves back, so that something already handed out
// will be handed out again: a consumer's ack floor (messages redelivered) or a
// database sequence (values issued again, so keys in the ledger will name
// other rows later). Not data discarded, but a consequence the operator must
// know about; listed in the ledger and the summary.
struct PositionRewind {
  std::string component;
  std::string object;  // "STREAM/consumer" or "schema.sequence"
  std::string unit;    // "messages redelivered" or "values reissued"
  int64_t from = 0;    // live position before the restore
  int64_t to = 0;      // position after the restore
  uint64_t count() const { return from > to ? static_cast<uint64_t>(from - to) : 0; }
};

struct DataLossReport {
  std::vector<DataLossItem> items;
  std::vector<PositionRewind> rewinds;
  std::vector<std::string> ledger_files;  // JSONL files with the keys/sequences, in run_dir
  uint64_t TotalRows() const;
  uint64_t TotalMessages() const;
  // "Data loss: none" or "Data loss: yes — 1,204 rows in tasks, 3 in agents";
  // rewinds follow: "; positions moved back: 20 messages redelivered by
  // ORDERS/billing, 5 values reissued by public.entries_id_seq".
  std::string Summary() const;
  void Append(const DataLossReport& other);
  // The journal's and `--output json`'s form; FromJson accepts what ToJson wrote.
  nlohmann::json ToJson() const;
  static DataLossReport FromJson(const nlohmann::json& j);
};

// `backstop salvage RUN --component C --object T`: the data a rollback
// discarded, read back from where the run kept it aside (the replaced
// database, the saved stream content), exported as JSON lines and, with
// `apply`, written back into the live component.
struct SalvageRequest {
  std::string run_id;                // the rollback whose discarded data is wanted
  std::string run_dir;               // <state_dir>/runs/<run_id>: its ledgers and saved content
  std::string object;                // table ("public.orders" or "orders") or stream name
  std::string where;                 // optional SQL condition on the discarded rows (postgres)
  std::vector<nlohmann::json> keys;  // optional: only these ledger keys / sequences
  std::string output_path;           // the export file (JSON lines, one row or message each)
  bool apply = false;                // write the chosen rows/messages back into the live component
};

struct SalvageResult {
  uint64_t exported = 0;  // rows or messages written to output_path
  uint64_t applied = 0;   // written back (apply only)
  // Apply: rows that could not go back as they are (key now taken by another
  // row, FK missing), each with why. Non-empty conflicts mean nothing was applied.
  std::vector<std::string> conflicts;
};

struct IntegrityCheck {
  std::string name;  // "row count agents", "foreign key tasks_assigned_agent_id_fkey"
  bool passed = false;
  std::string detail;  // "expected 12, found 12"
};

// One number of a performance baseline (seed 4.3), measured the same way
// when a restore point is taken and by `backstop verify --performance`.
struct PerformanceMetric {
  enum class Kind {
    kLatency,     // a health probe's time, ms: lower is better
    kQuery,       // a database query's time, ms: lower is better
    kThroughput,  // messages per second: higher is better
  };
  std::string name;  // stable within a component: "probe p50", "query p95", "publish rate"
  Kind kind = Kind::kLatency;
  double value = 0;
};

class Driver {
 public:
  virtual ~Driver() = default;

  // Captures the component's current state into ctx.store; returns its manifest entry.
  virtual Result<nlohmann::json> Snapshot(const ComponentSpec& c, DriverContext& ctx) = 0;
  // The current state without storing anything (release, position...), for status and plans.
  virtual Result<nlohmann::json> Describe(const ComponentSpec& c, DriverContext& ctx) = 0;

  // True for components that run (they are stopped and started around a rollback).
  virtual bool IsService() const { return false; }
  virtual Status Stop(const ComponentSpec& c, DriverContext& ctx) { return Status::OK(); }
  virtual Status Start(const ComponentSpec& c, DriverContext& ctx) { return Status::OK(); }

  // The blobs a Restore of `entry` will read, re-hashed before a rollback is
  // allowed to start. Default: every blob the entry names. A driver that will
  // restore from a verified staged copy may need none.
  virtual std::vector<std::string> BlobsNeeded(const ComponentSpec& c, const nlohmann::json& entry,
                                               DriverContext& ctx) {
    std::vector<std::string> out;
    if (entry.contains("blobs") && entry["blobs"].is_array()) {
      for (const auto& b : entry["blobs"]) {
        if (b.is_string()) out.push_back(b.get<std::string>());
      }
    }
    return out;
  }
  // Heavy work that does not change live state (e.g. restore into a shadow database).
  virtual Status Prepare(const ComponentSpec& c, const nlohmann::json& entry, DriverContext& ctx) {
    return Status::OK();
  }
  virtual Result<DataLossReport> AssessLoss(const ComponentSpec& c, const nlohmann::json& entry,
                                            DriverContext& ctx) {
    return DataLossReport{};
  }
  // Makes live state equal `entry`. Idempotent for a given ctx.run_id.
  virtual Status Restore(const ComponentSpec& c, const nlohmann::json& entry,
                         DriverContext& ctx) = 0;
  // After a successful Restore called right after AssessLoss on this instance:
  // the data-loss report, when Restore had to take it again (e.g. writes
  // reached the data between the ledger and the moment it was replaced), so
  // that the run reports what was really discarded. nullopt: AssessLoss's
  // report stands.
  virtual std::optional<DataLossReport> LossRevisedByRestore(const ComponentSpec& c) {
    return std::nullopt;
  }
  // Checks the live state against `entry` after Restore (checksums, counts).
  virtual Status VerifyRestored(const ComponentSpec& c, const nlohmann::json& entry,
                                DriverContext& ctx) {
    return Status::OK();
  }
  // After a failed start or health gate: what the operator should look at
  // ("process exited with status 1; last log lines: ..."). Empty if nothing to add.
  virtual std::string Diagnose(const ComponentSpec& c, DriverContext& ctx) { return ""; }
  // --- Blue/green services (a spec `traffic:` block; drivers/slot.h) ---
  // True when the driver can run a release in a slot next to the other.
  virtual bool SupportsSlots() const { return false; }
  // Starts `release` in `slot`, on SlotPort(c, slot), leaving the other slot
  // alone; returns once the instance runs (the run engine gates on its health
  // with SlotHealth). Idempotent: a slot already running `release` is left as
  // it is; one running anything else is stopped first.
  virtual Status StartSlot(const ComponentSpec& c, Slot slot, const std::string& release,
                           DriverContext& ctx) {
    return Status::FailedPrecondition("driver " + c.driver + " cannot run blue/green slots");
  }
  // Stops whatever runs in `slot`; OK when nothing does.
  virtual Status StopSlot(const ComponentSpec& c, Slot slot, DriverContext& ctx) {
    return Status::FailedPrecondition("driver " + c.driver + " cannot run blue/green slots");
  }
  // Both slots as recorded and checked now (blue first).
  virtual Result<std::vector<SlotState>> Slots(const ComponentSpec& c, DriverContext& ctx) {
    return Status::FailedPrecondition("driver " + c.driver + " cannot run blue/green slots");
  }
  // The spec's probe aimed at `slot` ({port} replaced by its port).
  virtual HealthResult SlotHealth(const ComponentSpec& c, Slot slot, DriverContext& ctx);

  // --- Traffic components (kind traffic) ---
  // Sends new connections for `upstream` to `servers` ("host:port", in
  // order) with a validated, graceful reload, and returns once they go
  // there; open connections finish where they are. A configuration that
  // fails validation is refused with the server's own message and the
  // current routing stays. Idempotent: routing already equal is left alone.
  virtual Status Route(const ComponentSpec& c, const std::string& upstream,
                       const std::vector<std::string>& servers, DriverContext& ctx) {
    return Status::FailedPrecondition("driver " + c.driver + " does not route traffic");
  }
  // Where `upstream`'s connections go now: empty when Backstop has never
  // routed it.
  virtual Result<std::vector<std::string>> Routed(const ComponentSpec& c,
                                                  const std::string& upstream, DriverContext& ctx) {
    return Status::FailedPrecondition("driver " + c.driver + " does not route traffic");
  }

  // Health: by default the component's probe from the spec (probe.h).
  virtual HealthResult Health(const ComponentSpec& c, DriverContext& ctx);
  // Data integrity checks for `backstop verify --data`; `entry` may be null
  // (then checks against a restore point are skipped).
  virtual Result<std::vector<IntegrityCheck>> CheckIntegrity(const ComponentSpec& c,
                                                             const nlohmann::json& entry,
                                                             DriverContext& ctx) {
    return std::vector<IntegrityCheck>{};
  }
  // The checks that must hold whatever was written since the restore point
  // (foreign keys present, no orphaned rows, the spec's integrity queries;
  // not row counts): what `backstop watch` runs on a schedule to feed the
  // `integrity` signal. `entry` may be null. Default: none.
  virtual Result<std::vector<IntegrityCheck>> CheckInvariants(const ComponentSpec& c,
                                                              const nlohmann::json& entry,
                                                              DriverContext& ctx) {
    return std::vector<IntegrityCheck>{};
  }
  // Measures the component's performance now (seed 4.3), with ctx.spec's
  // `performance` settings (samples, NATS message count and size). Never
  // writes user data. Empty: nothing to measure (the default); an error
  // says why it could not be measured.
  virtual Result<std::vector<PerformanceMetric>> MeasurePerformance(const ComponentSpec& c,
                                                                    DriverContext& ctx) {
    return std::vector<PerformanceMetric>{};
  }
  // Exports (and with req.apply, writes back) what run req.run_id discarded
  // from this component. Unimplemented for drivers that discard no data.
  virtual Result<SalvageResult> Salvage(const ComponentSpec& c, const SalvageRequest& req,
                                        DriverContext& ctx) {
    return Status::FailedPrecondition("component " + c.name +
                                      " discards no data in a rollback; nothing to salvage");
  }
  // What a restore point's `entry` needs outside the store (a staged or a
  // retained database): OK when all of it is there, FailedPrecondition naming
  // what is missing otherwise. `snapshots verify` and the rollback's first
  // step call it; default: nothing outside the store.
  virtual Status CheckRestorable(const ComponentSpec& c, const nlohmann::json& entry,
                                 DriverContext& ctx) {
    return Status::OK();
  }
  // Removes what Restore kept aside for run `run_id` (e.g. <db>_pre_rollback_<run>).
  // With `run_id` empty (prune, when no run is unfinished): only what killed
  // runs left behind (a half-built shadow database, scratch files).
  virtual Status Prune(const ComponentSpec& c, const std::string& run_id, DriverContext& ctx) {
    return Status::OK();
  }
  // The restore point holding `entry` is being deleted: release what the
  // driver keeps outside the store for it (e.g. a staged database).
  virtual Status DiscardSnapshot(const ComponentSpec& c, const nlohmann::json& entry,
                                 DriverContext& ctx) {
    return Status::OK();
  }
};

// `samples` latencies (ms) reduced to "<prefix> p50" and "<prefix> p95"
// metrics of `kind` (nearest rank). REQUIRES: !samples_ms.empty().
std::vector<PerformanceMetric> PercentileMetrics(const std::string& prefix,
                                                 PerformanceMetric::Kind kind,
                                                 std::vector<double> samples_ms);
// The component's health probe run ctx.spec->performance.samples times:
// "probe p50" and "probe p95" latencies. Fails when the probe fails (the
// latency of a failing probe is no baseline) or the component has none.
Result<std::vector<PerformanceMetric>> MeasureProbeLatency(const ComponentSpec& c,
                                                           DriverContext& ctx);

struct DriverInfo {
  std::string name;
  std::vector<std::string> kinds;  // component kinds this driver serves
  std::string summary;
  std::vector<SettingSchema> settings;
  std::function<std::unique_ptr<Driver>()> factory;
  // Driver::Health does more than run the spec's probe (pg_isready-like checks,
  // JetStream checks): the watch daemon must call it rather than probe alone.
  bool own_health = false;
};

// The explicit registry of drivers, looked up by name. Built once by
// RegisterBuiltinDrivers() (registry.cc) and read-only afterwards.
//
// It is the spec parser's DriverCatalog: each driver's name, kinds and
// settings schema, which the command line and the daemon pass to LoadSpec.
class DriverRegistry final : public DriverCatalog {
 public:
  static DriverRegistry& Global();  // with every built-in driver registered
  void Register(DriverInfo info);
  const DriverInfo* Find(const std::string& name) const;
  std::vector<std::string> Names() const override;
  const DriverSchema* FindSchema(const std::string& name) const override;
  // NotFound naming the known drivers when `name` is unknown.
  Result<std::unique_ptr<Driver>> Create(const std::string& name) const;

 private:
  std::map<std::string, DriverInfo> drivers_;
  DriverSchemaList schemas_;  // what the spec parser sees of drivers_
};

// Lists every built-in driver; the one place a new driver is added.
void RegisterBuiltinDrivers(DriverRegistry& registry);

}  // namespace backstop

// StateDb: the SQLite state database of one environment (<state_dir>/state.db).
//
// It is the journal of every run (rollback, deploy, drill): the plan, and each
// step marked started before it acts and done (or failed) after, so a run
// killed at any point can be resumed and `backstop status` can always say
// which run is unfinished. It also keeps the event journal (run/event.h), the release history of
// services
// (`backstop history`, like `helm history`) and small key/value state for the
// watch daemon.
//
// Durability: WAL journal with synchronous=FULL: a Mark* call has reached the
// disk when it returns.
// Thread-safety: one StateDb per thread (SQLite connections are not shared);
// several processes may open the same file (SQLite locking, busy timeout 5 s).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "run/drill_status.h"
#include "run/event.h"
#include "run/run_enums.h"

struct sqlite3;

namespace backstop {

struct RunRecord {
  std::string id;  // "run-20261126T021947Z-ab12cd"
  RunKind kind = RunKind::kRollback;
  RunStatus status = RunStatus::kRunning;
  std::string command;                  // the command line, for reports
  std::string triggered_by = "manual";  // manual | trigger:<name> | drill:<name>
  nlohmann::json trigger_detail;        // the samples that fired a trigger, etc.
  nlohmann::json plan;                  // Plan::ToJson(); a resume replays it
  std::string restore_point;            // the target restore point id (may be empty)
  std::string safety_restore_point;
  int64_t started_us = 0;  // wall clock
  int64_t ended_us = 0;
  int pid = 0;
  std::string error;
  nlohmann::json summary;  // data loss, per-component results
  bool finished() const { return status != RunStatus::kRunning; }
};

struct StepRecord {
  std::string run_id;
  int index = 0;
  StepAction action = StepAction::kVerify;
  std::string component;
  std::string description;
  StepStatus status = StepStatus::kPending;
  int attempts = 0;  // how many times it was started (> 1 after a resume)
  int64_t started_us = 0;
  int64_t ended_us = 0;
  std::string detail;
  nlohmann::json result;
};

struct HistoryRecord {
  std::string component;
  int revision = 0;
  std::string release;
  std::string status;  // deployed | superseded | failed | rolled back
  int64_t at_us = 0;
  std::string run_id;
  std::string description;
};

// A person's confirmation of one recovery-checklist item after a run.
struct ChecklistAck {
  std::string run_id;
  std::string item;  // the item's id: "user-access", "documentation", "team-notified"
  std::string by;
  std::string note;
  int64_t at_us = 0;  // wall clock
};

// One drill (drill/): a rehearsal of a rollback, recorded when it starts and
// again when it ends, for `backstop drill history` and `drill --due`.
// Times are wall clock microseconds; a duration not measured is -1.
struct DrillRecord {
  std::string id;        // "20261201T030000Z-ab12"
  std::string name;      // the spec's drills[].name, or empty when run by hand
  std::string scenario;  // service_failure, database_corruption, ...
  std::string component;
  std::string environment;
  DrillStatus status = DrillStatus::kRunning;
  std::string reason;         // why it passed or failed, one line
  std::string run_id;         // the rollback run, if one ran
  std::string restore_point;  // the drill's starting restore point
  int64_t started_us = 0;
  int64_t ended_us = 0;
  int64_t detection_ms = -1;  // injection -> trigger firing
  int64_t recovery_ms = -1;   // injection -> rollback verified
  int64_t target_ms = 0;      // the decision matrix row's recovery_max_ms (0: none)
};

// One notification in the queue (notify/): an event of the journal for one
// notify target. Times are wall clock microseconds; 0 means not yet.
struct DeliveryRecord {
  int64_t event_id = 0;
  std::string target;  // the notify target's name (the spec's notify[].name)
  int attempts = 0;
  int64_t next_attempt_us = 0;
  int64_t delivered_us = 0;
  int64_t failed_us = 0;  // given up after the last attempt
  std::string last_error;
  bool pending() const { return delivered_us == 0 && failed_us == 0; }
};

// Which deliveries Deliveries returns, by event id then target.
struct DeliveryQuery {
  int64_t due_at_us = 0;  // > 0: only pending ones due at this time; 0: all
  int limit = 0;          // at most this many (0: all)
  std::string target;     // non-empty: only this notify target's
};

class StateDb {
 public:
  // Opens (creating and migrating if needed) the database at `path`.
  static Result<std::unique_ptr<StateDb>> Open(const std::string& path);
  ~StateDb();
  StateDb(const StateDb&) = delete;
  StateDb& operator=(const StateDb&) = delete;

  // Runs and steps. A run or step whose kind, status or action is a name
  // Backstop does not write reads as Corruption naming it, the run and the
  // table.
  Status CreateRun(const RunRecord& run, const std::vector<StepRecord>& steps);
  Result<RunRecord> GetRun(const std::string& id);
  // Newest first, skipping the `offset` newest; `limit` 0 means all. The
  // first damaged row fails the list.
  Result<std::vector<RunRecord>> ListRuns(int limit, int offset = 0);
  // The same rows, a damaged one listed too (for `backstop runs`, which shows
  // the others): `damage` is then its Corruption and `run` holds only what
  // could still be read (id, command, started_us).
  struct StoredRun {
    RunRecord run;
    Status damage;
  };
  Result<std::vector<StoredRun>> ListStoredRuns(int limit, int offset = 0);
  Result<std::vector<RunRecord>> UnfinishedRuns();
  Result<std::vector<StepRecord>> GetSteps(const std::string& run_id);
  Status MarkStepStarted(const std::string& run_id, int index, int64_t now_us);
  Status MarkStepDone(const std::string& run_id, int index, int64_t now_us,
                      const std::string& detail, const nlohmann::json& result);
  Status MarkStepFailed(const std::string& run_id, int index, int64_t now_us,
                        const std::string& detail);
  Status SetSafetyRestorePoint(const std::string& run_id, const std::string& rp_id);
  Status SetRunStatus(const std::string& run_id, RunStatus status);
  Status FinishRun(const std::string& run_id, RunStatus status, int64_t now_us,
                   const std::string& error, const nlohmann::json& summary);
  // Resolves "latest" or a unique prefix of a run id.
  Result<std::string> ResolveRunId(const std::string& selector);

  // Release history.
  Status AddHistory(const HistoryRecord& record);  // assigns the next revision
  Result<std::vector<HistoryRecord>> History(const std::string& component);
  // Sets the status of the revision `run_id` recorded for `component` (e.g. "failed").
  Status SetHistoryStatus(const std::string& component, const std::string& run_id,
                          const std::string& status);

  // The event journal (run/event.h). AppendEvent assigns and returns the
  // event's id; an event is durable when it returns.
  Result<int64_t> AppendEvent(const Event& event);
  Result<std::vector<Event>> ListEvents(const EventQuery& query);

  // The notification queue. Enqueueing a (event, target) pair already queued
  // does nothing, so feeding the same events twice queues them once.
  Status EnqueueDeliveries(const std::vector<DeliveryRecord>& deliveries);
  Result<std::vector<DeliveryRecord>> Deliveries(const DeliveryQuery& query);
  // Takes a due delivery for one attempt: moves its next attempt to
  // `lease_until_us`, so that another process (a command beside `backstop
  // watch`) does not send it too, and a sender that dies leaves it due again.
  // False when it is no longer due (another process took it, or it is done).
  Result<bool> ClaimDelivery(int64_t event_id, const std::string& target, int64_t now_us,
                             int64_t lease_until_us);
  // Writes an attempt's outcome (attempts, next_attempt_us, delivered_us,
  // failed_us, last_error) in one statement; a delivered row is not changed.
  Status RecordDeliveryAttempt(const DeliveryRecord& delivery);

  // The recovery checklist's acknowledgements; a second ack of the same item
  // replaces the first. Oldest first.
  Status AckChecklistItem(const ChecklistAck& ack);
  Result<std::vector<ChecklistAck>> ChecklistAcks(const std::string& run_id);

  // Drills: Record inserts or replaces by id; newest first, `limit` 0: all.
  Status RecordDrill(const DrillRecord& drill);
  Result<std::vector<DrillRecord>> ListDrills(int limit);

  // Small key/value state (watch daemon).
  Status Put(const std::string& key, const std::string& value);
  Result<std::optional<std::string>> Get(const std::string& key);

 private:
  // Opens the SQLite connection to a database file that exists, 0600.
  static Result<std::unique_ptr<StateDb>> OpenConnection(const std::string& path);
  explicit StateDb(sqlite3* db) : db_(db) {}
  Status Exec(const std::string& sql);
  sqlite3* db_;
};

}  // namespace backstop

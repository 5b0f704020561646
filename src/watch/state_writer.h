// StateWriter: the watch daemon's writes to the state database, on their
// own thread, so that the control loop never waits on SQLite (a write fsyncs
// and may wait up to the busy timeout for another process's lock).
//
// What it keeps:
//   - the trigger state document ("watch.rules") and the recent rollbacks
//     ("watch.actions"): coalesced, the latest handed over wins;
//   - journal events (trigger changes, decisions): each one, in the order
//     handed over.
// Stop writes everything pending before it returns, so a clean stop loses
// nothing; a crash loses at most what was not yet written (the trigger state
// of the last moments, which a restart already tolerates).
// Every second, and when asked, it also reads the pause flag (another
// process, `backstop watch pause`, may have changed it) and hands it to
// `on_pause`, on its thread.
//
// A write that fails is logged and dropped, as it was when the control loop
// wrote: the next save of a coalesced key carries the latest state.
//
// Ownership: borrows the log (it must outlive the writer); owns its thread
// and its state database connection.
// Thread-safety: Save*, Append and RefreshPause from any thread; Start and
// Stop from one thread.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "base/status.h"
#include "run/event.h"
#include "run/state_db.h"
#include "watch/watch_logger.h"
#include "watch/watch_state.h"

namespace backstop {

// The state database key of the trigger state document.
inline constexpr const char* kRulesStateKey = "watch.rules";

class StateWriter {
 public:
  StateWriter(std::string db_path, WatchLogger* log,
              std::function<void(const PauseState&)> on_pause);
  ~StateWriter();  // Stop()s
  StateWriter(const StateWriter&) = delete;
  StateWriter& operator=(const StateWriter&) = delete;

  // Opens the writer's connection and starts its thread.
  Status Start();
  // Writes what is pending, then ends the thread. Idempotent.
  void Stop() EXCLUDES(mu_);

  void SaveRules(std::string document) EXCLUDES(mu_);
  void SaveActions(std::vector<WatchAction> actions) EXCLUDES(mu_);
  void Append(Event event) EXCLUDES(mu_);
  // Reads the pause flag soon (before the next periodic read).
  void RefreshPause() EXCLUDES(mu_);

 private:
  void Loop() EXCLUDES(mu_);
  // Writes what was taken from the queue (on the writer's thread).
  void Write(std::optional<std::string> rules, std::optional<std::vector<WatchAction>> actions,
             std::deque<Event> events);
  void ReadPause();

  const std::string db_path_;
  WatchLogger* log_;
  const std::function<void(const PauseState&)> on_pause_;
  std::unique_ptr<StateDb> db_;  // the thread's
  std::thread thread_;

  Mutex mu_;
  CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  bool pause_wanted_ GUARDED_BY(mu_) = false;
  std::optional<std::string> rules_ GUARDED_BY(mu_);
  std::optional<std::vector<WatchAction>> actions_ GUARDED_BY(mu_);
  std::deque<Event> events_ GUARDED_BY(mu_);
};

}  // namespace backstop

// The watch daemon's state database writer. See state_writer.h.
#include "watch/state_writer.h"

#include <malloc.h>

#include <chrono>

namespace backstop {
namespace {

// How often the pause flag is read for changes made by other processes.
constexpr auto kPauseReadEvery = std::chrono::seconds(1);

}  // namespace

StateWriter::StateWriter(std::string db_path, WatchLogger* log,
                         std::function<void(const PauseState&)> on_pause)
    : db_path_(std::move(db_path)), log_(log), on_pause_(std::move(on_pause)) {}

StateWriter::~StateWriter() { Stop(); }

Status StateWriter::Start() {
  BACKSTOP_ASSIGN_OR_RETURN(db_, StateDb::Open(db_path_));
  thread_ = std::thread([this] { Loop(); });
  return Status::OK();
}

void StateWriter::Stop() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
    cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

void StateWriter::SaveRules(std::string document) {
  MutexLock lock(&mu_);
  rules_ = std::move(document);
  cv_.SignalAll();
}

void StateWriter::SaveActions(std::vector<WatchAction> actions) {
  MutexLock lock(&mu_);
  actions_ = std::move(actions);
  cv_.SignalAll();
}

void StateWriter::Append(Event event) {
  MutexLock lock(&mu_);
  events_.push_back(std::move(event));
  cv_.SignalAll();
}

void StateWriter::RefreshPause() {
  MutexLock lock(&mu_);
  pause_wanted_ = true;
  cv_.SignalAll();
}

void StateWriter::Loop() {
  auto next_pause_read = std::chrono::steady_clock::now() + kPauseReadEvery;
  for (;;) {
    std::optional<std::string> rules;
    std::optional<std::vector<WatchAction>> actions;
    std::deque<Event> events;
    bool stop, read_pause;
    {
      MutexLock lock(&mu_);
      while (!stop_ && !pause_wanted_ && !rules_ && !actions_ && events_.empty()) {
        if (!cv_.WaitUntil(&mu_, next_pause_read)) break;
      }
      stop = stop_;
      read_pause = pause_wanted_ || std::chrono::steady_clock::now() >= next_pause_read;
      pause_wanted_ = false;
      rules.swap(rules_);
      actions.swap(actions_);
      events.swap(events_);
    }
    // Handed over before Stop: written even when stopping.
    Write(std::move(rules), std::move(actions), std::move(events));
    if (stop) return;
    if (read_pause) {
      ReadPause();
      next_pause_read = std::chrono::steady_clock::now() + kPauseReadEvery;
    }
  }
}

void StateWriter::Write(std::optional<std::string> rules,
                        std::optional<std::vector<WatchAction>> actions, std::deque<Event> events) {
  // Journal events first, in order: they say what happened; the documents
  // below are the state that followed.
  for (const auto& e : events) {
    Status st = db_->AppendEvent(e).status();
    if (!st.ok()) {
      log_->Error(std::string(e.kind == EventKind::kDecision
                                  ? "cannot journal the decision: "
                                  : "cannot journal the trigger event: ") +
                  st.message());
    }
  }
  if (actions) {
    Status st = WriteWatchActions(*db_, *actions);
    if (!st.ok()) log_->Error("cannot record the rollback for cooldowns: " + st.message());
  }
  if (rules) {
    Status st = db_->Put(kRulesStateKey, *rules);
    if (!st.ok()) log_->Error("cannot save the trigger state: " + st.message());
    rules.reset();
    // The saved document can be large (counter histories): give its memory back.
    ::malloc_trim(0);
  }
}

void StateWriter::ReadPause() {
  auto state = ReadPauseState(*db_);
  if (state.ok()) on_pause_(*state);
}

}  // namespace backstop

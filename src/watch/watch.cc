// The watch daemon. See watch.h.
#include "watch/watch.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "base/units.h"
#include "run/lock.h"
#include "run/plan.h"
#include "run/run.h"
#include "store/restore_point.h"
#include "store/state_dir.h"
#include "watch/watch_events.h"
#include "watch/watcher_internal.h"

namespace backstop {
namespace {

// Trigger state is saved at once on every state change; counts and counter
// histories (which change with every sample) at most this often.
constexpr int64_t kRulesSaveEveryUs = 30'000'000;
// Held triggers are retried, and status refreshed between state changes, at
// most this often.
constexpr int64_t kHousekeepingEveryUs = 1'000'000;

}  // namespace

// --- Watcher ----------------------------------------------------------------------------

Watcher::Watcher(Env* env, const Spec& spec, const DriverRegistry& registry, WatchOptions options,
                 WatchLogger* log)
    : env_(env),
      spec_(spec),
      registry_(registry),
      options_(std::move(options)),
      log_(log),
      gate_(env->clock(), options_.cooldown_ms, options_.max_rollbacks_per_hour) {}

Watcher::~Watcher() {
  if (prober_) prober_->Stop();
  if (api_) api_->Stop();
  job_.reset();  // joins
  StopWorkers();
}

void Watcher::StopWorkers() {
  {
    MutexLock lock(&mu_);
    decider_stop_ = true;
    cv_.SignalAll();
  }
  if (decider_.joinable()) decider_.join();
  if (writer_) writer_->Stop();
}

void Watcher::Stop() {
  MutexLock lock(&mu_);
  stop_ = true;
  cv_.SignalAll();
}

int Watcher::api_port() const {
  MutexLock lock(&mu_);
  return api_port_;
}

Status Watcher::Open() {
  BACKSTOP_ASSIGN_OR_RETURN(StateDirReport dir,
                            OpenStateDir(env_, spec_.state_dir, spec_.store_path));
  if (dir.tightened > 0) log_->Warn(dir.Message());
  BACKSTOP_ASSIGN_OR_RETURN(store_, Store::Open(env_, spec_.store_path));
  const std::string db_path = JoinPath(spec_.state_dir, "state.db");
  BACKSTOP_ASSIGN_OR_RETURN(db_, StateDb::Open(db_path));
  BACKSTOP_ASSIGN_OR_RETURN(api_db_, StateDb::Open(db_path));
  std::map<std::string, ComponentKind> kinds;
  for (const auto& [name, c] : spec_.components) kinds[name] = c.kind;
  engine_ = std::make_unique<RuleEngine>(spec_.triggers, kinds);
  BACKSTOP_ASSIGN_OR_RETURN(auto saved, db_->Get(kRulesStateKey));
  if (saved) {
    auto j = nlohmann::json::parse(*saved, nullptr, false);
    Status st = j.is_discarded() ? Status::InvalidArgument("not JSON")
                                 : engine_->LoadState(j, env_->clock()->NowMicros());
    if (!st.ok()) {
      log_->Warn("saved trigger state ignored: " + st.message(), {{"key", kRulesStateKey}});
    } else {
      int active = 0;
      for (const auto& s : engine_->States()) active += s.state != TriggerState::kOk;
      log_->Info("trigger state restored", {{"not_ok", active}});
    }
  }
  auto paused = ReadPauseState(*db_);
  if (!paused.ok()) {
    log_->Warn(paused.status().message());
  } else {
    MutexLock lock(&mu_);
    paused_ = *paused;
  }
  {
    std::vector<WatchAction> actions = ReadWatchActions(*db_);
    MutexLock lock(&mu_);
    gate_.SetActions(std::move(actions));
  }
  {
    std::vector<TriggerStatus> states = engine_->States();
    non_ok_.clear();
    for (const auto& st : states) {
      if (st.state != TriggerState::kOk) non_ok_.insert({st.trigger, st.component});
    }
    MutexLock lock(&mu_);
    trigger_states_.swap(states);
  }
  return Status::OK();
}

void Watcher::SaveActions() {
  std::vector<WatchAction> actions;
  {
    MutexLock lock(&mu_);
    actions = gate_.PruneActions();
    actions_dirty_ = false;
  }
  writer_->SaveActions(std::move(actions));
}

void Watcher::SaveRuleState(bool force, int64_t now_us) {
  if (!force && (!rules_dirty_ || now_us - last_rules_save_us_ < kRulesSaveEveryUs)) return;
  writer_->SaveRules(engine_->SaveState().dump());
  rules_dirty_ = false;
  last_rules_save_us_ = now_us;
}

void Watcher::HandleEvents(const std::vector<TriggerEvent>& events, bool may_act) {
  for (const auto& e : events) {
    if (e.to == TriggerState::kOk) {
      non_ok_.erase({e.trigger, e.component});
    } else {
      non_ok_.insert({e.trigger, e.component});
    }
    nlohmann::json fields = {{"trigger", e.trigger},
                             {"component", e.component},
                             {"from", TriggerStateName(e.from)},
                             {"to", TriggerStateName(e.to)},
                             {"reason", e.reason}};
    if (may_act) {  // --once decides on the saved state: nothing new to journal
      writer_->Append(
          TriggerJournalEvent(e, env_->clock()->WallMicros(), env_->clock()->NowMicros()));
    }
    Emit("trigger", fields);
    if (e.to == TriggerState::kFiring) {
      log_->Warn("trigger firing", fields);
      HandleFiring(e, may_act);
    } else if (e.to == TriggerState::kPending) {
      log_->Info("trigger pending", fields);
    } else {
      log_->Info("trigger resolved", fields);
    }
  }
  if (!events.empty()) {
    MutexLock lock(&mu_);
    trigger_states_ = engine_->States();
  }
}

GateInputs Watcher::ReadGateInputs() {
  GateInputs in;
  in.lock_holder = EnvironmentLock::CurrentHolder(spec_.state_dir);
  MutexLock lock(&mu_);
  in.pause = paused_;
  // A finished job counts as running until FinishJobIfDone has reset the
  // trigger instances of what it rolled back.
  in.run_active = run_active_ || run_finished_;
  in.active_run = run_id_.empty() ? run_description_ : run_id_;
  return in;
}

void Watcher::Emit(const std::string& type, const nlohmann::json& data) {
  if (ApiServer* api = events_.load()) api->Publish(type, data);
}

void Watcher::SetApiAnswerTimeoutForTesting(int64_t ms) {
  MutexLock lock(&mu_);
  api_answer_timeout_ms_ = ms;
}

bool Watcher::StartJob(RunJob job, std::shared_ptr<ApiRequest> request, std::string* refusal) {
  {
    MutexLock lock(&mu_);
    if (run_active_ || run_finished_) {
      *refusal =
          "a rollback is already running (" + (run_id_.empty() ? run_description_ : run_id_) + ")";
      return false;
    }
    run_active_ = true;
    run_id_.clear();
    run_description_ = job.description;
    run_started_wall_us_ = env_->clock()->WallMicros();
    suppressed_.clear();
    suppressed_.insert(job.components.begin(), job.components.end());
  }
  job_.reset();  // the previous job, reaped: joins its finished thread
  RollbackJob::Hooks hooks;
  const std::vector<std::string> components = job.components;
  hooks.planned = [this, request, components](const std::string& plan_error) {
    if (request == nullptr) return true;  // automatic: a plan error is the job's error
    bool go = false;
    std::string withdrawn;
    {
      MutexLock lock(&mu_);
      if (request->state == ApiRequest::State::kWithdrawn) {
        withdrawn = "the request was answered 503 before it could start";
      } else if (!plan_error.empty()) {
        request->state = ApiRequest::State::kRefused;
        request->code = 422;
        request->why = "cannot plan this rollback: " + plan_error;
      } else {
        request->state = ApiRequest::State::kStarted;
        gate_.RecordAction(components, "", false);
        actions_dirty_ = true;
        go = true;
      }
      cv_.SignalAll();
    }
    if (!withdrawn.empty()) log_->Warn("api: rollback not started: " + withdrawn);
    return go;
  };
  hooks.run_started = [this](const std::string& run_id) {
    std::string what;
    {
      MutexLock lock(&mu_);
      run_id_ = run_id;
      what = run_description_;
      cv_.SignalAll();
    }
    Emit("run.started", {{"run", run_id}, {"what", what}});
  };
  hooks.output = [this](const std::string& line) {
    std::string run_id;
    {
      MutexLock lock(&mu_);
      run_id = run_id_;
    }
    Emit("run.step", {{"run", run_id}, {"line", line}});
  };
  hooks.affects = [this](const std::vector<std::string>& affected) {
    MutexLock lock(&mu_);
    suppressed_.insert(affected.begin(), affected.end());
  };
  hooks.finished_run = [this](const RunOutcome& outcome) {
    {
      MutexLock lock(&mu_);
      ++metrics_.runs_total[{"rollback", std::string(Name(outcome.status))}];
      metrics_.run_duration.Observe(static_cast<double>(outcome.duration_ms) / 1000.0);
    }
    Emit("run.finished", {{"run", outcome.run_id},
                          {"status", std::string(Name(outcome.status))},
                          {"duration_ms", outcome.duration_ms}});
  };
  hooks.done = [this](bool acted, const std::string& error) {
    {
      MutexLock lock(&mu_);
      run_active_ = false;
      run_finished_ = true;
      if (acted) finished_affected_.assign(suppressed_.begin(), suppressed_.end());
      cv_.SignalAll();
    }
    Emit("run.done", {{"acted", acted}, {"error", error}});
  };
  job_ =
      std::make_unique<RollbackJob>(env_, spec_, registry_, log_, std::move(job), std::move(hooks));
  job_->Start();
  return true;
}

void Watcher::ProcessApiJobs() {
  std::deque<std::shared_ptr<ApiRequest>> requests;
  {
    MutexLock lock(&mu_);
    requests.swap(api_requests_);
    for (auto& r : requests) {
      if (r->state == ApiRequest::State::kQueued) r->state = ApiRequest::State::kTaken;
    }
  }
  // The job plans the request on its own thread (planning may connect to
  // databases) and answers it through its `planned` hook.
  for (auto& request : requests) {
    std::string refusal;
    if (StartJob(request->job, request, &refusal)) continue;
    MutexLock lock(&mu_);
    if (request->state == ApiRequest::State::kTaken) {
      request->state = ApiRequest::State::kRefused;
      request->code = 409;
      request->why = refusal;
      cv_.SignalAll();
    }
  }
  bool dirty;
  {
    MutexLock lock(&mu_);
    dirty = actions_dirty_;
  }
  if (dirty) SaveActions();
}

void Watcher::FinishJobIfDone(int64_t now_us) {
  std::vector<std::string> affected;
  {
    MutexLock lock(&mu_);
    if (!run_finished_) return;
    run_finished_ = false;
    affected.swap(finished_affected_);
    suppressed_.clear();
    run_id_.clear();
    run_description_.clear();
  }
  job_.reset();  // joins
  for (const auto& c : affected) {
    engine_->Reset(c, now_us, "rolled back: judged afresh from now on");
  }
  HandleEvents(engine_->Evaluate(now_us), true);
  SaveRuleState(true, now_us);
  std::vector<TriggerStatus> states = engine_->States();
  MutexLock lock(&mu_);
  trigger_states_.swap(states);
}
void Watcher::WriteDaemonInfo() {
  nlohmann::json info = {{"pid", static_cast<int>(::getpid())},
                         {"started", FormatRfc3339(env_->clock()->WallMicros())},
                         {"dry_run", options_.dry_run}};
  int port = api_port();
  if (port > 0) {
    std::string host;
    int configured_port = 0;  // may be 0; `port` is the bound one
    (void)ParseListenAddress(options_.listen, &host, &configured_port);
    // 0.0.0.0 / :: listen everywhere; loopback reaches them.
    if (host == "0.0.0.0") host = "127.0.0.1";
    if (host == "::") host = "::1";
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    info["api"] = "http://" + host + ":" + std::to_string(port);
  } else {
    info["api"] = nullptr;
  }
  Status st =
      env_->fs()->WriteFileAtomic(JoinPath(spec_.state_dir, "watch.json"), info.dump(2) + "\n");
  if (!st.ok()) log_->Warn("cannot write watch.json: " + st.message());
}

Status Watcher::Run() {
  BACKSTOP_RETURN_IF_ERROR(Open());
  const std::string db_path = JoinPath(spec_.state_dir, "state.db");
  writer_ = std::make_unique<StateWriter>(db_path, log_,
                                          [this](const PauseState& s) { TakePauseState(s); });
  BACKSTOP_RETURN_IF_ERROR(writer_->Start());
  BACKSTOP_ASSIGN_OR_RETURN(decider_db_, StateDb::Open(db_path));
  decider_ = std::thread([this] { DeciderLoop(decider_db_.get()); });
  std::vector<ProbeTarget> targets = BuildTargets(/*spread=*/true);
  Prober::Options popts;
  popts.workers = options_.workers;
  prober_ = std::make_unique<Prober>(env_, popts);
  BACKSTOP_RETURN_IF_ERROR(prober_->Start([this](ProbeOutcome&& o) { OnOutcome(std::move(o)); }));
  for (auto& t : targets) BACKSTOP_RETURN_IF_ERROR(prober_->Add(std::move(t)));

  if (options_.listen != "off" && !options_.listen.empty()) {
    ApiServer::Options aopts;
    BACKSTOP_RETURN_IF_ERROR(ParseListenAddress(options_.listen, &aopts.host, &aopts.port));
    std::string source;
    BACKSTOP_ASSIGN_OR_RETURN(
        aopts.token, LoadOrCreateApiToken(env_, spec_.state_dir, options_.token_file, &source));
    log_->AddSecret(aopts.token);
    aopts.log = [this](const std::string& level, const std::string& msg, nlohmann::json fields) {
      log_->Log(level, msg, fields);
    };
    api_ = std::make_unique<ApiServer>(this, aopts);
    BACKSTOP_RETURN_IF_ERROR(api_->Start());
    events_ = api_.get();
    {
      MutexLock lock(&mu_);
      api_port_ = api_->port();
    }
    log_->Info("api listening", {{"address", aopts.host + ":" + std::to_string(api_->port())},
                                 {"token_from", source}});
    if (!IsLoopbackHost(aopts.host)) {
      log_->Warn(
          "the API listens beyond loopback: reads are open to anyone who can reach it; "
          "actions still need the token",
          {{"address", aopts.host}});
    }
  }
  WriteDaemonInfo();
  if (spec_.restore_points.every_ms > 0) {
    scheduled_ = std::make_unique<RestorePointScheduler>(
        env_, spec_.restore_points.every_ms, NewestScheduledRestorePoint(env_, spec_),
        [this] { return TakeScheduledRestorePoint(env_, spec_, registry_, log_); });
  }
  if (HasBlueGreenServices(spec_)) {
    retirer_ = std::make_unique<SlotRetirer>(
        env_, [this] { return RetireExpiredSlots(env_, spec_, registry_, log_); });
  }
  if (spec_.remote_store) {
    replicator_ = std::make_unique<StoreReplicator>(
        env_, [this] { return ReplicateRestorePoints(env_, spec_, log_); });
  }
  // Firing in the saved state: decided again once probed afresh (if still firing).
  for (const auto& st : engine_->States()) {
    if (st.state != TriggerState::kFiring) continue;
    TriggerEvent e;
    e.trigger = st.trigger;
    e.component = st.component;
    e.from = TriggerState::kFiring;
    e.to = TriggerState::kFiring;
    e.t_us = env_->clock()->NowMicros();
    e.action = st.action;
    e.signal = st.signal;
    e.reason = st.reason + " (firing when the watcher last stopped)";
    MutexLock lock(&mu_);
    gate_.Hold(e, Gate::kRestart);
  }
  size_t probed = 0;
  for (const auto& [name, v] : views_) probed += !v->mode.empty();
  {
    PauseState p;
    {
      MutexLock lock(&mu_);
      p = paused_;
    }
    log_->Info("watching", {{"environment", spec_.environment},
                            {"components", probed},
                            {"triggers", spec_.triggers.size()},
                            {"dry_run", options_.dry_run},
                            {"paused", p.paused},
                            {"cooldown", FormatDurationSpec(options_.cooldown_ms)},
                            {"max_per_hour", options_.max_rollbacks_per_hour}});
  }
  service_.Ready(ServiceStatus(), env_->clock()->NowMicros());

  Clock* clock = env_->clock();
  const int64_t start = clock->NowMicros();
  const int64_t deadline = options_.duration_ms > 0 ? start + options_.duration_ms * 1000 : 0;
  const auto tick = std::chrono::milliseconds(std::max<int64_t>(5, options_.tick_ms));
  std::deque<ProbeOutcome> batch;
  bool states_stale = false;
  int64_t states_refreshed_us = 0;
  for (;;) {
    // Between samples only instances that are not ok can change (their `for`
    // or keep_firing_for runs out): with none, the loop sleeps until the next
    // outcome or the once-a-second housekeeping.
    auto wait = non_ok_.empty() ? std::chrono::milliseconds(kHousekeepingEveryUs / 1000) : tick;
    if (deadline > 0) {
      wait = std::min(wait, std::chrono::milliseconds(
                                std::max<int64_t>(1, (deadline - clock->NowMicros()) / 1000)));
    }
    wait = service_.Bound(wait, clock->NowMicros());
    {
      const auto until = std::chrono::steady_clock::now() + wait;
      MutexLock lock(&mu_);
      while (!stop_ && outcomes_.empty() && !run_finished_ && api_requests_.empty() &&
             decided_.empty()) {
        if (!cv_.WaitUntil(&mu_, until)) break;
      }
      if (stop_) break;
      batch.swap(outcomes_);
    }
    const int64_t now = clock->NowMicros();
    for (auto& o : batch) HandleOutcome(o, now);
    const bool had_samples = !batch.empty();
    batch.clear();
    // A job that ended is reaped before the rules are evaluated, so that the
    // instances of what it rolled back are reset before a trigger can fire
    // and start the next job (the samples above were still suppressed).
    FinishJobIfDone(now);
    std::vector<TriggerEvent> events;
    if (had_samples || !non_ok_.empty()) events = engine_->Evaluate(now);
    HandleEvents(events, /*may_act=*/true);
    ActOnDecisions();
    // Status shows consecutive counts and last values too: refresh it at most
    // once a second when only samples (no state changes) came in.
    states_stale = (states_stale || had_samples) && events.empty();
    if (states_stale && now - states_refreshed_us >= kHousekeepingEveryUs) {
      std::vector<TriggerStatus> fresh = engine_->States();
      MutexLock lock(&mu_);
      trigger_states_.swap(fresh);
      states_stale = false;
      states_refreshed_us = now;
    }
    ProcessApiJobs();
    if (scheduled_ || retirer_ || replicator_) {
      bool run_active;
      {
        MutexLock lock(&mu_);
        run_active = run_active_ || run_finished_;
      }
      if (scheduled_) scheduled_->Tick(run_active);
      if (retirer_) retirer_->Tick(run_active);
      if (replicator_) replicator_->Tick(run_active);
    }
    if (now - last_held_retry_us_ >= kHousekeepingEveryUs) {
      last_held_retry_us_ = now;
      RetryHeld();
    }
    SaveRuleState(!events.empty(), now);
    service_.Alive(now, [this] { return ServiceStatus(); });
    if (deadline > 0 && now >= deadline) break;
  }

  log_->Info("stopping");
  service_.Stopping(job_ ? "stopping: waiting for the running rollback to finish" : "stopping");
  {
    MutexLock lock(&mu_);
    for (auto& request : api_requests_) {
      request->state = ApiRequest::State::kRefused;
      request->code = 503;
      request->why = "the watcher is stopping";
    }
    api_requests_.clear();
    cv_.SignalAll();
  }
  {
    // Decisions not yet acted on are dropped: a trigger that still fires is
    // decided again after a restart (it is saved firing).
    MutexLock lock(&mu_);
    decider_stop_ = true;
    cv_.SignalAll();
  }
  prober_->Stop();
  if (api_) api_->Stop();
  scheduled_.reset();   // waits for a restore point being taken
  retirer_.reset();     // and for a slot being stopped
  replicator_.reset();  // and for an upload (it resumes where it stopped next time)
  if (job_) {
    log_->Warn("waiting for the running rollback to finish");
    job_->Join();
  }
  FinishJobIfDone(clock->NowMicros());
  SaveRuleState(true, clock->NowMicros());
  StopWorkers();  // writes what is pending
  (void)env_->fs()->Remove(JoinPath(spec_.state_dir, "watch.json"));
  return Status::OK();
}

Result<nlohmann::json> Watcher::Once(bool* healthy) {
  BACKSTOP_RETURN_IF_ERROR(Open());
  std::vector<ProbeTarget> targets = BuildTargets(/*spread=*/false);
  std::vector<ProbeOutcome> outcomes = ProbeOnce(env_, std::move(targets), options_.workers);
  // Component results before metrics pages, in the order probed.
  const int64_t now = env_->clock()->NowMicros();
  for (auto& o : outcomes) HandleOutcome(o, now);
  HandleEvents(engine_->Evaluate(now), /*may_act=*/false);
  nlohmann::json doc;
  bool ok = true;
  {
    MutexLock lock(&mu_);
    trigger_states_ = engine_->States();
    doc = StatusLocked();
    for (const auto& [name, v] : views_) {
      if (!v->mode.empty() && (!v->has_result || !v->last.pass())) ok = false;
    }
    for (const auto& t : trigger_states_) ok = ok && t.state != TriggerState::kFiring;
  }
  if (healthy != nullptr) *healthy = ok;
  doc["ok"] = ok;
  return doc;
}

}  // namespace backstop

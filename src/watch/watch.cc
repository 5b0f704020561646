// The watch daemon. See watch.h.
#include "watch/watch.h"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>

#include "base/units.h"
#include "run/lock.h"
#include "run/plan.h"
#include "run/run.h"
#include "store/restore_point.h"
#include "store/state_dir.h"
#include "watch/watcher_internal.h"

namespace backstop {
namespace {

constexpr const char* kRulesKey = "watch.rules";
constexpr const char* kActionsKey = "watch.actions";
// Trigger state is saved at once on every state change; counts and counter
// histories (which change with every sample) at most this often.
constexpr int64_t kRulesSaveEveryUs = 30'000'000;
constexpr int64_t kPauseCheckEveryUs = 1'000'000;
constexpr size_t kRecentDecisions = 50;

// A FILE* whose output is cut into lines and handed to `sink` (fopencookie):
// lets the run engine's Output write into the daemon's log.
class LineStream {
 public:
  explicit LineStream(std::function<void(const std::string&)> sink) : sink_(std::move(sink)) {
    cookie_io_functions_t io{};
    io.write = &LineStream::Write;
    io.close = &LineStream::Close;
    file_ = fopencookie(this, "w", io);
    if (file_ != nullptr) setvbuf(file_, nullptr, _IOLBF, 4096);
  }
  ~LineStream() {
    if (file_ != nullptr) std::fclose(file_);
  }
  FILE* file() { return file_ != nullptr ? file_ : stderr; }

 private:
  static ssize_t Write(void* cookie, const char* buf, size_t size) {
    auto* self = static_cast<LineStream*>(cookie);
    self->partial_.append(buf, size);
    size_t nl;
    while ((nl = self->partial_.find('\n')) != std::string::npos) {
      std::string line = self->partial_.substr(0, nl);
      self->partial_.erase(0, nl + 1);
      if (!line.empty()) self->sink_(line);
    }
    return static_cast<ssize_t>(size);
  }
  static int Close(void* cookie) {
    auto* self = static_cast<LineStream*>(cookie);
    if (!self->partial_.empty()) self->sink_(self->partial_);
    self->partial_.clear();
    return 0;
  }
  std::function<void(const std::string&)> sink_;
  std::string partial_;
  FILE* file_ = nullptr;
};

std::string Trimmed(const std::string& s) {
  size_t a = s.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t") - a + 1);
}

}  // namespace

// --- Watcher ----------------------------------------------------------------------------

Watcher::Watcher(Env* env, const Spec& spec, const DriverRegistry& registry, WatchOptions options,
                 WatchLogger* log)
    : env_(env), spec_(spec), registry_(registry), options_(std::move(options)), log_(log) {}

Watcher::~Watcher() {
  if (prober_) prober_->Stop();
  if (api_) api_->Stop();
  if (run_thread_.joinable()) run_thread_.join();
}

void Watcher::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stop_ = true;
  cv_.notify_all();
}

int Watcher::api_port() const {
  std::lock_guard<std::mutex> lock(mu_);
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
  std::map<std::string, std::string> kinds;
  for (const auto& [name, c] : spec_.components) kinds[name] = c.kind;
  engine_ = std::make_unique<RuleEngine>(spec_.triggers, kinds);
  BACKSTOP_ASSIGN_OR_RETURN(auto saved, db_->Get(kRulesKey));
  if (saved) {
    auto j = nlohmann::json::parse(*saved, nullptr, false);
    Status st = j.is_discarded() ? Status::InvalidArgument("not JSON")
                                 : engine_->LoadState(j, env_->clock()->NowMicros());
    if (!st.ok()) {
      log_->Warn("saved trigger state ignored: " + st.message(), {{"key", kRulesKey}});
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
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = *paused;
  }
  LoadActions();
  {
    std::vector<TriggerStatus> states = engine_->States();
    non_ok_.clear();
    for (const auto& st : states) {
      if (st.state != TriggerState::kOk) non_ok_.insert({st.trigger, st.component});
    }
    std::lock_guard<std::mutex> lock(mu_);
    trigger_states_.swap(states);
  }
  return Status::OK();
}

DecisionContext Watcher::BuildDecisionContext() {
  DecisionContext ctx;
  ctx.trigger_states = engine_->States();
  for (const auto& name : spec_.component_order) {
    const ComponentSpec* c = spec_.Find(name);
    if (c->kind != "service") continue;
    auto driver = registry_.Create(c->driver);
    if (!driver.ok()) continue;
    DriverContext dctx = DaemonDriverContext();
    auto described = (*driver)->Describe(*c, dctx);
    if (!described.ok()) continue;
    if (described->contains("release") && (*described)["release"].is_string()) {
      ctx.current_releases[name] = (*described)["release"].get<std::string>();
    }
    if (described->contains("config_hash") && (*described)["config_hash"].is_string()) {
      ctx.current_config_hashes[name] = (*described)["config_hash"].get<std::string>();
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, v] : views_) {
    if (v->has_result && v->reachability_known) ctx.reachable[name] = v->reachable;
  }
  return ctx;
}

std::string Watcher::CooldownBlock(const std::vector<std::string>& components,
                                   int64_t now_wall_us) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = actions_.rbegin(); it != actions_.rend(); ++it) {
    const int64_t age_us = now_wall_us - it->at_wall_us;
    if (age_us >= options_.cooldown_ms * 1000) continue;
    for (const auto& c : components) {
      if (std::find(it->components.begin(), it->components.end(), c) != it->components.end()) {
        return "cooldown: " + c + " was rolled back " + FormatDurationMs(age_us / 1000) +
               " ago (cooldown " + FormatDurationSpec(options_.cooldown_ms) + ", --cooldown)";
      }
    }
  }
  return "";
}

int Watcher::AutomaticInLastHour(int64_t now_wall_us) {
  std::lock_guard<std::mutex> lock(mu_);
  int n = 0;
  for (const auto& a : actions_) {
    if (a.automatic && now_wall_us - a.at_wall_us < kHourUs) ++n;
  }
  return n;
}

void Watcher::LoadActions() {
  auto value = db_->Get(kActionsKey);
  if (!value.ok() || !*value) return;
  auto j = nlohmann::json::parse(**value, nullptr, false);
  if (!j.is_array()) return;
  std::lock_guard<std::mutex> lock(mu_);
  actions_.clear();
  for (const auto& a : j) {
    if (!a.is_object()) continue;
    Action act;
    act.at_wall_us = a.value("at_us", int64_t{0});
    act.components = a.value("components", std::vector<std::string>{});
    act.trigger = a.value("trigger", "");
    act.automatic = a.value("automatic", false);
    actions_.push_back(std::move(act));
  }
}

void Watcher::SaveActions() {
  const int64_t now = env_->clock()->WallMicros();
  const int64_t keep_us = std::max<int64_t>(kHourUs, options_.cooldown_ms * 1000);
  nlohmann::json j = nlohmann::json::array();
  {
    std::lock_guard<std::mutex> lock(mu_);
    actions_.erase(std::remove_if(actions_.begin(), actions_.end(),
                                  [&](const Action& a) { return now - a.at_wall_us > keep_us; }),
                   actions_.end());
    for (const auto& a : actions_) {
      j.push_back({{"at_us", a.at_wall_us},
                   {"at", FormatRfc3339(a.at_wall_us)},
                   {"components", a.components},
                   {"trigger", a.trigger},
                   {"automatic", a.automatic}});
    }
  }
  Status st = db_->Put(kActionsKey, j.dump());
  if (!st.ok()) log_->Error("cannot record the rollback for cooldowns: " + st.message());
}

void Watcher::RefreshPaused() {
  last_pause_check_us_ = env_->clock()->NowMicros();
  auto state = ReadPauseState(*db_);
  if (!state.ok()) return;
  bool changed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    changed = paused_.paused != state->paused;
    paused_ = *state;
  }
  if (changed) {
    log_->Warn(state->paused ? "automatic actions paused" : "automatic actions resumed",
               {{"by", state->by}, {"reason", state->reason}});
  }
}

void Watcher::SaveRuleState(bool force, int64_t now_us) {
  if (!force && (!rules_dirty_ || now_us - last_rules_save_us_ < kRulesSaveEveryUs)) return;
  Status st = db_->Put(kRulesKey, engine_->SaveState().dump());
  if (!st.ok()) {
    log_->Error("cannot save the trigger state: " + st.message());
    return;
  }
  rules_dirty_ = false;
  last_rules_save_us_ = now_us;
  // The saved document can be large (counter histories): give its memory back.
  ::malloc_trim(0);
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
    std::lock_guard<std::mutex> lock(mu_);
    trigger_states_ = engine_->States();
  }
}

void Watcher::HandleFiring(const TriggerEvent& e, bool may_act) {
  const int64_t wall = env_->clock()->WallMicros();
  nlohmann::json record = {{"at", FormatRfc3339(wall, true)},
                           {"trigger", e.trigger},
                           {"component", e.component},
                           {"reason", e.reason}};
  std::string outcome, why;
  held_.erase({e.trigger, e.component});  // re-added below if a gate holds it again
  auto rp = ResolveRestorePoint(*store_, "latest");
  if (!rp.ok()) {
    outcome = "held";
    why = "no restore point to roll back to (" + rp.status().message() +
          "); take one with `backstop snapshot`";
  } else {
    RollbackDecision d = Decide(e, spec_, *rp, BuildDecisionContext());
    record["decision"] = d.ToJson();
    if (!d.act) {
      outcome = e.action == "alert" ? "alert" : "held";
      why = d.reason;
    } else if (!may_act) {
      outcome = "dry_run";
      why = "--once decides but never acts: " + d.reason;
    } else if (options_.dry_run) {
      outcome = "dry_run";
      why = "dry run, not acting: " + d.reason;
    } else {
      RefreshPaused();
      PauseState paused;
      bool active;
      std::string active_run;
      {
        std::lock_guard<std::mutex> lock(mu_);
        paused = paused_;
        active = run_active_;
        active_run = run_id_.empty() ? run_description_ : run_id_;
      }
      nlohmann::json holder = EnvironmentLock::CurrentHolder(spec_.state_dir);
      std::string cooldown = CooldownBlock(d.components, wall);
      const int last_hour = AutomaticInLastHour(wall);
      outcome = "held";
      std::optional<Gate> gate;
      if (paused.paused) {
        gate = Gate::kPaused;
        why = "automatic actions are paused (by " + (paused.by.empty() ? "?" : paused.by) +
              (paused.reason.empty() ? "" : ": " + paused.reason) +
              "); resume with `backstop watch resume`";
      } else if (active) {
        gate = Gate::kRunActive;
        why = "a rollback is already running (" + active_run + ")";
      } else if (!holder.is_null()) {
        gate = Gate::kLockHeld;
        why = "the environment lock is held (run " + holder.value("run_id", std::string("?")) +
              ", `" + holder.value("command", std::string("?")) +
              "`): a manual operation is in progress";
      } else if (!cooldown.empty()) {
        gate = Gate::kCooldown;
        why = cooldown;
      } else if (last_hour >= options_.max_rollbacks_per_hour) {
        gate = Gate::kCap;
        why = "cap reached: " + std::to_string(last_hour) +
              " automatic rollbacks in the last hour (--max-per-hour " +
              std::to_string(options_.max_rollbacks_per_hour) + ")";
      } else if (d.components.empty()) {
        why = "the decision names no component to roll back";
      } else {
        RunJob job;
        if (d.scope == "all") {
          RollbackRequest r;
          r.all = true;
          r.to = rp->id;
          job.requests.push_back(r);
        } else {
          for (const auto& name : d.components) {
            RollbackRequest r;
            r.component = name;
            // Services go back to their previous release, data to the very
            // restore point the decision was judged against.
            const ComponentSpec* c = spec_.Find(name);
            r.to = c != nullptr && c->kind == "service" ? "" : rp->id;
            job.requests.push_back(r);
          }
        }
        job.components = d.components;
        job.triggered_by = "trigger:" + e.trigger;
        job.detail = {{"event", e.ToJson()}, {"decision", d.ToJson()}};
        job.command =
            "backstop watch (automatic: trigger " + e.trigger + " on " + e.component + ")";
        job.description = "rollback of " +
                          [&] {
                            std::string s;
                            for (const auto& n : d.components) s += (s.empty() ? "" : ", ") + n;
                            return s;
                          }() +
                          " (trigger:" + e.trigger + ")";
        job.automatic = true;
        job.trigger = e.trigger;
        std::string refusal;
        if (StartJob(std::move(job), &refusal)) {
          outcome = "acted";
          why = d.reason;
          {
            std::lock_guard<std::mutex> lock(mu_);
            actions_.push_back(Action{wall, d.components, e.trigger, true});
          }
          SaveActions();
        } else {
          gate = Gate::kRunActive;
          why = refusal;
        }
      }
      if (gate) {
        held_[{e.trigger, e.component}] = Held{e, *gate};
        why += " (decided again when that changes, while the trigger still fires)";
      }
    }
  }
  record["outcome"] = outcome;
  record["why"] = why;
  log_->Log(outcome == "acted"     ? "warn"
            : outcome == "dry_run" ? "info"
                                   : "warn",
            "decision: " + (outcome == "acted"     ? std::string("rolling back")
                            : outcome == "dry_run" ? std::string("would roll back")
                            : outcome == "alert"   ? std::string("alert only")
                                                   : std::string("hold")),
            record);
  std::lock_guard<std::mutex> lock(mu_);
  decisions_.push_back(record);
  while (decisions_.size() > kRecentDecisions) decisions_.pop_front();
  ++metrics_.decisions_total[outcome];
}

void Watcher::RetryHeld() {
  if (held_.empty()) return;
  const int64_t wall = env_->clock()->WallMicros();
  bool paused, active;
  {
    std::lock_guard<std::mutex> lock(mu_);
    paused = paused_.paused;
    active = run_active_;
  }
  const bool lock_held = !EnvironmentLock::CurrentHolder(spec_.state_dir).is_null();
  std::vector<TriggerEvent> again;
  for (auto it = held_.begin(); it != held_.end();) {
    auto state = engine_->State(it->first.first, it->first.second);
    if (!state.ok() || state->state != TriggerState::kFiring) {
      it = held_.erase(it);  // resolved meanwhile: nothing to decide
      continue;
    }
    bool open = false;
    switch (it->second.gate) {
      case Gate::kPaused:
        open = !paused;
        break;
      case Gate::kRunActive:
        open = !active;
        break;
      case Gate::kLockHeld:
        open = !lock_held;
        break;
      case Gate::kCooldown: {
        std::vector<std::string> one = {it->first.second};
        open = CooldownBlock(one, wall).empty();
        break;
      }
      case Gate::kCap:
        open = AutomaticInLastHour(wall) < options_.max_rollbacks_per_hour;
        break;
      case Gate::kRestart: {
        std::lock_guard<std::mutex> lock(mu_);
        auto v = views_.find(it->first.second);
        open = v != views_.end() && v->second->has_result;
        break;
      }
    }
    if (!open) {
      ++it;
      continue;
    }
    TriggerEvent e = it->second.event;
    e.reason = state->reason.empty() ? e.reason : state->reason;
    again.push_back(std::move(e));
    it = held_.erase(it);
  }
  for (const auto& e : again) {
    log_->Info("deciding again on a trigger that still fires",
               {{"trigger", e.trigger}, {"component", e.component}});
    HandleFiring(e, /*may_act=*/true);
  }
}

bool Watcher::StartJob(RunJob job, std::string* refusal) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (run_active_) {
      *refusal =
          "a rollback is already running (" + (run_id_.empty() ? run_description_ : run_id_) + ")";
      return false;
    }
  }
  if (run_thread_.joinable()) run_thread_.join();  // the previous job, finished
  {
    std::lock_guard<std::mutex> lock(mu_);
    run_active_ = true;
    run_finished_ = false;
    run_id_.clear();
    run_description_ = job.description;
    run_started_wall_us_ = env_->clock()->WallMicros();
    suppressed_.clear();
    suppressed_.insert(job.components.begin(), job.components.end());
  }
  auto shared = std::make_shared<RunJob>(std::move(job));
  run_thread_ = std::thread([this, shared] { RunJobThread(shared); });
  return true;
}

void Watcher::RunJobThread(std::shared_ptr<RunJob> job) {
  log_->Warn("rollback starting",
             {{"what", job->description}, {"triggered_by", job->triggered_by}});
  std::string run_id;
  auto finish = [&](const std::string& error) {
    if (!error.empty()) log_->Error("rollback not completed: " + error, {{"run", run_id}});
    std::lock_guard<std::mutex> lock(mu_);
    run_active_ = false;
    run_finished_ = true;
    finished_affected_.assign(suppressed_.begin(), suppressed_.end());
    cv_.notify_all();
  };
  auto db = StateDb::Open(JoinPath(spec_.state_dir, "state.db"));
  if (!db.ok()) return finish(db.status().message());
  auto store = Store::Open(env_, spec_.store_path);
  if (!store.ok()) return finish(store.status().message());
  LineStream out_stream([&](const std::string& line) {
    // The engine announces "Run <id>: ..." first: that is how the id is known here.
    if (line.rfind("Run run-", 0) == 0) {
      auto colon = line.find(':');
      std::string id = line.substr(4, colon == std::string::npos ? std::string::npos : colon - 4);
      run_id = id;
      std::lock_guard<std::mutex> lock(mu_);
      run_id_ = id;
      cv_.notify_all();
    }
    log_->Info("run: " + Trimmed(line), {{"run", run_id}});
  });
  LineStream err_stream([&](const std::string& line) {
    log_->Error("run: " + Trimmed(line), {{"run", run_id}});
  });
  Output output(false, out_stream.file(), err_stream.file());
  RunEngine engine(env_, spec_, **store, **db, registry_, output);
  std::string error;
  for (const auto& req : job->requests) {
    DriverContext ctx = engine.Context();
    auto plan = PlanRollback(spec_, req, **store, **db, registry_, ctx);
    if (!plan.ok()) {
      error = "cannot plan the rollback of " +
              (req.all ? std::string("everything") : req.component) + ": " +
              plan.status().message();
      break;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      suppressed_.insert(plan->affected.begin(), plan->affected.end());
    }
    RunOptions options;
    options.command = job->command;
    options.triggered_by = job->triggered_by;
    options.trigger_detail = job->detail;
    auto outcome = engine.Start(*plan, options);
    if (!outcome.ok()) {
      error = "refused: " + outcome.status().message();
      break;
    }
    run_id = outcome->run_id;
    log_->Log(outcome->succeeded() ? "info" : "error",
              outcome->succeeded() ? "rollback succeeded" : "rollback failed",
              {{"run", outcome->run_id},
               {"duration_ms", outcome->duration_ms},
               {"target", outcome->summary.value("target", "")},
               {"error", outcome->error}});
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++metrics_.runs_total[{"rollback", outcome->status}];
      metrics_.run_duration.Observe(static_cast<double>(outcome->duration_ms) / 1000.0);
    }
    if (!outcome->succeeded()) break;
  }
  finish(error);
}

void Watcher::ProcessApiJobs() {
  std::deque<std::pair<std::shared_ptr<RunJob>, std::shared_ptr<std::promise<ApiAnswer>>>> jobs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs.swap(api_jobs_);
  }
  for (auto& [job, promise] : jobs) {
    // Plan now, so that a request that cannot be carried out is refused with
    // the reason instead of accepted and then failing in the background.
    bool plannable = true;
    for (const auto& req : job->requests) {
      DriverContext ctx = DaemonDriverContext();
      auto plan = PlanRollback(spec_, req, *store_, *db_, registry_, ctx);
      if (!plan.ok()) {
        promise->set_value({422, "cannot plan this rollback: " + plan.status().message()});
        plannable = false;
        break;
      }
    }
    if (!plannable) continue;
    std::string refusal;
    std::vector<std::string> components = job->components;
    if (!StartJob(*job, &refusal)) {
      promise->set_value({409, refusal});
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      actions_.push_back(Action{env_->clock()->WallMicros(), components, "", false});
    }
    SaveActions();
    promise->set_value({0, ""});
  }
}

void Watcher::FinishJobIfDone(int64_t now_us) {
  std::vector<std::string> affected;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!run_finished_) return;
    run_finished_ = false;
    affected = finished_affected_;
    finished_affected_.clear();
    suppressed_.clear();
    run_id_.clear();
    run_description_.clear();
  }
  if (run_thread_.joinable()) run_thread_.join();
  for (const auto& c : affected) {
    engine_->Reset(c, now_us, "rolled back: judged afresh from now on");
  }
  HandleEvents(engine_->Evaluate(now_us), true);
  SaveRuleState(true, now_us);
  std::lock_guard<std::mutex> lock(mu_);
  trigger_states_ = engine_->States();
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
    {
      std::lock_guard<std::mutex> lock(mu_);
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
    held_[{st.trigger, st.component}] = Held{e, Gate::kRestart};
  }
  size_t probed = 0;
  for (const auto& [name, v] : views_) probed += !v->mode.empty();
  {
    PauseState p;
    {
      std::lock_guard<std::mutex> lock(mu_);
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
    auto wait = non_ok_.empty() ? std::chrono::milliseconds(kPauseCheckEveryUs / 1000) : tick;
    if (deadline > 0) {
      wait = std::min(wait, std::chrono::milliseconds(
                                std::max<int64_t>(1, (deadline - clock->NowMicros()) / 1000)));
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, wait, [&] {
        return stop_ || !outcomes_.empty() || run_finished_ || !api_jobs_.empty();
      });
      if (stop_) break;
      batch.swap(outcomes_);
    }
    const int64_t now = clock->NowMicros();
    for (auto& o : batch) HandleOutcome(o, now);
    const bool had_samples = !batch.empty();
    batch.clear();
    std::vector<TriggerEvent> events;
    if (had_samples || !non_ok_.empty()) events = engine_->Evaluate(now);
    HandleEvents(events, /*may_act=*/true);
    // Status shows consecutive counts and last values too: refresh it at most
    // once a second when only samples (no state changes) came in.
    states_stale = (states_stale || had_samples) && events.empty();
    if (states_stale && now - states_refreshed_us >= kPauseCheckEveryUs) {
      std::vector<TriggerStatus> fresh = engine_->States();
      std::lock_guard<std::mutex> lock(mu_);
      trigger_states_.swap(fresh);
      states_stale = false;
      states_refreshed_us = now;
    }
    FinishJobIfDone(now);
    ProcessApiJobs();
    if (now - last_pause_check_us_ >= kPauseCheckEveryUs) {
      RefreshPaused();
      RetryHeld();
    }
    SaveRuleState(!events.empty(), now);
    if (deadline > 0 && now >= deadline) break;
  }

  log_->Info("stopping");
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& job : api_jobs_) job.second->set_value({503, "the watcher is stopping"});
    api_jobs_.clear();
  }
  prober_->Stop();
  if (api_) api_->Stop();
  if (run_thread_.joinable()) {
    log_->Warn("waiting for the running rollback to finish");
    run_thread_.join();
  }
  FinishJobIfDone(clock->NowMicros());
  SaveRuleState(true, clock->NowMicros());
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
    std::lock_guard<std::mutex> lock(mu_);
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

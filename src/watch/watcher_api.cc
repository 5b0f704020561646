// The Watcher as the API's backend (api.h): status, runs, rollback requests,
// pause and /metrics, on the API's threads.
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include <cstdio>
#include <optional>

#include "base/output.h"
#include "base/units.h"
#include "run/lock.h"
#include "run/plan.h"
#include "run/run.h"
#include "run/state_db.h"
#include "store/restore_point.h"
#include "store/store.h"
#include "watch/watch.h"
#include "watch/watcher_internal.h"

namespace backstop {
namespace {

int StateNumber(TriggerState s) {
  return s == TriggerState::kFiring ? 2 : s == TriggerState::kPending ? 1 : 0;
}

}  // namespace

nlohmann::json Watcher::StatusLocked() {
  nlohmann::json components = nlohmann::json::array();
  for (const auto& name : DependencyOrder(spec_)) {
    auto it = views_.find(name);
    if (it == views_.end()) continue;
    const ComponentView& v = *it->second;
    nlohmann::json c = {{"name", v.name}, {"kind", v.kind}, {"driver", v.driver}};
    if (v.mode.empty()) {
      c["probe"] = nullptr;
      c["health"] = "not probed";
    } else {
      c["probe"] = v.probe;
      c["mode"] = v.mode;
      c["interval_ms"] = v.interval_ms;
      c["health"] = v.has_result ? HealthStateName(v.last.state) : "pending";
      if (v.has_result) {
        c["detail"] = v.last.detail;
        c["latency_ms"] = v.last.latency_ms;
        if (v.reachability_known) c["reachable"] = v.reachable;
        c["last_probe"] = FormatRfc3339(v.last_wall_us, true);
        c["signals"] = v.last.signals;
      }
      c["probes_total"] = v.total;
      c["probe_failures"] = v.failures;
      if (!v.metrics_url.empty()) {
        c["metrics_url"] = v.metrics_url;
        if (!v.metrics_problem.empty()) c["metrics_problem"] = v.metrics_problem;
      }
      if (!v.integrity.empty()) c["integrity"] = v.integrity;
    }
    components.push_back(c);
  }
  nlohmann::json triggers = nlohmann::json::array();
  const int64_t now = env_->clock()->NowMicros();
  for (const auto& t : trigger_states_) {
    nlohmann::json j = {{"trigger", t.trigger},
                        {"component", t.component},
                        {"signal", t.signal},
                        {"action", t.action},
                        {"state", TriggerStateName(t.state)},
                        {"consecutive_bad", t.consecutive_bad},
                        {"reason", t.reason}};
    if (t.since_us > 0 && t.state != TriggerState::kOk) {
      j["for_ms"] = std::max<int64_t>(0, (now - t.since_us) / 1000);
    }
    if (t.last_value) j["last_value"] = *t.last_value;
    // The rule's `for`: how long pending lasts before it fires (the page
    // shows the time left).
    for (const auto& spec : spec_.triggers) {
      if (spec.name == t.trigger) j["pending_for_ms"] = spec.for_ms;
    }
    j["if_fired"] = IfFiredLocked(t);
    triggers.push_back(j);
  }
  nlohmann::json current = nullptr;
  if (run_active_) {
    current = {{"run", run_id_.empty() ? nlohmann::json() : nlohmann::json(run_id_)},
               {"what", run_description_},
               {"started", FormatRfc3339(run_started_wall_us_)}};
  }
  const int last_hour = gate_.AutomaticInLastHour();
  return {{"environment", spec_.environment},
          {"pid", static_cast<int>(::getpid())},
          {"dry_run", options_.dry_run},
          {"paused", paused_.paused},
          {"pause", paused_.ToJson()},
          {"components", components},
          {"triggers", triggers},
          {"current_run", current},
          {"decisions",
           nlohmann::json(std::vector<nlohmann::json>(decisions_.begin(), decisions_.end()))},
          {"limits",
           {{"cooldown_ms", options_.cooldown_ms},
            {"max_rollbacks_per_hour", options_.max_rollbacks_per_hour},
            {"automatic_rollbacks_last_hour", last_hour}}}};
}

nlohmann::json Watcher::IfFiredLocked(const TriggerStatus& t) const {
  RollbackDecision row;
  SelectMatrixRow(spec_, t.trigger, t.action, &row);
  nlohmann::json j = {{"scenario", row.scenario},
                      {"scope", row.scope ? Name(*row.scope) : ""},
                      {"procedure", row.procedure},
                      {"recovery_min_ms", row.recovery_min_ms},
                      {"recovery_max_ms", row.recovery_max_ms}};
  // Whether the daemon would act on it at this moment. The restore point's
  // checks (Decide) come only when it fires: they read the store.
  std::string now;
  bool act = false;
  if (t.action == TriggerAction::kAlert) {
    now = "alert only: its action is alert";
  } else if (row.scope == MatrixScope::kFallback && !spec_.fallback) {
    now = "would hold and alert: the spec names no standby (fallback block)";
  } else if (options_.dry_run) {
    now = "dry run: would log the decision, not act";
  } else {
    GateInputs in;
    in.pause = paused_;
    in.run_active = run_active_;
    in.active_run = run_id_.empty() ? run_description_ : run_id_;
    GateVerdict verdict = gate_.MayAct({t.component}, in);
    act = verdict.go;
    if (!verdict.go) {
      now = "would hold: " + verdict.why;
      if (verdict.gate) j["held_by"] = Name(*verdict.gate);
    } else if (row.scope == MatrixScope::kFallback) {
      now = "would switch the traffic to the standby (backstop fallback)";
    } else {
      now = "would roll back, once the latest restore point passes its checks";
    }
  }
  j["now"] = now;
  j["would_act"] = act;
  return j;
}

nlohmann::json Watcher::GetStatus() {
  MutexLock lock(&mu_);
  return StatusLocked();
}

namespace {

nlohmann::json RunToJson(const RunRecord& r) {
  nlohmann::json j = {{"id", r.id},
                      {"kind", r.kind},
                      {"status", r.status},
                      {"command", r.command},
                      {"triggered_by", r.triggered_by},
                      {"restore_point", r.restore_point},
                      {"safety_restore_point", r.safety_restore_point},
                      {"started", FormatRfc3339(r.started_us, true)},
                      {"error", r.error},
                      {"summary", r.summary}};
  j["ended"] = r.ended_us > 0 ? nlohmann::json(FormatRfc3339(r.ended_us, true)) : nlohmann::json();
  if (r.ended_us > 0) j["duration_ms"] = (r.ended_us - r.started_us) / 1000;
  return j;
}

}  // namespace

ApiReply Watcher::GetLatencyHistory() {
  const int64_t now = env_->clock()->WallMicros();
  nlohmann::json latency = nlohmann::json::object();
  MutexLock lock(&mu_);
  for (const auto& [name, view] : views_) {
    if (!view->mode.empty()) latency[name] = view->history.ToJson(now);
  }
  return {200, {{"latency", latency}}};
}

ApiReply Watcher::GetRuns(int limit, int offset) {
  MutexLock lock(&api_db_mu_);
  if (!api_db_) return {503, {{"error", "state database not open"}, {"code", "unavailable"}}};
  auto runs = api_db_->ListRuns(limit, offset);
  if (!runs.ok()) return {500, {{"error", runs.status().message()}, {"code", "internal"}}};
  nlohmann::json list = nlohmann::json::array();
  for (const auto& r : *runs) list.push_back(RunToJson(r));
  return {200, {{"runs", list}}};
}

ApiReply Watcher::GetRun(const std::string& id) {
  MutexLock lock(&api_db_mu_);
  if (!api_db_) return {503, {{"error", "state database not open"}, {"code", "unavailable"}}};
  auto resolved = api_db_->ResolveRunId(id);
  if (!resolved.ok()) {
    return {404, {{"error", resolved.status().message()}, {"code", "not_found"}}};
  }
  auto run = api_db_->GetRun(*resolved);
  if (!run.ok()) {
    int code = run.status().IsNotFound() ? 404 : 500;
    return {code,
            {{"error", run.status().message()}, {"code", code == 404 ? "not_found" : "internal"}}};
  }
  nlohmann::json j = RunToJson(*run);
  j["trigger_detail"] = run->trigger_detail;
  j["plan"] = run->plan;
  nlohmann::json steps = nlohmann::json::array();
  auto recs = api_db_->GetSteps(*resolved);
  if (recs.ok()) {
    for (const auto& s : *recs) {
      steps.push_back({{"index", s.index},
                       {"action", s.action},
                       {"component", s.component},
                       {"description", s.description},
                       {"status", s.status},
                       {"attempts", s.attempts},
                       {"detail", s.detail}});
      // When it ran, as milliseconds from the run's start: the page's timeline bars.
      nlohmann::json& step = steps.back();
      step["start_ms"] = s.started_us > 0 ? nlohmann::json((s.started_us - run->started_us) / 1000)
                                          : nlohmann::json(nullptr);
      step["end_ms"] = s.ended_us > 0 ? nlohmann::json((s.ended_us - run->started_us) / 1000)
                                      : nlohmann::json(nullptr);
    }
  }
  j["steps"] = steps;
  return {200, j};
}

namespace {

// The request of a rollback body ({"component": NAME} or {"all": true},
// optional "to"), or the reply that refuses it.
std::optional<ApiReply> ParseRollbackBody(const Spec& spec, const nlohmann::json& body,
                                          RollbackRequest* request) {
  auto bad = [](const std::string& msg) {
    return ApiReply{400, {{"error", msg}, {"code", "bad_request"}}};
  };
  try {
    if (body.contains("all")) request->all = body.at("all").get<bool>();
    if (body.contains("component")) request->component = body.at("component").get<std::string>();
    if (body.contains("to")) request->to = body.at("to").get<std::string>();
  } catch (const std::exception&) {
    return bad("expected {\"component\": NAME} or {\"all\": true}, optional \"to\" (strings)");
  }
  if (request->all == !request->component.empty()) {
    return bad("say what to roll back: {\"component\": NAME} or {\"all\": true}");
  }
  if (!request->component.empty() && spec.Find(request->component) == nullptr) {
    return ApiReply{
        404, {{"error", "no component named '" + request->component + "'"}, {"code", "not_found"}}};
  }
  return std::nullopt;
}

}  // namespace

ApiReply Watcher::GetComponents() {
  // Its own connections, as a rollback job has: this runs on an API thread,
  // and a driver's Describe may connect to its server.
  auto db = StateDb::Open(JoinPath(spec_.state_dir, "state.db"));
  if (!db.ok()) return {503, {{"error", db.status().message()}, {"code", "unavailable"}}};
  auto store = Store::Open(env_, spec_.store_path);
  if (!store.ok()) return {503, {{"error", store.status().message()}, {"code", "unavailable"}}};
  std::vector<std::string> errors;
  const std::vector<RestorePoint> points = ListRestorePoints(**store, &errors);
  std::FILE* devnull = std::fopen("/dev/null", "w");
  if (devnull == nullptr) return {500, {{"error", "cannot open /dev/null"}, {"code", "internal"}}};
  nlohmann::json list = nlohmann::json::array();
  {
    Output quiet(false, devnull, devnull);
    RunEngine engine(env_, spec_, **store, **db, registry_, quiet);
    for (const auto& name : DependencyOrder(spec_)) {
      const ComponentSpec* c = spec_.Find(name);
      nlohmann::json j = {{"name", name}, {"depends_on", c->depends_on}};
      auto driver = engine.DriverFor(*c);
      if (driver.ok()) {
        DriverContext ctx = engine.Context();
        auto d = (*driver)->Describe(*c, ctx);
        if (d.ok()) {
          j["state"] = *d;
          if (d->contains("release")) j["release"] = (*d)["release"];
        } else {
          j["error"] = d.status().message();
        }
      } else {
        j["error"] = driver.status().message();
      }
      // ListRestorePoints is oldest first: the last that holds it is the newest.
      for (auto it = points.rbegin(); it != points.rend(); ++it) {
        if (!it->components.contains(name)) continue;
        j["restore_point"] = {{"id", it->id},
                              {"label", it->label},
                              {"created", FormatRfc3339(it->created_wall_us, true)}};
        break;
      }
      list.push_back(j);
    }
  }
  std::fclose(devnull);
  return {200, {{"components", list}, {"restore_point_errors", errors}}};
}

ApiReply Watcher::PlanRollback(const nlohmann::json& body) {
  RollbackRequest request;
  if (auto refused = ParseRollbackBody(spec_, body, &request)) return *refused;
  // Its own connections, as a rollback job has: this runs on an API thread.
  auto db = StateDb::Open(JoinPath(spec_.state_dir, "state.db"));
  if (!db.ok()) return {503, {{"error", db.status().message()}, {"code", "unavailable"}}};
  auto store = Store::Open(env_, spec_.store_path);
  if (!store.ok()) return {503, {{"error", store.status().message()}, {"code", "unavailable"}}};
  std::FILE* devnull = std::fopen("/dev/null", "w");
  if (devnull == nullptr) return {500, {{"error", "cannot open /dev/null"}, {"code", "internal"}}};
  nlohmann::json reply;
  {
    Output quiet(false, devnull, devnull);
    RunEngine engine(env_, spec_, **store, **db, registry_, quiet);
    DriverContext ctx = engine.Context();
    auto plan = backstop::PlanRollback(spec_, request, **store, **db, registry_, ctx);
    if (plan.ok()) {
      reply = {{"plan", plan->ToJson()},
               {"describe", plan->Describe()},
               {"unhealthy_targets", UnhealthyTargets(*plan)},
               {"environment", spec_.environment},
               {"protected", spec_.requires_confirm}};
    } else {
      reply = {{"error", "cannot plan this rollback: " + plan.status().message()},
               {"code", "unprocessable"}};
    }
  }
  std::fclose(devnull);
  return {reply.contains("error") ? 422 : 200, reply};
}

ApiReply Watcher::RequestRollback(const nlohmann::json& body, const std::string& actor) {
  RollbackRequest r;
  if (auto refused = ParseRollbackBody(spec_, body, &r)) return *refused;
  const bool all = r.all;
  const std::string component = r.component;
  if (spec_.requires_confirm && !body.value("confirm", false)) {
    return {409,
            {{"error", "environment '" + spec_.environment +
                           "' is protected: add \"confirm\": true to the request"},
             {"code", "confirmation_required"}}};
  }
  nlohmann::json holder = EnvironmentLock::CurrentHolder(spec_.state_dir);
  if (!holder.is_null()) {
    return {
        409,
        {{"error", "the environment lock is held (run " + holder.value("run_id", std::string("?")) +
                       ", `" + holder.value("command", std::string("?")) + "`)"},
         {"code", "conflict"}}};
  }
  RunJob job;
  job.requests.push_back(r);
  if (all) {
    job.components = spec_.component_order;
  } else {
    job.components = {component};
  }
  job.triggered_by = "manual";
  job.detail = {{"via", "api"}, {"actor", actor}, {"request", body}};
  job.command = "backstop watch api: POST /api/v1/rollback " + body.dump();
  job.description =
      "rollback of " + (all ? std::string("everything") : component) + " (" + actor + ")";
  job.automatic = false;
  log_->Warn("api: rollback requested", {{"actor", actor}, {"request", body}});

  // The control thread owns the rollback job: hand the request over and wait
  // for it to be started or refused. A request not taken in time is
  // withdrawn under the same lock the job takes to start it, so a 503 never
  // acts.
  auto request = std::make_shared<ApiRequest>();
  request->job = std::move(job);
  ApiRequest::State state;
  int code;
  std::string why;
  {
    MutexLock lock(&mu_);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(api_answer_timeout_ms_);
    api_requests_.push_back(request);
    cv_.SignalAll();
    auto pending = [&]() REQUIRES(mu_) {
      return request->state == ApiRequest::State::kQueued ||
             request->state == ApiRequest::State::kTaken;
    };
    while (pending() && std::chrono::steady_clock::now() < deadline) {
      cv_.WaitUntil(&mu_, deadline);
    }
    if (pending()) {
      request->state = ApiRequest::State::kWithdrawn;
      api_requests_.erase(std::remove(api_requests_.begin(), api_requests_.end(), request),
                          api_requests_.end());
    }
    state = request->state;
    code = request->code;
    why = request->why;
  }
  if (state == ApiRequest::State::kWithdrawn) {
    log_->Warn("api: rollback refused", {{"actor", actor}, {"why", "busy: not taken in time"}});
    return {503, {{"error", "the watcher did not take the request in time"}, {"code", "busy"}}};
  }
  if (state == ApiRequest::State::kRefused) {
    log_->Warn("api: rollback refused", {{"actor", actor}, {"why", why}});
    return {code, {{"error", why}, {"code", code == 409 ? "conflict" : "unprocessable"}}};
  }
  MutexLock lock(&mu_);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (run_id_.empty() && run_active_ && std::chrono::steady_clock::now() < deadline) {
    cv_.WaitUntil(&mu_, deadline);
  }
  nlohmann::json reply = {{"accepted", true},
                          {"run", run_id_.empty() ? nlohmann::json() : nlohmann::json(run_id_)},
                          {"status", "/api/v1/status"}};
  return {202, reply};
}

ApiReply Watcher::SetPaused(bool paused, const std::string& reason, const std::string& actor) {
  PauseState s;
  s.paused = paused;
  s.reason = reason;
  s.by = actor;
  s.at_wall_us = env_->clock()->WallMicros();
  {
    MutexLock lock(&api_db_mu_);
    if (!api_db_) return {503, {{"error", "state database not open"}, {"code", "unavailable"}}};
    Status st = WritePauseState(*api_db_, s);
    if (!st.ok()) return {500, {{"error", st.message()}, {"code", "internal"}}};
  }
  {
    MutexLock lock(&mu_);
    paused_ = s;
  }
  log_->Warn(paused ? "automatic actions paused" : "automatic actions resumed",
             {{"by", actor}, {"reason", reason}});
  Emit("pause", s.ToJson());
  return {200, s.ToJson()};
}

std::string Watcher::MetricsText() {
  WatchMetrics m;
  {
    MutexLock lock(&mu_);
    m.runs_total = metrics_.runs_total;
    m.run_duration = metrics_.run_duration;
    m.decisions_total = metrics_.decisions_total;
    m.paused = paused_.paused;
    for (const auto& name : spec_.component_order) {
      auto it = views_.find(name);
      if (it == views_.end() || it->second->mode.empty()) continue;
      const ComponentView& v = *it->second;
      WatchMetrics::Probe p;
      p.component = name;
      p.has_result = v.has_result && v.last.state != HealthResult::State::kUnknown;
      p.success = v.last.pass();
      p.total = v.total;
      p.failures = v.failures;
      p.latency = v.latency;
      m.probes.push_back(std::move(p));
    }
    for (const auto& t : trigger_states_) {
      m.triggers.push_back({t.trigger, t.component, StateNumber(t.state)});
    }
  }
  return RenderMetrics(m);
}
}  // namespace backstop

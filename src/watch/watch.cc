// The watch daemon. See watch.h.
#include "watch/watch.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>

#include "base/exit_code.h"
#include "base/units.h"
#include "run/lock.h"
#include "run/plan.h"
#include "run/run.h"
#include "store/restore_point.h"
#include "store/state_dir.h"

namespace backstop {
namespace {

constexpr const char* kRulesKey = "watch.rules";
constexpr const char* kPausedKey = "watch.paused";
constexpr const char* kActionsKey = "watch.actions";
constexpr const char* kMetricsSuffix = "#metrics";
constexpr const char* kIntegritySuffix = "#integrity";

// The component a suffixed target ("db#integrity") belongs to, or "".
std::string ComponentOfTarget(const std::string& target, const char* suffix) {
  const size_t n = std::strlen(suffix);
  if (target.size() <= n || target.compare(target.size() - n, n, suffix) != 0) return "";
  return target.substr(0, target.size() - n);
}
// Trigger state is saved at once on every state change; counts and counter
// histories (which change with every sample) at most this often.
constexpr int64_t kRulesSaveEveryUs = 30'000'000;
constexpr int64_t kPauseCheckEveryUs = 1'000'000;
constexpr int64_t kHourUs = 3'600'000'000;
constexpr size_t kRecentDecisions = 50;
constexpr size_t kProbeBatch = 64;

// Drivers whose Health is their own (it does not just run the spec's probe):
// they are probed by calling Driver::Health in the worker pool.
bool HasOwnHealth(const ComponentSpec& c) {
  const DriverInfo* info = DriverRegistry::Global().Find(c.driver);
  return info != nullptr && info->own_health;
}

std::string ModeOf(const ProbeSpec& p) {
  switch (p.type) {
    case ProbeSpec::Type::kHttp:
      return "http";
    case ProbeSpec::Type::kTcp:
      return "tcp";
    case ProbeSpec::Type::kExec:
      return "exec";
    case ProbeSpec::Type::kGrpc:
      return "grpc";
    case ProbeSpec::Type::kNone:
      break;
  }
  return "";
}

const char* HealthName(HealthResult::State s) {
  switch (s) {
    case HealthResult::State::kPass:
      return "pass";
    case HealthResult::State::kFail:
      return "fail";
    default:
      return "unknown";
  }
}

int StateNumber(TriggerState s) {
  return s == TriggerState::kFiring ? 2 : s == TriggerState::kPending ? 1 : 0;
}

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

// --- WatchLogger -------------------------------------------------------------------

WatchLogger::WatchLogger(bool json, FILE* out, Clock* clock)
    : json_(json), out_(out), clock_(clock != nullptr ? clock : Env::Default()->clock()) {}

void WatchLogger::AddSecret(const std::string& secret) {
  if (secret.size() < 4) return;  // too short to redact without mangling ordinary text
  std::lock_guard<std::mutex> lock(mu_);
  secrets_.push_back(secret);
}

std::string WatchLogger::Redact(std::string text) const {
  for (const auto& s : secrets_) {
    size_t pos;
    while ((pos = text.find(s)) != std::string::npos) text.replace(pos, s.size(), "[redacted]");
  }
  // Credentials that may ride along in what drivers print: libpq's
  // "password=..." and URLs' "scheme://user:password@host".
  static const std::string kPassword = "password=";
  for (size_t pos = 0; (pos = text.find(kPassword, pos)) != std::string::npos;) {
    size_t start = pos + kPassword.size();
    size_t end = text.find_first_of(" \t\"',;&", start);
    if (end == std::string::npos) end = text.size();
    if (end > start) text.replace(start, end - start, "[redacted]");
    pos = start;
  }
  for (size_t pos = 0; (pos = text.find("://", pos)) != std::string::npos;) {
    size_t start = pos + 3;
    size_t at = text.find('@', start);
    size_t stop = text.find_first_of(" \t\"/'", start);
    if (at != std::string::npos && (stop == std::string::npos || at < stop)) {
      size_t colon = text.find(':', start);
      if (colon != std::string::npos && colon < at) {
        text.replace(colon + 1, at - colon - 1, "[redacted]");
      }
    }
    pos = start;
  }
  return text;
}

void WatchLogger::Log(const std::string& level, const std::string& msg,
                      const nlohmann::json& fields) {
  const std::string ts = FormatRfc3339(clock_->WallMicros(), /*millis=*/true);
  std::string line;
  if (json_) {
    nlohmann::json j = {{"ts", ts},
                        {"level", level},
                        {"msg", msg},
                        {"fields", fields.is_null() ? nlohmann::json::object() : fields}};
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    std::string upper = level;
    for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    line =
        ts + " " + upper + (upper.size() < 5 ? std::string(5 - upper.size(), ' ') : "") + " " + msg;
    if (fields.is_object()) {
      for (const auto& [k, v] : fields.items()) {
        std::string value;
        if (v.is_string()) {
          value = v.get<std::string>();
          if (value.empty() || value.find_first_of(" \t\"=") != std::string::npos) {
            value = nlohmann::json(value).dump(-1, ' ', false,
                                               nlohmann::json::error_handler_t::replace);
          }
        } else {
          value = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        }
        line += " " + k + "=" + value;
      }
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  line = Redact(std::move(line));
  std::fputs(line.c_str(), out_);
  std::fputc('\n', out_);
  std::fflush(out_);
}

// --- Pause state ---------------------------------------------------------------------

nlohmann::json PauseState::ToJson() const {
  nlohmann::json j = {{"paused", paused}, {"reason", reason}, {"by", by}};
  j["at"] = at_wall_us > 0 ? nlohmann::json(FormatRfc3339(at_wall_us)) : nlohmann::json();
  j["at_us"] = at_wall_us;
  return j;
}

Result<PauseState> ReadPauseState(StateDb& db) {
  BACKSTOP_ASSIGN_OR_RETURN(auto value, db.Get(kPausedKey));
  PauseState s;
  if (!value) return s;
  auto j = nlohmann::json::parse(*value, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Corruption("state database key " + std::string(kPausedKey) +
                              " is not JSON; rewrite it with `backstop watch pause` or `resume`");
  }
  s.paused = j.value("paused", false);
  s.reason = j.value("reason", "");
  s.by = j.value("by", "");
  s.at_wall_us = j.value("at_us", int64_t{0});
  return s;
}

Status WritePauseState(StateDb& db, const PauseState& state) {
  return db.Put(kPausedKey, state.ToJson().dump());
}

// --- Watcher ----------------------------------------------------------------------------

struct Watcher::ComponentView {
  std::string name, kind, driver;
  std::string mode;   // http | tcp | exec | grpc | driver | "" (not probed)
  std::string probe;  // what is probed, for status
  int64_t interval_ms = 0;
  bool process_driver = false;
  bool has_result = false;
  HealthResult last;
  bool reachable = true;
  bool reachability_known = false;
  int64_t last_wall_us = 0;
  std::string metrics_url;
  std::optional<MetricRatio> ratio;
  std::string metrics_problem;
  std::string integrity;  // the last invariant check, for status ("" : none)
  uint64_t total = 0;
  uint64_t failures = 0;
  Histogram latency{ProbeLatencyBounds()};
};

struct Watcher::RunJob {
  std::vector<RollbackRequest> requests;
  std::vector<std::string> components;  // for cooldowns and suppression
  std::string triggered_by = "manual";
  nlohmann::json detail;
  std::string command;
  std::string description;
  bool automatic = false;
  std::string trigger;
};

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

std::vector<ProbeTarget> Watcher::BuildTargets(bool spread) {
  std::vector<ProbeTarget> targets;
  std::vector<std::string> order = DependencyOrder(spec_);
  for (const auto& name : order) {
    const ComponentSpec* c = spec_.Find(name);
    auto view = std::make_unique<ComponentView>();
    view->name = name;
    view->kind = c->kind;
    view->driver = c->driver;
    view->process_driver = c->driver == "process";
    view->interval_ms = c->health.interval_ms;
    ProbeTarget t;
    t.name = name;
    t.probe = c->health;
    if (HasOwnHealth(*c) || (!c->health.enabled() && c->kind == "service")) {
      auto driver = registry_.Create(c->driver);
      if (!driver.ok()) {
        log_->Warn("not probing " + name + ": " + driver.status().message());
        views_[name] = std::move(view);
        continue;
      }
      Driver* d = driver->get();
      health_drivers_[name] = std::move(*driver);
      view->mode = "driver";
      view->probe = c->driver + " driver health" +
                    (c->health.enabled() ? " (" + c->health.Describe() + ")" : "");
      t.blocking = [this, d, c] {
        DriverContext ctx = DaemonDriverContext();
        return d->Health(*c, ctx);
      };
    } else if (c->health.enabled()) {
      view->mode = ModeOf(c->health);
      view->probe = c->health.Describe();
    } else {
      AddIntegrityTarget(*c, targets);
      views_[name] = std::move(view);
      continue;  // nothing else to probe (e.g. config files)
    }
    targets.push_back(std::move(t));
    AddIntegrityTarget(*c, targets);
    // error_rate from the service's own counters, when a trigger names them.
    for (const auto& trig : engine_->TriggersFor(name)) {
      if (trig.signal != "error_rate" || trig.metric.empty()) continue;
      auto ratio = ParseMetricRatio(trig.metric);
      std::string url = MetricsUrlFor(*c);
      if (!ratio.ok() || url.empty()) {
        log_->Warn(
            "error_rate of " + name + " cannot come from metrics; using probe results",
            {{"trigger", trig.name},
             {"why", !ratio.ok() ? ratio.status().message()
                                 : std::string("no HTTP health URL to derive /metrics from")}});
        break;
      }
      view->ratio = *ratio;
      view->metrics_url = url;
      ProbeTarget m;
      m.name = name + kMetricsSuffix;
      m.probe.type = ProbeSpec::Type::kHttp;
      m.probe.target = url;
      m.probe.interval_ms = c->health.interval_ms;
      m.probe.timeout_ms = c->health.timeout_ms;
      m.capture_body = true;
      targets.push_back(std::move(m));
      break;
    }
    views_[name] = std::move(view);
  }
  if (spread && targets.size() > kProbeBatch) {
    // Probes that start together are cheap (one wake-up of the loop starts
    // them all, their answers arrive together): start them in batches of
    // kProbeBatch, the batches spread over (at most) a second so that a large
    // environment does not hit the network all in the same millisecond.
    const size_t batches = (targets.size() + kProbeBatch - 1) / kProbeBatch;
    for (size_t i = 0; i < targets.size(); ++i) {
      const int64_t span = std::min<int64_t>(targets[i].probe.interval_ms, 1000);
      targets[i].first_delay_ms =
          span * static_cast<int64_t>(i / kProbeBatch) / static_cast<int64_t>(batches);
    }
  }
  return targets;
}

DriverContext Watcher::DaemonDriverContext() {
  DriverContext ctx;
  ctx.env = env_;
  ctx.store = store_.get();
  ctx.spec = &spec_;
  ctx.state_dir = spec_.state_dir;
  return ctx;
}

void Watcher::AddIntegrityTarget(const ComponentSpec& c, std::vector<ProbeTarget>& targets) {
  if (options_.integrity_interval_ms <= 0) return;
  bool watched = false;
  for (const auto& trig : engine_->TriggersFor(c.name)) watched |= trig.signal == "integrity";
  if (!watched) return;
  auto driver = registry_.Create(c.driver);
  if (!driver.ok()) return;
  Driver* d = driver->get();
  integrity_drivers_[c.name] = std::move(*driver);
  ProbeTarget t;
  t.name = c.name + kIntegritySuffix;
  t.probe.interval_ms = options_.integrity_interval_ms;
  t.probe.timeout_ms = options_.integrity_interval_ms;
  const ComponentSpec* cp = &c;
  t.blocking = [this, d, cp] {
    DriverContext ctx = DaemonDriverContext();
    HealthResult r;
    nlohmann::json entry;  // the latest restore point's, for the foreign keys it had
    if (auto rp = ResolveRestorePoint(*store_, "latest"); rp.ok()) {
      if (rp->components.contains(cp->name)) entry = rp->components[cp->name];
    }
    auto checks = d->CheckInvariants(*cp, entry, ctx);
    if (!checks.ok()) {
      r.state = HealthResult::State::kUnknown;
      r.detail = "integrity checks could not run: " + checks.status().message();
      return r;
    }
    std::string failed;
    for (const auto& check : *checks) {
      if (check.passed) continue;
      failed += (failed.empty() ? "" : "; ") + check.name + ": " + check.detail;
    }
    r.state = failed.empty() ? HealthResult::State::kPass : HealthResult::State::kFail;
    r.detail = failed.empty() ? std::to_string(checks->size()) + " integrity checks passed"
                              : "integrity check failed: " + failed;
    return r;
  };
  targets.push_back(std::move(t));
}

void Watcher::OnOutcome(ProbeOutcome&& outcome) {
  std::lock_guard<std::mutex> lock(mu_);
  outcomes_.push_back(std::move(outcome));
  cv_.notify_all();
}

void Watcher::HandleOutcome(ProbeOutcome& o, int64_t now_us) {
  // A sample is timestamped when its probe started, as Prometheus stamps a
  // scrape: a slow answer describes the moment it was asked for, so a `for`
  // duration counts from when the condition was first observed to hold.
  const int64_t t_us = o.started_us > 0 ? std::min(o.started_us, now_us) : now_us;
  const int64_t wall = env_->clock()->WallMicros();
  if (std::string comp = ComponentOfTarget(o.name, kMetricsSuffix); !comp.empty()) {
    auto it = views_.find(comp);
    if (it == views_.end() || !it->second->ratio) return;
    std::string problem;
    const bool fetched = o.health.pass();
    Sample s = deriver_.FromMetrics(comp, *it->second->ratio, fetched, o.body, t_us, &problem);
    if (!fetched) problem = it->second->metrics_url + ": " + o.health.detail;
    bool suppressed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      it->second->metrics_problem = problem;
      suppressed = suppressed_.count(comp) > 0;
    }
    if (!suppressed) {
      s.detail = problem.empty() ? "from " + it->second->metrics_url : problem;
      engine_->Observe(s);
      rules_dirty_ = true;
    }
    return;
  }
  if (std::string comp = ComponentOfTarget(o.name, kIntegritySuffix); !comp.empty()) {
    auto vit = views_.find(comp);
    if (vit == views_.end()) return;
    const bool ran = !o.timed_out && o.health.state != HealthResult::State::kUnknown;
    const std::string detail = o.timed_out ? "integrity checks timed out" : o.health.detail;
    bool suppressed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      vit->second->integrity = detail + " (" + FormatRfc3339(wall, true) + ")";
      suppressed = suppressed_.count(comp) > 0;
    }
    if (!ran) {
      log_->Warn("no integrity sample", {{"component", comp}, {"why", detail}});
      return;
    }
    if (suppressed) return;
    Sample s;
    s.component = comp;
    s.signal = "integrity";
    s.t_us = t_us;
    s.value = o.health.pass() ? 1 : 0;
    s.detail = detail;
    engine_->Observe(s);
    rules_dirty_ = true;
    return;
  }
  auto it = views_.find(o.name);
  if (it == views_.end()) return;
  ComponentView& view = *it->second;
  HealthResult& h = o.health;
  if (view.process_driver) {
    // What the process driver's Health adds to the probe: a recorded process
    // that died is down whatever answers on its port; CPU and memory. The
    // memory signal is always the sampler's (percent of what the process can
    // use, see signals.h), also when the driver's Health is the probe.
    ProcessSampler::Reading r = sampler_.Read(spec_.state_dir, view.name, now_us);
    if (view.mode != "driver" && r.recorded && !r.alive) {
      h.state = HealthResult::State::kFail;
      h.detail = "process " + std::to_string(r.pid) + " has exited (" + h.detail + ")";
    }
    if (r.alive) {
      if (r.cpu_percent && (view.mode != "driver" || !h.signals.count("cpu_percent"))) {
        h.signals["cpu_percent"] = *r.cpu_percent;
      }
      h.signals["memory_percent"] = r.memory_percent;
      h.signals["memory_bytes"] = r.memory_bytes;
    }
  }
  const bool reach_known = view.mode != "exec";
  std::vector<Sample> samples =
      deriver_.FromHealth(view.name, h, o.reachable, reach_known, t_us, !view.ratio.has_value());
  bool suppressed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    view.has_result = true;
    view.last = h;
    view.reachable = o.reachable;
    view.reachability_known = reach_known;
    view.last_wall_us = wall;
    if (h.state != HealthResult::State::kUnknown) {
      ++view.total;
      if (!h.pass()) ++view.failures;
      view.latency.Observe(static_cast<double>(o.latency_us) / 1e6);
    }
    suppressed = suppressed_.count(view.name) > 0;
  }
  if (suppressed) return;
  for (auto& s : samples) {
    s.detail = h.detail;
    engine_->Observe(s);
  }
  rules_dirty_ = true;
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
    auto wait = non_ok_.empty() ? std::chrono::milliseconds(kPauseCheckEveryUs / 1000) : tick;
    if (deadline > 0) {
      wait = std::min(wait, std::chrono::milliseconds(
                                std::max<int64_t>(1, (deadline - clock->NowMicros()) / 1000)));
    }
    wait = service_.Bound(wait, clock->NowMicros());
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
    service_.Alive(now, [this] { return ServiceStatus(); });
    if (deadline > 0 && now >= deadline) break;
  }

  log_->Info("stopping");
  service_.Stopping(run_thread_.joinable() ? "stopping: waiting for the running rollback to finish"
                                           : "stopping");
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

// --- ApiBackend ---------------------------------------------------------------------------

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
      c["health"] = v.has_result ? HealthName(v.last.state) : "pending";
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
    triggers.push_back(j);
  }
  nlohmann::json current = nullptr;
  if (run_active_) {
    current = {{"run", run_id_.empty() ? nlohmann::json() : nlohmann::json(run_id_)},
               {"what", run_description_},
               {"started", FormatRfc3339(run_started_wall_us_)}};
  }
  const int64_t wall = env_->clock()->WallMicros();
  int last_hour = 0;
  for (const auto& a : actions_) last_hour += a.automatic && wall - a.at_wall_us < kHourUs;
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

nlohmann::json Watcher::GetStatus() {
  std::lock_guard<std::mutex> lock(mu_);
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

ApiReply Watcher::GetRuns(int limit) {
  std::lock_guard<std::mutex> lock(api_db_mu_);
  if (!api_db_) return {503, {{"error", "state database not open"}, {"code", "unavailable"}}};
  auto runs = api_db_->ListRuns(limit);
  if (!runs.ok()) return {500, {{"error", runs.status().message()}, {"code", "internal"}}};
  nlohmann::json list = nlohmann::json::array();
  for (const auto& r : *runs) list.push_back(RunToJson(r));
  return {200, {{"runs", list}}};
}

ApiReply Watcher::GetRun(const std::string& id) {
  std::lock_guard<std::mutex> lock(api_db_mu_);
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
    }
  }
  j["steps"] = steps;
  return {200, j};
}

ApiReply Watcher::RequestRollback(const nlohmann::json& body, const std::string& actor) {
  auto bad = [](const std::string& msg) {
    return ApiReply{400, {{"error", msg}, {"code", "bad_request"}}};
  };
  bool all = false;
  std::string component, to;
  try {
    if (body.contains("all")) all = body.at("all").get<bool>();
    if (body.contains("component")) component = body.at("component").get<std::string>();
    if (body.contains("to")) to = body.at("to").get<std::string>();
  } catch (const std::exception&) {
    return bad("expected {\"component\": NAME} or {\"all\": true}, optional \"to\" (strings)");
  }
  if (all == !component.empty()) {
    return bad("say what to roll back: {\"component\": NAME} or {\"all\": true}");
  }
  if (!component.empty() && spec_.Find(component) == nullptr) {
    return {404, {{"error", "no component named '" + component + "'"}, {"code", "not_found"}}};
  }
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
  RollbackRequest r;
  r.all = all;
  r.component = component;
  r.to = to;
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

  // The control thread owns the rollback thread: hand the job over and wait.
  auto promise = std::make_shared<std::promise<ApiAnswer>>();
  std::future<ApiAnswer> refused = promise->get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    api_jobs_.emplace_back(std::make_shared<RunJob>(std::move(job)), promise);
    cv_.notify_all();
  }
  if (refused.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    return {503, {{"error", "the watcher did not take the request in time"}, {"code", "busy"}}};
  }
  ApiAnswer answer = refused.get();
  if (answer.first != 0) {
    log_->Warn("api: rollback refused", {{"actor", actor}, {"why", answer.second}});
    return {
        answer.first,
        {{"error", answer.second}, {"code", answer.first == 409 ? "conflict" : "unprocessable"}}};
  }
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::seconds(5), [&] { return !run_id_.empty() || !run_active_; });
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
    std::lock_guard<std::mutex> lock(api_db_mu_);
    if (!api_db_) return {503, {{"error", "state database not open"}, {"code", "unavailable"}}};
    Status st = WritePauseState(*api_db_, s);
    if (!st.ok()) return {500, {{"error", st.message()}, {"code", "internal"}}};
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = s;
  }
  log_->Warn(paused ? "automatic actions paused" : "automatic actions resumed",
             {{"by", actor}, {"reason", reason}});
  return {200, s.ToJson()};
}

std::string Watcher::MetricsText() {
  WatchMetrics m;
  {
    std::lock_guard<std::mutex> lock(mu_);
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

// --- The command -----------------------------------------------------------------------------

namespace {

std::string Pad(const std::string& s, size_t width) {
  return s.size() >= width ? s + " " : s + std::string(width - s.size(), ' ');
}

void PrintOnce(Output& out, const nlohmann::json& doc) {
  out.Line(Pad("COMPONENT", 16) + Pad("HEALTH", 12) + Pad("LATENCY", 10) + "DETAIL");
  for (const auto& c : doc["components"]) {
    std::string health = c.value("health", "");
    std::string latency =
        c.contains("latency_ms") ? std::to_string(c["latency_ms"].get<int64_t>()) + " ms" : "-";
    out.Line(Pad(c.value("name", ""), 16) + Pad(health, 12) + Pad(latency, 10) +
             c.value("detail", c["probe"].is_null() ? std::string("(no probe)") : std::string()));
  }
  std::set<std::string> unprobed;
  for (const auto& c : doc["components"]) {
    if (c["probe"].is_null()) unprobed.insert(c.value("name", ""));
  }
  out.Line("");
  out.Line(Pad("TRIGGER", 24) + Pad("COMPONENT", 16) + Pad("STATE", 10) + "REASON");
  for (const auto& t : doc["triggers"]) {
    // Instances of components nothing probes stay ok forever: not worth a line.
    if (unprobed.count(t.value("component", "")) && t.value("state", "") == "ok") continue;
    std::string state = t.value("state", "");
    if (state != "firing" && t.value("consecutive_bad", 0) > 0) {
      state += " (" + std::to_string(t.value("consecutive_bad", 0)) + " bad)";
    }
    out.Line(Pad(t.value("trigger", ""), 24) + Pad(t.value("component", ""), 16) + Pad(state, 10) +
             t.value("reason", ""));
  }
  for (const auto& d : doc["decisions"]) {
    out.Line("decision (" + d.value("outcome", std::string()) +
             "): " + d.value("why", std::string()));
  }
  out.Line(doc.value("ok", false) ? "all healthy, no trigger firing" : "NOT healthy");
}

}  // namespace

int RunWatchCommand(Env* env, const Spec& spec, const DriverRegistry& registry,
                    const WatchOptions& options, Output& out) {
  if (options.log_format != "text" && options.log_format != "json") {
    out.Error("backstop watch: --log-format must be text or json");
    return 2;
  }
  if (options.listen != "off") {
    std::string host;
    int port = 0;
    Status st = ParseListenAddress(options.listen, &host, &port);
    if (!st.ok()) {
      out.Error("backstop watch: " + st.message());
      return 2;
    }
    if (!IsLoopbackHost(host) && !options.allow_remote) {
      out.Error("backstop watch: --listen " + options.listen +
                " is not a loopback address: other machines could reach the API, whose reads "
                "need no token; pass --allow-remote as well if that is what you want, or "
                "listen on 127.0.0.1");
      return 2;
    }
  }
  ::signal(SIGPIPE, SIG_IGN);
  // A long-running daemon with a dozen mostly idle threads: two malloc arenas
  // are plenty, and each further one would keep its own pages resident.
  ::mallopt(M_ARENA_MAX, 2);
  WatchLogger log(options.log_format == "json", stderr, env->clock());
  Watcher watcher(env, spec, registry, options, &log);
  if (options.once) {
    bool healthy = false;
    auto doc = watcher.Once(&healthy);
    if (!doc.ok()) {
      out.Error("backstop watch --once: " + doc.status().message());
      return ExitCodeFor(doc.status());
    }
    if (out.json()) {
      out.Json(*doc);
    } else {
      PrintOnce(out, *doc);
    }
    return healthy ? 0 : 1;
  }
  // SIGINT / SIGTERM are taken by one thread (sigwait); block them before any
  // other thread starts so that none of them receives them instead.
  sigset_t stop_signals, previous;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, &previous);
  std::atomic<bool> done{false};
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (!done.load()) {
      log.Info(std::string("received ") + strsignal(sig));
      watcher.Stop();
    }
  });
  Status st = watcher.Run();
  done = true;
  pthread_kill(signal_thread.native_handle(), SIGTERM);  // wakes the sigwait
  signal_thread.join();
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (!st.ok()) {
    log.Error("watch failed: " + st.message());
    out.Error("backstop watch: " + st.message());
    return ExitCodeFor(st);
  }
  return 0;
}

}  // namespace backstop

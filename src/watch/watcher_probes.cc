// The Watcher's probing side: the targets it gives the prober, and what it
// makes of their outcomes (samples for the rules, the components' views).
#include <algorithm>
#include <cstring>

#include "base/units.h"
#include "store/restore_point.h"
#include "watch/watch.h"
#include "watch/watcher_internal.h"

namespace backstop {
namespace {

constexpr const char* kMetricsSuffix = "#metrics";
constexpr const char* kIntegritySuffix = "#integrity";

// The component a suffixed target ("db#integrity") belongs to, or "".
std::string ComponentOfTarget(const std::string& target, const char* suffix) {
  const size_t n = std::strlen(suffix);
  if (target.size() <= n || target.compare(target.size() - n, n, suffix) != 0) return "";
  return target.substr(0, target.size() - n);
}

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

}  // namespace

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
    // A blue/green service is probed through its driver, which aims the
    // probe at whichever slot is live at that moment (its port changes with
    // every switch).
    if (HasOwnHealth(*c) || c->traffic ||
        (!c->health.enabled() && c->kind == ComponentKind::kService)) {
      auto driver = registry_.Create(c->driver);
      if (!driver.ok()) {
        log_->Warn("not probing " + name + ": " + driver.status().message());
        AddView(name, std::move(view));
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
      AddView(name, std::move(view));
      continue;  // nothing else to probe (e.g. config files)
    }
    targets.push_back(std::move(t));
    AddIntegrityTarget(*c, targets);
    // error_rate from the service's own counters, when a trigger names them.
    for (const auto& trig : engine_->TriggersFor(name)) {
      if (trig.signal != Signal::kErrorRate || trig.metric.empty()) continue;
      auto ratio = ParseMetricRatio(trig.metric);
      // A blue/green service's counters move with its live slot: not
      // followed yet, so its error rate comes from probe results.
      std::string url = c->traffic ? "" : MetricsUrlFor(*c);
      if (!ratio.ok() || url.empty()) {
        log_->Warn(
            "error_rate of " + name + " cannot come from metrics; using probe results",
            {{"trigger", trig.name},
             {"why",
              !ratio.ok()
                  ? ratio.status().message()
                  : std::string(c->traffic
                                    ? "a blue/green service's /metrics moves with its live slot"
                                    : "no HTTP health URL to derive /metrics from")}});
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
    AddView(name, std::move(view));
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
  DriverContext ctx(*env_);
  ctx.store = store_.get();
  ctx.spec = &spec_;
  ctx.state_dir = spec_.state_dir;
  return ctx;
}

void Watcher::AddIntegrityTarget(const ComponentSpec& c, std::vector<ProbeTarget>& targets) {
  if (options_.integrity_interval_ms <= 0) return;
  bool watched = false;
  for (const auto& trig : engine_->TriggersFor(c.name))
    watched |= trig.signal == Signal::kIntegrity;
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
    nlohmann::json entry;  // the latest restore point's, for the foreign keys it had
    if (auto rp = ResolveRestorePoint(*store_, "latest"); rp.ok()) {
      if (rp->components.contains(cp->name)) entry = rp->components[cp->name];
    }
    return IntegrityHealth(d->CheckInvariants(*cp, entry, ctx));
  };
  targets.push_back(std::move(t));
}

void Watcher::AddView(const std::string& name, std::unique_ptr<ComponentView> view) {
  MutexLock lock(&mu_);
  views_[name] = std::move(view);
}

void Watcher::OnOutcome(ProbeOutcome&& outcome) {
  MutexLock lock(&mu_);
  outcomes_.push_back(std::move(outcome));
  cv_.SignalAll();
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
      MutexLock lock(&mu_);
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
      MutexLock lock(&mu_);
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
    s.signal = Signal::kIntegrity;
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
    ProcessSampler::Reading r = sampler_.Read(env_->fs(), spec_.state_dir, view.name, now_us);
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
  const bool changed = !view.has_result || view.last.state != h.state;
  {
    MutexLock lock(&mu_);
    view.has_result = true;
    view.last = h;
    view.reachable = o.reachable;
    view.reachability_known = reach_known;
    view.last_wall_us = wall;
    if (h.state != HealthResult::State::kUnknown) {
      ++view.total;
      if (!h.pass()) ++view.failures;
      view.latency.Observe(static_cast<double>(o.latency_us) / 1e6);
      view.history.Add(wall, static_cast<double>(o.latency_us) / 1000.0, h.pass());
    }
    suppressed = suppressed_.count(view.name) > 0;
  }
  if (changed) {
    Emit("component", {{"name", view.name},
                       {"health", HealthStateName(h.state)},
                       {"detail", h.detail},
                       {"latency_ms", h.latency_ms}});
  }
  if (suppressed) return;
  for (auto& s : samples) {
    s.detail = h.detail;
    engine_->Observe(s);
  }
  rules_dirty_ = true;
}

}  // namespace backstop

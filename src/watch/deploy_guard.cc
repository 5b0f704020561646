#include "watch/deploy_guard.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "watch/signals.h"

namespace backstop {

Result<std::optional<TriggerEvent>> WatchAfterDeploy(Env* env, const Spec& spec,
                                                     const std::vector<std::string>& components,
                                                     const DeployGuardOptions& options,
                                                     const ProbeComponent& probe) {
  std::map<std::string, ComponentKind> kinds;
  std::map<std::string, int64_t> interval_us;
  std::map<std::string, bool> integrity_watched;
  for (const auto& name : components) {
    const ComponentSpec* c = spec.Find(name);
    if (c == nullptr) return Status::InvalidArgument("no component named '" + name + "'");
    kinds[name] = c->kind;
    interval_us[name] =
        std::max<int64_t>(1, std::min(c->health.interval_ms, options.max_interval_ms)) * 1000;
  }
  RuleEngine rules(spec.triggers, kinds);
  for (const auto& name : components) {
    for (const auto& trig : rules.TriggersFor(name)) {
      integrity_watched[name] = integrity_watched[name] || trig.signal == Signal::kIntegrity;
    }
  }
  SignalDeriver deriver;
  Clock* clock = env->clock();
  const int64_t start_us = clock->NowMicros();
  const int64_t end_us = start_us + options.watch_for_ms * 1000;
  std::map<std::string, int64_t> due_us;
  for (const auto& name : components) due_us[name] = start_us;
  while (true) {
    const int64_t now_us = clock->NowMicros();
    for (const auto& name : components) {
      if (due_us[name] > now_us) continue;
      const ComponentSpec& c = *spec.Find(name);
      HealthResult h = probe(c);
      // The driver's Health does not say whether anything answered: no
      // unreachable samples (a failing health check still fires health rules).
      for (auto& s : deriver.FromHealth(name, h, /*reachable=*/true,
                                        /*reachability_known=*/false, now_us,
                                        /*error_rate_from_probes=*/true)) {
        s.detail = h.detail;
        rules.Observe(s);
      }
      if (options.integrity && integrity_watched[name]) {
        HealthResult checked = options.integrity(c);
        if (checked.state != HealthResult::State::kUnknown) {
          Sample s;
          s.component = name;
          s.signal = Signal::kIntegrity;
          s.t_us = now_us;
          s.value = checked.pass() ? 1 : 0;
          s.detail = checked.detail;
          rules.Observe(s);
        }
      }
      due_us[name] = now_us + interval_us[name];
    }
    for (auto& event : rules.Evaluate(clock->NowMicros())) {
      if (options.on_event) options.on_event(event);
      if (event.to == TriggerState::kFiring) return std::optional<TriggerEvent>(event);
    }
    if (options.on_round) options.on_round((clock->NowMicros() - start_us) / 1000);
    const int64_t after_us = clock->NowMicros();
    if (after_us >= end_us) break;
    int64_t next_us = end_us;
    for (const auto& [name, t] : due_us) next_us = std::min(next_us, t);
    if (next_us > after_us) clock->SleepForMicros(next_us - after_us);
  }
  return std::optional<TriggerEvent>();
}

std::string DescribeFiring(const TriggerEvent& event) {
  std::string out =
      "trigger " + event.trigger + " fired for " + event.component + ": " + event.reason;
  if (!event.samples.empty()) {
    out += "; samples:";
    size_t shown = 0;
    for (auto it = event.samples.rbegin(); it != event.samples.rend() && shown < 5; ++it, ++shown) {
      char value[32];
      snprintf(value, sizeof(value), "%g", it->value);
      out += std::string(shown ? "," : "") + " " + std::string(Name(it->signal)) + "=" + value +
             (it->detail.empty() ? "" : " (" + it->detail + ")");
    }
  }
  return out;
}

}  // namespace backstop

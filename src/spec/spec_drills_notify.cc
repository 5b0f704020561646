// The drills section (scheduled rollback rehearsals) and the notify
// section (who hears of rollbacks and triggers).
#include <map>
#include <string>
#include <vector>

#include "spec/spec_parser.h"

namespace backstop::spec_internal {

namespace {

const std::vector<std::string> kDrillKeys = {"name", "scenario", "component", "schedule",
                                             "environment"};
const std::vector<std::string> kBuiltinFaults = {
    "service_failure", "bad_deploy", "database_corruption", "stream_loss", "full_system"};
const std::vector<std::string> kSchedules = {"weekly", "monthly", "quarterly", "annually"};
const std::vector<std::string> kNotifyKeys = {"name", "type",        "url",       "command",
                                              "on",   "secret_file", "secret_env"};
const std::vector<std::string> kNotifyTypes = {"webhook", "slack", "command", "log"};
// The names `on:` accepts (NotifyEventNames); notify/ maps each to the
// journal's event kind in one table.
const std::vector<std::string> kEvents = {
    "rollback_started", "rollback_finished",    "rollback_failed",   "trigger_pending",
    "trigger_firing",   "trigger_resolved",     "decision",          "drill_started",
    "drill_finished",   "restore_point_failed", "fallback_switched", "fallback_refused",
    "fallback_returned"};

}  // namespace

void Parser::ParseDrills(const Entry& e, Spec* spec) {
  if (!ExpectList(e.value, e.key_mark, "drills",
                  "a list of drills {name, scenario, component, schedule}")) {
    return;
  }
  std::vector<std::string> scenarios = scenario_names_;
  scenarios.insert(scenarios.end(), kBuiltinFaults.begin(), kBuiltinFaults.end());
  std::map<std::string, int> first_line;
  size_t i = 0;
  for (auto it = e.value.begin(); it != e.value.end(); ++it, ++i) {
    YAML::Node item = *it;
    const std::string path = IndexPath("drills", i);
    MapFields f;
    if (!ReadMap(item, At(e), path, "a map with name, scenario and schedule", &f)) continue;
    DrillSpec d;
    d.pos = Pos(f.anchor);
    if (Entry* n = f.Take("name")) {
      if (auto v = NonEmptyStr(*n, path + ".name", "a drill name")) {
        d.name = *v;
        auto [first, inserted] = first_line.emplace(*v, At(*n).line + 1);
        if (!inserted) {
          Err(At(*n), path + ".name",
              "duplicate drill name '" + *v + "' (first at line " + std::to_string(first->second) +
                  ")",
              "unique drill names");
        }
      }
    } else {
      Err(f.anchor, path + ".name", "missing required key 'name'", "a drill name");
    }
    if (Entry* s = f.Take("scenario")) {
      if (auto v = NonEmptyStr(*s, path + ".scenario", "a scenario")) {
        if (Contains(scenarios, *v)) {
          d.scenario = *v;
        } else {
          Err(At(*s), path + ".scenario",
              "unknown scenario '" + *v + "'" + DidYouMean(*v, scenarios),
              "a decision_matrix scenario or a built-in fault: " + JoinList(scenarios));
        }
      }
    } else {
      Err(f.anchor, path + ".scenario", "missing required key 'scenario'",
          "a decision_matrix scenario or a built-in fault: " + JoinList(kBuiltinFaults));
    }
    if (Entry* c = f.Take("component")) {
      if (auto v = Str(*c, path + ".component", "a component name")) {
        if (spec->components.count(*v) == 0) {
          Err(At(*c), path + ".component",
              "unknown component '" + *v + "'" + DidYouMean(*v, spec->component_order),
              "one of " + JoinList(spec->component_order));
        } else {
          d.component = *v;
        }
      }
    }
    if (Entry* s = f.Take("schedule")) {
      const std::string expected =
          "weekly, monthly, quarterly, annually or a cron expression "
          "'minute hour day-of-month month day-of-week' such as '0 3 * * 1'";
      if (auto v = NonEmptyStr(*s, path + ".schedule", expected)) {
        std::string why;
        if (Contains(kSchedules, *v)) {
          d.schedule = *v;
        } else if (v->find(' ') == std::string::npos) {
          Err(At(*s), path + ".schedule",
              "unknown schedule '" + *v + "'" + DidYouMean(*v, kSchedules), expected);
        } else if (!spec_internal::ValidateCron(*v, &why)) {
          Err(At(*s), path + ".schedule", "bad cron expression '" + *v + "': " + why, expected);
        } else {
          d.schedule = *v;
        }
      }
    }
    if (Entry* en = f.Take("environment")) {
      if (auto v = NonEmptyStr(*en, path + ".environment", "an environment name")) {
        d.environment = *v;
      }
    }
    RejectUnknown(f, kDrillKeys);
    spec->drills.push_back(std::move(d));
  }
}

void Parser::ParseNotify(const Entry& e, Spec* spec) {
  if (!ExpectList(e.value, e.key_mark, "notify",
                  "a list of notifiers {name, type: webhook|command|log, ...}")) {
    return;
  }
  std::map<std::string, int> first_line;
  size_t i = 0;
  for (auto it = e.value.begin(); it != e.value.end(); ++it, ++i) {
    YAML::Node item = *it;
    const std::string path = IndexPath("notify", i);
    MapFields f;
    if (!ReadMap(item, At(e), path, "a map with name and type", &f)) continue;
    NotifySpec n;
    n.pos = Pos(f.anchor);
    if (Entry* x = f.Take("name")) {
      if (auto v = NonEmptyStr(*x, path + ".name", "a notifier name")) {
        n.name = *v;
        auto [first, inserted] = first_line.emplace(*v, At(*x).line + 1);
        if (!inserted) {
          Err(At(*x), path + ".name",
              "duplicate notifier name '" + *v + "' (first at line " +
                  std::to_string(first->second) + ")",
              "unique notifier names");
        }
      }
    } else {
      Err(f.anchor, path + ".name", "missing required key 'name'", "a notifier name");
    }
    if (Entry* x = f.Take("type")) {
      if (auto v = OneOf(*x, path + ".type", kNotifyTypes, "notifier type")) n.type = *v;
    } else {
      Err(f.anchor, path + ".type", "missing required key 'type'",
          "one of " + JoinList(kNotifyTypes));
    }
    Entry* url = f.Take("url");
    Entry* command = f.Take("command");
    if (url != nullptr) {
      const std::string expected = "an http:// or https:// URL";
      if (auto v = Str(*url, path + ".url", expected)) {
        std::string why;
        if (!ValidHttpUrl(*v, &why)) {
          Err(At(*url), path + ".url", "'" + *v + "' is not a usable URL: " + why, expected);
        } else if (n.type != "webhook" && n.type != "slack" && !n.type.empty()) {
          Err(url->key_mark, path + ".url", "'url' applies only to webhook and slack notifiers",
              "no url for type " + n.type);
        } else {
          n.url = *v;
        }
      }
    } else if (n.type == "webhook" || n.type == "slack") {
      Err(f.anchor, path + ".url", "missing required key 'url' for a " + n.type + " notifier",
          "an http:// or https:// URL");
    }
    // The signing key is named, never written in the spec.
    Entry* secret_file = f.Take("secret_file");
    Entry* secret_env = f.Take("secret_env");
    if (secret_file != nullptr && secret_env != nullptr) {
      Err(secret_env->key_mark, path + ".secret_env",
          "'secret_file' and 'secret_env' both name the signing key", "one of them");
    }
    for (Entry* x : {secret_file, secret_env}) {
      if (x == nullptr) continue;
      const bool is_file = x == secret_file;
      const std::string key = is_file ? "secret_file" : "secret_env";
      const std::string expected =
          is_file ? "the path of a file holding the signing key"
                  : "the name of an environment variable holding the signing key";
      if (auto v = NonEmptyStr(*x, path + "." + key, expected)) {
        if (n.type != "webhook" && !n.type.empty()) {
          Err(x->key_mark, path + "." + key, "'" + key + "' applies only to webhook notifiers",
              "no signing key for type " + n.type);
        } else if (is_file) {
          n.secret_file = *v;
        } else {
          n.secret_env = *v;
        }
      }
    }
    if (command != nullptr) {
      const std::string expected = "a command as a list, such as [/usr/local/bin/page, oncall]";
      if (auto argv = StrList(*command, path + ".command", expected, false)) {
        if (argv->empty()) {
          Err(At(*command), path + ".command", "empty command", expected);
        } else if (n.type != "command" && !n.type.empty()) {
          Err(command->key_mark, path + ".command", "'command' applies only to command notifiers",
              "no command for type " + n.type);
        } else {
          for (auto& [arg, mark] : *argv) n.command.push_back(arg);
        }
      }
    } else if (n.type == "command") {
      Err(f.anchor, path + ".command", "missing required key 'command' for a command notifier",
          "a command as a list");
    }
    if (Entry* on = f.Take("on")) {
      auto events = StrList(*on, path + ".on", "a list of events: " + JoinList(kEvents), true);
      if (events) {
        for (size_t k = 0; k < events->size(); ++k) {
          const auto& [ev, mark] = (*events)[k];
          if (!Contains(kEvents, ev)) {
            Err(mark, on->value.IsSequence() ? IndexPath(path + ".on", k) : path + ".on",
                "unknown event '" + ev + "'" + DidYouMean(ev, kEvents),
                "one of " + JoinList(kEvents));
          } else {
            n.on.push_back(ev);
          }
        }
      }
    } else {
      n.on = kEvents;  // no `on`: every event
    }
    RejectUnknown(f, kNotifyKeys);
    spec->notify.push_back(std::move(n));
  }
}

}  // namespace backstop::spec_internal

namespace backstop {

const std::vector<std::string>& NotifyEventNames() { return spec_internal::kEvents; }

}  // namespace backstop

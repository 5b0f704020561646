// The components section: each component's kind, driver, dependencies and
// health probe, and the dependency graph (unknown targets, cycles).
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/strings.h"
#include "base/units.h"
#include "spec/spec_parser.h"

namespace backstop::spec_internal {

namespace {

// The probe names a blue/green slot's port ("{port}").
bool UsesSlotPort(const ProbeSpec& probe) {
  if (probe.target.find("{port}") != std::string::npos) return true;
  for (const auto& arg : probe.command) {
    if (arg.find("{port}") != std::string::npos) return true;
  }
  return false;
}

const std::vector<std::string> kComponentKeys = {"kind", "driver", "depends_on", "health",
                                                 "traffic"};
const std::vector<std::string> kProbeTypes = {"http", "tcp", "exec", "grpc"};
const std::vector<std::string> kProbeKeys = {"http",         "tcp",           "exec",     "grpc",
                                             "service",      "expect_status", "interval", "timeout",
                                             "start_period", "retries"};

}  // namespace

std::string Parser::DriversFor(const std::optional<ComponentKind>& kind) const {
  std::vector<std::string> serving;
  std::vector<std::string> all = drivers_.Names();
  if (kind) {
    const std::string kind_name(Name(*kind));
    for (const auto& name : all) {
      const DriverSchema* info = drivers_.FindSchema(name);
      if (info != nullptr && Contains(info->kinds, kind_name)) serving.push_back(name);
    }
    if (!serving.empty()) return "a driver for kind " + kind_name + ": " + JoinList(serving);
    return "a driver for kind " + kind_name +
           ", but none is registered (known drivers: " + (all.empty() ? "none" : JoinList(all)) +
           ")";
  }
  return "one of the known drivers: " + (all.empty() ? "none" : JoinList(all));
}

void Parser::ParseComponents(const Entry& e, Spec* spec) {
  MapFields comps;
  if (!ReadMap(e.value, e.key_mark, "components", "a map of component name to {kind, driver, ...}",
               &comps)) {
    return;
  }
  if (comps.entries.empty()) {
    Err(At(e), "components", "no components",
        "at least one, such as 'webui: {kind: service, driver: process, ...}'");
    return;
  }
  for (auto& c : comps.entries) {
    const std::string path = "components." + c.key;
    if (!ValidName(c.key)) {
      Err(c.key_mark, path, "bad component name '" + c.key + "'",
          "letters, digits, '_', '.' and '-' only");
    }
    ComponentSpec comp;
    comp.name = c.key;
    comp.pos = Pos(c.key_mark);
    ParseComponent(c, path, &comp);
    spec->component_order.push_back(c.key);
    spec->components[c.key] = std::move(comp);
  }
  CheckDependencies(*spec);
  CheckTrafficComponents(*spec);
}

void Parser::ParseComponent(const Entry& c, const std::string& path, ComponentSpec* comp) {
  MapFields f;
  if (!ReadMap(c.value, c.key_mark, path, "a map with kind, driver and the driver's settings",
               &f)) {
    return;
  }
  f.anchor = c.key_mark;

  std::optional<ComponentKind> kind;
  if (Entry* k = f.Take("kind")) {
    kind = OneOf(*k, path + ".kind", kComponentKindNames, "kind");
    if (kind) comp->kind = *kind;
  } else {
    Err(c.key_mark, path + ".kind", "missing required key 'kind'",
        "one of " + JoinList(kComponentKindNames.All()));
  }

  const DriverSchema* info = nullptr;
  if (Entry* d = f.Take("driver")) {
    auto name = NonEmptyStr(*d, path + ".driver", DriversFor(kind));
    if (name) {
      comp->driver = *name;
      info = drivers_.FindSchema(*name);
      if (info == nullptr) {
        Err(At(*d), path + ".driver",
            "unknown driver '" + *name + "'" + DidYouMean(*name, drivers_.Names()),
            DriversFor(kind));
      } else if (kind && !Contains(info->kinds, std::string(Name(*kind)))) {
        Err(At(*d), path + ".driver",
            "driver '" + *name + "' does not serve kind '" + std::string(Name(*kind)) +
                "' (it serves " + JoinList(info->kinds) + ")",
            DriversFor(kind));
      }
    }
  } else {
    Err(c.key_mark, path + ".driver", "missing required key 'driver'", DriversFor(kind));
  }

  if (Entry* d = f.Take("depends_on")) {
    auto deps = StrList(*d, path + ".depends_on", "a list of component names", true);
    if (deps) {
      for (auto& [name, mark] : *deps) {
        comp->depends_on.push_back(name);
        dep_marks_[comp->name].push_back(mark);
      }
    }
  }

  Entry* health = f.Take("health");
  if (health != nullptr) ParseProbe(*health, path + ".health", &comp->health, true);
  if (Entry* t = f.Take("traffic")) {
    if (kind && *kind != ComponentKind::kService) {
      Err(t->key_mark, path + ".traffic",
          "'traffic' applies only to services (this is a " + std::string(Name(*kind)) + ")",
          "no traffic block here");
    } else {
      ParseServiceTraffic(*t, path + ".traffic", info, comp);
    }
  }
  if (health != nullptr && !comp->traffic && UsesSlotPort(comp->health)) {
    Err(health->key_mark, path + ".health",
        "the probe names {port}, the port of a blue/green slot, but this component has no "
        "traffic block",
        "a fixed port, or a traffic block with `ports: [A, B]`");
  }

  if (info != nullptr) {
    ValidateSettings(info->settings, &f, path, &comp->settings);
    std::vector<std::string> known = kComponentKeys;
    for (const auto& s : info->settings) known.push_back(s.key);
    RejectUnknown(f, known);
  }
  // Without a known driver the remaining keys cannot be checked; the
  // driver error above says what to fix first.
}

void Parser::ParseProbe(const Entry& h, const std::string& path, ProbeSpec* probe,
                        bool slot_port_allowed) {
  // A blue/green service's probe names its slot's port as {port}: the
  // address is checked with a port in its place.
  auto checkable = [&](const std::string& text) {
    return slot_port_allowed ? ReplaceAll(text, "{port}", "1") : text;
  };
  const std::string one_of = "exactly one of http, tcp, exec or grpc";
  MapFields f;
  probe->pos = Pos(h.key_mark);
  if (!ReadMap(h.value, h.key_mark, path, "a map with " + one_of, &f)) return;
  f.anchor = h.key_mark;

  std::vector<Entry*> types;
  for (const auto& t : kProbeTypes) {
    if (Entry* e = f.Take(t)) types.push_back(e);
  }
  if (types.empty()) {
    Err(h.key_mark, path, "no probe type", one_of);
  } else if (types.size() > 1) {
    Err(types[1]->key_mark, JoinPathKey(path, types[1]->key),
        "more than one probe type (" + types[0]->key + " and " + types[1]->key + ")", one_of);
  }
  if (!types.empty()) {
    Entry& t = *types[0];
    const std::string tpath = JoinPathKey(path, t.key);
    if (t.key == "http") {
      const std::string expected = "an http:// or https:// URL";
      if (auto url = Str(t, tpath, expected)) {
        std::string why;
        if (ValidHttpUrl(checkable(*url), &why)) {
          probe->type = ProbeSpec::Type::kHttp;
          probe->target = *url;
        } else {
          Err(At(t), tpath, "'" + *url + "' is not a usable URL: " + why, expected);
        }
      }
    } else if (t.key == "tcp" || t.key == "grpc") {
      const std::string expected = "host:port such as 127.0.0.1:50051";
      if (auto target = Str(t, tpath, expected)) {
        if (ValidHostPort(checkable(*target))) {
          probe->type = t.key == "tcp" ? ProbeSpec::Type::kTcp : ProbeSpec::Type::kGrpc;
          probe->target = *target;
        } else {
          Err(At(t), tpath, "'" + *target + "' is not host:port", expected);
        }
      }
    } else {  // exec
      const std::string expected = "a command as a list, such as [pg_isready, -q]";
      if (auto argv = StrList(t, tpath, expected, false)) {
        if (argv->empty()) {
          Err(At(t), tpath, "empty command", expected);
        } else {
          probe->type = ProbeSpec::Type::kExec;
          for (auto& [arg, mark] : *argv) probe->command.push_back(arg);
        }
      }
    }
  }
  const std::string type_key = types.empty() ? "" : types[0]->key;

  if (Entry* e = f.Take("service")) {
    if (type_key != "grpc" && !type_key.empty()) {
      Err(e->key_mark, path + ".service", "'service' applies only to grpc probes",
          "no service for a " + type_key + " probe");
    } else if (auto v = Str(*e, path + ".service", "a gRPC service name")) {
      probe->grpc_service = *v;
    }
  }
  if (Entry* e = f.Take("expect_status")) {
    if (type_key != "http" && !type_key.empty()) {
      Err(e->key_mark, path + ".expect_status", "'expect_status' applies only to http probes",
          "no expect_status for a " + type_key + " probe");
    } else if (auto v = Int(*e, path + ".expect_status", 100, 599,
                            "an HTTP status code between 100 and 599")) {
      probe->expect_status = static_cast<int>(*v);
    }
  }
  bool timeout_set = false;
  Mark timeout_mark;
  if (Entry* e = f.Take("interval")) {
    if (auto v = Duration(*e, path + ".interval", true)) probe->interval_ms = *v;
  }
  if (Entry* e = f.Take("timeout")) {
    if (auto v = Duration(*e, path + ".timeout", true)) {
      probe->timeout_ms = *v;
      timeout_set = true;
      timeout_mark = At(*e);
    }
  }
  if (Entry* e = f.Take("start_period")) {
    if (auto v = Duration(*e, path + ".start_period", true)) probe->start_period_ms = *v;
  }
  if (Entry* e = f.Take("retries")) {
    if (auto v = Int(*e, path + ".retries", 1, 1'000'000, "an integer of at least 1")) {
      probe->retries = static_cast<int>(*v);
    }
  }
  if (probe->timeout_ms > probe->interval_ms) {
    if (timeout_set) {
      Err(timeout_mark, path + ".timeout",
          "timeout " + FormatDurationSpec(probe->timeout_ms) + " exceeds interval " +
              FormatDurationSpec(probe->interval_ms),
          "a timeout no longer than the interval");
    } else {
      // Only the interval was shortened (as the demo does): the default
      // timeout follows it.
      probe->timeout_ms = probe->interval_ms;
    }
  }
  RejectUnknown(f, kProbeKeys);
}

void Parser::CheckDependencies(const Spec& spec) {
  std::vector<std::string> names = spec.component_order;
  for (const auto& name : spec.component_order) {
    const ComponentSpec& c = spec.components.at(name);
    const auto& marks = dep_marks_[name];
    const std::string path = "components." + name + ".depends_on";
    std::set<std::string> seen;
    for (size_t i = 0; i < c.depends_on.size() && i < marks.size(); ++i) {
      const std::string& dep = c.depends_on[i];
      if (dep == name) {
        Err(marks[i], path, "component '" + name + "' depends on itself",
            "names of other components");
      } else if (spec.components.count(dep) == 0) {
        Err(marks[i], path, "unknown component '" + dep + "'" + DidYouMean(dep, names),
            "one of " + JoinList(names));
      } else if (!seen.insert(dep).second) {
        Err(marks[i], path, "'" + dep + "' is listed twice", "each dependency once");
      }
    }
  }

  // Cycles: an iterative depth-first search (the input decides the depth)
  // in file order; each cycle is reported once, starting from the
  // component written first, at its depends_on entry.
  std::map<std::string, size_t> order;
  for (size_t i = 0; i < names.size(); ++i) order[names[i]] = i;
  auto edges = [&](const std::string& name) {
    std::vector<std::string> out;
    for (const auto& dep : spec.components.at(name).depends_on) {
      if (dep != name && spec.components.count(dep) != 0) out.push_back(dep);
    }
    return out;
  };
  enum Color { kWhite, kGray, kBlack };
  std::map<std::string, Color> color;
  std::set<std::string> reported;
  for (const auto& start : names) {
    if (color[start] != kWhite) continue;
    std::vector<std::pair<std::string, std::vector<std::string>>> stack;
    std::vector<size_t> next;
    stack.emplace_back(start, edges(start));
    next.push_back(0);
    color[start] = kGray;
    while (!stack.empty()) {
      auto& [node, outs] = stack.back();
      if (next.back() >= outs.size()) {
        color[node] = kBlack;
        stack.pop_back();
        next.pop_back();
        continue;
      }
      std::string target = outs[next.back()++];
      if (color[target] == kWhite) {
        color[target] = kGray;
        auto target_edges = edges(target);
        stack.emplace_back(target, std::move(target_edges));
        next.push_back(0);
      } else if (color[target] == kGray) {
        std::vector<std::string> cycle;
        size_t from = 0;
        while (from < stack.size() && stack[from].first != target) ++from;
        for (size_t i = from; i < stack.size(); ++i) cycle.push_back(stack[i].first);
        auto first = std::min_element(
            cycle.begin(), cycle.end(),
            [&](const std::string& a, const std::string& b) { return order[a] < order[b]; });
        std::rotate(cycle.begin(), first, cycle.end());
        std::string text = JoinList(cycle, " -> ") + " -> " + cycle.front();
        if (!reported.insert(text).second) continue;
        const std::string& head = cycle.front();
        const std::string& succ = cycle.size() > 1 ? cycle[1] : cycle.front();
        Mark m = Mark();
        const auto& deps = spec.components.at(head).depends_on;
        const auto& marks = dep_marks_[head];
        for (size_t i = 0; i < deps.size() && i < marks.size(); ++i) {
          if (deps[i] == succ) {
            m = marks[i];
            break;
          }
        }
        Err(m, "components." + head + ".depends_on", "dependency cycle " + text,
            "depends_on without cycles (remove one of these dependencies)");
      }
    }
  }
}

}  // namespace backstop::spec_internal

// A service's traffic block: the service is reached through a traffic
// component and changes release without an outage (blue/green):
//   webui:
//     kind: service
//     driver: process
//     traffic:
//       component: front        # a component of kind traffic
//       strategy: blue_green
//       ports: [3001, 3002]     # blue, green
//       keep_previous: 10m      # the replaced release keeps running this long
//       upstream: webui         # default: the service's name
//
// The service does not depend on its traffic component, and none is added to
// its depends_on: the service runs without it (the traffic component sits in
// front and routes to it, so a restart order would be the other way round),
// and only the switch of a deploy or rollback needs it, which the traffic
// driver's Route reports as an error when it is not there.
#include <string>
#include <vector>

#include "spec/spec_parser.h"

namespace backstop::spec_internal {

namespace {

const std::vector<std::string> kTrafficKeys = {"component", "strategy", "ports", "keep_previous",
                                               "upstream"};
constexpr char kPortsExpected[] = "two distinct ports from 1 to 65535, such as [3001, 3002]";

}  // namespace

void Parser::ParseServiceTraffic(const Entry& t, const std::string& path,
                                 const DriverSchema* driver, ComponentSpec* comp) {
  MapFields f;
  if (!ReadMap(t.value, t.key_mark, path,
               "a map {component, strategy: blue_green, ports: [A, B], keep_previous, upstream}",
               &f)) {
    return;
  }
  f.anchor = t.key_mark;
  ServiceTrafficSpec traffic;
  traffic.pos = Pos(t.key_mark);
  traffic.upstream = comp->name;
  bool complete = true;

  if (driver != nullptr && !driver->supports_slots) {
    Err(t.key_mark, path,
        "driver '" + driver->name + "' cannot run blue/green slots, so '" + comp->name +
            "' cannot have a traffic block",
        "a service whose driver runs slots (process), or no traffic block");
    complete = false;
  }

  if (Entry* e = f.Take("component")) {
    if (auto name =
            NonEmptyStr(*e, path + ".component", "the name of a component of kind traffic")) {
      traffic.component = *name;
      traffic_marks_[comp->name] = At(*e);
    } else {
      complete = false;
    }
  } else {
    Err(t.key_mark, path + ".component", "missing required key 'component'",
        "the name of a component of kind traffic");
    complete = false;
  }

  if (Entry* e = f.Take("strategy")) {
    if (auto s = OneOf(*e, path + ".strategy", kTrafficStrategyNames, "strategy")) {
      traffic.strategy = *s;
    } else {
      complete = false;
    }
  } else {
    Err(t.key_mark, path + ".strategy", "missing required key 'strategy'",
        "one of " + JoinList(kTrafficStrategyNames.All()));
    complete = false;
  }

  if (Entry* e = f.Take("ports")) {
    const std::string ppath = path + ".ports";
    auto items = StrList(*e, ppath, kPortsExpected, false);
    if (!items) {
      complete = false;
    } else if (items->size() != 2) {
      Err(At(*e), ppath, std::to_string(items->size()) + " ports", kPortsExpected);
      complete = false;
    } else {
      for (size_t i = 0; i < 2; ++i) {
        const auto& [text, mark] = (*items)[i];
        auto port = ParseInt(text);
        if (!port || *port < 1 || *port > 65535) {
          Err(mark, IndexPath(ppath, i), "'" + text + "' is not a port", kPortsExpected);
          complete = false;
        } else {
          traffic.ports[i] = static_cast<int>(*port);
        }
      }
      if (complete && traffic.ports[0] == traffic.ports[1]) {
        Err((*items)[1].second, IndexPath(ppath, 1),
            "both slots on port " + std::to_string(traffic.ports[0]), kPortsExpected);
        complete = false;
      }
    }
  } else {
    Err(t.key_mark, path + ".ports", "missing required key 'ports'", kPortsExpected);
    complete = false;
  }

  if (Entry* e = f.Take("keep_previous")) {
    if (auto v = Duration(*e, path + ".keep_previous", true)) {
      traffic.keep_previous_ms = *v;
    } else {
      complete = false;
    }
  }
  if (Entry* e = f.Take("upstream")) {
    const std::string expected = "an upstream name (letters, digits, '_', '.' and '-')";
    if (auto v = NonEmptyStr(*e, path + ".upstream", expected)) {
      if (ValidName(*v)) {
        traffic.upstream = *v;
      } else {
        Err(At(*e), path + ".upstream", "bad upstream name '" + *v + "'", expected);
        complete = false;
      }
    } else {
      complete = false;
    }
  }
  RejectUnknown(f, kTrafficKeys);
  // Only a block without errors reaches the model: the spec is rejected
  // anyway, and nothing downstream sees half a traffic block.
  if (complete) comp->traffic = std::move(traffic);
}

void Parser::CheckTrafficComponents(const Spec& spec) {
  std::vector<std::string> traffic_components;
  for (const auto& name : spec.component_order) {
    if (spec.components.at(name).kind == ComponentKind::kTraffic) {
      traffic_components.push_back(name);
    }
  }
  const std::string expected =
      traffic_components.empty()
          ? "a component of kind traffic (such as 'front: {kind: traffic, driver: nginx, ...}'), "
            "but the spec has none"
          : "a component of kind traffic: " + JoinList(traffic_components);
  for (const auto& [service, mark] : traffic_marks_) {
    const ComponentSpec& c = spec.components.at(service);
    if (!c.traffic) continue;
    const std::string& target = c.traffic->component;
    const std::string path = "components." + service + ".traffic.component";
    const ComponentSpec* t = spec.Find(target);
    if (t == nullptr) {
      Err(mark, path,
          "unknown component '" + target + "'" + DidYouMean(target, spec.component_order),
          expected);
    } else if (t->kind != ComponentKind::kTraffic) {
      Err(mark, path,
          "'" + target + "' is a " + std::string(Name(t->kind)) + ", not a traffic component",
          expected);
    }
  }
}

}  // namespace backstop::spec_internal

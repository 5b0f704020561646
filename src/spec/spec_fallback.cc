// The fallback section (seed 5.3): the standby that `backstop fallback` and
// the decision matrix's `fallback` scope send traffic to:
//   fallback:
//     traffic: web                      # a component of kind traffic
//     upstream: webui                   # default: the only upstream a service's
//                                       # traffic block routes through `web`
//     upstreams: [10.0.0.9:8080]        # the standby, host:port, in order
//     health: {http: "http://10.0.0.9:8080/health"}   # required
// Parsed after the components, whose traffic blocks give the default upstream.
#include <set>
#include <string>
#include <vector>

#include "spec/spec_parser.h"

namespace backstop::spec_internal {

namespace {

const std::vector<std::string> kFallbackKeys = {"traffic", "upstream", "upstreams", "health"};

}  // namespace

void Parser::ParseFallback(const Entry& e, Spec* spec) {
  MapFields f;
  if (!ReadMap(e.value, At(e), "fallback",
               "a map {traffic: COMPONENT, upstreams: [HOST:PORT, ...], health: PROBE, "
               "upstream: NAME}",
               &f)) {
    return;
  }
  f.anchor = e.key_mark;
  FallbackSpec fb;
  fb.pos = Pos(e.key_mark);

  if (Entry* t = f.Take("traffic")) {
    if (auto name =
            NonEmptyStr(*t, "fallback.traffic", "the name of a component of kind traffic")) {
      fb.traffic = *name;
      const ComponentSpec* comp = spec->Find(*name);
      if (comp == nullptr) {
        std::vector<std::string> names;
        for (const auto& [n, c] : spec->components) {
          if (c.kind == ComponentKind::kTraffic) names.push_back(n);
        }
        Err(At(*t), "fallback.traffic",
            "no component named '" + *name + "'" + DidYouMean(*name, names),
            names.empty() ? "a component of kind traffic (there is none)"
                          : "a component of kind traffic: " + JoinList(names));
      } else if (comp->kind != ComponentKind::kTraffic) {
        Err(At(*t), "fallback.traffic",
            "component '" + *name + "' is of kind " + std::string(Name(comp->kind)),
            "a component of kind traffic, whose driver routes upstreams (nginx)");
      }
    }
  } else {
    Err(f.anchor, "fallback.traffic", "missing required key 'traffic'",
        "the name of a component of kind traffic");
  }

  if (Entry* u = f.Take("upstreams")) {
    const std::string expected = "a non-empty list of host:port, such as [10.0.0.9:8080]";
    if (auto items = StrList(*u, "fallback.upstreams", expected, /*allow_single=*/false)) {
      std::set<std::string> seen;
      for (size_t i = 0; i < items->size(); ++i) {
        const auto& [server, mark] = (*items)[i];
        const std::string path = IndexPath("fallback.upstreams", i);
        if (!ValidHostPort(server)) {
          Err(mark, path, "bad server '" + server + "'",
              "host:port with a port in 1..65535, such as 10.0.0.9:8080");
        } else if (!seen.insert(server).second) {
          Err(mark, path, "server '" + server + "' is listed twice", "each server once");
        } else {
          fb.servers.push_back(server);
        }
      }
      if (items->empty()) Err(At(*u), "fallback.upstreams", "empty list", expected);
    }
  } else {
    Err(f.anchor, "fallback.upstreams", "missing required key 'upstreams'",
        "the standby's servers, a list of host:port");
  }

  if (Entry* h = f.Take("health")) {
    ParseProbe(*h, "fallback.health", &fb.health);
  } else {
    Err(f.anchor, "fallback.health", "missing required key 'health'",
        "the standby's health probe (http, tcp, exec or grpc): Backstop never switches to a "
        "standby it has not seen healthy");
  }

  if (Entry* u = f.Take("upstream")) {
    if (auto name = NonEmptyStr(*u, "fallback.upstream", "the nginx upstream name to switch")) {
      fb.upstream = *name;
      if (!ValidName(*name) || (*name)[0] == '.') {
        Err(At(*u), "fallback.upstream", "bad upstream name '" + *name + "'",
            "letters, digits, '_', '.' and '-', not starting with '.'");
      }
    }
  } else if (!fb.traffic.empty()) {
    // The default: the one upstream that services' traffic blocks route
    // through this traffic component.
    std::set<std::string> routed;
    for (const auto& [name, c] : spec->components) {
      if (c.traffic && c.traffic->component == fb.traffic) {
        routed.insert(c.traffic->upstream.empty() ? name : c.traffic->upstream);
      }
    }
    if (routed.size() == 1) {
      fb.upstream = *routed.begin();
    } else {
      Err(f.anchor, "fallback.upstream",
          routed.empty()
              ? "missing key 'upstream': no service's traffic block routes through '" + fb.traffic +
                    "'"
              : "missing key 'upstream': services route " +
                    JoinList({routed.begin(), routed.end()}) + " through '" + fb.traffic + "'",
          "the name of the upstream the fallback switches");
    }
  }
  RejectUnknown(f, kFallbackKeys);
  spec->fallback = std::move(fb);
}

}  // namespace backstop::spec_internal

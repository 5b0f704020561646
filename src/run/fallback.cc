// Fallback to the spec's standby and back. See fallback.h.
#include "run/fallback.h"

#include "base/strings.h"
#include "base/units.h"
#include "probe/probe.h"
#include "run/lock.h"

namespace backstop {
namespace {

constexpr char kRecordKey[] = "fallback";

std::string Servers(const std::vector<std::string>& servers) {
  return servers.empty() ? std::string("(nothing)") : Join(servers, ", ");
}

Status WriteRecord(StateDb& db, const FallbackRecord& r) {
  return db.Put(kRecordKey, r.ToJson().dump());
}

// The record is removed by writing an empty object (the kv table has no delete).
Status ClearRecord(StateDb& db) { return db.Put(kRecordKey, "{}"); }

Status Journal(StateDb& db, Env* env, EventKind kind, const FallbackRecord& r,
               const std::string& message, const FallbackOptions& options) {
  Event e;
  e.at_us = env->clock()->WallMicros();
  e.kind = kind;
  e.run_id = r.id;
  e.component = r.traffic;
  if (options.triggered_by.rfind("trigger:", 0) == 0) e.trigger = options.triggered_by.substr(8);
  e.message = message;
  e.detail = {{"fallback", r.ToJson()}, {"triggered_by", options.triggered_by}};
  if (!options.detail.is_null()) e.detail["decision"] = options.detail;
  return db.AppendEvent(e).status();
}

// The probe that says whether `server` of `upstream` (routed by `traffic`)
// serves: the health probe of the service whose traffic block routes it,
// aimed at the server's port; else a TCP connect.
ProbeSpec ReturnProbe(const Spec& spec, const std::string& traffic, const std::string& upstream,
                      const std::string& server) {
  std::string host, port;
  const bool split = SplitHostPort(server, &host, &port);
  for (const auto& [name, c] : spec.components) {
    if (!c.traffic || c.traffic->component != traffic || !c.health.enabled()) continue;
    if ((c.traffic->upstream.empty() ? name : c.traffic->upstream) != upstream) continue;
    if (split && port.size() <= 5) return c.health.ForPort(std::stoi(port));
  }
  ProbeSpec tcp;
  tcp.type = ProbeSpec::Type::kTcp;
  tcp.target = server;
  tcp.timeout_ms = 2'000;
  return tcp;
}

struct Prepared {
  const FallbackSpec* fb = nullptr;
  const ComponentSpec* traffic = nullptr;
  Driver* driver = nullptr;
};

Result<Prepared> Prepare(RunEngine& engine, const Spec& spec) {
  Prepared p;
  if (!spec.fallback) {
    return Status::FailedPrecondition(
        "the spec has no fallback block: name a standby first (fallback: {traffic: COMPONENT, "
        "upstreams: [HOST:PORT], health: PROBE})");
  }
  p.fb = &*spec.fallback;
  p.traffic = spec.Find(p.fb->traffic);
  if (p.traffic == nullptr) {
    return Status::InvalidArgument("fallback.traffic names no component: " + p.fb->traffic);
  }
  BACKSTOP_ASSIGN_OR_RETURN(p.driver, engine.DriverFor(*p.traffic));
  return p;
}

FallbackOutcome Refused(std::string message, FallbackRecord r) {
  FallbackOutcome o;
  o.refused = true;
  o.id = r.id;
  o.message = std::move(message);
  o.record = std::move(r);
  return o;
}

}  // namespace

nlohmann::json FallbackRecord::ToJson() const {
  return {{"id", id},
          {"state", state},
          {"traffic", traffic},
          {"upstream", upstream},
          {"previous", previous},
          {"standby", standby},
          {"since_us", since_us},
          {"since", since_us > 0 ? FormatRfc3339(since_us, false) : ""},
          {"triggered_by", triggered_by},
          {"command", command}};
}

Result<FallbackRecord> FallbackRecord::FromJson(const nlohmann::json& j) {
  FallbackRecord r;
  try {
    r.id = j.at("id").get<std::string>();
    r.state = j.at("state").get<std::string>();
    r.traffic = j.at("traffic").get<std::string>();
    r.upstream = j.at("upstream").get<std::string>();
    r.previous = j.at("previous").get<std::vector<std::string>>();
    r.standby = j.at("standby").get<std::vector<std::string>>();
    r.since_us = j.value("since_us", int64_t{0});
    r.triggered_by = j.value("triggered_by", std::string());
    r.command = j.value("command", std::string());
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("the fallback record in the state database is "
                                          "malformed: ") +
                              e.what());
  }
  if (r.state != "switching" && r.state != "active" && r.state != "returning") {
    return Status::Corruption("the fallback record has an unknown state '" + r.state + "'");
  }
  return r;
}

nlohmann::json FallbackOutcome::ToJson() const {
  return {{"ok", !refused}, {"changed", changed}, {"refused", refused},
          {"id", id},       {"message", message}, {"fallback", record.ToJson()}};
}

Result<std::optional<FallbackRecord>> ActiveFallback(StateDb& db) {
  BACKSTOP_ASSIGN_OR_RETURN(std::optional<std::string> text, db.Get(kRecordKey));
  if (!text) return std::optional<FallbackRecord>();
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_object() && j.empty()) return std::optional<FallbackRecord>();
  BACKSTOP_ASSIGN_OR_RETURN(FallbackRecord r, FallbackRecord::FromJson(j));
  return std::optional<FallbackRecord>(std::move(r));
}

Result<FallbackOutcome> FallBack(RunEngine& engine, const Spec& spec, StateDb& db,
                                 const FallbackOptions& options) {
  BACKSTOP_ASSIGN_OR_RETURN(Prepared p, Prepare(engine, spec));
  DriverContext ctx = engine.Context();
  Env* env = ctx.env;
  BACKSTOP_ASSIGN_OR_RETURN(
      auto lock, EnvironmentLock::Acquire(env, spec.state_dir, {{"command", options.command}}));
  BACKSTOP_ASSIGN_OR_RETURN(std::optional<FallbackRecord> active, ActiveFallback(db));
  FallbackRecord r;
  if (active && active->state == "returning") {
    return Status::FailedPrecondition("a return from fallback " + active->id +
                                      " was interrupted; complete it first with "
                                      "`backstop fallback --back`");
  }
  if (active && active->state == "active") {
    FallbackOutcome o;
    o.id = active->id;
    o.record = *active;
    o.message = "already fallen back (" + active->id + "): " + active->upstream + " of " +
                active->traffic + " goes to " + Servers(active->standby) + " since " +
                FormatRfc3339(active->since_us, false) +
                "; `backstop fallback --back` returns to " + Servers(active->previous);
    return o;
  }
  if (active) {
    r = *active;  // "switching": an interrupted fallback, completed below
  } else {
    const int64_t now = env->clock()->WallMicros();
    r.id = "fallback-" + FormatCompactUtc(now) + "-" + std::to_string(now % 1'000'000);
    r.traffic = p.fb->traffic;
    r.upstream = p.fb->upstream;
    r.standby = p.fb->servers;
    r.triggered_by = options.triggered_by;
    r.command = options.command;
    BACKSTOP_ASSIGN_OR_RETURN(r.previous, p.driver->Routed(*p.traffic, r.upstream, ctx));
    if (r.previous.empty()) {
      return Status::FailedPrecondition(
          "upstream " + r.upstream + " of " + r.traffic +
          " was never routed by Backstop, so there is no recorded routing to return to: route "
          "it through Backstop first (a blue/green deploy does), then fall back");
    }
    if (r.previous == r.standby) {
      return Status::FailedPrecondition("upstream " + r.upstream + " of " + r.traffic +
                                        " already goes to the standby " + Servers(r.standby) +
                                        " (routed outside a fallback); nothing to switch");
    }
  }

  HealthResult health = RunProbe(p.fb->health, env);
  if (!health.pass()) {
    const std::string why = "the standby " + Servers(r.standby) + " failed its health check (" +
                            p.fb->health.Describe() + ": " + health.detail +
                            "); not switching: " + r.upstream + " of " + r.traffic + " stays on " +
                            Servers(r.previous);
    // An interrupted fallback ("switching") stays recorded: the route may
    // have taken, and --back still knows where to return.
    if (!options.dry_run) {
      BACKSTOP_RETURN_IF_ERROR(Journal(db, env, EventKind::kFallbackRefused, r, why, options));
    }
    return Refused(why, r);
  }
  const std::string switch_line = r.upstream + " of " + r.traffic + " from " + Servers(r.previous) +
                                  " to the standby " + Servers(r.standby);
  if (options.dry_run) {
    FallbackOutcome o;
    o.id = r.id;
    o.record = r;
    o.message = "would switch " + switch_line +
                " (the standby passed its health check: " + health.detail + ")";
    return o;
  }
  r.state = "switching";
  if (r.since_us == 0) r.since_us = env->clock()->WallMicros();
  BACKSTOP_RETURN_IF_ERROR(WriteRecord(db, r));
  Status routed = p.driver->Route(*p.traffic, r.upstream, r.standby, ctx);
  if (!routed.ok()) {
    auto now = p.driver->Routed(*p.traffic, r.upstream, ctx);
    if (now.ok() && *now == r.previous) {
      // Refused by nginx -t: nothing changed, nothing in force.
      BACKSTOP_RETURN_IF_ERROR(ClearRecord(db));
      const std::string why = "switching " + switch_line + " was refused: " + routed.message();
      BACKSTOP_RETURN_IF_ERROR(Journal(db, env, EventKind::kFallbackRefused, r, why, options));
      return Refused(why, r);
    }
    return routed.WithContext("fallback " + r.id +
                              " is half done; run `backstop fallback` "
                              "again to complete it, or `backstop fallback --back` to return");
  }
  r.state = "active";
  BACKSTOP_RETURN_IF_ERROR(WriteRecord(db, r));
  FallbackOutcome o;
  o.changed = true;
  o.id = r.id;
  o.record = r;
  o.message = "fell back: switched " + switch_line + "; `backstop fallback --back` returns";
  BACKSTOP_RETURN_IF_ERROR(Journal(db, env, EventKind::kFallbackSwitched, r, o.message, options));
  return o;
}

Result<FallbackOutcome> FallBackReturn(RunEngine& engine, const Spec& spec, StateDb& db,
                                       const FallbackOptions& options) {
  DriverContext ctx = engine.Context();
  Env* env = ctx.env;
  BACKSTOP_ASSIGN_OR_RETURN(
      auto lock, EnvironmentLock::Acquire(env, spec.state_dir, {{"command", options.command}}));
  BACKSTOP_ASSIGN_OR_RETURN(std::optional<FallbackRecord> active, ActiveFallback(db));
  if (!active) {
    return Status::FailedPrecondition("no fallback is in force; nothing to return from");
  }
  FallbackRecord r = *active;
  const ComponentSpec* traffic = spec.Find(r.traffic);
  if (traffic == nullptr) {
    return Status::FailedPrecondition("fallback " + r.id + " switched component " + r.traffic +
                                      ", which the spec no longer has");
  }
  BACKSTOP_ASSIGN_OR_RETURN(Driver * driver, engine.DriverFor(*traffic));
  std::vector<std::string> failing;
  for (const auto& server : r.previous) {
    const ProbeSpec probe = ReturnProbe(spec, r.traffic, r.upstream, server);
    HealthResult h = RunProbe(probe, env);
    if (!h.pass()) failing.push_back(server + " (" + probe.Describe() + ": " + h.detail + ")");
  }
  if (!failing.empty()) {
    const std::string why = "not returning " + r.upstream + " of " + r.traffic + " to " +
                            Servers(r.previous) + ": " + Join(failing, "; ") +
                            " failed the health check; traffic stays on the standby " +
                            Servers(r.standby);
    if (!options.dry_run) {
      BACKSTOP_RETURN_IF_ERROR(Journal(db, env, EventKind::kFallbackRefused, r, why, options));
    }
    return Refused(why, r);
  }
  const std::string back_line =
      r.upstream + " of " + r.traffic + " from the standby back to " + Servers(r.previous);
  if (options.dry_run) {
    FallbackOutcome o;
    o.id = r.id;
    o.record = r;
    o.message = "would return " + back_line + " (every server passed its health check)";
    return o;
  }
  r.state = "returning";
  BACKSTOP_RETURN_IF_ERROR(WriteRecord(db, r));
  Status routed = driver->Route(*traffic, r.upstream, r.previous, ctx);
  if (!routed.ok()) {
    auto now = driver->Routed(*traffic, r.upstream, ctx);
    if (now.ok() && *now == r.standby) {
      r.state = "active";
      BACKSTOP_RETURN_IF_ERROR(WriteRecord(db, r));
      const std::string why = "returning " + back_line + " was refused: " + routed.message();
      BACKSTOP_RETURN_IF_ERROR(Journal(db, env, EventKind::kFallbackRefused, r, why, options));
      return Refused(why, r);
    }
    return routed.WithContext("the return from fallback " + r.id +
                              " is half done; run `backstop fallback --back` again");
  }
  BACKSTOP_RETURN_IF_ERROR(ClearRecord(db));
  FallbackOutcome o;
  o.changed = true;
  o.id = r.id;
  o.record = r;
  o.message = "returned: " + back_line;
  BACKSTOP_RETURN_IF_ERROR(Journal(db, env, EventKind::kFallbackReturned, r, o.message, options));
  return o;
}

}  // namespace backstop

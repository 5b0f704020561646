#include "cli/cli.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <optional>

#include "base/exit_code.h"
#include "base/output.h"
#include "base/units.h"
#include "drivers/driver.h"
#include "run/lock.h"
#include "run/plan.h"
#include "run/prune.h"
#include "run/run.h"
#include "run/state_db.h"
#include "spec/spec.h"
#include "store/restore_point.h"
#include "store/state_dir.h"
#include "store/store.h"
#include "watch/rules.h"
#include "watch/watch.h"

namespace backstop {
namespace {

struct GlobalOptions {
  std::string spec_path;
  std::string output = "text";
};

std::string DefaultSpecPath() {
  const char* env = std::getenv("BACKSTOP_SPEC");
  return env && *env ? env : "backstop.yaml";
}

std::string CommandLine(int argc, char** argv) {
  std::string out = "backstop";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    out += " " + (a.find(' ') == std::string::npos ? a : "'" + a + "'");
  }
  return out;
}

std::string Pad(const std::string& s, size_t width) {
  // Pads by characters as displayed: count UTF-8 lead bytes only.
  size_t shown = 0;
  for (unsigned char ch : s) {
    if ((ch & 0xC0) != 0x80) ++shown;
  }
  return shown >= width ? s + " " : s + std::string(width - shown, ' ');
}

std::string HealthWord(const HealthResult& h) {
  switch (h.state) {
    case HealthResult::State::kPass:
      return "healthy";
    case HealthResult::State::kFail:
      return "unhealthy";
    default:
      return "unknown";
  }
}

// Everything a command that acts on an environment needs, opened in order.
struct Environment {
  Spec spec;
  std::unique_ptr<Store> store;
  std::unique_ptr<StateDb> state;
  std::unique_ptr<RunEngine> engine;
};

Result<std::unique_ptr<Environment>> OpenEnvironment(const GlobalOptions& g, Output& out) {
  auto e = std::make_unique<Environment>();
  BACKSTOP_ASSIGN_OR_RETURN(e->spec, LoadSpec(g.spec_path, DriverRegistry::Global()));
  Env* env = Env::Default();
  BACKSTOP_ASSIGN_OR_RETURN(StateDirReport dir,
                            OpenStateDir(env, e->spec.state_dir, e->spec.store_path));
  if (dir.tightened > 0) out.Error("backstop: " + dir.Message());
  BACKSTOP_ASSIGN_OR_RETURN(e->store, Store::Open(env, e->spec.store_path));
  BACKSTOP_ASSIGN_OR_RETURN(e->state, StateDb::Open(JoinPath(e->spec.state_dir, "state.db")));
  e->engine = std::make_unique<RunEngine>(env, e->spec, *e->store, *e->state,
                                          DriverRegistry::Global(), out);
  return e;
}

int Fail(Output& out, const Status& st) {
  out.Error("backstop: " + st.message());
  if (out.json()) {
    out.Json({{"ok", false}, {"error", st.message()}, {"code", Status::CodeName(st.code())}});
  }
  return ExitCodeFor(st);
}

// Runs every component's health probe concurrently.
std::map<std::string, HealthResult> ProbeAll(Environment& e,
                                             const std::vector<std::string>& names) {
  std::map<std::string, std::future<HealthResult>> pending;
  std::map<std::string, HealthResult> out;
  for (const auto& name : names) {
    const ComponentSpec* c = e.spec.Find(name);
    auto driver = e.engine->DriverFor(*c);
    if (!driver.ok()) {
      HealthResult h;
      h.state = HealthResult::State::kFail;
      h.detail = driver.status().message();
      out[name] = h;
      continue;
    }
    Driver* d = *driver;
    pending[name] = std::async(std::launch::async, [&e, c, d] {
      DriverContext ctx = e.engine->Context();
      return d->Health(*c, ctx);
    });
  }
  for (auto& [name, f] : pending) out[name] = f.get();
  return out;
}

std::string DescribeState(const ComponentSpec& c, const nlohmann::json& d) {
  if (!d.is_object()) return "-";
  if (d.contains("summary") && d["summary"].is_string()) return d["summary"];
  if (d.contains("release")) {
    std::string s =
        d["release"].is_string() ? "release " + d["release"].get<std::string>() : "no release";
    if (d.value("running", false)) {
      s += " (running, pid " + std::to_string(d.value("pid", 0)) + ")";
    } else if (c.kind == "service") {
      s += " (stopped)";
    }
    return s;
  }
  if (d.contains("config_hash") && d["config_hash"].is_string()) {
    return d["config_hash"].get<std::string>().substr(0, 19) + "…";
  }
  if (d.contains("server_version")) {
    std::string s = "PostgreSQL " + d.value("server_version", std::string("?"));
    if (d.contains("size_bytes") && d["size_bytes"].is_number()) {
      s += ", " + FormatThousands(d["size_bytes"].get<uint64_t>() / 1024) + " kB";
    }
    return s;
  }
  if (d.contains("streams") && d["streams"].is_object()) {
    uint64_t messages = 0;
    for (const auto& [name, st] : d["streams"].items())
      messages += st.value("messages", uint64_t{0});
    return std::to_string(d["streams"].size()) + " streams, " + FormatThousands(messages) +
           " messages";
  }
  return "ok";
}

// ---------------------------------------------------------------- commands

int CmdInit(const GlobalOptions& g, Output& out, const std::string& example,
            const std::string& path, bool force) {
  auto text = ExampleSpec(example);
  if (!text.ok()) return Fail(out, text.status());
  Env* env = Env::Default();
  if (env->fs()->Exists(path) && !force) {
    return Fail(out, Status::InvalidArgument(path + " already exists; pass --force to overwrite "
                                                    "it or --file to write elsewhere"));
  }
  Status st = env->fs()->WriteFileAtomic(path, *text, 0644);
  if (!st.ok()) return Fail(out, st);
  out.Line("wrote " + path + " (example " + example + "); check it with `backstop --spec " + path +
           " check`");
  out.Json({{"ok", true}, {"path", path}});
  return kExitOk;
}

int CmdCheck(const GlobalOptions& g, Output& out) {
  auto text = ReadSpecFile(g.spec_path);
  if (!text.ok()) return Fail(out, text.status());
  // One parse when the spec is valid (the list of errors is only needed,
  // and only computed, when it is not): a large spec is read once.
  auto spec = ParseSpec(*text, g.spec_path, DriverRegistry::Global());
  std::vector<SpecError> errors;
  if (!spec.ok()) {
    errors = CheckSpecText(*text, g.spec_path, DriverRegistry::Global());
    if (errors.empty()) return Fail(out, spec.status());
  }
  if (out.json()) {
    nlohmann::json errs = nlohmann::json::array();
    for (const auto& e : errors) {
      errs.push_back({{"file", e.pos.file},
                      {"line", e.pos.line},
                      {"column", e.pos.column},
                      {"key", e.key},
                      {"message", e.message}});
    }
    out.Json({{"ok", errors.empty()}, {"errors", errs}});
  }
  if (!errors.empty()) {
    for (const auto& e : errors) out.Error(e.ToString());
    out.Error(std::to_string(errors.size()) + " error" + (errors.size() == 1 ? "" : "s") + " in " +
              g.spec_path);
    return kExitInvalid;
  }
  out.Text(g.spec_path + ": ok — environment " + spec->environment + ", " +
           std::to_string(spec->components.size()) + " components, " +
           std::to_string(spec->triggers.size()) + " triggers" +
           (spec->triggers_defaulted ? " (the seed's defaults)" : "") + ", " +
           std::to_string(spec->decision_matrix.size()) + " decision rules");
  std::string order;
  for (const auto& n : DependencyOrder(*spec)) order += (order.empty() ? "" : " → ") + n;
  out.Text("start order: " + order);
  return kExitOk;
}

int CmdStatus(const GlobalOptions& g, Output& out) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  std::vector<std::string> order = DependencyOrder(e.spec);
  std::map<std::string, HealthResult> health = ProbeAll(e, order);
  nlohmann::json doc;
  doc["environment"] = e.spec.environment;
  doc["components"] = nlohmann::json::array();
  out.Text("Environment " + e.spec.environment + " (" + e.spec.path + ")");
  out.Text(Pad("COMPONENT", 14) + Pad("KIND", 10) + Pad("DRIVER", 10) + Pad("STATE", 34) +
           "HEALTH");
  for (const auto& name : order) {
    const ComponentSpec* c = e.spec.Find(name);
    nlohmann::json described;
    auto driver = e.engine->DriverFor(*c);
    if (driver.ok()) {
      DriverContext ctx = e.engine->Context();
      auto d = (*driver)->Describe(*c, ctx);
      described = d.ok() ? *d : nlohmann::json{{"summary", d.status().message()}};
    }
    const HealthResult& h = health[name];
    std::string health_text = HealthWord(h);
    if (!h.detail.empty()) health_text += " (" + h.detail + ")";
    out.Text(Pad(name, 14) + Pad(c->kind, 10) + Pad(c->driver, 10) +
             Pad(DescribeState(*c, described), 34) + health_text);
    doc["components"].push_back({{"name", name},
                                 {"kind", c->kind},
                                 {"driver", c->driver},
                                 {"state", described},
                                 {"health", HealthWord(h)},
                                 {"health_detail", h.detail},
                                 {"latency_ms", h.latency_ms}});
  }
  nlohmann::json holder = EnvironmentLock::CurrentHolder(e.spec.state_dir);
  if (!holder.is_null()) {
    out.Text("In progress: run " + holder.value("run_id", std::string("?")) + " (pid " +
             std::to_string(holder.value("pid", 0)) + ", `" + holder.value("command", "") + "`)");
    doc["in_progress"] = holder;
  }
  auto unfinished = e.state->UnfinishedRuns();
  doc["unfinished_runs"] = nlohmann::json::array();
  if (unfinished.ok()) {
    for (const auto& r : *unfinished) {
      if (!holder.is_null() && holder.value("run_id", "") == r.id) continue;
      auto steps = e.state->GetSteps(r.id);
      std::string where;
      if (steps.ok()) {
        for (const auto& s : *steps) {
          if (s.status != "done") {
            where = "at step " + std::to_string(s.index + 1) + "/" + std::to_string(steps->size()) +
                    " (" + s.description + ")";
            break;
          }
        }
      }
      out.Text("UNFINISHED run " + r.id + " (`" + r.command + "`) was interrupted " + where +
               ". Resume it: backstop rollback --resume " + r.id);
      doc["unfinished_runs"].push_back({{"id", r.id}, {"command", r.command}, {"where", where}});
    }
  }
  auto runs = e.state->ListRuns(1);
  if (runs.ok() && !runs->empty()) {
    const RunRecord& r = runs->front();
    out.Text("Last run: " + r.id + " " + r.kind + " " + r.status + " (" +
             FormatRfc3339(r.started_us) + ")");
    doc["last_run"] = {{"id", r.id}, {"kind", r.kind}, {"status", r.status}};
    // A run that failed after changing something left the environment
    // part-way: say so as loudly as an interrupted one.
    if (r.status == "failed" && r.error.find("--resume") != std::string::npos) {
      out.Text("FAILED PART-WAY: " + r.error.substr(0, r.error.find('\n')));
      out.Text("  " + r.error.substr(r.error.find('\n') + 1));
      doc["last_run"]["error"] = r.error;
    }
  }
  auto latest = ResolveRestorePoint(*e.store, "latest");
  if (latest.ok()) {
    out.Text("Latest restore point: " + latest->id +
             (latest->label.empty() ? "" : " (" + latest->label + ")") + " " +
             FormatRfc3339(latest->created_wall_us));
    doc["latest_restore_point"] = latest->id;
  }
  out.Json(doc);
  return kExitOk;
}

int CmdSnapshot(const GlobalOptions& g, Output& out, const std::string& label,
                const std::vector<std::string>& components, int argc, char** argv) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  Env* env = Env::Default();
  // A snapshot must not interleave with a rollback of the same environment.
  auto lock =
      EnvironmentLock::Acquire(env, e.spec.state_dir, {{"command", CommandLine(argc, argv)}});
  if (!lock.ok()) return Fail(out, lock.status());
  int64_t t0 = env->clock()->NowMicros();
  auto rp = TakeRestorePoint(*e.engine, e.spec, *e.store, components, label, "manual", "", "");
  if (!rp.ok()) return Fail(out, rp.status().WithContext("snapshot"));
  // Keep the stat cache even if this process is killed later.
  (void)e.store->FlushCache();
  int64_t ms = (env->clock()->NowMicros() - t0) / 1000;
  out.Line("restore point " + rp->id + (label.empty() ? "" : " (" + label + ")") + " taken in " +
           FormatDurationMs(ms));
  for (const auto& [name, entry] : rp->components.items()) {
    std::string what;
    if (entry.contains("release")) {
      what = entry["release"].is_string() ? "release " + entry["release"].get<std::string>()
                                          : "no release";
    }
    if (entry.contains("config_hash")) {
      what += (what.empty() ? "" : ", ") + entry["config_hash"].get<std::string>();
    }
    if (what.empty()) {
      what = std::to_string(entry.value("blobs", nlohmann::json::array()).size()) + " blobs";
    }
    out.Line("  " + Pad(name, 14) + what);
  }
  out.Line("checksum " + rp->checksum);
  out.Json({{"ok", true}, {"restore_point", rp->ToJson()}, {"duration_ms", ms}});
  return kExitOk;
}

int CmdSnapshots(const GlobalOptions& g, Output& out) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  std::vector<std::string> errors;
  std::vector<RestorePoint> rps = ListRestorePoints(*e.store, &errors);
  nlohmann::json doc = nlohmann::json::array();
  out.Text(Pad("ID", 38) + Pad("LABEL", 22) + Pad("KIND", 8) + Pad("TAKEN", 22) + "COMPONENTS");
  for (const auto& rp : rps) {
    std::string comps;
    for (const auto& [name, entry] : rp.components.items()) {
      comps += (comps.empty() ? "" : ",") + name;
    }
    out.Text(Pad(rp.id, 38) + Pad(rp.label.empty() ? "-" : rp.label, 22) + Pad(rp.kind, 8) +
             Pad(FormatRfc3339(rp.created_wall_us), 22) + comps);
    doc.push_back({{"id", rp.id},
                   {"label", rp.label},
                   {"kind", rp.kind},
                   {"timestamp", FormatRfc3339(rp.created_wall_us)},
                   {"components", rp.components.size()}});
  }
  for (const auto& err : errors) out.Error("warning: " + err);
  if (rps.empty()) out.Text("(no restore points yet: `backstop snapshot --label NAME` takes one)");
  out.Json({{"restore_points", doc}, {"errors", errors}});
  return kExitOk;
}

int CmdSnapshotsVerify(const GlobalOptions& g, Output& out, const std::string& selector) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  // Resolve without trusting the manifest's checksum: verification reports it.
  auto id = ResolveRestorePointId(*e.store, selector, /*include_safety=*/true);
  if (!id.ok()) return Fail(out, id.status());
  auto rp = ReadRestorePoint(*e.store, *id, /*check_checksum=*/false);
  if (!rp.ok()) return Fail(out, rp.status());
  RestorePointCheck check = VerifyRestorePoint(*e.store, *rp);
  nlohmann::json failures = nlohmann::json::array();
  out.Text(std::string(check.manifest_ok ? Output::Ok() : Output::Fail()) + " manifest " + rp->id +
           (check.manifest_ok ? " checksum matches" : ": " + check.manifest_detail));
  size_t ok_count = 0;
  for (const auto& b : check.blobs) {
    if (b.state == BlobCheck::State::kOk) {
      ++ok_count;
      continue;
    }
    out.Text(std::string(Output::Fail()) + " " + BlobCheck::StateName(b.state) + " blob " +
             b.digest + ": " + b.detail);
    failures.push_back(
        {{"digest", b.digest}, {"state", BlobCheck::StateName(b.state)}, {"detail", b.detail}});
  }
  out.Text(std::to_string(ok_count) + "/" + std::to_string(check.blobs.size()) + " blobs intact");
  // What the restore point needs outside the store (a staged or a retained
  // database) must be there too, or it cannot restore.
  nlohmann::json unrestorable = nlohmann::json::array();
  for (const auto& [name, entry] : rp->components.items()) {
    const ComponentSpec* c = e.spec.Find(name);
    if (c == nullptr) continue;
    auto driver = e.engine->DriverFor(*c);
    if (!driver.ok()) continue;
    DriverContext ctx = e.engine->Context();
    Status st = (*driver)->CheckRestorable(*c, entry, ctx);
    if (st.ok()) continue;
    out.Text(std::string(Output::Fail()) + " " + name + ": " + st.message());
    unrestorable.push_back({{"component", name}, {"detail", st.message()}});
  }
  const bool ok = check.ok() && unrestorable.empty();
  out.Json({{"ok", ok},
            {"restore_point", rp->id},
            {"manifest_ok", check.manifest_ok},
            {"manifest_detail", check.manifest_detail},
            {"blobs", check.blobs.size()},
            {"failures", failures},
            {"unrestorable", unrestorable}});
  if (!check.ok()) {
    out.Error("restore point " + rp->id + " is damaged; a rollback to it will be refused");
    return kExitFailed;
  }
  if (!unrestorable.empty()) {
    out.Error("restore point " + rp->id + " can no longer restore " +
              std::to_string(unrestorable.size()) + " component(s); a rollback to it will fail");
    return kExitFailed;
  }
  out.Text(std::to_string(rp->components.size()) + " components restorable");
  return kExitOk;
}

void PrintOutcome(Output& out, const RunOutcome& o) {
  out.Text("");
  std::string head = o.succeeded() ? std::string(Output::Ok()) + " Run " + o.run_id +
                                         " succeeded in " + FormatDurationMs(o.duration_ms)
                                   : std::string(Output::Fail()) + " Run " + o.run_id +
                                         " FAILED after " + FormatDurationMs(o.duration_ms);
  out.Text(head);
  const nlohmann::json& s = o.summary;
  out.Text("  Target:    " + s.value("target", std::string()));
  std::string affected;
  for (const auto& a : s.value("affected", std::vector<std::string>{})) {
    affected += (affected.empty() ? "" : ", ") + a;
  }
  out.Text("  Affected:  " + affected);
  out.Text("  " + s.value("data_loss_summary", std::string("Data loss: none")));
  for (const auto& f : s.value("data_loss", nlohmann::json::object())
                           .value("ledger_files", std::vector<std::string>{})) {
    out.Text("             ledger: " + f);
  }
  if (s.contains("health") && s["health"].is_object()) {
    for (const auto& [name, h] : s["health"].items()) {
      out.Text("  Verified:  " + Pad(name, 14) + h.get<std::string>());
    }
  }
  // After a failure that changed something: where each component is now.
  if (s.contains("components") && s["components"].is_object()) {
    for (const auto& [name, where] : s["components"].items()) {
      std::string line;
      if (where.contains("release")) {
        line = where["release"].is_string() ? "release " + where["release"].get<std::string>()
                                            : "no release";
      }
      if (where.contains("running")) {
        line += std::string(line.empty() ? "" : ", ") +
                (where.value("running", false) ? "running" : "STOPPED");
      }
      line += (line.empty() ? "" : ", ") + where.value("health", std::string("unknown"));
      out.Text("  Now:       " + Pad(name, 14) + line);
    }
  }
  std::string safety = s.value("safety_restore_point", "");
  if (!safety.empty()) {
    out.Text("  Undo:      backstop rollback --all --to " + safety + " (safety restore point)");
  }
  if (!o.succeeded()) out.Error(o.error);
  out.Json({{"ok", o.succeeded()}, {"run", o.run_id}, {"summary", s}});
}

int CmdPlan(const GlobalOptions& g, Output& out, const RollbackRequest& req) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  DriverContext ctx = e.engine->Context();
  auto plan = PlanRollback(e.spec, req, *e.store, *e.state, DriverRegistry::Global(), ctx);
  if (!plan.ok()) return Fail(out, plan.status());
  out.Text(plan->Describe());
  out.Json({{"ok", true}, {"plan", plan->ToJson()}});
  return kExitOk;
}

struct RollbackFlags {
  RollbackRequest request;
  std::string env;
  bool confirm = false;
  bool dry_run = false;
  bool accept_data_loss = false;
  bool force = false;
  std::string resume;
  std::string abandon;
};

int CmdRollback(const GlobalOptions& g, Output& out, const RollbackFlags& f,
                const std::string& command) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  if (!f.env.empty() && f.env != e.spec.environment) {
    return Fail(out, Status::InvalidArgument("--env " + f.env + " does not match the spec's " +
                                             "environment '" + e.spec.environment + "' (" +
                                             e.spec.path + ")"));
  }
  RunOptions options;
  options.command = command;
  options.accept_data_loss = f.accept_data_loss;
  if (!f.abandon.empty()) {
    Status st = e.engine->Abandon(f.abandon);
    if (!st.ok()) return Fail(out, st);
    out.Line("run " + f.abandon + " abandoned; check the components with `backstop status`");
    out.Json({{"ok", true}});
    return kExitOk;
  }
  if (!f.resume.empty()) {
    auto outcome = e.engine->Resume(f.resume, options);
    if (!outcome.ok()) return Fail(out, outcome.status());
    PrintOutcome(out, *outcome);
    return outcome->succeeded() ? kExitOk : kExitFailed;
  }
  DriverContext ctx = e.engine->Context();
  auto plan = PlanRollback(e.spec, f.request, *e.store, *e.state, DriverRegistry::Global(), ctx);
  if (!plan.ok()) return Fail(out, plan.status());
  if (f.dry_run) {
    out.Line(plan->Describe());
    out.Line("(dry run: nothing was changed)");
    out.Json({{"ok", true}, {"dry_run", true}, {"plan", plan->ToJson()}});
    return kExitOk;
  }
  if (!f.force) {
    Status unhealthy = RefuseUnhealthyTargets(*plan);
    if (!unhealthy.ok()) return Fail(out, unhealthy);
  }
  if (e.spec.requires_confirm && !f.confirm) {
    out.Line(plan->Describe());
    return Fail(out, Status::Aborted("environment '" + e.spec.environment +
                                     "' is protected: this would roll back " +
                                     std::to_string(plan->affected.size()) +
                                     " component(s). Review the plan above and rerun with "
                                     "--confirm"));
  }
  auto outcome = e.engine->Start(*plan, options);
  if (!outcome.ok()) return Fail(out, outcome.status());
  PrintOutcome(out, *outcome);
  if (outcome->succeeded()) return kExitOk;
  // A refusal before anything was touched (data loss over the limit, a damaged
  // restore point) is a refusal, not a failure.
  bool refused = !outcome->changed_anything && (outcome->failure == Status::Code::kDataLoss ||
                                                outcome->failure == Status::Code::kCorruption ||
                                                outcome->failure == Status::Code::kAborted);
  return refused ? kExitRefused : kExitFailed;
}

int CmdDeploy(const GlobalOptions& g, Output& out, const std::string& component,
              const std::string& release, const std::string& command) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  DriverContext ctx = e.engine->Context();
  auto plan = PlanDeploy(e.spec, component, release, DriverRegistry::Global(), ctx);
  if (!plan.ok()) return Fail(out, plan.status());
  RunOptions options;
  options.command = command;
  auto outcome = e.engine->Start(*plan, options);
  if (!outcome.ok()) return Fail(out, outcome.status());
  PrintOutcome(out, *outcome);
  return outcome->succeeded() ? kExitOk : kExitFailed;
}

int CmdHistory(const GlobalOptions& g, Output& out, const std::string& component) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  if (e.spec.Find(component) == nullptr) {
    return Fail(out, Status::InvalidArgument("no component named '" + component + "'"));
  }
  auto history = e.state->History(component);
  if (!history.ok()) return Fail(out, history.status());
  out.Text(Pad("REVISION", 10) + Pad("UPDATED", 22) + Pad("STATUS", 12) + Pad("RELEASE", 12) +
           "DESCRIPTION");
  nlohmann::json doc = nlohmann::json::array();
  for (const auto& h : *history) {
    out.Text(Pad(std::to_string(h.revision), 10) + Pad(FormatRfc3339(h.at_us), 22) +
             Pad(h.status, 12) + Pad(h.release, 12) + h.description);
    doc.push_back({{"revision", h.revision},
                   {"updated", FormatRfc3339(h.at_us)},
                   {"status", h.status},
                   {"release", h.release},
                   {"run", h.run_id},
                   {"description", h.description}});
  }
  if (history->empty()) out.Text("(no deploys recorded for " + component + ")");
  out.Json({{"component", component}, {"history", doc}});
  return kExitOk;
}

// Which restore point `verify --data` may compare row counts with: the one
// named by --against, or the one the last run rolled back to when that run
// succeeded (nothing was deployed or rolled back since). Otherwise none:
// ordinary traffic changes the counts, so only what must hold whatever is
// written is checked (CheckInvariants).
Result<std::optional<RestorePoint>> CountsBaseline(Environment& e, const std::string& against,
                                                   std::string* why) {
  if (!against.empty()) {
    BACKSTOP_ASSIGN_OR_RETURN(RestorePoint rp,
                              ResolveRestorePoint(*e.store, against, /*include_safety=*/true));
    *why = "row counts against restore point " + rp.id + " (--against)";
    return std::optional<RestorePoint>(std::move(rp));
  }
  BACKSTOP_ASSIGN_OR_RETURN(auto runs, e.state->ListRuns(1));
  if (!runs.empty() && runs.front().kind == "rollback" && runs.front().status == "succeeded" &&
      !runs.front().restore_point.empty()) {
    auto rp = ReadRestorePoint(*e.store, runs.front().restore_point);
    if (rp.ok()) {
      *why = "row counts against restore point " + rp->id + " (the last run, " + runs.front().id +
             ", rolled back to it)";
      return std::optional<RestorePoint>(std::move(rp).value());
    }
  }
  *why =
      "keys, orphans and integrity queries (row counts only right after a rollback, or with "
      "--against RESTORE_POINT)";
  return std::optional<RestorePoint>();
}

int CmdVerify(const GlobalOptions& g, Output& out, bool data, const std::string& against) {
  if (!against.empty() && !data) {
    return Fail(out, Status::InvalidArgument(
                         "--against compares the data with a restore point: use it with --data"));
  }
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  std::vector<std::string> order = DependencyOrder(e.spec);
  std::map<std::string, HealthResult> health = ProbeAll(e, order);
  bool all_ok = true;
  nlohmann::json doc = nlohmann::json::array();
  for (const auto& name : order) {
    const ComponentSpec* c = e.spec.Find(name);
    const HealthResult& h = health[name];
    // A component with no probe and no driver health has nothing to verify.
    bool ok = HealthAcceptable(*c, h);
    all_ok = all_ok && ok;
    std::string what = c->health.enabled() ? c->health.Describe() : c->driver;
    out.Text(std::string(ok ? Output::Ok() : Output::Fail()) + " " + Pad(name, 14) + Pad(what, 44) +
             Pad(HealthWord(h) + (h.detail.empty() ? "" : ": " + h.detail), 40) +
             std::to_string(h.latency_ms) + " ms");
    doc.push_back({{"component", name},
                   {"check", what},
                   {"result", HealthWord(h)},
                   {"detail", h.detail},
                   {"latency_ms", h.latency_ms},
                   {"ok", ok}});
  }
  nlohmann::json integrity = nlohmann::json::array();
  if (data) {
    std::string why;
    auto baseline = CountsBaseline(e, against, &why);
    if (!baseline.ok()) return Fail(out, baseline.status());
    out.Text("data: " + why);
    auto latest = ResolveRestorePoint(*e.store, "latest");
    for (const auto& name : order) {
      const ComponentSpec* c = e.spec.Find(name);
      if (c->kind != "database" && c->kind != "stream") continue;
      auto driver = e.engine->DriverFor(*c);
      if (!driver.ok()) continue;
      DriverContext ctx = e.engine->Context();
      const RestorePoint* from = baseline->has_value() ? &**baseline
                                 : latest.ok()         ? &*latest
                                                       : nullptr;
      nlohmann::json entry = from != nullptr && from->components.contains(name)
                                 ? from->components[name]
                                 : nlohmann::json();
      auto checks = baseline->has_value() ? (*driver)->CheckIntegrity(*c, entry, ctx)
                                          : (*driver)->CheckInvariants(*c, entry, ctx);
      if (!checks.ok()) {
        all_ok = false;
        out.Text(std::string(Output::Fail()) + " " + Pad(name, 14) +
                 "integrity: " + checks.status().message());
        integrity.push_back(
            {{"component", name}, {"ok", false}, {"detail", checks.status().message()}});
        continue;
      }
      for (const auto& chk : *checks) {
        all_ok = all_ok && chk.passed;
        out.Text(std::string(chk.passed ? Output::Ok() : Output::Fail()) + " " + Pad(name, 14) +
                 Pad(chk.name, 44) + chk.detail);
        integrity.push_back(
            {{"component", name}, {"check", chk.name}, {"ok", chk.passed}, {"detail", chk.detail}});
      }
    }
  }
  out.Text(all_ok ? "all checks passed" : "some checks FAILED");
  out.Json({{"ok", all_ok}, {"components", doc}, {"integrity", integrity}});
  return all_ok ? kExitOk : kExitFailed;
}

int CmdRuns(const GlobalOptions& g, Output& out) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  auto runs = e.state->ListRuns(50);
  if (!runs.ok()) return Fail(out, runs.status());
  out.Text(Pad("RUN", 32) + Pad("KIND", 10) + Pad("STATUS", 11) + Pad("STARTED", 22) +
           Pad("TOOK", 10) + "COMMAND");
  nlohmann::json doc = nlohmann::json::array();
  for (const auto& r : *runs) {
    std::string took = r.ended_us > 0 ? FormatDurationMs((r.ended_us - r.started_us) / 1000) : "-";
    out.Text(Pad(r.id, 32) + Pad(r.kind, 10) + Pad(r.status, 11) +
             Pad(FormatRfc3339(r.started_us), 22) + Pad(took, 10) + r.command);
    doc.push_back({{"id", r.id},
                   {"kind", r.kind},
                   {"status", r.status},
                   {"started", FormatRfc3339(r.started_us)},
                   {"command", r.command},
                   {"summary", r.summary}});
  }
  out.Json({{"runs", doc}});
  return kExitOk;
}

// ---- ledger and salvage: what a rollback discarded ----

// One ledger line as the table shows it: the object (table or stream), the
// change, and the key or sequence that names the row or message.
struct LedgerRow {
  std::string component;
  std::string object;
  std::string change;
  std::string key;
  nlohmann::json line;
};

std::string LedgerKey(const nlohmann::json& l) {
  for (const char* field : {"key", "sequence", "row_md5", "count"}) {
    if (!l.contains(field)) continue;
    const nlohmann::json& v = l[field];
    return v.is_string() ? v.get<std::string>() : v.dump();
  }
  return "";
}

// Whether `object` ("public.orders", "ORDERS") is what the user named
// ("orders" matches "public.orders").
bool ObjectMatches(const std::string& object, const std::string& wanted) {
  if (wanted.empty() || object == wanted) return true;
  return object.size() > wanted.size() &&
         object.compare(object.size() - wanted.size() - 1, std::string::npos, "." + wanted) == 0;
}

// Every line of every ledger-<component>.jsonl in the run's directory.
Result<std::vector<LedgerRow>> ReadLedgers(FileSystem* fs, const std::string& run_dir) {
  std::vector<LedgerRow> rows;
  auto names = fs->ListDir(run_dir);
  if (!names.ok()) {
    if (names.status().IsNotFound()) return rows;
    return names.status();
  }
  std::vector<std::string> sorted = *names;
  std::sort(sorted.begin(), sorted.end());
  const std::string kPrefix = "ledger-", kSuffix = ".jsonl";
  for (const auto& name : sorted) {
    if (name.size() <= kPrefix.size() + kSuffix.size() || name.rfind(kPrefix, 0) != 0 ||
        name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
      continue;
    }
    std::string component =
        name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
    BACKSTOP_ASSIGN_OR_RETURN(auto lines, ReadJsonLines(fs, JoinPath(run_dir, name)));
    for (const auto& l : lines) {
      if (!l.is_object()) continue;
      LedgerRow r;
      r.component = component;
      r.object = l.contains("table") ? l.value("table", "") : l.value("stream", "");
      r.change = l.contains("change") ? l.value("change", "") : l.value("event", "");
      r.key = LedgerKey(l);
      r.line = l;
      rows.push_back(std::move(r));
    }
  }
  return rows;
}

// `backstop ledger RUN [--table T | --stream S]`: the run's data-loss ledger
// (one row per discarded row or message) and its summary with the positions
// it moved back.
int CmdLedger(const GlobalOptions& g, Output& out, const std::string& selector,
              const std::string& table, const std::string& stream) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  auto run_id = e.state->ResolveRunId(selector);
  if (!run_id.ok()) return Fail(out, run_id.status());
  auto run = e.state->GetRun(*run_id);
  if (!run.ok()) return Fail(out, run.status());
  std::string run_dir = JoinPath(JoinPath(e.spec.state_dir, "runs"), *run_id);
  auto rows = ReadLedgers(Env::Default()->fs(), run_dir);
  if (!rows.ok()) return Fail(out, rows.status().WithContext("ledger of " + *run_id));
  const std::string wanted = table.empty() ? stream : table;
  DataLossReport loss;
  if (run->summary.is_object() && run->summary.contains("data_loss")) {
    loss = DataLossReport::FromJson(run->summary["data_loss"]);
  }
  out.Text("Run " + *run_id + " (" + run->status + ", `" + run->command + "`)");
  out.Text(Pad("COMPONENT", 14) + Pad("OBJECT", 28) + Pad("CHANGE", 12) + "KEY/SEQUENCE");
  nlohmann::json lines = nlohmann::json::array();
  size_t discarded = 0;
  // The table a rewound sequence belongs to, when its ledger line names it.
  std::map<std::string, std::string> sequence_table;
  for (const auto& r : *rows) {
    if (r.change == "rewound" && !r.object.empty()) {
      sequence_table[r.line.value("sequence", "")] = r.object;
    }
    if (!ObjectMatches(r.object, wanted)) continue;
    bool is_stream = r.line.contains("stream");
    if ((!table.empty() && is_stream) || (!stream.empty() && !is_stream)) continue;
    nlohmann::json l = r.line;
    l["component"] = r.component;
    lines.push_back(l);
    // Positions moved back are shown below, from and to, with the others.
    if (r.change == "rewound") continue;
    ++discarded;
    out.Text(Pad(r.component, 14) + Pad(r.object, 28) + Pad(r.change, 12) + r.key);
  }
  // Positions moved back are not discarded data, but the operator must see
  // them beside it: messages redelivered, sequence values handed out again.
  for (const auto& r : loss.rewinds) {
    bool is_stream = r.object.find('/') != std::string::npos;
    if ((!table.empty() && is_stream) || (!stream.empty() && !is_stream)) continue;
    std::string owner = is_stream ? r.object.substr(0, r.object.find('/')) : r.object;
    if (auto t = sequence_table.find(r.object); t != sequence_table.end()) owner = t->second;
    if (!wanted.empty() && !ObjectMatches(owner, wanted) && !ObjectMatches(r.object, wanted)) {
      continue;
    }
    out.Text(Pad(r.component, 14) + Pad(r.object, 28) + Pad("rewound", 12) +
             std::to_string(r.from) + " -> " + std::to_string(r.to) + " (" +
             FormatThousands(r.count()) + " " + r.unit + ")");
  }
  if (discarded == 0) {
    out.Text(wanted.empty() ? "(nothing discarded: the ledger is empty)"
                            : "(nothing discarded from " + wanted + ")");
  }
  out.Text(loss.Summary());
  out.Json({{"ok", true},
            {"run", *run_id},
            {"status", run->status},
            {"lines", lines},
            {"summary", loss.Summary()},
            {"data_loss", loss.ToJson()}});
  return kExitOk;
}

struct SalvageFlags {
  std::string run;
  std::string component;
  std::string table;
  std::string stream;
  std::string where;
  std::string keys_file;
  std::string output_path;
  bool apply = false;
  bool confirm = false;
};

// `backstop salvage RUN --component C (--table T | --stream S)`: exports what
// the run discarded from C (and with --apply writes it back) through the
// component's driver.
int CmdSalvage(const GlobalOptions& g, Output& out, const SalvageFlags& f,
               const std::string& command) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  const ComponentSpec* c = e.spec.Find(f.component);
  if (c == nullptr) {
    return Fail(out, Status::InvalidArgument("no component named '" + f.component +
                                             "' in the spec (" + e.spec.path + ")"));
  }
  if (!f.table.empty() && c->kind != "database") {
    return Fail(out, Status::InvalidArgument("--table is for a database component; " + c->name +
                                             " is a " + c->kind + " component"));
  }
  if (!f.stream.empty() && c->kind != "stream") {
    return Fail(out, Status::InvalidArgument("--stream is for a stream component; " + c->name +
                                             " is a " + c->kind + " component"));
  }
  if (f.apply && e.spec.requires_confirm && !f.confirm) {
    return Fail(out, Status::Aborted("environment '" + e.spec.environment +
                                     "' is protected: --apply writes into " + c->name +
                                     "; run without --apply to review the export, then rerun "
                                     "with --confirm"));
  }
  auto run_id = e.state->ResolveRunId(f.run);
  if (!run_id.ok()) return Fail(out, run_id.status());
  SalvageRequest req;
  req.run_id = *run_id;
  req.run_dir = JoinPath(JoinPath(e.spec.state_dir, "runs"), *run_id);
  req.object = f.table.empty() ? f.stream : f.table;
  req.where = f.where;
  req.apply = f.apply;
  if (!f.keys_file.empty()) {
    FileSystem* fs = Env::Default()->fs();
    if (!fs->Exists(f.keys_file)) {
      return Fail(out, Status::InvalidArgument("--keys " + f.keys_file +
                                               ": no such file (one key or ledger line a line)"));
    }
    auto keys = ReadJsonLines(fs, f.keys_file);
    if (!keys.ok()) {
      return Fail(out,
                  Status::InvalidArgument("--keys " + f.keys_file + ": " + keys.status().message() +
                                          " (one JSON key or ledger line a line)"));
    }
    req.keys = *keys;
  }
  std::string safe_object = req.object;
  std::replace(safe_object.begin(), safe_object.end(), '/', '_');
  req.output_path = !f.output_path.empty()
                        ? f.output_path
                        : "salvage-" + *run_id + "-" + c->name + "-" + safe_object + ".jsonl";
  std::unique_ptr<EnvironmentLock> lock;
  if (f.apply) {
    auto acquired =
        EnvironmentLock::Acquire(Env::Default(), e.spec.state_dir, {{"command", command}});
    if (!acquired.ok()) return Fail(out, acquired.status());
    lock = std::move(*acquired);
  }
  auto driver = e.engine->DriverFor(*c);
  if (!driver.ok()) return Fail(out, driver.status());
  DriverContext ctx = e.engine->Context();
  auto result = (*driver)->Salvage(*c, req, ctx);
  if (!result.ok()) return Fail(out, result.status().WithContext("salvage " + c->name));
  out.Text("exported " + FormatThousands(result->exported) + " " +
           (c->kind == "stream" ? "messages" : "rows") + " of " + req.object + " discarded by " +
           *run_id + " to " + req.output_path);
  for (const auto& conflict : result->conflicts) out.Error("conflict: " + conflict);
  bool ok = result->conflicts.empty();
  if (f.apply) {
    out.Text(ok ? "applied " + FormatThousands(result->applied) + " back into " + c->name
                : "applied nothing: " + std::to_string(result->conflicts.size()) +
                      " conflict(s); resolve them or narrow the choice with --where/--keys");
  }
  out.Json({{"ok", ok},
            {"run", *run_id},
            {"component", c->name},
            {"object", req.object},
            {"output", req.output_path},
            {"exported", result->exported},
            {"applied", result->applied},
            {"conflicts", result->conflicts}});
  return ok ? kExitOk : kExitFailed;
}
// ---- end ledger and salvage ----

// Starts or stops services directly (operator convenience, outside any run):
// in dependency order to start, reverse order to stop; under the lock.
int CmdStartStop(const GlobalOptions& g, Output& out, bool start,
                 const std::vector<std::string>& only, const std::string& command) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  auto lock = EnvironmentLock::Acquire(Env::Default(), e.spec.state_dir, {{"command", command}});
  if (!lock.ok()) return Fail(out, lock.status());
  std::vector<std::string> order = DependencyOrder(e.spec);
  if (!start) std::reverse(order.begin(), order.end());
  for (const auto& name : only) {
    if (e.spec.Find(name) == nullptr) {
      return Fail(out, Status::InvalidArgument("no component named '" + name + "'"));
    }
  }
  bool all_ok = true;
  for (const auto& name : order) {
    const ComponentSpec* c = e.spec.Find(name);
    if (c->kind != "service") continue;
    if (!only.empty() && std::find(only.begin(), only.end(), name) == only.end()) continue;
    auto driver = e.engine->DriverFor(*c);
    if (!driver.ok()) return Fail(out, driver.status());
    DriverContext ctx = e.engine->Context();
    Status st = start ? (*driver)->Start(*c, ctx) : (*driver)->Stop(*c, ctx);
    if (st.ok() && start) {
      int attempts = 0;
      HealthResult h = e.engine->WaitUntilHealthy(*c, ctx, &attempts);
      if (!HealthAcceptable(*c, h)) {
        st = Status::Unavailable("started but unhealthy: " + h.detail);
      }
    }
    out.Line(std::string(st.ok() ? Output::Ok() : Output::Fail()) + " " +
             (start ? "start " : "stop ") + name + (st.ok() ? "" : ": " + st.message()));
    all_ok = all_ok && st.ok();
  }
  out.Json({{"ok", all_ok}});
  return all_ok ? kExitOk : kExitFailed;
}

int CmdPrune(const GlobalOptions& g, Output& out, const PruneOptions& options,
             const std::string& command) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  auto lock = EnvironmentLock::Acquire(Env::Default(), e.spec.state_dir, {{"command", command}});
  if (!lock.ok()) return Fail(out, lock.status());
  auto report = PruneEnvironment(*e.engine, e.spec, *e.store, *e.state, options);
  if (!report.ok()) return Fail(out, report.status());
  for (const auto& a : report->actions) out.Text((options.dry_run ? "would " : "") + a);
  for (const auto& err : report->errors) out.Error("warning: " + err);
  if (report->actions.empty()) out.Text("nothing to prune");
  out.Json({{"ok", report->errors.empty()},
            {"dry_run", options.dry_run},
            {"actions", report->actions},
            {"errors", report->errors},
            {"blobs_deleted", report->blobs_deleted},
            {"bytes_freed", report->bytes_freed}});
  return report->errors.empty() ? kExitOk : kExitFailed;
}

// ---- test-rules (rules.h; owned by the rules engine) ----
// `backstop test-rules FILE`: replays the file's sample series against the
// trigger rules. Exit 0 all expectations met, 1 some failed, 2 bad file.
int CmdTestRules(Output& out, const std::string& file) {
  auto result = RunRuleTests(file);
  if (!result.ok()) return Fail(out, result.status());
  for (const auto& f : result->failures) out.Text(std::string(Output::Fail()) + " " + f);
  const bool ok = result->failures.empty();
  out.Text(std::to_string(result->cases) + " test cases, " + std::to_string(result->expectations) +
           " expectations: " +
           (ok ? "all passed" : std::to_string(result->failures.size()) + " FAILED"));
  out.Json({{"ok", ok},
            {"cases", result->cases},
            {"expectations", result->expectations},
            {"failures", result->failures}});
  return ok ? kExitOk : kExitFailed;
}
// ---- end test-rules ----

// ---- watch (watch.h; owned by the watch daemon) ----
// `backstop watch [--once] [--dry-run] ...` runs the daemon; `backstop watch
// pause|resume` sets the pause flag in the state database, which a running
// daemon re-reads every second (and before every action).
struct WatchFlags {
  WatchOptions options;
  std::string cooldown = "10m";
  std::string integrity_interval = "5m";
  std::string duration;
  std::string reason;
  CLI::App* cmd = nullptr;
  CLI::App* pause = nullptr;
  CLI::App* resume = nullptr;
};

void AddWatchCommand(CLI::App& app, WatchFlags& f) {
  f.cmd = app.add_subcommand(
      "watch", "Probe every component, evaluate the triggers, roll back automatically; HTTP API");
  WatchOptions& o = f.options;
  f.cmd->add_flag("--once", o.once, "Probe every component once, evaluate, print and exit");
  f.cmd->add_flag("--dry-run", o.dry_run, "Decide and log, never act");
  f.cmd->add_option("--listen", o.listen, "API address ADDR:PORT, or off")->default_val(o.listen);
  f.cmd->add_flag("--allow-remote", o.allow_remote,
                  "Allow --listen on an address other machines can reach");
  f.cmd->add_option("--token-file", o.token_file,
                    "API token file (else $BACKSTOP_API_TOKEN, else <state_dir>/api-token)");
  f.cmd->add_option("--cooldown", f.cooldown, "Least time between rollbacks of one component")
      ->default_val(f.cooldown);
  f.cmd
      ->add_option("--max-per-hour", o.max_rollbacks_per_hour,
                   "Most automatic rollbacks in any hour")
      ->default_val(o.max_rollbacks_per_hour);
  f.cmd->add_option("--log-format", o.log_format, "text or json (one object per line)")
      ->check(CLI::IsMember({"text", "json"}))
      ->default_val(o.log_format);
  f.cmd->add_option("--workers", o.workers, "Threads for blocking probes (exec, gRPC, drivers)")
      ->default_val(o.workers);
  f.cmd
      ->add_option("--integrity-interval", f.integrity_interval,
                   "How often to check the data components' invariants for the integrity "
                   "signal (0 or off: never)")
      ->default_val(f.integrity_interval);
  f.cmd->add_option("--duration", f.duration, "Stop after this long (tests, benchmarks)");
  f.pause = f.cmd->add_subcommand("pause", "Pause automatic actions (survives restarts)");
  f.pause->add_option("--reason", f.reason, "Why, for the log and the status");
  f.resume = f.cmd->add_subcommand("resume", "Resume automatic actions");
}

int CmdWatchPause(const GlobalOptions& g, Output& out, bool pause, const std::string& reason) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  PauseState state;
  state.paused = pause;
  state.reason = reason;
  state.by = "cli";
  state.at_wall_us = Env::Default()->clock()->WallMicros();
  Status st = WritePauseState(*e.state, state);
  if (!st.ok()) return Fail(out, st);
  out.Line(pause ? "automatic actions paused (a running `backstop watch` holds from now on)"
                 : "automatic actions resumed");
  out.Json({{"ok", true}, {"pause", state.ToJson()}});
  return kExitOk;
}

int DispatchWatch(const GlobalOptions& g, Output& out, WatchFlags& f, const std::string& command) {
  if (*f.pause) return CmdWatchPause(g, out, true, f.reason);
  if (*f.resume) return CmdWatchPause(g, out, false, "");
  auto cooldown = ParseDurationMs(f.cooldown);
  if (!cooldown)
    return Fail(out, Status::InvalidArgument("--cooldown " + f.cooldown + ": not a duration"));
  f.options.cooldown_ms = *cooldown;
  const bool integrity_off = f.integrity_interval == "0" || f.integrity_interval == "off";
  auto integrity =
      integrity_off ? std::optional<int64_t>(0) : ParseDurationMs(f.integrity_interval);
  if (!integrity) {
    return Fail(out, Status::InvalidArgument("--integrity-interval " + f.integrity_interval +
                                             ": not a duration (e.g. 5m, 30s, 0)"));
  }
  f.options.integrity_interval_ms = *integrity;
  if (!f.duration.empty()) {
    auto d = ParseDurationMs(f.duration);
    if (!d)
      return Fail(out, Status::InvalidArgument("--duration " + f.duration + ": not a duration"));
    f.options.duration_ms = *d;
  }
  f.options.command = command;
  f.options.json_output = out.json();
  auto spec = LoadSpec(g.spec_path, DriverRegistry::Global());
  if (!spec.ok()) return Fail(out, spec.status());
  return RunWatchCommand(Env::Default(), *spec, DriverRegistry::Global(), f.options, out);
}
// ---- end watch ----

}  // namespace

int RunCli(int argc, char** argv) {
  // A reader that goes away (`backstop rollback | head`) must not kill a
  // rollback half-way: ignore SIGPIPE; writes to a closed pipe just fail.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"backstop: restore points, rollback triggers and verified rollbacks"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every command");
  // Global options may also follow the command: `backstop verify --output json`.
  app.fallthrough();
  GlobalOptions g;
  g.spec_path = DefaultSpecPath();
  app.add_option("--spec,-f", g.spec_path,
                 "The spec file (default: $BACKSTOP_SPEC or ./backstop.yaml)");
  app.add_option("--output,-o", g.output, "Output format")->check(CLI::IsMember({"text", "json"}));

  std::string init_example = "mistersmith", init_file = "backstop.yaml";
  bool init_force = false;
  auto* init = app.add_subcommand("init", "Write a starter spec");
  init->add_option("--example", init_example, "Which example")->default_val("mistersmith");
  init->add_option("--file", init_file, "Where to write it")->default_val("backstop.yaml");
  init->add_flag("--force", init_force, "Overwrite an existing file");

  auto* check = app.add_subcommand("check", "Validate the spec (errors as file:line:column)");
  auto* status = app.add_subcommand("status", "Components, releases, health and unfinished runs");

  std::string snap_label;
  std::vector<std::string> snap_components;
  auto* snapshot = app.add_subcommand("snapshot", "Take a restore point");
  snapshot->add_option("--label,-l", snap_label, "A name to select it by later");
  snapshot->add_option("--component,-c", snap_components, "Only these components (default: all)");

  auto* snapshots = app.add_subcommand("snapshots", "List restore points, or verify one");
  std::string verify_selector;
  auto* snapshots_verify =
      snapshots->add_subcommand("verify", "Re-hash every blob of a restore point");
  snapshots_verify
      ->add_option("RESTORE_POINT", verify_selector, "latest, previous, an id or a label")
      ->required();

  std::string deploy_component, deploy_release;
  auto* deploy =
      app.add_subcommand("deploy", "Switch a service to a release (recorded in its history)");
  deploy->add_option("SERVICE", deploy_component)->required();
  deploy->add_option("RELEASE", deploy_release)->required();

  auto add_target_options = [](CLI::App* cmd, RollbackRequest& req) {
    auto* all = cmd->add_flag("--all", req.all, "Every component");
    auto* comp = cmd->add_option("--component,-c", req.component, "One component");
    all->excludes(comp);
    cmd->add_option("--to", req.to,
                    "previous | latest | a restore point (id or label) | a release (services)");
  };
  auto* plan = app.add_subcommand("plan", "Print the steps of an operation without acting");
  plan->require_subcommand(1);
  RollbackRequest plan_req;
  auto* plan_rollback = plan->add_subcommand("rollback", "The steps of a rollback");
  add_target_options(plan_rollback, plan_req);

  RollbackFlags rb;
  auto* rollback = app.add_subcommand("rollback", "Roll back the environment or one component");
  add_target_options(rollback, rb.request);
  rollback->add_option("--env", rb.env, "Must match the spec's environment (a guard)");
  rollback->add_flag("--confirm", rb.confirm, "Required for a protected (production) environment");
  rollback->add_flag("--dry-run", rb.dry_run, "Print the plan; change nothing");
  rollback->add_flag(
      "--accept-data-loss", rb.accept_data_loss,
      "Proceed even when the rollback discards more than the spec's data_loss limit");
  rollback->add_flag("--force", rb.force,
                     "Roll back even to a target whose recorded baseline was unhealthy");
  rollback->add_option("--resume", rb.resume, "Complete an interrupted run");
  rollback->add_option("--abandon", rb.abandon, "Give up an interrupted run (take over by hand)");

  std::string history_component;
  auto* history = app.add_subcommand("history", "The release history of a service");
  history->add_option("SERVICE", history_component)->required();

  bool verify_data = false;
  auto* verify =
      app.add_subcommand("verify", "Check every component's health (exit 0 only if all pass)");
  verify->add_flag("--data", verify_data, "Also the data integrity checks");
  std::string verify_against;
  verify->add_option("--against", verify_against,
                     "With --data: also compare row counts with this restore point");

  auto* runs = app.add_subcommand("runs", "Recent runs");

  std::string ledger_run, ledger_table, ledger_stream;
  auto* ledger = app.add_subcommand("ledger", "What a run discarded: one line per row or message");
  ledger->add_option("RUN", ledger_run, "A run id, a unique prefix of one, or latest")->required();
  auto* ledger_t = ledger->add_option("--table", ledger_table, "Only this table");
  ledger->add_option("--stream", ledger_stream, "Only this stream")->excludes(ledger_t);

  SalvageFlags sv;
  auto* salvage = app.add_subcommand(
      "salvage", "Export what a run discarded from a table or stream; --apply writes it back");
  salvage->add_option("RUN", sv.run, "A run id, a unique prefix of one, or latest")->required();
  salvage->add_option("--component,-c", sv.component, "The database or stream component")
      ->required();
  auto* sv_table = salvage->add_option("--table", sv.table, "The table (database components)");
  auto* sv_stream = salvage->add_option("--stream", sv.stream, "The stream (stream components)");
  sv_table->excludes(sv_stream);
  auto* sv_where =
      salvage->add_option("--where", sv.where, "Only discarded rows matching this SQL condition");
  salvage
      ->add_option("--keys", sv.keys_file,
                   "Only these: a file of JSON lines, one ledger key or ledger line each")
      ->excludes(sv_where);
  salvage->add_option("--output", sv.output_path,
                      "Export file (JSON lines; default salvage-RUN-COMPONENT-OBJECT.jsonl)");
  salvage->add_flag("--apply", sv.apply,
                    "Write the chosen rows/messages back into the live component (all or none)");
  salvage->add_flag("--confirm", sv.confirm, "Required with --apply in a protected environment");

  PruneOptions prune_options;
  auto* prune = app.add_subcommand(
      "prune", "Release what old rollbacks kept aside, old restore points and unused blobs");
  prune
      ->add_option("--keep-runs", prune_options.keep_runs,
                   "Newest runs whose replaced databases/releases are kept")
      ->default_val(3)
      ->check(CLI::NonNegativeNumber);
  prune
      ->add_option("--keep-restore-points", prune_options.keep_restore_points,
                   "Newest restore points kept (labelled ones are always kept)")
      ->default_val(10)
      ->check(CLI::NonNegativeNumber);
  prune->add_flag("--dry-run", prune_options.dry_run, "Say what would be released");

  std::vector<std::string> start_components, stop_components;
  bool start_all = false, stop_all = false;
  auto* start = app.add_subcommand("start", "Start services (dependency order), gated on health");
  start->add_option("--component,-c", start_components, "Only these services");
  start->add_flag("--all", start_all, "Every service");
  auto* stop = app.add_subcommand("stop", "Stop services (reverse dependency order)");
  stop->add_option("--component,-c", stop_components, "Only these services");
  stop->add_flag("--all", stop_all, "Every service");

  std::string test_rules_file;  // test-rules (rules.h)
  app.add_subcommand("test-rules", "Replay sample series against the trigger rules")
      ->add_option("FILE", test_rules_file, "A rule test file (docs/rules.md)")
      ->required();

  WatchFlags watch_flags;  // watch (watch.h)
  AddWatchCommand(app, watch_flags);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kExitInvalid;
  }
  Output out(g.output == "json");
  std::string command = CommandLine(argc, argv);

  if (*init) return CmdInit(g, out, init_example, init_file, init_force);
  if (*check) return CmdCheck(g, out);
  if (*status) return CmdStatus(g, out);
  if (*snapshot) return CmdSnapshot(g, out, snap_label, snap_components, argc, argv);
  if (*snapshots) {
    if (*snapshots_verify) return CmdSnapshotsVerify(g, out, verify_selector);
    return CmdSnapshots(g, out);
  }
  if (*deploy) return CmdDeploy(g, out, deploy_component, deploy_release, command);
  if (*plan) {
    if (!plan_req.all && plan_req.component.empty()) {
      out.Error("backstop plan rollback: say what to roll back: --all or --component NAME");
      return kExitInvalid;
    }
    return CmdPlan(g, out, plan_req);
  }
  if (*rollback) {
    if (rb.resume.empty() && rb.abandon.empty() && !rb.request.all &&
        rb.request.component.empty()) {
      out.Error(
          "backstop rollback: say what to roll back: --all, --component NAME, "
          "--resume RUN or --abandon RUN");
      return kExitInvalid;
    }
    return CmdRollback(g, out, rb, command);
  }
  if (*history) return CmdHistory(g, out, history_component);
  if (*verify) return CmdVerify(g, out, verify_data, verify_against);
  if (*runs) return CmdRuns(g, out);
  if (*ledger) return CmdLedger(g, out, ledger_run, ledger_table, ledger_stream);
  if (*salvage) {
    if (sv.table.empty() == sv.stream.empty()) {
      out.Error("backstop salvage: say what to salvage: --table TABLE or --stream STREAM");
      return kExitInvalid;
    }
    if (!sv.where.empty() && sv.table.empty()) {
      out.Error("backstop salvage: --where is a SQL condition on rows; it needs --table");
      return kExitInvalid;
    }
    return CmdSalvage(g, out, sv, command);
  }
  if (app.got_subcommand("test-rules")) return CmdTestRules(out, test_rules_file);
  if (*watch_flags.cmd) return DispatchWatch(g, out, watch_flags, command);
  if (*prune) return CmdPrune(g, out, prune_options, command);
  if (*start || *stop) {
    bool is_start = static_cast<bool>(*start);
    const auto& only = is_start ? start_components : stop_components;
    if (only.empty() && !(is_start ? start_all : stop_all)) {
      out.Error(std::string("backstop ") + (is_start ? "start" : "stop") +
                ": say which: --all or --component NAME");
      return kExitInvalid;
    }
    return CmdStartStop(g, out, is_start, only, command);
  }
  return kExitInvalid;
}

}  // namespace backstop

// Commands that show what an environment is and what was done to it:
// `status`, `history`, `runs`, and `ledger` and `salvage` for what a
// rollback discarded.
#include "cli/command_group.h"

#include <algorithm>
#include <map>

#include "base/env.h"
#include "base/exit_code.h"
#include "base/strings.h"
#include "base/units.h"
#include "cli/slot_view.h"
#include "drivers/driver.h"
#include "run/fallback.h"
#include "run/lock.h"
#include "store/remote/remote_store_open.h"
#include "store/restore_point.h"

namespace backstop {
namespace {

std::string DescribeState(const ComponentSpec& c, const nlohmann::json& d) {
  if (!d.is_object()) return "-";
  if (d.contains("summary") && d["summary"].is_string()) return d["summary"];
  if (d.contains("release")) {
    std::string s =
        d["release"].is_string() ? "release " + d["release"].get<std::string>() : "no release";
    if (d.value("running", false)) {
      s += " (running, pid " + std::to_string(d.value("pid", 0)) + ")";
    } else if (c.kind == ComponentKind::kService) {
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
    out.Text(Pad(name, 14) + Pad(std::string(Name(c->kind)), 10) + Pad(c->driver, 10) +
             Pad(DescribeState(*c, described), 34) + health_text);
    // PostgreSQL flashback: why the server does not allow it, and the WAL each slot retains.
    if (described.is_object() && described.contains("flashback_unavailable")) {
      out.Text("  flashback unavailable: " + described.value("flashback_unavailable", "") +
               " (rollbacks restore the dump)");
    }
    if (described.is_object() && described.contains("flashback_slots") &&
        described["flashback_slots"].is_array()) {
      for (const auto& s : described["flashback_slots"]) {
        out.Text("  flashback slot " + s.value("slot", "") + " retains " +
                 FormatBytes(s.value("retained_wal_bytes", uint64_t{0})) + " of WAL");
      }
    }
    doc["components"].push_back({{"name", name},
                                 {"kind", c->kind},
                                 {"driver", c->driver},
                                 {"state", described},
                                 {"health", HealthWord(h)},
                                 {"health_detail", h.detail},
                                 {"latency_ms", h.latency_ms}});
    if (c->traffic) {
      nlohmann::json slots = SlotsView(e, *c);
      for (const auto& line : SlotLines(slots)) out.Text(line);
      doc["components"].back()["slots"] = std::move(slots);
    }
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
          if (s.status != StepStatus::kDone) {
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
  auto fallback = ActiveFallback(*e.state);
  if (!fallback.ok()) {
    out.Error("cannot read the fallback record: " + fallback.status().message());
  } else if (fallback->has_value()) {
    const FallbackRecord& f = **fallback;
    const std::string since = FormatRfc3339(f.since_us);
    if (f.state == "active") {
      out.Text("FALLBACK ACTIVE since " + since + " (" + f.id + ", " + f.triggered_by + "): " +
               f.upstream + " of " + f.traffic + " goes to the standby " + Join(f.standby, ", ") +
               "; `backstop fallback --back` returns to " + Join(f.previous, ", "));
    } else {
      out.Text("FALLBACK INTERRUPTED (" + f.id + ", " + f.state + " " + f.upstream + " of " +
               f.traffic + "): run `backstop fallback" + (f.state == "returning" ? " --back" : "") +
               "` again to complete it");
    }
    doc["fallback"] = f.ToJson();
  }
  auto runs = e.state->ListRuns(1);
  if (runs.ok() && !runs->empty()) {
    const RunRecord& r = runs->front();
    out.Text("Last run: " + r.id + " " + std::string(Name(r.kind)) + " " +
             std::string(Name(r.status)) + " (" + FormatRfc3339(r.started_us) + ")");
    doc["last_run"] = {{"id", r.id}, {"kind", r.kind}, {"status", r.status}};
    // A run that failed after changing something left the environment
    // part-way: say so as loudly as an interrupted one.
    if (r.status == RunStatus::kFailed && r.error.find("--resume") != std::string::npos) {
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
  if (e.spec.remote_store) {
    // From the local markers only: `status` must answer with the bucket away.
    std::vector<std::string> pending =
        RemoteStore::NotReplicated(*e.store, ReplicaName(*e.spec.remote_store));
    out.Text("Remote store: " + e.spec.remote_store->url + ": " +
             (pending.empty() ? std::string("every restore point replicated")
                              : std::to_string(pending.size()) +
                                    " restore point(s) not yet replicated (newest " +
                                    pending.back() + "; `backstop store sync`)"));
    doc["not_replicated"] = pending;
  }
  out.Json(doc);
  return kExitOk;
}

int CmdHistory(const GlobalOptions& g, Output& out, const std::string& component) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  const ComponentSpec* c = e.spec.Find(component);
  if (c == nullptr) {
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
  nlohmann::json result = {{"component", component}, {"history", doc}};
  if (c->traffic) {
    result["slots"] = SlotsView(e, *c);
    out.Text("Slots:");
    for (const auto& line : SlotLines(result["slots"])) out.Text(line);
  }
  out.Json(result);
  return kExitOk;
}

int CmdRuns(const GlobalOptions& g, Output& out) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  auto rows = e.state->ListStoredRuns(50);
  if (!rows.ok()) return Fail(out, rows.status());
  out.Text(Pad("RUN", 32) + Pad("KIND", 10) + Pad("STATUS", 11) + Pad("STARTED", 22) +
           Pad("TOOK", 10) + "COMMAND");
  nlohmann::json doc = nlohmann::json::array();
  // A damaged row is listed as such and the others still shown; the first
  // damage decides the exit code, once the list is out.
  Status first_damage;
  for (const auto& [r, damage] : *rows) {
    if (!damage.ok()) {
      out.Text(Pad(r.id, 32) + Pad("?", 10) + Pad("DAMAGED", 11) +
               Pad(FormatRfc3339(r.started_us), 22) + Pad("-", 10) + r.command);
      out.Error("backstop: " + damage.message());
      doc.push_back({{"id", r.id},
                     {"started", FormatRfc3339(r.started_us)},
                     {"command", r.command},
                     {"damaged", damage.message()}});
      if (first_damage.ok()) first_damage = damage;
      continue;
    }
    std::string took = r.ended_us > 0 ? FormatDurationMs((r.ended_us - r.started_us) / 1000) : "-";
    out.Text(Pad(r.id, 32) + Pad(std::string(Name(r.kind)), 10) +
             Pad(std::string(Name(r.status)), 11) + Pad(FormatRfc3339(r.started_us), 22) +
             Pad(took, 10) + r.command);
    doc.push_back({{"id", r.id},
                   {"kind", r.kind},
                   {"status", r.status},
                   {"started", FormatRfc3339(r.started_us)},
                   {"command", r.command},
                   {"summary", r.summary}});
  }
  if (first_damage.ok()) {
    out.Json({{"runs", doc}});
    return kExitOk;
  }
  out.Json({{"ok", false}, {"runs", doc}, {"error", first_damage.message()}});
  return ExitCodeFor(first_damage);
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
  out.Text("Run " + *run_id + " (" + std::string(Name(run->status)) + ", `" + run->command + "`)");
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
  if (!f.table.empty() && c->kind != ComponentKind::kDatabase) {
    return Fail(out, Status::InvalidArgument("--table is for a database component; " + c->name +
                                             " is a " + std::string(Name(c->kind)) + " component"));
  }
  if (!f.stream.empty() && c->kind != ComponentKind::kStream) {
    return Fail(out, Status::InvalidArgument("--stream is for a stream component; " + c->name +
                                             " is a " + std::string(Name(c->kind)) + " component"));
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
           (c->kind == ComponentKind::kStream ? "messages" : "rows") + " of " + req.object +
           " discarded by " + *run_id + " to " + req.output_path);
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

class InspectCommands : public CommandGroup {
 public:
  void Register(CLI::App& app) override {
    status_ = app.add_subcommand("status", "Components, releases, health and unfinished runs");

    history_ = app.add_subcommand("history", "The release history of a service");
    history_->add_option("SERVICE", history_component_)->required();

    runs_ = app.add_subcommand("runs", "Recent runs");

    ledger_ = app.add_subcommand("ledger", "What a run discarded: one line per row or message");
    ledger_->add_option("RUN", ledger_run_, "A run id, a unique prefix of one, or latest")
        ->required();
    auto* ledger_t = ledger_->add_option("--table", ledger_table_, "Only this table");
    ledger_->add_option("--stream", ledger_stream_, "Only this stream")->excludes(ledger_t);

    SalvageFlags& sv = salvage_flags_;
    salvage_ = app.add_subcommand(
        "salvage", "Export what a run discarded from a table or stream; --apply writes it back");
    salvage_->add_option("RUN", sv.run, "A run id, a unique prefix of one, or latest")->required();
    salvage_->add_option("--component,-c", sv.component, "The database or stream component")
        ->required();
    auto* sv_table = salvage_->add_option("--table", sv.table, "The table (database components)");
    auto* sv_stream = salvage_->add_option("--stream", sv.stream, "The stream (stream components)");
    sv_table->excludes(sv_stream);
    auto* sv_where = salvage_->add_option("--where", sv.where,
                                          "Only discarded rows matching this SQL condition");
    salvage_
        ->add_option("--keys", sv.keys_file,
                     "Only these: a file of JSON lines, one ledger key or ledger line each")
        ->excludes(sv_where);
    salvage_->add_option("--output", sv.output_path,
                         "Export file (JSON lines; default salvage-RUN-COMPONENT-OBJECT.jsonl)");
    salvage_->add_flag("--apply", sv.apply,
                       "Write the chosen rows/messages back into the live component (all or none)");
    salvage_->add_flag("--confirm", sv.confirm, "Required with --apply in a protected environment");
  }

  std::optional<int> Run(const Invocation& inv) override {
    const GlobalOptions& g = inv.global;
    Output& out = inv.out;
    if (*status_) return CmdStatus(g, out);
    if (*history_) return CmdHistory(g, out, history_component_);
    if (*runs_) return CmdRuns(g, out);
    if (*ledger_) return CmdLedger(g, out, ledger_run_, ledger_table_, ledger_stream_);
    if (*salvage_) {
      const SalvageFlags& sv = salvage_flags_;
      if (sv.table.empty() == sv.stream.empty()) {
        out.Error("backstop salvage: say what to salvage: --table TABLE or --stream STREAM");
        return kExitInvalid;
      }
      if (!sv.where.empty() && sv.table.empty()) {
        out.Error("backstop salvage: --where is a SQL condition on rows; it needs --table");
        return kExitInvalid;
      }
      return CmdSalvage(g, out, sv, inv.command);
    }
    return std::nullopt;
  }

 private:
  CLI::App* status_ = nullptr;
  CLI::App* history_ = nullptr;
  std::string history_component_;
  CLI::App* runs_ = nullptr;
  CLI::App* ledger_ = nullptr;
  std::string ledger_run_, ledger_table_, ledger_stream_;
  CLI::App* salvage_ = nullptr;
  SalvageFlags salvage_flags_;
};

}  // namespace

std::unique_ptr<CommandGroup> NewInspectCommands() { return std::make_unique<InspectCommands>(); }

}  // namespace backstop

// Commands that set up and check an environment: `init` writes a starter
// spec, `check` validates one, `verify` checks every component's health (and
// with --data, the data; with --performance, the performance baselines).
#include "cli/command_group.h"

#include <map>
#include <optional>

#include "base/exit_code.h"
#include "drivers/driver.h"
#include "perf/verify.h"
#include "run/run.h"
#include "spec/spec.h"
#include "store/restore_point.h"

namespace backstop {
namespace {

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
  if (!runs.empty() && runs.front().kind == RunKind::kRollback &&
      runs.front().status == RunStatus::kSucceeded && !runs.front().restore_point.empty()) {
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

// Which restore point `verify --performance` prefers for the baselines: the
// one named by --against, else the one the last run rolled back to when it
// succeeded; empty: each component's newest restore point (perf/verify.h).
Result<std::string> PerformanceBaseline(Environment& e, const std::string& against) {
  if (!against.empty()) {
    return ResolveRestorePointId(*e.store, against, /*include_safety=*/true);
  }
  BACKSTOP_ASSIGN_OR_RETURN(auto runs, e.state->ListRuns(1));
  if (!runs.empty() && runs.front().kind == RunKind::kRollback &&
      runs.front().status == RunStatus::kSucceeded) {
    return runs.front().restore_point;
  }
  return std::string();
}

int CmdVerify(const GlobalOptions& g, Output& out, bool data, bool performance,
              const std::string& against) {
  if (!against.empty() && !data && !performance) {
    return Fail(out, Status::InvalidArgument("--against compares the data or the performance with "
                                             "a restore point: use it with --data or "
                                             "--performance"));
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
      if (!HoldsData(c->kind)) continue;
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
  nlohmann::json perf_doc;
  if (performance) {
    auto preferred = PerformanceBaseline(e, against);
    if (!preferred.ok()) return Fail(out, preferred.status());
    auto verdict = VerifyPerformance(
        e.spec, *e.store, [&e](const ComponentSpec& c) { return e.engine->DriverFor(c); },
        e.engine->Context(), *preferred);
    if (!verdict.ok()) return Fail(out, verdict.status());
    all_ok = all_ok && verdict->ok();
    out.Text("performance: " + std::string(preferred->empty()
                                               ? "each component against its newest restore point"
                                               : "against restore point " + *preferred));
    std::string table = RenderPerformanceTable(*verdict);
    if (!table.empty() && table.back() == '\n') table.pop_back();
    out.Text(table);
    perf_doc = verdict->ToJson();
  }
  out.Text(all_ok ? "all checks passed" : "some checks FAILED");
  nlohmann::json doc_all = {{"ok", all_ok}, {"components", doc}, {"integrity", integrity}};
  if (performance) doc_all["performance"] = perf_doc;
  out.Json(doc_all);
  return all_ok ? kExitOk : kExitFailed;
}

class SetupCommands : public CommandGroup {
 public:
  void Register(CLI::App& app) override {
    init_ = app.add_subcommand("init", "Write a starter spec");
    init_->add_option("--example", init_example_, "Which example")->default_val("mistersmith");
    init_->add_option("--file", init_file_, "Where to write it")->default_val("backstop.yaml");
    init_->add_flag("--force", init_force_, "Overwrite an existing file");

    check_ = app.add_subcommand("check", "Validate the spec (errors as file:line:column)");

    verify_ =
        app.add_subcommand("verify", "Check every component's health (exit 0 only if all pass)");
    verify_->add_flag("--data", verify_data_, "Also the data integrity checks");
    verify_->add_flag("--performance", verify_performance_,
                      "Also measure performance and compare it with the restore point's baseline");
    verify_->add_option("--against", verify_against_,
                        "With --data: also compare row counts with this restore point; with "
                        "--performance: the restore point whose baselines to compare with");
  }

  std::optional<int> Run(const Invocation& inv) override {
    if (*init_) return CmdInit(inv.global, inv.out, init_example_, init_file_, init_force_);
    if (*check_) return CmdCheck(inv.global, inv.out);
    if (*verify_)
      return CmdVerify(inv.global, inv.out, verify_data_, verify_performance_, verify_against_);
    return std::nullopt;
  }

 private:
  CLI::App* init_ = nullptr;
  std::string init_example_ = "mistersmith", init_file_ = "backstop.yaml";
  bool init_force_ = false;
  CLI::App* check_ = nullptr;
  CLI::App* verify_ = nullptr;
  bool verify_data_ = false;
  bool verify_performance_ = false;
  std::string verify_against_;
};

}  // namespace

std::unique_ptr<CommandGroup> NewSetupCommands() { return std::make_unique<SetupCommands>(); }

}  // namespace backstop

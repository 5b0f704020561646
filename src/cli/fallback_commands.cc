// `backstop fallback [--back]` (seed 5.3): sends the spec's traffic
// component to its standby after the standby's health check, or back to the
// routing it replaced (run/fallback.h). Protected environments need
// --confirm, as a rollback does; notifications go out at the end.
#include <cstdio>

#include "base/env.h"
#include "base/exit_code.h"
#include "cli/command_group.h"
#include "notify/notify_service.h"
#include "run/fallback.h"

namespace backstop {
namespace {

struct FallbackFlags {
  bool back = false;
  bool dry_run = false;
  bool confirm = false;
  std::string env;
};

int CmdFallback(const GlobalOptions& g, Output& out, const FallbackFlags& f,
                const std::string& command) {
  auto opened = OpenEnvironment(g, out);
  if (!opened.ok()) return Fail(out, opened.status());
  Environment& e = **opened;
  if (!f.env.empty() && f.env != e.spec.environment) {
    return Fail(out, Status::InvalidArgument("--env " + f.env + " does not match the spec's " +
                                             "environment '" + e.spec.environment + "' (" +
                                             e.spec.path + ")"));
  }
  FallbackOptions options;
  options.command = command;
  // The confirmation is asked after a dry run of the same change, so the
  // operator sees what --confirm would do (and that the target is healthy).
  options.dry_run = f.dry_run || (e.spec.requires_confirm && !f.confirm);
  auto outcome = f.back ? FallBackReturn(*e.engine, e.spec, *e.state, options)
                        : FallBack(*e.engine, e.spec, *e.state, options);
  if (!outcome.ok()) return Fail(out, outcome.status());
  if (outcome->refused) {
    if (!options.dry_run) {
      DeliverRunNotifications(Env::Default(), e.spec, *e.state, outcome->id,
                              [](const std::string& level, const std::string& line) {
                                std::fprintf(stderr, "backstop: %s: %s\n", level.c_str(),
                                             line.c_str());
                              });
    }
    out.Text(std::string(Output::Fail()) + " " + outcome->message);
    out.Json(outcome->ToJson());
    return kExitRefused;
  }
  if (options.dry_run && !f.dry_run) {
    out.Line(outcome->message);
    return Fail(out, Status::Aborted("environment '" + e.spec.environment +
                                     "' is protected: review the change above and rerun with "
                                     "--confirm"));
  }
  if (outcome->changed) {
    DeliverRunNotifications(Env::Default(), e.spec, *e.state, outcome->id,
                            [](const std::string& level, const std::string& line) {
                              std::fprintf(stderr, "backstop: %s: %s\n", level.c_str(),
                                           line.c_str());
                            });
  }
  out.Text(std::string(Output::Ok()) + " " + outcome->message +
           (f.dry_run ? " (dry run: nothing was changed)" : ""));
  nlohmann::json doc = outcome->ToJson();
  doc["dry_run"] = f.dry_run;
  out.Json(doc);
  return kExitOk;
}

class FallbackCommands : public CommandGroup {
 public:
  void Register(CLI::App& app) override {
    cmd_ = app.add_subcommand(
        "fallback", "Send traffic to the spec's standby (after its health check), or --back");
    cmd_->add_flag("--back", flags_.back,
                   "Return to the routing the fallback replaced (after its health check)");
    cmd_->add_flag("--dry-run", flags_.dry_run, "Check health and say what would change");
    cmd_->add_flag("--confirm", flags_.confirm,
                   "Required for a protected (production) environment");
    cmd_->add_option("--env", flags_.env, "Must match the spec's environment (a guard)");
  }

  std::optional<int> Run(const Invocation& inv) override {
    if (!*cmd_) return std::nullopt;
    return CmdFallback(inv.global, inv.out, flags_, inv.command);
  }

 private:
  CLI::App* cmd_ = nullptr;
  FallbackFlags flags_;
};

}  // namespace

std::unique_ptr<CommandGroup> NewFallbackCommands() { return std::make_unique<FallbackCommands>(); }

}  // namespace backstop

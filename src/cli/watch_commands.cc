// The command line's side of the watch daemon (watch/watch.h) and of the
// trigger rules (watch/rules.h): `watch` runs the daemon, `watch pause` and
// `watch resume` set its pause flag, `test-rules` replays sample series
// against the rules.
#include "cli/command_group.h"

#include <optional>

#include "base/env.h"
#include "base/exit_code.h"
#include "base/units.h"
#include "watch/rules.h"
#include "watch/watch.h"

namespace backstop {
namespace {

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

class WatchCommands : public CommandGroup {
 public:
  void Register(CLI::App& app) override {
    test_rules_ =
        app.add_subcommand("test-rules", "Replay sample series against the trigger rules");
    test_rules_->add_option("FILE", test_rules_file_, "A rule test file (docs/rules.md)")
        ->required();
    AddWatchCommand(app, watch_flags_);
  }

  std::optional<int> Run(const Invocation& inv) override {
    if (*test_rules_) return CmdTestRules(inv.out, test_rules_file_);
    if (*watch_flags_.cmd) return DispatchWatch(inv.global, inv.out, watch_flags_, inv.command);
    return std::nullopt;
  }

 private:
  CLI::App* test_rules_ = nullptr;
  std::string test_rules_file_;
  WatchFlags watch_flags_;
};

}  // namespace

std::unique_ptr<CommandGroup> NewWatchCommands() { return std::make_unique<WatchCommands>(); }

}  // namespace backstop

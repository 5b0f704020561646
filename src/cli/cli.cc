#include "cli/cli.h"

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <vector>

#include "base/exit_code.h"
#include "base/output.h"
#include "cli/cli_common.h"
#include "cli/command_group.h"
#include "notify/notify_service.h"
#include "report/incident_report.h"

namespace backstop {
namespace {

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

}  // namespace

int RunCli(int argc, char** argv) {
  // A reader that goes away (`backstop rollback | head`) must not kill a
  // rollback half-way: ignore SIGPIPE; writes to a closed pipe just fail.
  std::signal(SIGPIPE, SIG_IGN);
  // Every run that changes something, from any command or `watch`, leaves its report.
  InstallIncidentReportWriter();
  // ... and then its notifications (or, under `backstop watch`, wakes their thread).
  InstallRunNotifier();
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

  // The commands, one group per file; `--help` lists them in this order.
  std::vector<std::unique_ptr<CommandGroup>> groups;
  groups.push_back(NewSetupCommands());
  groups.push_back(NewInspectCommands());
  groups.push_back(NewSnapshotCommands());
  groups.push_back(NewStoreCommands());
  groups.push_back(NewOperateCommands());
  groups.push_back(NewFallbackCommands());
  groups.push_back(NewWatchCommands());
  groups.push_back(NewReportCommands());
  groups.push_back(NewDrillCommands());
  groups.push_back(NewCompletionCommands());
  for (auto& group : groups) group->Register(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kExitInvalid;
  }
  Output out(g.output == "json");
  const Invocation invocation{g, out, CommandLine(argc, argv)};
  for (auto& group : groups) {
    if (std::optional<int> code = group->Run(invocation)) return *code;
  }
  return kExitInvalid;
}

}  // namespace backstop

// A group of commands of the command line (one file each: setup_commands.cc,
// inspect_commands.cc, snapshot_commands.cc, store_commands.cc, operate_commands.cc,
// fallback_commands.cc, watch_commands.cc, report_commands.cc, drill_commands.cc,
// completion_commands.cc). A group adds its subcommands and their flags to the CLI11 app, and after
// parsing runs the one the user chose. cli.cc registers every group and returns what the chosen
// command returns.
//
// Ownership: a group owns the variables CLI11 parses its flags into, so it
// must outlive the parse. Thread-safety: one thread.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <string>

#include "base/output.h"
#include "cli/cli_common.h"

namespace backstop {

// One parsed command line, as the chosen command sees it.
struct Invocation {
  const GlobalOptions& global;
  Output& out;
  std::string command;  // as typed, for the journal, the lock and reports
};

class CommandGroup {
 public:
  virtual ~CommandGroup() = default;
  // Adds this group's subcommands to `app`. Called once, before parsing.
  virtual void Register(CLI::App& app) = 0;
  // Runs the chosen command and returns its exit code (base/exit_code.h), or
  // nullopt when the user chose none of this group's commands.
  // REQUIRES: the app was parsed without error.
  virtual std::optional<int> Run(const Invocation& invocation) = 0;
};

std::unique_ptr<CommandGroup> NewSetupCommands();       // init, check, verify
std::unique_ptr<CommandGroup> NewInspectCommands();     // status, history, runs, ledger, salvage
std::unique_ptr<CommandGroup> NewSnapshotCommands();    // snapshot, snapshots, prune
std::unique_ptr<CommandGroup> NewStoreCommands();       // store sync|fetch|status|key new
std::unique_ptr<CommandGroup> NewOperateCommands();     // plan, rollback, deploy, start, stop
std::unique_ptr<CommandGroup> NewFallbackCommands();    // fallback [--back]
std::unique_ptr<CommandGroup> NewWatchCommands();       // watch, test-rules
std::unique_ptr<CommandGroup> NewReportCommands();      // report, checklist
std::unique_ptr<CommandGroup> NewDrillCommands();       // drill, drill --due, drill history
std::unique_ptr<CommandGroup> NewCompletionCommands();  // completion

}  // namespace backstop

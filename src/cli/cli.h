// The command line: parses arguments (CLI11) and dispatches to the commands.
// Returns the process exit code: 0 only on success.
#pragma once

namespace backstop {

int RunCli(int argc, char** argv);

}  // namespace backstop

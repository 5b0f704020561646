#include "cli.h"

#include <CLI/CLI.hpp>

namespace backstop {

int RunCli(int argc, char** argv) {
  CLI::App app{"backstop: restore points, triggers and verified rollbacks"};
  app.require_subcommand(1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}

}  // namespace backstop

// backstop: the command-line entry point. All behaviour lives in cli.cc and
// the command groups it registers.
#include "cli/cli.h"
#ifdef BACKSTOP_WITH_GRPC
#include "grpc/grpc_probe.h"
#endif

int main(int argc, char** argv) {
#ifdef BACKSTOP_WITH_GRPC
  backstop::grpc_probe::RegisterGrpcProbe();
#endif
  return backstop::RunCli(argc, argv);
}

// backstop: the command-line entry point. All behaviour lives in cli.cc.
#include "cli.h"

int main(int argc, char** argv) { return backstop::RunCli(argc, argv); }

// agentfense: the command-line client. Everything but argv plumbing lives in af_cli.
#include <iostream>

#include "base/log.h"
#include "cli/app.h"

int main(int argc, char** argv) {
  // Library info lines (mount cleanup, ...) are noise on a user's terminal; warnings still show.
  (void)agentfense::InitLogging("warn");
  return agentfense::cli::RunCli(argc, argv, std::cout, std::cerr);
}

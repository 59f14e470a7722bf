// agentfense: the command-line client. Everything but argv plumbing lives in af_cli.
#include <iostream>

#include "cli/app.h"

int main(int argc, char** argv) {
  return agentfense::cli::RunCli(argc, argv, std::cout, std::cerr);
}

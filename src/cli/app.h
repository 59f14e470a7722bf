// The agentfense command line: argument parsing (CLI11) and dispatch to the commands. Kept apart
// from main() so tests can run it in-process.
#pragma once

#include <ostream>

namespace agentfense::cli {

// Parses argv and runs the chosen command. Never throws; returns the process exit status
// (cli/exit_codes.h; run/shell pass the command's own status through). --help and --version print to `out` and return 0.
int RunCli(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace agentfense::cli

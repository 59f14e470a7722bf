// Client mode: commands that talk to an agentfense-server over gRPC (--endpoint / --token, or
// AGENTFENSE_ENDPOINT / AGENTFENSE_TOKEN): codebase, sandbox, session, changes, commit, discard,
// audit. Every command prints a human form by default and the server's message as JSON (proto3
// JSON mapping) with --json.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "cli/command_set.h"

namespace agentfense::cli {

// `trailing` = the arguments after "--" (for `sandbox exec ID -- COMMAND`); it must outlive the
// parse and dispatch.
void AddClientCommands(CLI::App& app, CommandSet& commands,
                       const std::vector<std::string>& trailing, bool dashdash, std::ostream& out,
                       std::ostream& err);

}  // namespace agentfense::cli

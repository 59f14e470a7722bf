// Client mode: commands that talk to an agentfense-server over gRPC (--endpoint / --token, or
// AGENTFENSE_ENDPOINT / AGENTFENSE_TOKEN): codebase, sandbox, session, changes, commit, discard,
// audit. Every command prints a human form by default and the server's message as JSON (proto3
// JSON mapping) with --json. One file per group: client_codebase.cc, client_sandbox.cc,
// client_session.cc, client_changes.cc (changes, commit, discard, audit); client_common.h holds
// what they share. `sandbox exec` / `session exec` cancel the call on Ctrl-C / SIGTERM / SIGHUP
// (the server then kills the command) and exit 128 + the signal.
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

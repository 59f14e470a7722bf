// What `run`, `shell` and `mcp` share around the sandbox each of them owns (LocalSandbox): the
// flags checked and turned into the sandbox's options (Prepare), and its end (Finish): the
// --sync / --discard / --keep-delta choice applied, the sandbox stopped, the summary printed.
// Internal to cli/.
#pragma once

#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "cli/ask_prompt.h"
#include "cli/local_sandbox.h"
#include "cli/sandbox_commands.h"
#include "runtime/agent_client.h"

namespace agentfense::cli {

// Everything validated and ready to start a sandbox with.
struct Prepared {
  LocalSandboxOptions sandbox;
  std::vector<std::pair<std::string, std::string>> env;
  std::string workdir;  // resolved (base/path.h SandboxWorkdir); "" = /workspace
  AskMode ask = AskMode::kDeny;
  bool has_ask = false;  // some rule is at `ask`: accesses will wait for an answer
};

// Checks the flags (the errors name them) and resolves DIR, the rules (agent-safe without any
// policy flag), the runtime, the limits and --keep-delta. kInvalidArgument for bad input.
Result<Prepared> Prepare(const SandboxFlags& flags);

// What happened in the sandbox, for the summary and the exit status.
struct Outcome {
  bool ran = false;  // the command started and ended (else it was interrupted or never ran)
  runtime::ExecResult result;
  int interrupted_by = 0;         // our own SIGINT/SIGTERM/SIGHUP
  std::string failure;            // the sandbox failed mid-run (agent lost...)
  bool failure_is_usage = false;  // ...or refused the request (bad --workdir)
};

// Ends a sandbox: applies the --sync / --discard / --keep-delta choice, stops everything, prints
// the summary (on `err`; with --json one JSON object on `out`), and returns the exit status.
int Finish(LocalSandbox& sb, const SandboxFlags& flags, const std::string& source,
           const Outcome& outcome, std::ostream& out, std::ostream& err);

// --timeout DUR as the agent takes it: milliseconds, 1 ms to 49 days (a 32-bit field); `fallback`
// when the flag is absent. kInvalidArgument naming the flag otherwise.
Result<uint32_t> TimeoutFlag(const std::string& text, uint32_t fallback);

// Reports a sandbox that could not start; returns the exit status.
int StartError(const Error& e, std::ostream& err);

}  // namespace agentfense::cli

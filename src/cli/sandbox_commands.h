// The embedded-mode commands: `agentfense run` and `agentfense shell` run a command (or a shell),
// `agentfense mcp` serves MCP tools, in a sandbox this process owns (no server), over a directory
// mounted with a policy, and at the end sync, discard or keep the copy-on-write delta of what
// changed.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "cli/rules_input.h"

namespace agentfense::cli {

enum class SyncMode { kSync, kDiscard, kKeepDelta };

// The flags `run` and `shell` share, as parsed (strings are validated by the commands, so the
// errors can name the flag).
struct SandboxFlags {
  RuleSources sources;
  std::string runtime = "bwrap";
  std::string image;
  std::string memory;  // SIZE, "" = no limit
  int64_t pids = 0;    // 0 = no limit
  double cpus = 0;     // 0 = no limit
  bool network = false;                   // --network: every public destination
  std::vector<std::string> allow_net;     // --allow-net rules (imply network, default deny)
  std::vector<std::string> dns_servers;   // --dns-server: the sandbox resolver's upstreams
  std::vector<std::string> public_cidrs;  // --public-cidr: special ranges treated as public
  std::vector<std::string> env;  // K=V
  std::string workdir;           // in the sandbox; relative = under /workspace
  SyncMode sync = SyncMode::kSync;
  std::string keep_delta_dir;
  std::string bwrap_path;
  std::string docker_host;
  std::string dir;     // the host directory to expose as /workspace
  std::string ask;     // --ask: "prompt" (the terminal answers) or "deny"; "" = not given (deny)
  bool quiet = false;  // no summary on stderr
  bool json = false;   // summary as one JSON object on stdout
};

struct RunOptions {
  SandboxFlags sandbox;
  std::string timeout;  // DUR, "" = none
  bool forward_stdin = false;
  std::vector<std::string> command;
};

struct McpOptions {
  SandboxFlags sandbox;
  std::string timeout;  // run_command's default timeout, DUR; "" = 30s
};

int RunRun(const RunOptions& options, std::ostream& out, std::ostream& err);
// `agentfense mcp`: serves the MCP tools of the sandbox on stdin/stdout until end of input
// (mcp_command.cc). Exit status as `run`'s, 0 for a session that ended normally.
int RunShell(const SandboxFlags& flags, std::ostream& out, std::ostream& err);
int RunMcp(const McpOptions& options, std::ostream& out, std::ostream& err);

}  // namespace agentfense::cli

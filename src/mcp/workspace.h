// What the MCP tools act on: one running sandbox. The CLI (`agentfense mcp`, over its embedded
// sandbox) and the server (over a sandbox of its manager) each implement this once; the tools,
// their schemas and the protocol above them are shared, so both transports serve the same tools.
//
// Every operation goes through the sandbox itself: commands run in it, and file operations are
// carried out by its agent, as its identity, on its mount (runtime::proto::FileOp). Nothing here
// reads the host's tree, so a tool sees exactly what a command sees.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "fs/changes.h"
#include "policy/policy.h"
#include "runtime/agent_client.h"
#include "runtime/agent_protocol.h"

namespace agentfense::mcp {

struct CommandRequest {
  std::string command;  // run as `/bin/sh -c command`
  std::string workdir;  // resolved (base/path.h SandboxWorkdir): "" = /workspace, else absolute
  std::chrono::milliseconds timeout{0};  // 0 = the workspace's default; capped at its maximum
  uint64_t output_cap = 1 << 20;         // bytes kept per stream; the rest is counted, dropped
};

// Implementations are called from many threads at once.
class Workspace {
 public:
  virtual ~Workspace() = default;

  // Runs a command, streaming its output to `on_output` (on the calling thread). A timeout is a
  // result (timed_out), not an error; `cancel` turning true stops the command's whole tree and
  // the call returns kCancelled.
  virtual Result<runtime::ExecResult> Run(const CommandRequest& request,
                                          const runtime::OutputCallback& on_output,
                                          const std::atomic<bool>* cancel) = 0;

  // One file operation inside the sandbox. Errors carry the errno (Error::sys_errno()).
  virtual Result<runtime::proto::FileResult> File(const runtime::proto::FileOp& op) = 0;

  // The rules the sandbox enforces right now (they may change while it runs on the server).
  virtual Result<std::vector<policy::Rule>> Rules() = 0;

  // The pending changes of the sandbox's copy-on-write delta.
  virtual Result<fs::ChangeSet> Changes() = 0;
};

}  // namespace agentfense::mcp

// `agentfense mcp [flags] DIR`: an MCP server on stdio over one sandbox this process owns, started
// and ended exactly like `agentfense run` (Prepare, LocalSandbox, Finish): the agent host that
// launched us gets the sandbox's shell and file tools (mcp/tools.h) under one policy, and when it
// closes our stdin the changes are synced, discarded or kept as the flags say.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <limits>
#include <memory>

#include "base/unique_fd.h"
#include "cli/embedded.h"
#include "cli/exit_codes.h"
#include "cli/interrupts.h"
#include "mcp/protocol.h"
#include "mcp/stdio.h"

#ifndef AF_VERSION
#define AF_VERSION "unknown"
#endif

namespace agentfense::cli {
namespace {

// The MCP tools over the embedded sandbox: commands and file operations through its agent, the
// rules it was started with, the changes from its supervisor.
class LocalWorkspace final : public mcp::Workspace {
 public:
  LocalWorkspace(LocalSandbox& sb, const Prepared& prepared, std::chrono::milliseconds timeout)
      : sb_(sb), prepared_(prepared), default_timeout_(timeout) {}

  Result<runtime::ExecResult> Run(const mcp::CommandRequest& req,
                                  const runtime::OutputCallback& on_output,
                                  const std::atomic<bool>* cancel) override {
    runtime::proto::Exec e;
    e.shell_command = req.command;
    e.env = prepared_.env;
    e.workdir = req.workdir.empty() ? prepared_.workdir : req.workdir;
    auto timeout = req.timeout.count() > 0 ? req.timeout : default_timeout_;
    e.timeout_ms = static_cast<uint32_t>(
        std::min<int64_t>(timeout.count(), std::numeric_limits<uint32_t>::max()));
    e.output_cap = req.output_cap;
    runtime::CallOptions call;
    call.cancel = cancel;
    return sb_.agent().Exec(e, on_output, call);
  }
  Result<runtime::proto::FileResult> File(const runtime::proto::FileOp& op) override {
    return sb_.agent().FileOp(op);
  }
  Result<std::vector<policy::Rule>> Rules() override { return prepared_.sandbox.rules; }
  Result<fs::ChangeSet> Changes() override { return sb_.control().Changes(); }

 private:
  LocalSandbox& sb_;
  const Prepared& prepared_;
  const std::chrono::milliseconds default_timeout_;
};

std::string Instructions(const Prepared& p) {
  return "The tools act on a sandbox: /workspace is the directory " + p.sandbox.source_dir +
         " seen through a least-privilege permission policy (paths it hides do not exist, `view` "
         "paths list but do not read, only `write` paths can change; explain_permission says "
         "why). Commands and file tools see the same files. Changes collect in a copy-on-write "
         "delta (see the changes tool) and reach the directory when the session ends, as the "
         "host configured (--sync, --discard or --keep-delta).";
}

}  // namespace

int RunMcp(const McpOptions& options, std::ostream& /*out*/, std::ostream& err) {
  auto prepared = Prepare(options.sandbox);
  if (!prepared.ok()) {
    err << "agentfense: error: " << prepared.error().ToString() << "\n";
    return kExitRunUsage;
  }
  // Our stdin and stdout are the MCP channel and the host owns the terminal (if any): nobody
  // could answer a question there. Accesses to `ask` paths are denied at once (--ask=deny).
  if (prepared->ask == AskMode::kPrompt) {
    err << "agentfense: error: --ask: `mcp` has no terminal to ask on (its stdio is the MCP "
           "channel); accesses to ask paths are denied (--ask=deny)\n";
    return kExitRunUsage;
  }
  auto timeout_ms = TimeoutFlag(options.timeout, 30000);
  if (!timeout_ms.ok()) {
    err << "agentfense: error: " << timeout_ms.error().message() << "\n";
    return kExitRunUsage;
  }
  const std::chrono::milliseconds timeout(*timeout_ms);
  // Our stdout is the MCP channel: the server writes to a private copy of it, and fd 1 itself
  // becomes stderr, so that nothing else (a log line, a child that inherited it) can put a byte
  // on the channel that is not a message.
  int channel = ::fcntl(1, F_DUPFD_CLOEXEC, 3);
  if (channel < 0 || ::dup2(2, 1) < 0) {
    err << "agentfense: error: cannot set up stdout: " << std::strerror(errno) << "\n";
    return kExitRunSandbox;
  }
  UniqueFd channel_fd(channel);

  InterruptGuard guard;
  auto sandbox = LocalSandbox::Start(prepared->sandbox);
  if (!sandbox.ok()) return StartError(sandbox.error(), err);
  LocalSandbox& sb = **sandbox;
  if (!options.sandbox.quiet) {
    err << "agentfense mcp: serving the sandbox over " << prepared->sandbox.source_dir
        << " on stdio (MCP); end of input ends it\n";
    err.flush();
  }

  std::unique_ptr<AskPrompter> denier;  // each ask access denied, one line on stderr
  if (prepared->has_ask) {
    auto a = AskPrompter::Start(sb.control(), AskMode::kDeny, prepared->sandbox.rules, false,
                                "agentfense mcp");
    if (!a.ok()) {
      Outcome outcome;
      outcome.failure = a.error().ToString();
      err << "agentfense: error: " << outcome.failure << "\n";
      return Finish(sb, options.sandbox, prepared->sandbox.source_dir, outcome, err, err);
    }
    denier = std::move(*a);
  }

  LocalWorkspace workspace(sb, *prepared, timeout);
  mcp::ServerInfo info;
  info.version = AF_VERSION;
  info.instructions = Instructions(*prepared);
  mcp::Server server(std::move(info));
  Status served = mcp::ServeStdio(server, workspace, 0, channel_fd.get(), InterruptGuard::flag());

  Outcome outcome;
  if (!served.ok()) {
    outcome.failure = served.error().ToString();
    err << "agentfense: error: serving MCP: " << outcome.failure << "\n";
  } else {
    outcome.ran = true;  // the session ended as the client chose: a normal end (status 0)
  }
  if (InterruptGuard::interrupted()) outcome.interrupted_by = InterruptGuard::signal_number();
  // The summary never goes to the MCP channel (--json writes it to stderr).
  return Finish(sb, options.sandbox, prepared->sandbox.source_dir, outcome, err, err);
}

}  // namespace agentfense::cli

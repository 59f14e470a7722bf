// SandboxManager: the MCP tools' view of a running sandbox (mcp/workspace.h). The server's
// Streamable HTTP endpoint serves the same tools as `agentfense mcp`; here they reach the sandbox
// the way the API does: commands through RunCommand (the Exec path), file operations through the
// sandbox's agent, the rules from the store, the changes from the supervisor.

#include "base/ids.h"
#include "service/sandbox_convert.h"
#include "service/sandbox_manager.h"

namespace agentfense::service {

class LiveWorkspace final : public mcp::Workspace {
 public:
  LiveWorkspace(SandboxManager& mgr, CallContext ctx, std::string id)
      : mgr_(mgr), ctx_(std::move(ctx)), id_(std::move(id)) {}

  // `cancel` is ctx_.cancelled (OpenWorkspace's contract), which RunCommand already polls.
  Result<runtime::ExecResult> Run(const mcp::CommandRequest& req,
                                  const runtime::OutputCallback& on_output,
                                  const std::atomic<bool>* /*cancel*/) override {
    v1::ExecRequest e;
    e.set_sandbox_id(id_);
    e.set_command(req.command);
    e.set_workdir(req.workdir);
    if (req.timeout.count() > 0) {
      int64_t ms = req.timeout.count();
      e.mutable_timeout()->set_seconds(ms / 1000);
      e.mutable_timeout()->set_nanos(static_cast<int32_t>(ms % 1000) * 1'000'000);
    }
    // The tool's own cap, within the server's (server.max_output_bytes).
    uint64_t cap = std::min<uint64_t>(req.output_cap, mgr_.options_.max_output_bytes);
    uint64_t kept[2] = {0, 0};
    auto capped = [&](runtime::proto::Stream stream, std::string_view data) {
      uint64_t& k = kept[stream == runtime::proto::Stream::kStderr ? 1 : 0];
      size_t room = static_cast<size_t>(cap - std::min(cap, k));
      k += data.size();
      if (room > 0) on_output(stream, data.substr(0, room));
    };
    return mgr_.RunCommand(ctx_, e, capped, /*timeout_is_error=*/false);
  }

  Result<runtime::proto::FileResult> File(const runtime::proto::FileOp& op) override {
    store::SandboxRecord rec;
    AF_ASSIGN_OR_RETURN(auto live, mgr_.RunningSandbox(id_, &rec));
    // At an `ask` path the operation waits for a person until the sandbox's ask timeout: wait
    // longer than that, so that the caller gets the decision (or the timeout's EACCES) rather
    // than our own deadline, which at the default 60 s raced with a 60 s ask timeout.
    const int64_t ask_ms = rec.ask_timeout_ms > 0 ? rec.ask_timeout_ms : kDefaultAskTimeoutMs;
    auto r = live->agent->FileOp(op, std::chrono::milliseconds(ask_ms) + std::chrono::seconds(30));
    // A write is the tools' way of changing files: for sync_mode ON_EXEC it commits as a
    // command would.
    if (r.ok() && (op.op == runtime::proto::FileOpKind::kWrite ||
                   op.op == runtime::proto::FileOpKind::kEdit)) {
      mgr_.AfterCommand(*live, "");
    }
    return r;
  }

  Result<std::vector<policy::Rule>> Rules() override {
    AF_ASSIGN_OR_RETURN(store::SandboxRecord rec, mgr_.LoadSandbox(id_));
    return RulesToPolicy(rec.rules);
  }

  Result<fs::ChangeSet> Changes() override {
    AF_ASSIGN_OR_RETURN(auto live, mgr_.RunningSandbox(id_));
    return live->control->Changes();
  }

 private:
  SandboxManager& mgr_;
  const CallContext ctx_;
  const std::string id_;
};

Result<std::unique_ptr<mcp::Workspace>> SandboxManager::OpenWorkspace(const CallContext& ctx,
                                                                      const std::string& id) {
  AF_RETURN_IF_ERROR(ValidateSandboxId(id));
  // A live sandbox is known in memory; only otherwise ask the store why not (every MCP request
  // comes here, and the tools look the sandbox up again when they run).
  auto live = FindLive(id);
  if (!live || !live->agent || !live->agent->alive()) AF_RETURN_IF_ERROR(RunningSandbox(id));
  return std::unique_ptr<mcp::Workspace>(new LiveWorkspace(*this, ctx, id));
}

}  // namespace agentfense::service

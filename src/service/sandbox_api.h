// SandboxApi: the transport-free semantics of sandbox.v1.SandboxService (WIRE.md), one method per
// RPC, taking and returning the wire messages. The gRPC and REST adapters in server/ call exactly
// these functions, so both transports behave identically.
//
// The sandbox manager (FUSE mount, runtimes, supervisors) implements this interface; the server
// obtains it from MakeSandboxApi() below and knows nothing else about it.
//
// Contract for implementations:
// - Errors use the gRPC vocabulary of ErrorCode (WIRE.md "gRPC status semantics"): kInvalidArgument
//   for a missing or malformed id/command, kNotFound for an unknown object, kFailedPrecondition for
//   a wrong state, kDeadlineExceeded for a timed-out command, kUnimplemented for an RPC a runtime
//   cannot serve. A non-zero exit code is a normal result, never an error.
// - Every method may be called concurrently from many threads; the transports call them from an
//   executor thread, never from a gRPC completion-queue thread, so blocking (a slow start, a long
//   exec) is allowed.
// - The transports have already checked authentication, body size and JSON depth; ids and
//   paths are validated again here (ValidateSandboxId etc. from base/ids.h) because the
//   interface is also used by in-process callers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "fs/busy_poll.h"
#include "mcp/workspace.h"
#include "sandbox/v1/sandbox.pb.h"

namespace agentfense::store {
class MetadataStore;
class CodebaseFiles;
}  // namespace agentfense::store

namespace agentfense::service {

namespace v1 = ::sandbox::v1;

// Per-call information from the transport. Cheap to copy.
struct CallContext {
  std::string transport;  // "grpc" or "rest"
  std::string peer;       // remote address as the transport reports it
  // Set by the transport when the client goes away (disconnect, gRPC cancellation). Long
  // operations poll IsCancelled() and stop early; never null when built by the transports.
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);
  // Set for every call when the server's shutdown grace period is over (may be null).
  std::shared_ptr<const std::atomic<bool>> server_stopping;

  bool IsCancelled() const {
    return (cancelled && cancelled->load(std::memory_order_relaxed)) ||
           (server_stopping && server_stopping->load(std::memory_order_relaxed));
  }
};

// Receives one streamed output message. Returns false when the client is gone; the producer
// then stops (kills nothing by itself: the command's own timeout and cancellation apply) and
// returns kCancelled. Called from the producing thread only; it may block for back-pressure.
using ExecOutputWriter = std::function<bool(const v1::ExecOutput&)>;
// The same for the approvals stream (WatchApprovals).
using ApprovalWriter = std::function<bool(const v1::Approval&)>;

// Answers questions the codebase service asks about sandboxes, so that a codebase in use is not
// deleted behind a live sandbox.
class SandboxRegistry {
 public:
  virtual ~SandboxRegistry() = default;
  // True while a sandbox (in any state but destroyed) uses the codebase.
  virtual Result<bool> IsCodebaseInUse(const std::string& codebase_id) = 0;
  // Destroys every sandbox of the codebase (forced codebase delete). Returns how many.
  virtual Result<int64_t> DestroySandboxesOfCodebase(const CallContext& ctx,
                                                     const std::string& codebase_id) = 0;
  // A file of the codebase was uploaded or deleted through the API (`rel_path` canonical, "a/b"):
  // running sandboxes of the codebase must stop trusting what they cached about it. Best effort.
  virtual void CodebaseFileChanged(const std::string& /*codebase_id*/,
                                   const std::string& /*rel_path*/) {}
};

class SandboxApi : public SandboxRegistry {
 public:
  ~SandboxApi() override = default;

  virtual Result<v1::Sandbox> CreateSandbox(const CallContext& ctx,
                                            const v1::CreateSandboxRequest& req) = 0;
  virtual Result<v1::Sandbox> GetSandbox(const CallContext& ctx,
                                         const v1::GetSandboxRequest& req) = 0;
  virtual Result<v1::ListSandboxesResponse> ListSandboxes(const CallContext& ctx,
                                                          const v1::ListSandboxesRequest& req) = 0;
  virtual Result<v1::Sandbox> StartSandbox(const CallContext& ctx,
                                           const v1::StartSandboxRequest& req) = 0;
  virtual Result<v1::Sandbox> StopSandbox(const CallContext& ctx,
                                          const v1::StopSandboxRequest& req) = 0;
  virtual Result<v1::Empty> DestroySandbox(const CallContext& ctx,
                                           const v1::DestroySandboxRequest& req) = 0;

  virtual Result<v1::ExecResult> Exec(const CallContext& ctx, const v1::ExecRequest& req) = 0;
  // Writes typed stdout/stderr chunks as produced, then one final ExecOutput carrying only
  // exit_code. Returns an error instead of the final message when the command could not run or
  // timed out (kDeadlineExceeded); output already written stays written.
  virtual Status ExecStream(const CallContext& ctx, const v1::ExecRequest& req,
                            const ExecOutputWriter& write) = 0;

  virtual Result<v1::Session> CreateSession(const CallContext& ctx,
                                            const v1::CreateSessionRequest& req) = 0;
  virtual Result<v1::Session> GetSession(const CallContext& ctx,
                                         const v1::GetSessionRequest& req) = 0;
  virtual Result<v1::ListSessionsResponse> ListSessions(const CallContext& ctx,
                                                        const v1::ListSessionsRequest& req) = 0;
  virtual Result<v1::Empty> DestroySession(const CallContext& ctx,
                                           const v1::DestroySessionRequest& req) = 0;
  virtual Result<v1::ExecResult> SessionExec(const CallContext& ctx,
                                             const v1::SessionExecRequest& req) = 0;
  // As ExecStream, for one command of a session.
  virtual Status SessionExecStream(const CallContext& ctx, const v1::SessionExecRequest& req,
                                   const ExecOutputWriter& write) = 0;

  // ---- Extensions (proto/sandbox/v1/sandbox.proto). Defaults answer kUnimplemented so that
  // test doubles need not implement them.

  // Replaces the rule list (validated like CreateSandbox). On a running sandbox the supervisor
  // applies it before the call returns; a stopped one gets it at its next start.
  virtual Result<v1::Sandbox> UpdatePermissions(const CallContext&,
                                                const v1::UpdatePermissionsRequest&) {
    return Unimplemented("UpdatePermissions");
  }
  virtual Result<v1::ExplainPermissionResponse> ExplainPermission(
      const CallContext&, const v1::ExplainPermissionRequest&) {
    return Unimplemented("ExplainPermission");
  }
  // The delta of a running sandbox; kFailedPrecondition when it is not running.
  virtual Result<v1::ListChangesResponse> ListChanges(const CallContext&,
                                                      const v1::ListChangesRequest&) {
    return Unimplemented("ListChanges");
  }
  // Per-file failures are in the response, not an error of the call.
  virtual Result<v1::CommitChangesResponse> CommitChanges(const CallContext&,
                                                          const v1::CommitChangesRequest&) {
    return Unimplemented("CommitChanges");
  }
  virtual Result<v1::DiscardChangesResponse> DiscardChanges(const CallContext&,
                                                            const v1::DiscardChangesRequest&) {
    return Unimplemented("DiscardChanges");
  }
  // Replaces the egress policy (validated like CreateSandbox); on a running sandbox the
  // supervisor's filter decides by it before the call returns.
  virtual Result<v1::Sandbox> UpdateEgress(const CallContext&, const v1::UpdateEgressRequest&) {
    return Unimplemented("UpdateEgress");
  }
  // Denials (ingested from every supervisor first) and lifecycle events, oldest first.
  virtual Result<v1::GetAuditLogResponse> GetAuditLog(const CallContext&,
                                                      const v1::GetAuditLogRequest&) {
    return Unimplemented("GetAuditLog");
  }

  // Checkpoints of a running sandbox's delta (docs/CHECKPOINTS.md).
  virtual Result<v1::Checkpoint> CreateCheckpoint(const CallContext&,
                                                  const v1::CreateCheckpointRequest&) {
    return Unimplemented("CreateCheckpoint");
  }
  virtual Result<v1::ListCheckpointsResponse> ListCheckpoints(const CallContext&,
                                                              const v1::ListCheckpointsRequest&) {
    return Unimplemented("ListCheckpoints");
  }
  virtual Result<v1::Checkpoint> RestoreCheckpoint(const CallContext&,
                                                   const v1::RestoreCheckpointRequest&) {
    return Unimplemented("RestoreCheckpoint");
  }
  virtual Result<v1::DiffCheckpointResponse> DiffCheckpoint(const CallContext&,
                                                            const v1::DiffCheckpointRequest&) {
    return Unimplemented("DiffCheckpoint");
  }
  virtual Result<v1::Empty> DeleteCheckpoint(const CallContext&,
                                             const v1::DeleteCheckpointRequest&) {
    return Unimplemented("DeleteCheckpoint");
  }

  // Approvals of accesses to `ask` paths (docs/PERMISSIONS.md, "ask").
  virtual Result<v1::ListApprovalsResponse> ListApprovals(const CallContext&,
                                                          const v1::ListApprovalsRequest&) {
    return Unimplemented("ListApprovals");
  }
  virtual Result<v1::Approval> AnswerApproval(const CallContext&,
                                              const v1::AnswerApprovalRequest&) {
    return Unimplemented("AnswerApproval");
  }
  // Writes the pending approvals, then every new one and every resolution, until the client is
  // gone (kCancelled), the sandbox stops (OK) or the server shuts down.
  virtual Status WatchApprovals(const CallContext&, const v1::WatchApprovalsRequest&,
                                const ApprovalWriter&) {
    return Unimplemented("WatchApprovals");
  }

  // The MCP tools' view of a running sandbox (mcp/workspace.h), for the calls of one request:
  // commands run as Exec runs them (timeout capped at the maximum, output cap, metrics, the
  // ON_EXEC commit, which a write_file or edit_file triggers too) and stop when `ctx.cancelled`
  // turns true, which must be the flag the MCP request's cancellation sets. Errors as Exec:
  // kNotFound, kFailedPrecondition (not running).
  virtual Result<std::unique_ptr<mcp::Workspace>> OpenWorkspace(const CallContext&,
                                                                const std::string&) {
    return Unimplemented("MCP");
  }

  // Called once on graceful shutdown, after both transports stopped accepting calls. Running
  // sandboxes keep running (their supervisors outlive the server); only in-process state is
  // released. Default: nothing to do.
  virtual void Shutdown() {}

  // Prometheus exposition text (with # HELP / # TYPE lines) for the sandbox families: sandboxes
  // by state, exec latency, denials, FUSE op counts. Appended to GET /metrics; called from an
  // HTTP thread, must not block for long. Default: none.
  virtual std::string MetricsText() { return ""; }

 protected:
  static Error Unimplemented(const char* rpc) {
    return Error(ErrorCode::kUnimplemented, std::string(rpc) + " is not implemented here");
  }
};

// Settings of the sandbox manager, copied from the server config (service/ cannot include
// server/config.h: the layering is one-way).
struct SandboxApiOptions {
  std::string mount_path;  // storage.mount_path (created 0700 by the server before the call)
  std::string runtime;     // default runtime: "bwrap" or "docker"
  std::string bwrap_path;
  std::chrono::nanoseconds default_timeout{std::chrono::seconds(30)};
  std::chrono::nanoseconds max_timeout{std::chrono::minutes(10)};
  uint64_t max_output_bytes = 16ull << 20;
  std::string docker_host;
  std::string docker_default_image;
  bool docker_enable_networking = false;
  // network.dns_servers / network.public_cidrs (docs/NETWORK.md): the sandboxes' resolver's
  // upstreams (empty: the host's resolv.conf) and special-purpose ranges treated as public.
  std::vector<std::string> network_dns_servers;
  std::vector<std::string> network_public_cidrs;
  std::chrono::nanoseconds default_expiration{std::chrono::hours(24)};
  int max_per_user = 100;
  std::chrono::nanoseconds cleanup_interval{std::chrono::minutes(1)};
  std::string identity_range = "524288-589823";  // sandbox.uid_range
  int max_checkpoints = 100;                      // sandbox.max_checkpoints (per sandbox)
  int fuse_busy_poll_us = fs::kDefaultBusyPollUs;  // sandbox.fuse_busy_poll_us
};

// What the sandbox manager borrows from the server. Both outlive the SandboxApi.
struct SandboxApiDeps {
  store::MetadataStore* metadata = nullptr;
  store::CodebaseFiles* files = nullptr;
};

// The one factory the server calls at start-up (after opening the store, before serving): the
// sandbox manager (sandbox_manager.h), which re-adopts running sandboxes from the metadata store.
Result<std::unique_ptr<SandboxApi>> MakeSandboxApi(const SandboxApiOptions& options,
                                                   const SandboxApiDeps& deps);

}  // namespace agentfense::service

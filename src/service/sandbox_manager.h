// SandboxManager: the real SandboxApi. Each running sandbox is a supervisor process
// (supervisor/supervisor.h) that owns the sandbox's FUSE mount and runtime; the manager starts
// supervisors, talks to them through their sockets, and keeps the metadata store true.
//
// Because supervisors outlive the server, a new manager re-adopts the sandboxes the store says
// are running: live supervisors are reconnected, dead ones are marked STOPPED and their mounts
// cleaned up. A reaper thread destroys expired sandboxes every cleanup_interval.
//
// Layout under options.mount_path (0711: the unprivileged sandbox uid may traverse, not list):
//   <mount_path>/<sandbox_id>/          the mount point of the sandbox's permission filesystem
//   <mount_path>/.run/<sandbox_id>/     0700: spec, sockets, log and audit of its supervisor
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "runtime/agent_client.h"
#include "service/sandbox_api.h"
#include "store/records.h"
#include "supervisor/client.h"
#include "supervisor/launch.h"

namespace agentfense::service {

// The host settings of this server's sandboxes (supervisor/launch.h), from its options.
supervisor::HostSettings HostRequest(const SandboxApiOptions& options);

class SandboxManager final : public SandboxApi {
 public:
  static Result<std::unique_ptr<SandboxManager>> Create(const SandboxApiOptions& options,
                                                        const SandboxApiDeps& deps,
                                                        supervisor::HostSettings host);
  ~SandboxManager() override;

  Result<bool> IsCodebaseInUse(const std::string& codebase_id) override;
  Result<int64_t> DestroySandboxesOfCodebase(const CallContext& ctx,
                                             const std::string& codebase_id) override;
  void CodebaseFileChanged(const std::string& codebase_id, const std::string& rel_path) override;

  Result<v1::Sandbox> CreateSandbox(const CallContext& ctx,
                                    const v1::CreateSandboxRequest& req) override;
  Result<v1::Sandbox> GetSandbox(const CallContext& ctx, const v1::GetSandboxRequest& req) override;
  Result<v1::ListSandboxesResponse> ListSandboxes(const CallContext& ctx,
                                                  const v1::ListSandboxesRequest& req) override;
  Result<v1::Sandbox> StartSandbox(const CallContext& ctx,
                                   const v1::StartSandboxRequest& req) override;
  Result<v1::Sandbox> StopSandbox(const CallContext& ctx, const v1::StopSandboxRequest& req) override;
  Result<v1::Empty> DestroySandbox(const CallContext& ctx,
                                   const v1::DestroySandboxRequest& req) override;

  Result<v1::ExecResult> Exec(const CallContext& ctx, const v1::ExecRequest& req) override;
  Status ExecStream(const CallContext& ctx, const v1::ExecRequest& req,
                    const ExecOutputWriter& write) override;

  Result<v1::Session> CreateSession(const CallContext& ctx,
                                    const v1::CreateSessionRequest& req) override;
  Result<v1::Session> GetSession(const CallContext& ctx, const v1::GetSessionRequest& req) override;
  Result<v1::ListSessionsResponse> ListSessions(const CallContext& ctx,
                                                const v1::ListSessionsRequest& req) override;
  Result<v1::Empty> DestroySession(const CallContext& ctx,
                                   const v1::DestroySessionRequest& req) override;
  Result<v1::ExecResult> SessionExec(const CallContext& ctx,
                                     const v1::SessionExecRequest& req) override;
  Status SessionExecStream(const CallContext& ctx, const v1::SessionExecRequest& req,
                           const ExecOutputWriter& write) override;

  Result<v1::Sandbox> UpdatePermissions(const CallContext& ctx,
                                        const v1::UpdatePermissionsRequest& req) override;
  Result<v1::ExplainPermissionResponse> ExplainPermission(
      const CallContext& ctx, const v1::ExplainPermissionRequest& req) override;
  Result<v1::Sandbox> UpdateEgress(const CallContext& ctx,
                                   const v1::UpdateEgressRequest& req) override;
  Result<v1::ListChangesResponse> ListChanges(const CallContext& ctx,
                                              const v1::ListChangesRequest& req) override;
  Result<v1::CommitChangesResponse> CommitChanges(const CallContext& ctx,
                                                  const v1::CommitChangesRequest& req) override;
  Result<v1::DiscardChangesResponse> DiscardChanges(const CallContext& ctx,
                                                    const v1::DiscardChangesRequest& req) override;
  Result<v1::GetAuditLogResponse> GetAuditLog(const CallContext& ctx,
                                              const v1::GetAuditLogRequest& req) override;
  Result<v1::Checkpoint> CreateCheckpoint(const CallContext& ctx,
                                          const v1::CreateCheckpointRequest& req) override;
  Result<v1::ListCheckpointsResponse> ListCheckpoints(
      const CallContext& ctx, const v1::ListCheckpointsRequest& req) override;
  Result<v1::Checkpoint> RestoreCheckpoint(const CallContext& ctx,
                                           const v1::RestoreCheckpointRequest& req) override;
  Result<v1::DiffCheckpointResponse> DiffCheckpoint(const CallContext& ctx,
                                                    const v1::DiffCheckpointRequest& req) override;
  Result<v1::Empty> DeleteCheckpoint(const CallContext& ctx,
                                     const v1::DeleteCheckpointRequest& req) override;
  Result<v1::ListApprovalsResponse> ListApprovals(const CallContext& ctx,
                                                  const v1::ListApprovalsRequest& req) override;
  Result<v1::Approval> AnswerApproval(const CallContext& ctx,
                                      const v1::AnswerApprovalRequest& req) override;
  Status WatchApprovals(const CallContext& ctx, const v1::WatchApprovalsRequest& req,
                        const ApprovalWriter& write) override;
  Result<std::unique_ptr<mcp::Workspace>> OpenWorkspace(const CallContext& ctx,
                                                        const std::string& sandbox_id) override;

  void Shutdown() override;
  std::string MetricsText() override;

 private:
  // A running sandbox as this process knows it.
  struct Live {
    std::string id;
    std::string codebase_id;
    std::string sync_mode;                   // store vocabulary: "on_exec", "on_stop", ...
    std::map<std::string, std::string> env;  // CreateSandboxRequest.env
    std::unique_ptr<supervisor::SupervisorControl> control;
    // Set by Attach before the Live is published in live_, never changed after (callers use it
    // without a lock); it closes when the last holder of the Live lets go.
    std::unique_ptr<runtime::AgentClient> agent;
    std::mutex sessions_mu;                 // guards sessions
    std::map<std::string, uint64_t> sessions;  // sess_ id → the agent's session id
    std::mutex commit_mu;                   // one commit of this sandbox's delta at a time
    std::atomic<bool> commit_warned{false};  // a failing commit is logged once, not per exec
    // Exec and session commands in flight (a restore is refused meanwhile: docs/CHECKPOINTS.md).
    std::atomic<int> commands{0};
    class Running {
     public:
      // Counted under commit_mu, which a restore holds from its check to its end: a command never
      // starts in the middle of a restore that found none running.
      explicit Running(Live& l) : live_(l) {
        std::lock_guard lock(live_.commit_mu);
        live_.commands++;
      }
      ~Running() { live_.commands--; }
      Running(const Running&) = delete;
      Running& operator=(const Running&) = delete;

     private:
      Live& live_;
    };
  };

  SandboxManager(const SandboxApiOptions& options, const SandboxApiDeps& deps,
                 supervisor::HostSettings host);

  std::string MountPoint(const std::string& id) const;
  std::string RunDir(const std::string& id) const;
  Status PrepareDirs(const std::string& id) const;
  void RemoveDirs(const std::string& id) const;

  // The per-sandbox lock serializes lifecycle transitions of one sandbox (start/stop/destroy).
  std::shared_ptr<std::mutex> LifecycleLock(const std::string& id);
  std::shared_ptr<Live> FindLive(const std::string& id);
  // The live sandbox for an exec-like call: kNotFound / kFailedPrecondition otherwise.
  // `record`, when given, receives the sandbox's stored record (read anyway to check it runs).
  Result<std::shared_ptr<Live>> RunningSandbox(const std::string& id,
                                               store::SandboxRecord* record = nullptr);

  Result<store::SandboxRecord> LoadSandbox(const std::string& id);
  // Replaces a sandbox's rules with `next(stored rules)`: applied to the running sandbox, stored
  // and audited, all under the lifecycle lock, so a read-modify-write (a remembered approval)
  // never loses a concurrent UpdatePermissions (sandbox_policy.cc).
  using RulesEdit = std::function<Result<std::vector<store::RuleRecord>>(
      const std::vector<store::RuleRecord>& stored)>;
  Result<v1::Sandbox> ReplaceRules(const std::string& id, const RulesEdit& next);
  // Validates `egress` with the one validator (policy::EgressPolicy) and stores its normalized
  // rules in `rec` (sandbox_policy.cc).
  Status SetEgress(store::SandboxRecord& rec, bool any_public,
                   const google::protobuf::RepeatedPtrField<std::string>& allow) const;
  Status StartLocked(store::SandboxRecord& rec);
  Status StopLocked(store::SandboxRecord& rec, bool destroy);
  Status DestroyLocked(const std::string& id);
  // Connects to a running supervisor and restores what the server keeps in memory.
  Result<std::shared_ptr<Live>> Attach(const std::string& id);
  void SaveSessions(Live& live);

  void Readopt();
  void ReaperLoop();
  // Removes containers of this instance whose sandbox is gone or in ERROR.
  void CleanupDockerOrphans();

  // ---- audit (sandbox_audit.cc)
  // Moves new lines of the sandbox's audit.jsonl into the store, exactly once each.
  void IngestAudit(const std::string& id);
  void IngestAllAudit();
  std::mutex ingest_mu_;  // serializes ingestion (offset read → insert → offset write)
  std::atomic<uint64_t> denials_ingested_{0};

  // ---- metrics (sandbox_metrics.cc)
  void RecordExec(const char* kind, double seconds, bool ok);
  static constexpr std::array<double, 12> kExecBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                          0.5,   1,    2.5,   5,    10,  60};
  struct ExecHistogram {
    std::array<uint64_t, kExecBuckets.size()> buckets{};
    uint64_t count = 0;
    uint64_t errors = 0;
    double sum = 0;
  };
  std::mutex metrics_mu_;  // guards exec_metrics_; leaf lock
  std::map<std::string, ExecHistogram> exec_metrics_;

  // ---- checkpoints (sandbox_checkpoints.cc)
  // The live sandbox whose delta a checkpoint call acts on: kFailedPrecondition when it is not
  // running, or commits after every command (sync_mode ON_EXEC: nothing would stay to checkpoint).
  Result<std::shared_ptr<Live>> CheckpointSandbox(const std::string& id, const std::string& what);

  // ---- approvals (sandbox_approvals.cc)
  // The live sandbox whose held accesses a call is about: kFailedPrecondition when not running.
  Result<std::shared_ptr<Live>> AskingSandbox(const std::string& id);

  // ---- delta (sandbox_delta.cc)
  std::string DeltaDir(const std::string& id) const;
  // Commits the delta of a running sandbox and makes the other sandboxes of its codebase see
  // the applied paths.
  Result<v1::CommitChangesResponse> CommitLive(Live& live);
  // Invalidates workspace `paths` in every running sandbox of `codebase_id` except `except_id`.
  void InvalidateOthers(const std::string& codebase_id, const std::string& except_id,
                        const std::set<std::string>& paths);
  // After every exec / session command: the ON_EXEC commit, and the session liveness check.
  void AfterCommand(Live& live, const std::string& session_id);
  // Marks CLOSED every session whose shell exited (without running anything in live shells).
  void ProbeSessions(Live& live, const std::string& only_session);
  void Audit(const std::string& sandbox_id, const std::string& operation,
             const std::string& detail);

  // Runs an exec or session command. A command that outlives its timeout is kDeadlineExceeded
  // (the API's contract), or a result with timed_out set when `timeout_is_error` is false (MCP).
  template <typename Request>
  Result<runtime::ExecResult> RunCommand(const CallContext& ctx, const Request& req,
                                         const runtime::OutputCallback& on_output,
                                         bool timeout_is_error = true);

  // ---- MCP (sandbox_mcp.cc)
  friend class LiveWorkspace;

  const SandboxApiOptions options_;
  const SandboxApiDeps deps_;
  const supervisor::HostSettings host_;  // resolved once (supervisor::ResolveHost)

  std::mutex mu_;  // guards live_ and locks_; never held across a supervisor call
  std::map<std::string, std::shared_ptr<Live>> live_;
  std::map<std::string, std::shared_ptr<std::mutex>> locks_;

  std::mutex reaper_mu_;  // with reaper_cv_: wakes the reaper for shutdown
  std::condition_variable reaper_cv_;
  bool stopping_ = false;  // guarded by reaper_mu_
  std::thread reaper_;
};

}  // namespace agentfense::service

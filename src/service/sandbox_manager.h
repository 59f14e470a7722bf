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

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "runtime/agent_client.h"
#include "service/sandbox_api.h"
#include "store/records.h"
#include "supervisor/client.h"

namespace agentfense::service {

struct SandboxManagerPaths {
  std::string supervisor_bin;  // agentfense-supervisor
  std::string agent_bin;       // agentfense-agent (static)
};

// Removes the (stopped) Docker container of a sandbox, if any. Best effort.
void RemoveDockerContainer(const SandboxApiOptions& options, const std::string& sandbox_id);

// Finds agentfense-supervisor and agentfense-agent beside the running executable.
Result<SandboxManagerPaths> FindSandboxBinaries();

class SandboxManager final : public SandboxApi {
 public:
  static Result<std::unique_ptr<SandboxManager>> Create(const SandboxApiOptions& options,
                                                        const SandboxApiDeps& deps,
                                                        SandboxManagerPaths paths);
  ~SandboxManager() override;

  Result<bool> IsCodebaseInUse(const std::string& codebase_id) override;
  Result<int64_t> DestroySandboxesOfCodebase(const CallContext& ctx,
                                             const std::string& codebase_id) override;

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

  void Shutdown() override;

 private:
  // A running sandbox as this process knows it.
  struct Live {
    std::string id;
    std::unique_ptr<supervisor::SupervisorControl> control;
    std::unique_ptr<runtime::AgentClient> agent;
    std::mutex sessions_mu;                 // guards sessions
    std::map<std::string, uint64_t> sessions;  // sess_ id → the agent's session id
  };

  SandboxManager(const SandboxApiOptions& options, const SandboxApiDeps& deps,
                 SandboxManagerPaths paths);

  std::string MountPoint(const std::string& id) const;
  std::string RunDir(const std::string& id) const;
  Status PrepareDirs(const std::string& id) const;
  void RemoveDirs(const std::string& id) const;

  // The per-sandbox lock serializes lifecycle transitions of one sandbox (start/stop/destroy).
  std::shared_ptr<std::mutex> LifecycleLock(const std::string& id);
  std::shared_ptr<Live> FindLive(const std::string& id);
  // The live sandbox for an exec-like call: kNotFound / kFailedPrecondition otherwise.
  Result<std::shared_ptr<Live>> RunningSandbox(const std::string& id);

  Result<store::SandboxRecord> LoadSandbox(const std::string& id);
  Status StartLocked(store::SandboxRecord& rec);
  Status StopLocked(store::SandboxRecord& rec, bool destroy);
  Status DestroyLocked(const std::string& id);
  // Connects to a running supervisor and restores what the server keeps in memory.
  Result<std::shared_ptr<Live>> Attach(const std::string& id);
  void SaveSessions(Live& live);

  void Readopt();
  void ReaperLoop();
  void Audit(const std::string& sandbox_id, const std::string& operation,
             const std::string& detail);

  template <typename Request>
  Result<runtime::ExecResult> RunCommand(const CallContext& ctx, const Request& req,
                                         const runtime::OutputCallback& on_output);

  const SandboxApiOptions options_;
  const SandboxApiDeps deps_;
  const SandboxManagerPaths paths_;

  std::mutex mu_;  // guards live_ and locks_; never held across a supervisor call
  std::map<std::string, std::shared_ptr<Live>> live_;
  std::map<std::string, std::shared_ptr<std::mutex>> locks_;

  std::mutex reaper_mu_;  // with reaper_cv_: wakes the reaper for shutdown
  std::condition_variable reaper_cv_;
  bool stopping_ = false;  // guarded by reaper_mu_
  std::thread reaper_;
};

}  // namespace agentfense::service

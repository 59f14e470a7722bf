#include "supervisor/runtime_instance.h"

#include <fmt/format.h>

#include "net/netns.h"
#include "runtime/bwrap_sandbox.h"
#include "runtime/docker_launcher.h"
#include "supervisor/launch.h"

namespace agentfense::supervisor {
namespace {

using runtime::CallOptions;
using runtime::ExecResult;
using runtime::OutputCallback;
namespace proto = runtime::proto;

class BwrapInstance final : public RuntimeInstance {
 public:
  explicit BwrapInstance(std::unique_ptr<runtime::BwrapSandbox> sb) : sb_(std::move(sb)) {}
  Result<ExecResult> Exec(const proto::Exec& r, const OutputCallback& out,
                          const CallOptions& o) override {
    return sb_->Exec(r, out, o);
  }
  Result<uint64_t> OpenSession(const proto::SessionOpen& r) override {
    return sb_->OpenSession(r);
  }
  Result<ExecResult> SessionExec(const proto::SessionExec& r, const OutputCallback& out,
                                 const CallOptions& o) override {
    return sb_->SessionExec(r, out, o);
  }
  Status CloseSession(uint64_t id) override { return sb_->CloseSession(id); }
  Result<std::unique_ptr<runtime::PtyCall>> OpenPty(const proto::PtyOpen& r) override {
    auto agent = sb_->agent();
    if (!agent) return Error(ErrorCode::kUnavailable, "sandbox is stopped");
    return agent->OpenPty(r);
  }
  Result<proto::FileResult> FileOp(const proto::FileOp& r) override {
    auto agent = sb_->agent();
    if (!agent) return Error(ErrorCode::kUnavailable, "sandbox is stopped");
    return agent->FileOp(r);
  }
  Status Stop(bool /*destroy*/) override { return sb_->Stop(); }
  bool alive() const override { return sb_->running(); }
  pid_t pid() const override { return sb_->pid(); }

 private:
  std::unique_ptr<runtime::BwrapSandbox> sb_;
};

// The relay's workers call in while the supervisor may stop it: each call holds its own reference
// to the agent client (runtime::SharedAgentClient), as BwrapSandbox does.
class DockerInstance final : public RuntimeInstance {
 public:
  DockerInstance(std::unique_ptr<runtime::DockerLauncher> launcher, std::string id,
                 std::unique_ptr<runtime::AgentClient> agent)
      : launcher_(std::move(launcher)), id_(std::move(id)), agent_(std::move(agent)) {}
  Result<ExecResult> Exec(const proto::Exec& r, const OutputCallback& out,
                          const CallOptions& o) override {
    AF_ASSIGN_OR_RETURN(auto agent, Agent());
    return launcher_->Exec(*agent, id_, r, out, o);
  }
  Result<uint64_t> OpenSession(const proto::SessionOpen& r) override {
    AF_ASSIGN_OR_RETURN(auto agent, Agent());
    return agent->OpenSession(r);
  }
  Result<ExecResult> SessionExec(const proto::SessionExec& r, const OutputCallback& out,
                                 const CallOptions& o) override {
    AF_ASSIGN_OR_RETURN(auto agent, Agent());
    return agent->SessionExec(r, out, o);
  }
  Status CloseSession(uint64_t id) override {
    AF_ASSIGN_OR_RETURN(auto agent, Agent());
    return agent->CloseSession(id);
  }
  Result<std::unique_ptr<runtime::PtyCall>> OpenPty(const proto::PtyOpen& r) override {
    AF_ASSIGN_OR_RETURN(auto agent, Agent());
    return agent->OpenPty(r);
  }
  Result<proto::FileResult> FileOp(const proto::FileOp& r) override {
    AF_ASSIGN_OR_RETURN(auto agent, Agent());
    return agent->FileOp(r);
  }
  Status Stop(bool destroy) override {
    agent_.Close();
    return destroy ? launcher_->Destroy(id_) : launcher_->Stop(id_);
  }
  bool alive() const override {
    auto agent = agent_.Get();
    return agent && agent->alive();
  }
  pid_t pid() const override {
    auto info = launcher_->Inspect(id_);
    return info.ok() && info->running ? static_cast<pid_t>(info->pid) : 0;
  }

 private:
  Result<std::shared_ptr<runtime::AgentClient>> Agent() const {
    auto agent = agent_.Get();
    if (!agent) return Error(ErrorCode::kUnavailable, "sandbox is stopped");
    return agent;
  }

  std::unique_ptr<runtime::DockerLauncher> launcher_;
  std::string id_;
  runtime::SharedAgentClient agent_;
};

Result<std::unique_ptr<RuntimeInstance>> StartBwrap(const SupervisorSpec& spec,
                                                    const SandboxIdentity& identity, int netns_fd) {
  runtime::SandboxSpec s;
  s.id = spec.sandbox_id;
  s.host_uid = identity.uid;
  s.host_gid = identity.gid;
  s.workspace_dir = spec.mountpoint;
  s.network = spec.network;
  s.netns_fd = netns_fd;
  s.resolver = net::kResolverAddress;  // the egress filter answers DNS there
  s.agent_path = spec.agent_path;
  s.bwrap_path = spec.bwrap_path;
  s.limits.memory_bytes = spec.limits.memory_bytes;
  s.limits.pids_max = spec.limits.pids_limit;
  // WIRE.md cpu_quota is µs per 100 ms period: 100000 = one CPU = 1000 millis.
  s.limits.cpu_millis = static_cast<uint32_t>(spec.limits.cpu_quota_us / 100);
  s.limits.cpu_shares = spec.limits.cpu_shares;
  AF_ASSIGN_OR_RETURN(auto sb, runtime::BwrapSandbox::Start(s));
  return std::unique_ptr<RuntimeInstance>(new BwrapInstance(std::move(sb)));
}

Result<std::unique_ptr<RuntimeInstance>> StartDocker(const SupervisorSpec& spec,
                                                     const SandboxIdentity& identity) {
  AF_ASSIGN_OR_RETURN(auto launcher,
                      MakeDockerLauncher(HostOf(spec), identity.uid, identity.gid));
  runtime::DockerSandboxSpec d;
  d.sandbox_id = spec.sandbox_id;
  d.image = spec.image;
  d.workspace_dir = spec.mountpoint;
  d.network = spec.network;
  runtime::DockerLimits limits = launcher->config().default_limits;
  if (spec.limits.memory_bytes) limits.memory_bytes = static_cast<int64_t>(spec.limits.memory_bytes);
  if (spec.limits.cpu_quota_us) limits.cpu_quota_us = spec.limits.cpu_quota_us;
  if (spec.limits.cpu_shares) limits.cpu_shares = static_cast<int64_t>(spec.limits.cpu_shares);
  if (spec.limits.pids_limit) limits.pids_limit = static_cast<int64_t>(spec.limits.pids_limit);
  d.limits = limits;
  // A container left from an earlier start of this sandbox is reused (restart after stop), unless
  // it was made for another host identity (the earlier one was taken meanwhile): then it is
  // made afresh, since its user is fixed at creation.
  auto info = launcher->Inspect(spec.sandbox_id);
  if (info.ok() && info->user != fmt::format("{}:{}", identity.uid, identity.gid)) {
    AF_RETURN_IF_ERROR(launcher->Destroy(spec.sandbox_id));
    info = Error(ErrorCode::kNotFound, "container removed");
  }
  if (!info.ok()) AF_RETURN_IF_ERROR(launcher->CreateSandbox(d));
  AF_ASSIGN_OR_RETURN(auto agent, launcher->Start(spec.sandbox_id));
  return std::unique_ptr<RuntimeInstance>(
      new DockerInstance(std::move(launcher), spec.sandbox_id, std::move(agent)));
}

}  // namespace

Result<std::unique_ptr<RuntimeInstance>> StartRuntime(const SupervisorSpec& spec,
                                                      const SandboxIdentity& identity,
                                                      int netns_fd) {
  if (spec.runtime == RuntimeKind::kDocker) return StartDocker(spec, identity);
  return StartBwrap(spec, identity, netns_fd);
}

}  // namespace agentfense::supervisor

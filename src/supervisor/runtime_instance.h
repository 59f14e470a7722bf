// The running half of a sandbox, whatever its runtime: a connection to its agent plus the means to
// stop it. The supervisor relays the agent protocol to the server through this interface.
#pragma once

#include <sys/types.h>

#include <memory>

#include "base/result.h"
#include "runtime/agent_client.h"
#include "supervisor/spec.h"

namespace agentfense::supervisor {

// The host uid/gid a sandbox's processes run as.
struct SandboxIdentity {
  uid_t uid = 0;
  gid_t gid = 0;
};

class RuntimeInstance {
 public:
  virtual ~RuntimeInstance() = default;
  virtual Result<runtime::ExecResult> Exec(const runtime::proto::Exec& request,
                                           const runtime::OutputCallback& on_output,
                                           const runtime::CallOptions& options) = 0;
  virtual Result<uint64_t> OpenSession(const runtime::proto::SessionOpen& request) = 0;
  virtual Result<runtime::ExecResult> SessionExec(const runtime::proto::SessionExec& request,
                                                  const runtime::OutputCallback& on_output,
                                                  const runtime::CallOptions& options) = 0;
  virtual Status CloseSession(uint64_t session_id) = 0;
  // A program on a terminal allocated inside the sandbox (runtime::AgentClient::OpenPty).
  virtual Result<std::unique_ptr<runtime::PtyCall>> OpenPty(
      const runtime::proto::PtyOpen& request) = 0;
  // A file operation inside the sandbox (runtime::AgentClient::FileOp).
  virtual Result<runtime::proto::FileResult> FileOp(const runtime::proto::FileOp& request) = 0;
  // Stops every process of the sandbox. For Docker the container is kept (restartable) unless
  // `destroy`. Idempotent.
  virtual Status Stop(bool destroy) = 0;
  virtual bool alive() const = 0;
  // Host pid of a process inside the sandbox's namespaces (bwrap, the container's init).
  virtual pid_t pid() const = 0;
};

// Starts the sandbox's runtime over `spec.mountpoint` (already mounted), running as `identity`.
// bwrap with network on joins `netns_fd` (prepared by the supervisor); Docker ignores it: its
// container gets a namespace of its own (NetworkMode none) that the supervisor prepares after the
// start.
Result<std::unique_ptr<RuntimeInstance>> StartRuntime(const SupervisorSpec& spec,
                                                      const SandboxIdentity& identity,
                                                      int netns_fd);

}  // namespace agentfense::supervisor

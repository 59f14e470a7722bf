// A running bwrap sandbox: owns the bwrap process (pidfd), its cgroup and the connection to the
// agent inside. Destroying it kills everything and removes the cgroup.
//
// The agent's socket is one end of a socketpair inherited by bwrap as fd 3 (bwrap passes inherited
// fds through to its command). Chosen over a socket in a bound host directory because nothing
// else can ever reach it: there is no path to connect to, in the sandbox or on the host, no
// directory to bind (a bind source under an agent-writable tree is a symlink-swap risk, Flatpak
// CVE-2024-42472), and when either side dies the other sees EOF at once (the agent then kills
// everything and exits). One connection carries every request, multiplexed by request id.
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>

#include "base/result.h"
#include "base/unique_fd.h"
#include "runtime/agent_client.h"
#include "runtime/bwrap_plan.h"
#include "runtime/cgroup.h"

namespace agentfense::runtime {

// Why an unprivileged launcher cannot have the user namespace bwrap needs, read from `proc`'s
// sysctls (Debian's kernel.unprivileged_userns_clone, user.max_user_namespaces, Ubuntu's AppArmor
// restriction), with the fix; "" when nothing there forbids it.
std::string UserNamespaceBlocker(const std::string& proc = "/proc");

class BwrapSandbox {
 public:
  // Starts bwrap with the agent as PID 1 and waits for the agent's Hello. Errors:
  // kInvalidArgument (bad spec), kFailedPrecondition (bwrap missing, cgroup not writable when
  // limits are asked, workspace missing), kUnavailable (the sandbox died during start; the message
  // carries bwrap's stderr).
  static Result<std::unique_ptr<BwrapSandbox>> Start(const SandboxSpec& spec);

  ~BwrapSandbox();
  BwrapSandbox(const BwrapSandbox&) = delete;
  BwrapSandbox& operator=(const BwrapSandbox&) = delete;

  // As AgentClient, plus the oom flag from the cgroup: set when the command was SIGKILLed and the
  // cgroup's OOM-kill counter moved during it (a concurrent command's OOM can set it too).
  Result<ExecResult> Exec(const proto::Exec& request, const OutputCallback& on_output = nullptr,
                          const CallOptions& options = {});
  Result<uint64_t> OpenSession(const proto::SessionOpen& request);
  Result<ExecResult> SessionExec(const proto::SessionExec& request,
                                 const OutputCallback& on_output = nullptr,
                                 const CallOptions& options = {});
  Status CloseSession(uint64_t session_id);

  // Kills the agent and every process of the sandbox, reaps bwrap, removes the cgroup.
  // Idempotent; the destructor calls it. Safe while other threads are inside the calls above:
  // theirs fail with kUnavailable (or kFailedPrecondition once stopped).
  Status Stop();

  bool running() const;
  pid_t pid() const { return pid_; }  // bwrap's pid on the host
  const Cgroup* cgroup() const { return cgroup_.get(); }
  // The agent connection (null once stopped); the caller's reference keeps it valid.
  std::shared_ptr<AgentClient> agent() const { return client_.Get(); }

 private:
  BwrapSandbox() = default;
  Result<std::shared_ptr<AgentClient>> Client() const;  // kFailedPrecondition once stopped
  void MarkOom(ExecResult& r, uint64_t oom_before) const;

  pid_t pid_ = -1;
  UniqueFd pidfd_;
  UniqueFd stderr_fd_;  // memfd with bwrap's (and the agent's) stderr
  // Removed by Stop but kept until destruction: a call returning during the stop still reads its
  // OOM counter (by path, nothing Stop closes).
  std::unique_ptr<Cgroup> cgroup_;
  SharedAgentClient client_;
  mutable std::mutex stop_mu_;  // Stop and running(): the process handles and stopped_
  bool stopped_ = false;
};

}  // namespace agentfense::runtime

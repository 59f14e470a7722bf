// One sandbox owned by this CLI process (embedded mode: `run`, `shell`): a private run directory,
// an agentfense-supervisor started for it (mount + runtime), and an agent connection through the
// supervisor's relay socket. Whatever happens, Close() (or the destructor) stops the supervisor,
// which unmounts and stops the runtime, then removes the private directories.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "policy/policy.h"
#include "runtime/agent_client.h"
#include "supervisor/client.h"
#include "supervisor/spec.h"

namespace agentfense::cli {

struct LocalSandboxOptions {
  std::string source_dir;  // absolute path of an existing directory
  std::vector<policy::Rule> rules;
  supervisor::RuntimeKind runtime = supervisor::RuntimeKind::kBwrap;
  std::string image;
  bool network = false;
  supervisor::EgressSpec egress;  // with network
  supervisor::Limits limits;
  std::string bwrap_path;   // empty: the supervisor's default
  std::string docker_host;  // empty: the supervisor's default
  // Where the copy-on-write delta lives. Empty: a private directory removed at Close().
  std::string keep_delta_dir;
};

class LocalSandbox {
 public:
  // Creates the directories, starts the supervisor and connects to the agent. On error everything
  // already created is torn down again.
  static Result<std::unique_ptr<LocalSandbox>> Start(const LocalSandboxOptions& options);
  ~LocalSandbox();
  LocalSandbox(const LocalSandbox&) = delete;
  LocalSandbox& operator=(const LocalSandbox&) = delete;

  runtime::AgentClient& agent() { return *agent_; }
  const supervisor::SupervisorControl& control() const { return *control_; }
  const std::string& delta_dir() const { return delta_dir_; }
  const std::string& base_dir() const { return base_dir_; }

  // Stops the supervisor (sandbox and mount gone) and removes the private directories (the delta
  // too, unless it is a --keep-delta directory or `keep_delta` is set: then it stays, and so does
  // nothing else). Idempotent; reports the first failure.
  Status Close(bool keep_delta = false);

 private:
  LocalSandbox() = default;
  Status StopSupervisor();
  // Starts the reaper (below) watching this process; `reaper_` holds the pipe it waits on.
  Status SpawnReaper();

  std::string base_dir_;  // private parent: run/, mnt/, delta/
  std::string run_dir_;
  std::string mountpoint_;
  std::string delta_dir_;
  bool private_delta_ = true;
  bool started_ = false;  // a supervisor may be running
  bool closed_ = false;
  int supervisor_pid_ = 0;
  int reaper_pid_ = -1;
  UniqueFd reaper_;  // write end; "done" + close = clean exit, bare EOF = we died
  std::unique_ptr<supervisor::SupervisorControl> control_;
  std::unique_ptr<runtime::AgentClient> agent_;
};

// `agentfense _reaper BASE RUN MNT DELTA PRIVATE`: a detached helper started with each sandbox. It
// blocks on its stdin (a pipe whose write end only the owning CLI holds). When the CLI dies without
// saying "done" (SIGKILL, crash), it does the CLI's cleanup: stops the supervisor, removes the
// mount and the private directories, keeping a non-empty private delta (its changes were never
// applied). Returns the exit status.
int RunReaper(const std::vector<std::string>& args);

}  // namespace agentfense::cli

// Shared fixtures of the runtime system tests: temp workspaces usable by the sandbox's host uid,
// sandbox specs, and an agent run directly (without bwrap) over a socketpair.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <memory>
#include <string>

#include "capability.h"
#include "runtime/agent_client.h"
#include "runtime/bwrap_sandbox.h"

namespace agentfense::runtime::testing {

// The sandboxes' host uid (= gid): this test process's lease (tests/test_identity.h).
uid_t HostUid();

std::string AgentPath();
// Empty when bwrap sandboxes can run here; else why not (the test skips loudly with it, or fails
// in CI).
std::string WhyNoBwrap();

#define AF_REQUIRE_BWRAP()                                                    \
  AF_REQUIRE_CAPABILITY(::agentfense::runtime::testing::WhyNoBwrap().empty(), \
                        ::agentfense::runtime::testing::WhyNoBwrap())

// A temporary directory owned by the sandbox's host uid; removed on destruction.
class TempWorkspace {
 public:
  TempWorkspace();
  ~TempWorkspace();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string UniqueId();  // a fresh sandbox id
SandboxSpec DefaultSpec(const std::string& workspace);

proto::Exec Shell(const std::string& command, uint32_t timeout_ms = 20000);

// agentfense-agent run as a plain child process (no sandbox) serving a socketpair.
class DirectAgent {
 public:
  explicit DirectAgent(const std::string& workspace);
  ~DirectAgent();
  AgentClient& client() { return *client_; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::unique_ptr<AgentClient> client_;
};

// Number of open fds of this process.
int CountOpenFds();

}  // namespace agentfense::runtime::testing

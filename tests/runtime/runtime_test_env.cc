#include "runtime_test_env.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>

#include "../test_identity.h"
#include "base/ids.h"

namespace agentfense::runtime::testing {

std::string AgentPath() { return AF_AGENT_PATH; }

uid_t HostUid() { return agentfense::testing::TestIdentity().uid(); }

std::string WhyNoBwrap() {
  if (::geteuid() != 0) return "runtime system tests need root (the launcher drops privileges)";
  if (::access("/usr/bin/bwrap", X_OK) != 0) return "bwrap is not installed at /usr/bin/bwrap";
  if (::access(AgentPath().c_str(), X_OK) != 0) return "agent binary missing: " + AgentPath();
  return "";
}

TempWorkspace::TempWorkspace() {
  char tmpl[] = "/tmp/af-rt-ws-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) std::abort();
  path_ = tmpl;
  if (::geteuid() == 0) {
    if (::chown(path_.c_str(), HostUid(), HostUid()) != 0) std::abort();
  }
}

TempWorkspace::~TempWorkspace() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string UniqueId() {
  auto id = NewSandboxId();  // the one shape a sandbox id has (base/ids.h)
  return id.ok() ? *id : std::string();
}

SandboxSpec DefaultSpec(const std::string& workspace) {
  SandboxSpec s;
  s.id = UniqueId();
  s.workspace_dir = workspace;
  s.agent_path = AgentPath();
  if (::geteuid() == 0) {
    s.host_uid = HostUid();
    s.host_gid = HostUid();
  } else {
    s.host_uid = ::getuid();
    s.host_gid = ::getgid();
  }
  s.tmp_size_bytes = 64 << 20;
  s.require_cgroup = true;
  return s;
}

proto::Exec Shell(const std::string& command, uint32_t timeout_ms) {
  proto::Exec e;
  e.shell_command = command;
  e.timeout_ms = timeout_ms;
  e.output_cap = 16 << 20;
  return e;
}

DirectAgent::DirectAgent(const std::string& workspace) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  std::string agent = AgentPath();
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(sv[1], 3);
    ::execl(agent.c_str(), agent.c_str(), "--fd", "3", "--workspace", workspace.c_str(), nullptr);
    ::_exit(127);
  }
  ::close(sv[1]);
  auto c = AgentClient::Create(UniqueFd(sv[0]));
  if (!c.ok()) {
    ADD_FAILURE() << c.error().ToString();
    return;
  }
  client_ = std::move(*c);
}

DirectAgent::~DirectAgent() {
  client_.reset();  // EOF: the agent kills its children and exits
  int status;
  for (int i = 0; i < 200; ++i) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) return;
    ::usleep(10000);
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
}

int CountOpenFds() {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

}  // namespace agentfense::runtime::testing

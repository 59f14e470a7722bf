// The Docker runtime: one container per sandbox, driven through the Docker Engine API
// (runtime/docker_client.h), with agentfense-agent as the container's entrypoint. Commands reach
// the agent over a Unix socket in a host directory bound into the container, so exec never needs
// `docker exec` (one round trip over a local socket instead of ~80 ms of daemon work).
//
// The launcher is stateless apart from its configuration: a sandbox's container is found by its
// deterministic name (DockerContainerName), so a restarted server re-adopts running containers and
// CleanupOrphans removes the ones nobody owns any more.
//
// Host layout: <run_root>/<container name>/ (owned by the sandbox uid, 0700) is bound at
// /run/agentfense; the agent listens there on agent.sock. The directory is writable by the sandbox,
// so the host never trusts what it finds there: it connects only to a socket (not a symlink) owned
// by the sandbox uid, through an O_PATH descriptor, and removes the directory without following
// links.
//
// Thread-safety: all methods may be called concurrently; calls for the same sandbox id must be
// serialized by the caller (the service layer's per-sandbox lifecycle lock).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "runtime/agent_client.h"
#include "runtime/docker_client.h"
#include "runtime/docker_container_spec.h"

namespace agentfense::runtime {

// The product's default image (runtime.docker.default_image). Never pulled: it must exist locally.
inline constexpr std::string_view kDefaultDockerImage = "debian:bookworm-slim";

struct DockerLauncherConfig {
  DockerClientOptions client;
  std::string default_image = std::string(kDefaultDockerImage);
  // Absolute path of the static agentfense-agent binary on the host.
  std::string agent_path;
  // Parent of the per-sandbox socket directories; created 0711 when missing.
  std::string run_root = "/run/agentfense/docker";
  // Scopes container names and CleanupOrphans, so two servers (or test processes) sharing one
  // dockerd never touch each other's containers.
  std::string instance = "default";
  // The sandbox's own host identity (runtime/identity.h). Containers are refused for 0 and 65534
  // (BuildContainerBody); a launcher that only inspects or removes containers needs none.
  uint32_t uid = 0;
  uint32_t gid = 0;
  // When false, a sandbox asking for network is refused (runtime.docker.enable_networking).
  bool enable_networking = true;
  DockerLimits default_limits;
  // SIGTERM → SIGKILL grace of Stop.
  std::chrono::seconds stop_grace{2};
  // How long Start waits for the agent to listen.
  std::chrono::milliseconds agent_ready_timeout{20000};
};

struct DockerSandboxSpec {
  std::string sandbox_id;
  std::string image;          // empty: the configured default
  std::string workspace_dir;  // host directory (the sandbox's FUSE mount) → /workspace
  bool network = false;
  std::optional<DockerLimits> limits;  // empty: the configured defaults
};

class DockerLauncher {
 public:
  // Connects to dockerd (kUnavailable when it is not reachable), checks that the agent binary
  // exists and creates run_root.
  static Result<std::unique_ptr<DockerLauncher>> Create(DockerLauncherConfig config);

  // Creates the sandbox's container, not started. kNotFound names a missing image (images are never
  // pulled), kAlreadyExists when the sandbox already has a container, kInvalidArgument for a bad
  // spec, kFailedPrecondition when it asks for network and networking is disabled.
  Status CreateSandbox(const DockerSandboxSpec& spec);

  // Starts the container (first start or after Stop) and waits until the agent answers; returns a
  // connected client. If the container dies during start-up, the error carries its state and the
  // tail of its log.
  Result<std::unique_ptr<AgentClient>> Start(std::string_view sandbox_id);

  // Connects to the agent of a running sandbox (e.g. after a server restart).
  Result<std::unique_ptr<AgentClient>> Attach(
      std::string_view sandbox_id, std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // SIGTERM, then SIGKILL after stop_grace. Stopping a stopped sandbox is Ok. The container and its
  // writable state stay (Start brings it back).
  Status Stop(std::string_view sandbox_id);

  // Force-removes the container and its run directory. Idempotent: a missing container is Ok.
  Status Destroy(std::string_view sandbox_id);

  Result<ContainerInfo> Inspect(std::string_view sandbox_id) const;

  // Runs a command through `agent` and marks the result oom when the container's memory cgroup
  // recorded an OOM kill while it ran.
  Result<ExecResult> Exec(AgentClient& agent, std::string_view sandbox_id,
                          const proto::Exec& request, const OutputCallback& on_output = nullptr,
                          const CallOptions& options = {}) const;

  // The cumulative number of OOM kills in the container's memory cgroup (host view).
  Result<uint64_t> OomKillCount(std::string_view sandbox_id) const;

  // Removes every container of this instance whose sandbox id is not in `live_ids`, and run
  // directories without a live sandbox. Returns the sandbox ids removed.
  Result<std::vector<std::string>> CleanupOrphans(const std::set<std::string>& live_ids);

  // Host path of the sandbox's run directory (bound at /run/agentfense).
  std::string RunDir(std::string_view sandbox_id) const;
  std::string ContainerName(std::string_view sandbox_id) const;
  const DockerClient& client() const { return *client_; }
  const DockerLauncherConfig& config() const { return config_; }

 private:
  DockerLauncher(DockerLauncherConfig config, std::unique_ptr<DockerClient> client)
      : config_(std::move(config)), client_(std::move(client)) {}
  // Connects to <run dir>/agent.sock safely (see the header comment). kUnavailable while absent.
  Result<UniqueFd> ConnectAgentSocket(std::string_view sandbox_id) const;
  Status PrepareRunDir(std::string_view sandbox_id) const;
  Status RemoveRunDir(std::string_view name) const;
  Error StartFailure(std::string_view sandbox_id, std::string_view what) const;

  const DockerLauncherConfig config_;
  const std::unique_ptr<DockerClient> client_;
};

// Whether the mount that holds `path` (an absolute, symlink-free path) can propagate mounts into a
// container's rslave bind: true when /proc/self/mountinfo text `mountinfo` shows it "shared:" or
// "master:". Pure (exposed for tests); mount points' octal escapes (\040) are decoded.
bool MountPropagatesAt(std::string_view mountinfo, std::string_view path);

// Removes `name` under `dirfd` and everything beneath it without following symlinks (unlinkat /
// openat O_NOFOLLOW|O_DIRECTORY), at most `max_depth` levels deep. A missing entry is Ok.
Status RemoveTreeAt(int dirfd, const std::string& name, int max_depth = 64);

}  // namespace agentfense::runtime

// The plan of one sandbox container: a pure function from what the sandbox asks for to the JSON
// body of POST /containers/create. Kept free of I/O so every isolation setting is unit-tested
// (sandbox2's plan/apply habit); DockerLauncher applies it.
//
// What every sandbox container gets (SECURITY-NOTES §4 item 9):
//   - the workspace host directory bound at /workspace with propagation rslave, so a FUSE mount
//   made
//     under it after the container started is seen inside (and nothing propagates back out);
//   - the agent binary bound read-only and run as the entrypoint (PID 1, reaps orphans);
//   - a host directory bound at /run/agentfense where the agent listens on agent.sock;
//   - a non-root user, CapDrop ALL, no-new-privileges, Docker's default seccomp profile, read-only
//     root filesystem with a private tmpfs /tmp (nosuid,nodev, size-capped), private IPC;
//   - NetworkMode none unless the sandbox asks for network (then the configured mode; "host" and
//     "container:…" are refused: they share a network namespace with something outside);
//   - memory (+swap equal: no swap), cpu (NanoCpus or quota/period), cpu shares, pids limits;
//   - labels agentfense.managed=true, agentfense.sandbox=<id>, agentfense.instance=<instance>.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace agentfense::runtime {

inline constexpr std::string_view kLabelManaged = "agentfense.managed";
inline constexpr std::string_view kLabelSandbox = "agentfense.sandbox";
inline constexpr std::string_view kLabelInstance = "agentfense.instance";

// Paths inside the container.
inline constexpr std::string_view kContainerWorkspace = "/workspace";
inline constexpr std::string_view kContainerAgentPath = "/.agentfense/agentfense-agent";
inline constexpr std::string_view kContainerRunDir = "/run/agentfense";
inline constexpr std::string_view kAgentSocketName = "agent.sock";

struct DockerLimits {
  int64_t memory_bytes = 0;  // 0: unlimited. Swap is limited to the same value (no swap use).
  int64_t nano_cpus = 0;     // 1e9 = one CPU. Exclusive with cpu_quota_us.
  int64_t cpu_quota_us = 0;  // with cpu_period_us (default 100000 when only the quota is set)
  int64_t cpu_period_us = 0;
  int64_t cpu_shares = 0;                // relative weight (1024 = default)
  int64_t pids_limit = 0;                // 0: unlimited
  int64_t tmp_size_bytes = 256LL << 20;  // the /tmp tmpfs cap; never unlimited
};

struct DockerContainerPlan {
  std::string sandbox_id;  // base/ids.h IsValidSandboxId (SECURITY-NOTES §4 item 11)
  std::string instance;    // scopes CleanupOrphans: [A-Za-z0-9_.]{1,32}
  std::string image;
  std::string workspace_dir;  // absolute host path → /workspace (rw)
  // "rslave" (mounts made later under the source are seen inside) needs the source to sit on a
  // shared or slave mount; the launcher falls back to "rprivate" otherwise.
  std::string workspace_propagation = "rslave";
  std::string agent_path;  // absolute host path of agentfense-agent → kContainerAgentPath (ro)
  std::string run_dir;     // absolute host path → /run/agentfense (rw, the agent's socket)
  uint32_t uid = 0;  // the sandbox's own host identity; 0 and 65534 are refused
  uint32_t gid = 0;
  bool network = false;  // NetworkMode stays none: the supervisor configures the namespace
  DockerLimits limits;
  std::vector<std::string> agent_args;  // after the agent path in the entrypoint
  std::string hostname = "sandbox";
  std::map<std::string, std::string> extra_labels;  // must not override the agentfense.* ones
};

// Container name for a sandbox: "agentfense-<instance>-<sandbox_id>".
std::string DockerContainerName(std::string_view instance, std::string_view sandbox_id);

// [A-Za-z0-9_.]{1,32}: no '-', so "agentfense-<instance>-" prefixes of two instances never
// overlap.
Status ValidateInstanceName(std::string_view instance);

// Validates the plan and returns the create body. kInvalidArgument names the offending field.
Result<nlohmann::json> BuildContainerCreateBody(const DockerContainerPlan& plan);

}  // namespace agentfense::runtime

// The one sandbox-building path. Every entry point that starts a sandbox (`agentfense run`,
// `shell`, `mcp`, and the server's sandbox manager) resolves the host-wide settings once
// (ResolveHost), fills the per-sandbox fields of a SupervisorSpec (id, source, mount point, run
// directory, delta, rules, runtime, limits), and starts it through Launch; the Docker runtime is
// reached through MakeDockerLauncher, whether to run a container or to clean one up.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "runtime/docker_launcher.h"
#include "supervisor/spec.h"

namespace agentfense::supervisor {

// What every sandbox a process starts shares: the helper binaries and the host's configuration.
// Empty strings in ResolveHost's argument mean "the default".
struct HostSettings {
  std::string supervisor_bin;  // agentfense-supervisor, installed beside the running executable
  std::string agent_bin;       // agentfense-agent, likewise
  std::string bwrap_path;      // absolute; a bare name is looked up in the system directories
  std::string docker_host;
  std::string docker_default_image;  // "" = the runtime's own default
  std::string docker_instance;
  std::string identity_range;  // sandbox.uid_range (runtime/identity.h)
  // Networked sandboxes (docs/NETWORK.md): their resolver's upstreams (empty: the host's
  // resolv.conf) and the special-purpose ranges treated as public.
  std::vector<std::string> dns_servers;
  std::vector<std::string> public_cidrs;
};

// Finds the helper binaries beside /proc/self/exe (kFailedPrecondition naming the missing one)
// and fills every empty field with its default. A bare `bwrap_path` ("bwrap") is resolved against
// /usr/bin, /bin, /usr/local/bin, /usr/sbin, /sbin: never the caller's PATH.
Result<HostSettings> ResolveHost(HostSettings requested);

// Creates `path` as a directory of ours alone (0700, whatever the umask), or accepts an existing
// directory and makes it 0700. Mount points and run directories are made with it: no other local
// user and no sandbox identity ever needs to pass through them (SPEC §5, host side).
Status MakePrivateDir(const std::string& path);

// The host-wide fields a spec carries to its supervisor, as HostSettings (the inverse of what
// Launch fills in).
HostSettings HostOf(const SupervisorSpec& spec);

// Fills the host-wide fields of `spec` from `host`, then starts its supervisor (SpawnSupervisor):
// returns once the sandbox runs, or the supervisor's own error.
Status Launch(SupervisorSpec spec, const HostSettings& host);

// A Docker launcher on `host`'s daemon and instance, running containers as `uid`:`gid` (0 for a
// launcher that only inspects or removes containers).
Result<std::unique_ptr<runtime::DockerLauncher>> MakeDockerLauncher(const HostSettings& host,
                                                                    uint32_t uid = 0,
                                                                    uint32_t gid = 0);

}  // namespace agentfense::supervisor

// The bwrap command line of a sandbox, built as a pure *plan* from a SandboxSpec and a description
// of the host's root (sandbox2's plan/apply habit): unit-tested without privileges, then applied
// by BwrapSandbox (bwrap_sandbox.h).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "runtime/cgroup.h"

namespace agentfense::runtime {

struct SandboxSpec {
  std::string id;             // a sandbox id (base/ids.h); names the cgroup
  // Absolute host directory bound read-write at /workspace.
  std::string workspace_dir;
  // A root launcher opens workspace_dir itself and, in a private mount namespace made for bwrap
  // alone, binds it at kWorkspaceStage before dropping to host_uid: the sandbox's uid then never
  // resolves the host path, whose ancestors can be root's alone. Unprivileged launchers (rootless:
  // the mount is the user's own) bind workspace_dir directly.
  bool stage_workspace = false;
  // The unprivileged host identity bwrap and everything inside run as: the sandbox's own
  // (runtime/identity.h). Never 0 nor 65534 (shared with the host's nobody): the plan refuses both.
  uid_t host_uid = 0;
  gid_t host_gid = 0;
  // The identity inside the sandbox (what `id -u` prints). Non-zero.
  uid_t uid = 1000;
  gid_t gid = 1000;
  // Network on: the sandbox joins `netns_fd`, a namespace the supervisor prepared (net/netns.h:
  // its only way out is the supervisor's egress filter), never the host's; name service files and
  // certificates are bound and resolv.conf names `resolver`. Off: a new empty namespace (lo).
  bool network = false;
  int netns_fd = -1;                  // borrowed; joined by the launcher's child before bwrap
  std::string resolver = "10.0.2.3";  // the nameserver resolv.conf names (network on)
  CgroupLimits limits;   // enforced through the sandbox's cgroup
  uint64_t tmp_size_bytes = 256ull << 20;  // private /tmp tmpfs cap
  std::string agent_path;                  // host path of agentfense-agent
  std::string bwrap_path = "/usr/bin/bwrap";
  std::string hostname = "sandbox";
  CgroupOptions cgroup;         // where cgroups live (tests point it elsewhere)
  bool require_cgroup = false;  // fail if no cgroup can be made even without limits
};

// What the top of the host's filesystem looks like: for each candidate system path, absent, a
// directory, or a symlink (with its target). Debian 12 has /bin -> usr/bin, /lib -> usr/lib...
struct HostLayout {
  struct Entry {
    enum Kind { kAbsent, kDir, kFile, kSymlink } kind = kAbsent;
    std::string target;  // for kSymlink
  };
  std::map<std::string, Entry> entries;  // keyed by absolute path
};

// lstat()s the paths the plan may use.
HostLayout ProbeHostLayout();

// The fds the child of the launcher holds when it execs bwrap (numbers fixed by the plan).
inline constexpr int kAgentSocketFd = 3;
inline constexpr int kSeccompFd = 4;
inline constexpr int kPasswdFd = 5;
inline constexpr int kGroupFd = 6;
inline constexpr int kHostsFd = 7;
inline constexpr int kResolvFd = 8;  // network on only
inline constexpr int kFirstUnusedFd = 9;

// Where a root launcher stages the workspace for bwrap (SandboxSpec::stage_workspace): an empty
// directory on the host, bound over only in the private mount namespace of one sandbox's bwrap.
inline constexpr const char* kWorkspaceStage = "/run/agentfense/workspace";

inline constexpr const char* kAgentPathInside = "/run/agentfense/agent";

struct BwrapPlan {
  std::vector<std::string> argv;        // argv[0] is spec.bwrap_path
  std::map<int, std::string> file_fds;  // fd number → content (passwd, group, hosts, resolv.conf)
};

// Validates `spec` (kInvalidArgument with the reason) and builds the plan.
Result<BwrapPlan> BuildBwrapPlan(const SandboxSpec& spec, const HostLayout& host);

}  // namespace agentfense::runtime

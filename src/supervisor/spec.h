// What a supervisor is asked to run: one sandbox's mount and runtime. The server writes it as JSON
// into the sandbox's run directory; the supervisor reads it at start. Pure data + (de)serialization.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "fs/ask_types.h"
#include "policy/policy.h"

namespace agentfense::supervisor {

enum class RuntimeKind { kBwrap, kDocker };

struct Limits {
  uint64_t memory_bytes = 0;
  int64_t cpu_quota_us = 0;  // µs per 100 ms period (WIRE.md ResourceLimits.cpu_quota)
  uint64_t cpu_shares = 0;
  uint64_t pids_limit = 0;
};

// The sandbox's egress when network is on (docs/NETWORK.md); validated by the supervisor with
// policy::EgressPolicy::Create.
struct EgressSpec {
  bool any_public = false;                // every public destination, plus `allow`
  std::vector<std::string> allow;         // egress rules ("github.com", "*.pypi.org:443", CIDRs...)
  std::vector<std::string> dns_servers;   // upstream resolvers; empty: the host's resolv.conf
  std::vector<std::string> public_cidrs;  // special-purpose ranges the operator calls public
};

struct SupervisorSpec {
  std::string sandbox_id;
  std::string source_dir;  // the codebase on the host
  std::string mountpoint;  // where the permission filesystem is mounted (→ /workspace)
  std::string run_dir;     // private (0700) directory: sockets, logs, audit
  // Copy-on-write delta (docs/DELTA.md): every write lands here, never in source_dir, until a
  // commit. Empty = no delta: writes go straight to source_dir (the embedded `mount` tool's mode).
  std::string delta_dir;
  uint64_t delta_quota_bytes = 0;   // 0 = unlimited
  uint64_t delta_quota_inodes = 0;  // 0 = unlimited
  uint64_t max_checkpoints = 0;     // checkpoints of the delta kept at once; 0 = the default (100)
  // How long an access to an `ask` path waits for a decision before it is denied (EACCES);
  // 0 = the default (60 s). docs/PERMISSIONS.md, "ask".
  uint64_t ask_timeout_ms = 0;
  // fs::FsOptions::busy_poll_us for the sandbox's mount; -1 = its default.
  int64_t fuse_busy_poll_us = -1;
  std::vector<policy::Rule> rules;
  RuntimeKind runtime = RuntimeKind::kBwrap;
  std::string image;  // docker only; empty = configured default
  // Network on: a namespace of its own whose only way out is the supervisor's egress proxy.
  bool network = false;
  EgressSpec egress;
  Limits limits;
  std::string agent_path;
  std::string bwrap_path = "/usr/bin/bwrap";
  std::string docker_host = "unix:///var/run/docker.sock";
  std::string docker_default_image;
  std::string docker_instance = "default";
  // The sandbox's host identity (runtime/identity.h): as root, the supervisor leases a uid/gid of
  // the range for as long as it lives, preferring the one it had before (a restart); otherwise
  // the sandbox runs as the launching user itself (docs/RUNTIMES.md).
  std::string identity_range = "524288-589823";
  std::string identity_lease_dir = "/run/agentfense/identities";
  uint32_t preferred_uid = 0;
};

std::string SpecToJson(const SupervisorSpec& spec);
// The JSON array form of a rule list, shared by the spec file and the control socket's set_policy:
// [{"pattern": "...", "type": "glob", "level": "read", "priority": 0}, ...]. Parsing errors name
// the rule index; "type" and "priority" are optional.
std::string RulesToJson(const std::vector<policy::Rule>& rules);
Result<std::vector<policy::Rule>> RulesFromJson(const std::string& json_array);
// {"any_public": bool, "allow": [...], "dns_servers": [...], "public_cidrs": [...]}: the spec
// file's "egress" and the control socket's set_egress (which carries only the first two).
std::string EgressToJson(const EgressSpec& egress);
Result<EgressSpec> EgressFromJson(const std::string& json_object);
// One held access to an `ask` path, or what became of it, as one JSON object of the control
// socket (the approvals op, each line of watch_approvals, and the audit log):
// {"id","path","op","need":"read|write","pid","command","since_ns","deadline_ns",
//  "state":"pending|allowed|denied|timed_out|cancelled","grant":"none|read|write","by","remember",
//  "time_ns"}. Paths and commands are any bytes: invalid UTF-8 is replaced when dumped.
std::string AskEventToJson(const fs::AskEvent& event);
Result<fs::AskEvent> AskEventFromJson(const std::string& json_object);

// Errors name the field. Rules are validated by Policy::Compile later, not here.
Result<SupervisorSpec> SpecFromJson(const std::string& json);

// Socket and file names inside run_dir.
inline constexpr const char* kSpecFile = "spec.json";
inline constexpr const char* kAgentSocket = "agent.sock";      // agent protocol relay
inline constexpr const char* kControlSocket = "control.sock";  // JSON-lines control
inline constexpr const char* kAuditFile = "audit.jsonl";
inline constexpr const char* kLogFile = "supervisor.log";

}  // namespace agentfense::supervisor

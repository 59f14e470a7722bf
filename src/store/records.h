// The records the store persists: plain structs mirroring the wire objects of WIRE.md (the service
// layer converts to and from protobuf; nothing here knows it). Times are Unix nanoseconds, with 0
// meaning "not set" (a sandbox that never started has started_at_ns == 0).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace agentfense::store {

struct CodebaseRecord {
  std::string id;  // cb_ + 16 hex
  std::string name;
  std::string owner_id;
  int64_t size = 0;        // total bytes of regular files
  int64_t file_count = 0;  // non-directory entries
  int64_t created_at_ns = 0;
  int64_t updated_at_ns = 0;
};

// A permission rule as stored. `type` and `level` use the numbering of policy::PatternType
// (0 glob, 1 directory, 2 file) and policy::Level (0 none, 1 view, 2 ask, 3 read, 4 write), so the
// service converts with a static_cast after range-checking; on disk they are written as names.
struct RuleRecord {
  std::string pattern;
  int type = 0;
  int level = 0;
  int32_t priority = 0;
  bool operator==(const RuleRecord&) const = default;
};

// Numbering equals the wire enums (SandboxStatus, RuntimeType, SessionStatus).
enum class SandboxStatus { kPending = 1, kRunning = 2, kStopped = 3, kError = 4 };
enum class RuntimeKind { kBwrap = 1, kDocker = 2 };
enum class SessionStatus { kActive = 1, kClosed = 2 };

struct ResourceLimitsRecord {
  int64_t memory_bytes = 0;
  int64_t cpu_quota = 0;  // µs per 100 ms period
  int64_t cpu_shares = 0;
  int64_t pids_limit = 0;
  bool operator==(const ResourceLimitsRecord&) const = default;
};

struct SandboxRecord {
  std::string id;           // sb_ + 16 hex
  std::string codebase_id;  // must name an existing codebase
  std::string owner_id;     // whom max_per_user counts against
  std::vector<RuleRecord> rules;
  SandboxStatus status = SandboxStatus::kPending;
  std::map<std::string, std::string> labels;
  int64_t created_at_ns = 0;
  int64_t started_at_ns = 0;
  int64_t stopped_at_ns = 0;
  int64_t expires_at_ns = 0;  // 0 = never
  RuntimeKind runtime = RuntimeKind::kBwrap;
  std::string image;
  ResourceLimitsRecord resources;
  std::string error_reason;  // why the sandbox is in kError
  std::string sync_mode;     // vocabulary owned by the service ("after_exec", "on_stop", ...)
  bool network = false;
  // Egress with network on: every public destination, and/or these rules (normalized texts).
  bool egress_any_public = false;
  std::vector<std::string> egress_allow;
  int64_t delta_quota_bytes = 0;  // 0 = unlimited
  int64_t delta_quota_inodes = 0;  // 0 = unlimited
  int64_t ask_timeout_ms = 0;      // how long an `ask` access waits for a decision; 0 = default
  std::map<std::string, std::string> env;
  // Re-adoption after a server restart: the supervisor's pid, its start time (clock ticks since
  // boot, /proc/<pid>/stat field 22, so a recycled pid is not mistaken for it) and its socket.
  int64_t supervisor_pid = 0;
  int64_t supervisor_start_ticks = 0;
  std::string supervisor_socket;
  // The host uid (= gid) the sandbox last ran as (runtime/identity.h); asked for again at its next
  // start. 0 = never started.
  int64_t host_uid = 0;
  // Opaque runtime bookkeeping the service needs to clean up (container id, cgroup path...).
  std::string runtime_state;
  int64_t updated_at_ns = 0;  // set by the store on every write
};

struct SessionRecord {
  std::string id;          // sess_ + 16 hex
  std::string sandbox_id;  // must name an existing sandbox; deleted with it
  SessionStatus status = SessionStatus::kActive;
  std::string shell;
  int64_t created_at_ns = 0;
  int64_t closed_at_ns = 0;
};

struct AuditEventRecord {
  int64_t seq = 0;  // assigned by the store, increasing; 0 on input
  std::string sandbox_id;
  int64_t time_ns = 0;
  std::string kind;  // "denied", "lifecycle", ... (vocabulary owned by the service)
  std::string path;
  std::string operation;  // "open", "unlink", "start", ...
  std::string rule;       // the deciding rule, rendered
  std::string command;
  std::string detail;
};

// Paging: page_size 0 means the default (50); above 1000 is clamped to 1000; negative is
// kInvalidArgument. page_token is the opaque next_page_token of the previous page ("" = first).
struct PageRequest {
  int32_t page_size = 0;
  std::string page_token;
};

inline constexpr int32_t kDefaultPageSize = 50;
inline constexpr int32_t kMaxPageSize = 1000;

template <typename T>
struct Page {
  std::vector<T> items;
  std::string next_page_token;  // "" when there are no more items
};

struct SandboxFilter {
  std::string codebase_id;              // "" = any
  std::string owner_id;                 // "" = any
  std::vector<SandboxStatus> statuses;  // empty = any
};

struct AuditFilter {
  std::string sandbox_id;   // "" = any
  std::string kind;         // "" = any
  std::string path_prefix;  // "" = any; matched byte-wise as a prefix of `path`
  int64_t since_ns = 0;     // inclusive; 0 = unbounded
  int64_t until_ns = 0;     // exclusive; 0 = unbounded
};

}  // namespace agentfense::store

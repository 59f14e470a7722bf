// One cgroup per sandbox, for resource limits and for killing everything on destroy.
// cgroup v2 when the host has a unified hierarchy at the root (cgroup.controllers present), else v1
// with memory, pids and cpu as separate hierarchies (these machines). The layout and the writes are
// computed by pure functions (unit-tested against a temporary tree); Cgroup applies them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace agentfense::runtime {

struct CgroupLimits {
  uint64_t memory_bytes = 0;  // 0: no limit. Swap is limited to the same (no extra swap).
  uint64_t pids_max = 0;      // 0: no limit
  uint32_t cpu_millis = 0;    // CPU quota in thousandths of a CPU (1500 = 1.5 CPUs); 0: none
  uint64_t cpu_shares = 0;    // relative weight, v1 units (1024 = default); 0: default
  bool Any() const { return memory_bytes || pids_max || cpu_millis || cpu_shares; }
};

enum class CgroupVersion { kV1, kV2 };

struct CgroupOptions {
  std::string root = "/sys/fs/cgroup";
  std::string self_cgroup_file = "/proc/self/cgroup";  // where this process sits (v1 nesting)
  std::string parent = "agentfense";                   // group of all sandboxes
};

// Where a sandbox's cgroup lives. v2: one directory. v1: one directory per controller.
struct CgroupLayout {
  CgroupVersion version = CgroupVersion::kV1;
  std::vector<std::string> dirs;  // v2: {dir}; v1: {memory, pids, cpu} dirs (created in order)
  std::string memory_dir;         // for OOM accounting
  // v2 only: the cgroup.subtree_control files to enable controllers in, top-down.
  std::vector<std::string> subtree_control;
};

// Reads the host's cgroup setup (only files under options.root and options.self_cgroup_file) and
// returns where the cgroup of `sandbox_id` goes. v1 nests under this process's own cgroup in each
// hierarchy, so the limits of whoever runs us still apply; v2 uses <root>/<parent>/<id> because a
// v2 cgroup holding processes cannot enable controllers for children.
Result<CgroupLayout> ResolveCgroupLayout(const std::string& sandbox_id,
                                         const CgroupOptions& options);

struct CgroupWrite {
  std::string path;
  std::string value;
  bool optional = false;  // e.g. swap limits where swap accounting is off
};

// The writes that apply `limits` to `layout`, in order.
std::vector<CgroupWrite> PlanCgroupLimits(const CgroupLayout& layout, const CgroupLimits& limits);

// Parses the oom_kill counter out of memory.events (v2) or memory.oom_control (v1) content.
uint64_t ParseOomKillCount(const std::string& content);

class Cgroup {
 public:
  // Creates the directories and applies the limits. kFailedPrecondition with the path when the
  // hierarchy is missing or not writable.
  static Result<std::unique_ptr<Cgroup>> Create(const std::string& sandbox_id,
                                                const CgroupLimits& limits,
                                                const CgroupOptions& options = {});
  // Kills every process left in the cgroup and removes the directories.
  ~Cgroup();
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;

  // Opened cgroup.procs files (O_WRONLY|O_CLOEXEC). A freshly forked child writes "0" to each to
  // move itself in before it execs, so every descendant is born inside (async-signal-safe).
  const std::vector<UniqueFd>& procs_fds() const { return procs_fds_; }

  // OOM kills so far in this cgroup.
  uint64_t OomKills() const;
  // Pids currently in the cgroup (first hierarchy).
  std::vector<int> Pids() const;
  // SIGKILLs every process, repeatedly until empty or `rounds` passes.
  void KillAll(int rounds = 50) const;
  // KillAll then rmdir; idempotent. Reports the first directory that would not go away.
  Status Remove();
  const CgroupLayout& layout() const { return layout_; }

 private:
  explicit Cgroup(CgroupLayout layout) : layout_(std::move(layout)) {}
  CgroupLayout layout_;
  std::vector<UniqueFd> procs_fds_;
  std::vector<std::string> created_;  // directories we made, deepest last
  bool removed_ = false;
};

}  // namespace agentfense::runtime

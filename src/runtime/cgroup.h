// One cgroup per sandbox, for resource limits and for killing everything on destroy.
//
// Two drivers, as container runtimes have them:
//   - cgroupfs (hosts whose PID 1 is not systemd, these machines): we make the directories.
//     cgroup v2 when the root is a unified hierarchy (cgroup.controllers present), else v1 with
//     memory, pids, cpu and freezer as separate hierarchies.
//   - systemd (PID 1 is systemd, sd_booted(3)): systemd owns the tree, and a process it did not
//     place may be moved back at its next reload. Each sandbox gets a transient scope unit,
//     `agentfense-<id>.scope`, started over D-Bus with Delegate=yes and the limits as unit
//     properties (systemd_scope.h).
// Killing goes through the cgroup, never a walk over PIDs that a fork bomb outruns: cgroup.kill on
// v2 (the kernel kills every member atomically), the freezer on v1 (freeze, SIGKILL every frozen
// member, thaw). The layout and the writes are computed by pure functions (unit-tested against a
// temporary tree); Cgroup applies them.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

namespace agentfense::runtime {

struct CgroupLimits {
  uint64_t memory_bytes = 0;  // 0: no limit. Swap is limited to the same (no extra swap).
  uint64_t pids_max = 0;      // 0: no limit
  uint32_t cpu_millis = 0;    // CPU quota in thousandths of a CPU (1500 = 1.5 CPUs); 0: none
  uint64_t cpu_shares = 0;    // relative weight, v1 units (1024 = default); 0: default
  bool Any() const { return memory_bytes || pids_max || cpu_millis || cpu_shares; }
};

enum class CgroupVersion { kV1, kV2 };
enum class CgroupDriver { kAuto, kCgroupfs, kSystemd };

struct CgroupOptions {
  std::string root = "/sys/fs/cgroup";
  std::string self_cgroup_file = "/proc/self/cgroup";  // where this process sits (v1 nesting)
  std::string parent = "agentfense";                   // cgroupfs: group of all sandboxes
  // kAuto: systemd when `systemd_marker` exists (how sd_booted(3) tells), cgroupfs otherwise.
  CgroupDriver driver = CgroupDriver::kAuto;
  std::string systemd_marker = "/run/systemd/system";
  // D-Bus address of systemd; empty: its private socket as root, else the system bus.
  std::string systemd_bus;
};

// Where a sandbox's cgroup lives. v2: one directory. v1: one directory per controller.
struct CgroupLayout {
  CgroupVersion version = CgroupVersion::kV1;
  std::vector<std::string> dirs;  // v2: {dir}; v1: {memory, pids, cpu, freezer} (created in order)
  std::string memory_dir;         // for OOM accounting
  std::string kill_dir;           // v2: the dir with cgroup.kill; v1: the freezer dir
  // v2 only: the cgroup.subtree_control files to enable controllers in, top-down, and the
  // controllers the limits need ("+memory +pids"); empty when no limit is asked.
  std::vector<std::string> subtree_control;
  std::string controllers;
};

// The driver `options` selects on this host.
CgroupDriver ResolveCgroupDriver(const CgroupOptions& options);

// cgroupfs: reads the host's cgroup setup (only files under options.root and
// options.self_cgroup_file) and returns where the cgroup of `sandbox_id` goes, for `limits`. v1
// nests under this process's own cgroup in each hierarchy, so the limits of whoever runs us still
// apply; v2 uses <root>/<parent>/<id> because a v2 cgroup holding processes cannot enable
// controllers for children.
Result<CgroupLayout> ResolveCgroupLayout(const std::string& sandbox_id,
                                         const CgroupOptions& options,
                                         const CgroupLimits& limits = {});

struct CgroupWrite {
  std::string path;
  std::string value;
  bool optional = false;  // e.g. swap limits where swap accounting is off
};

// The writes that apply `limits` to `layout`, in order.
std::vector<CgroupWrite> PlanCgroupLimits(const CgroupLayout& layout, const CgroupLimits& limits);

// cpu.weight (v2) for cpu.shares (v1): the documented mapping of 2..262144 onto 1..10000.
uint64_t CpuWeightFromShares(uint64_t shares);

// Parses the oom_kill counter out of memory.events (v2) or memory.oom_control (v1) content.
uint64_t ParseOomKillCount(const std::string& content);

// The systemd scope unit of a sandbox.
std::string ScopeUnitName(const std::string& sandbox_id);

class Cgroup {
 public:
  // cgroupfs: creates the directories and applies the limits. systemd: checks the sandbox id;
  // the scope needs its first process (Adopt). kFailedPrecondition with the path when the
  // hierarchy is missing or not writable.
  static Result<std::unique_ptr<Cgroup>> Create(const std::string& sandbox_id,
                                                const CgroupLimits& limits,
                                                const CgroupOptions& options = {});
  // Kills every process left in the cgroup and removes it.
  ~Cgroup();
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;

  // Moves `pid`, the sandbox's first process, into the cgroup. The caller keeps it from running
  // anything until this returns (so every descendant is born inside). systemd: starts the scope
  // with it and waits until systemd has moved it. Called once.
  Status Adopt(pid_t pid);

  // OOM kills so far in this cgroup.
  uint64_t OomKills() const;
  // Pids currently in the cgroup (first hierarchy).
  std::vector<int> Pids() const;
  // Kills every process in the cgroup through the cgroup (above) and waits until it is empty,
  // at most `timeout`. kDeadlineExceeded with the survivors' count otherwise.
  Status Kill(std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  // Kill, then removes the directories (systemd: stops the scope, which removes them) and waits
  // until they are gone; idempotent. Reports the first directory that would not go away.
  Status Remove();
  const CgroupLayout& layout() const { return layout_; }
  CgroupDriver driver() const { return driver_; }

 private:
  Cgroup(std::string sandbox_id, CgroupDriver driver, CgroupOptions options,
         const CgroupLimits& limits);
  Status KillV2(std::chrono::steady_clock::time_point deadline) const;
  Status KillV1(std::chrono::steady_clock::time_point deadline) const;
  Status AdoptSystemd(pid_t pid);
  // Creates layout.dirs (reclaiming what an earlier run of this sandbox left there).
  Status MakeDirs(const CgroupLayout& layout);

  std::string sandbox_id_;
  CgroupDriver driver_;
  CgroupOptions options_;
  CgroupLimits limits_;
  CgroupLayout layout_;
  std::vector<std::string> created_;  // directories we made, deepest last
  bool scope_started_ = false;        // systemd: the scope exists and must be stopped
  bool removed_ = false;
};

}  // namespace agentfense::runtime

// Transient systemd scope units over D-Bus, for the systemd cgroup driver (cgroup.h).
//
// Why a scope started with StartTransientUnit and not `systemd-run --scope`: systemd-run would
// have to become the sandbox's first process and drop its credentials itself, which clears the
// parent-death signal the launcher relies on (PR_SET_PDEATHSIG, prctl(2)); and it costs a process
// and a bus connection per start. Here the launcher forks its child as always, holds it before
// exec, and asks systemd to put that PID into `agentfense-<id>.scope` with Delegate=yes.
//
// The client is libsystemd's sd-bus, loaded with dlopen("libsystemd.so.0") on first use: every
// systemd host has it (systemd depends on it), hosts without systemd never load it, and the build
// needs no libsystemd-dev. As root it talks to systemd's private socket
// (/run/systemd/private, what systemctl uses; no dbus-daemon needed), otherwise the system bus.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "runtime/cgroup.h"

namespace agentfense::runtime {

// One property of a transient unit, as StartTransientUnit takes it ((sv) with v of type `type`).
struct UnitProperty {
  std::string name;
  char type = 't';  // 't' (uint64), 'i' (int32), 'b' (bool), 's' (string)
  uint64_t number = 0;
  bool flag = false;
  std::string text;

  static UnitProperty U64(std::string n, uint64_t v) { return {std::move(n), 't', v, false, ""}; }
  static UnitProperty I32(std::string n, int32_t v) {
    return {std::move(n), 'i', static_cast<uint64_t>(static_cast<uint32_t>(v)), false, ""};
  }
  static UnitProperty Bool(std::string n, bool v) { return {std::move(n), 'b', 0, v, ""}; }
  static UnitProperty Str(std::string n, std::string v) {
    return {std::move(n), 's', 0, false, std::move(v)};
  }
};

// The properties of a sandbox's scope: Delegate=yes (the cgroup below the scope is ours, and
// systemd leaves what we write there alone), collected once stopped or failed, stop = SIGKILL at
// once, and the limits in systemd's terms for `version` (v2: MemoryMax, MemorySwapMax=0,
// TasksMax, CPUQuotaPerSecUSec, CPUWeight; v1: MemoryLimit, TasksMax, CPUQuotaPerSecUSec,
// CPUShares). PIDs is added by StartTransientScope.
std::vector<UnitProperty> PlanScopeProperties(const std::string& sandbox_id,
                                              const CgroupLimits& limits, CgroupVersion version);

// Starts the transient scope `unit` holding `pid`. Returns when systemd accepted the job (the move
// itself happens when the job runs: callers wait for /proc/PID/cgroup to name the unit).
// kAlreadyExists when a unit of that name exists, kUnavailable when systemd cannot be reached
// (libsystemd missing, no bus), kFailedPrecondition for any other refusal, with systemd's words.
// `bus`: a D-Bus address; empty: systemd's private socket as root, else the system bus.
Status StartTransientScope(const std::string& unit, pid_t pid,
                           const std::vector<UnitProperty>& properties,
                           const std::string& bus = "");

// Stops `unit` (its processes get SIGKILL, its cgroup goes). A unit that does not exist (any
// more) is not an error.
Status StopUnit(const std::string& unit, const std::string& bus = "");

}  // namespace agentfense::runtime

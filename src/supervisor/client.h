// The server's side of a supervisor: starting one, and talking to a running one (also one that
// an earlier server process started: everything needed is in its run directory).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "fs/ask_types.h"
#include "fs/changes.h"
#include "policy/policy.h"
#include "supervisor/spec.h"

namespace agentfense::supervisor {

struct SupervisorStatus {
  std::string sandbox_id;
  int pid = 0;
  bool runtime_alive = false;
  // The host identity the sandbox runs as (runtime/identity.h).
  uint32_t host_uid = 0;
  uint32_t host_gid = 0;
  // FUSE requests served since the mount, by kind ("lookup", "open", ...).
  std::vector<std::pair<std::string, uint64_t>> fuse_requests;
  // The egress filter's counters ("tcp_allowed", "dns_refused", ...); empty without network.
  std::vector<std::pair<std::string, uint64_t>> egress;
};

// Writes spec.json into spec.run_dir (which must exist, 0700) and starts `binary` (the
// agentfense-supervisor executable) detached. Returns once the sandbox is up, or the supervisor's
// own error (mount, runtime) with its code, or kDeadlineExceeded after `timeout`.
Status SpawnSupervisor(const SupervisorSpec& spec, const std::string& binary,
                       std::chrono::milliseconds timeout = std::chrono::seconds(60));

// A watch_approvals connection: the accesses pending when it opened, then every event.
class ApprovalWatch {
 public:
  ApprovalWatch(UniqueFd sock, std::string buffered)
      : sock_(std::move(sock)), buf_(std::move(buffered)) {}
  // The next event, or nullopt when none arrived within `timeout`. kUnavailable once the
  // supervisor closed the stream (the sandbox stopped).
  Result<std::optional<fs::AskEvent>> Next(std::chrono::milliseconds timeout);
  // Readable when an event arrived; Next may also have one buffered (pending()).
  int fd() const { return sock_.get(); }
  bool pending() const { return buf_.find('\n') != std::string::npos; }

 private:
  UniqueFd sock_;
  std::string buf_;
};

// One JSON request/reply over <run_dir>/control.sock. kUnavailable when no supervisor answers.
class SupervisorControl {
 public:
  explicit SupervisorControl(std::string run_dir) : run_dir_(std::move(run_dir)) {}

  Result<SupervisorStatus> Status() const;
  // Returns after the filesystem dropped every cache the new rules could make stale.
  agentfense::Status SetPolicy(const std::vector<policy::Rule>& rules) const;
  agentfense::Status Invalidate(const std::string& workspace_path) const;
  // Replaces the egress policy (only `any_public` and `allow` are read); returns once new
  // connections are decided by it and open ones it no longer allows are closed.
  // kFailedPrecondition when the sandbox was started without network.
  agentfense::Status SetEgress(const EgressSpec& egress) const;
  // Asks the supervisor to stop its sandbox (and remove a Docker container when `destroy`), then
  // waits (bounded) until its sockets are gone.
  agentfense::Status Stop(bool destroy,
                          std::chrono::milliseconds wait = std::chrono::seconds(30)) const;

  // The copy-on-write delta (docs/DELTA.md). kFailedPrecondition when the sandbox has no delta.
  // Changes: the pending changes, sorted by path, with the delta's quota usage.
  Result<fs::ChangeSet> Changes() const;
  // Commit: syncs the delta into the source now; per-file failures are in the report's errors
  // (and stay pending), the rest is cleared from the delta.
  Result<fs::CommitReport> Commit() const;
  // Discard: drops every pending change; returns how many were discarded.
  Result<int64_t> Discard() const;

  // Checkpoints of the delta (docs/CHECKPOINTS.md).
  Result<fs::CheckpointInfo> CreateCheckpoint(const std::string& name) const;
  Result<std::vector<fs::CheckpointInfo>> ListCheckpoints() const;
  Result<fs::CheckpointInfo> RestoreCheckpoint(const std::string& name) const;
  // From checkpoint `name` to checkpoint `against` ("" = the workspace now).
  Result<std::vector<fs::Change>> DiffCheckpoint(const std::string& name,
                                                 const std::string& against) const;
  agentfense::Status DeleteCheckpoint(const std::string& name) const;

  // Accesses to `ask` paths (docs/PERMISSIONS.md): the pending ones, a decision about one
  // (kNotFound when it is not pending any more), and a stream of events.
  Result<std::vector<fs::AccessRequest>> Approvals() const;
  agentfense::Status Answer(const std::string& id, const fs::AskAnswer& answer) const;
  Result<ApprovalWatch> WatchApprovals() const;

  std::string agent_socket() const { return run_dir_ + "/" + kAgentSocket; }

 private:
  Result<std::string> Call(const std::string& request_json,
                           std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;
  std::string run_dir_;
};

}  // namespace agentfense::supervisor

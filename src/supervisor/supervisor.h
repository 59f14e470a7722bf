// The per-sandbox supervisor (SPEC §2): owns one sandbox's permission-filesystem mount and its
// runtime, and serves two Unix sockets in its private run directory:
//   agent.sock    the agent protocol, relayed to the sandbox (see relay.h);
//   control.sock  one JSON request per line, one JSON reply per line:
//                 {"op":"status"} | {"op":"set_policy","rules":[...]} |
//                 {"op":"set_egress","egress":{"any_public":false,"allow":[...]}} |
//                 {"op":"invalidate","path":"/x"} | {"op":"stop","destroy":false} |
//                 changes | commit | discard (docs/DELTA.md) |
//                 checkpoint | checkpoints | restore | checkpoint_diff | checkpoint_delete
//                 (docs/CHECKPOINTS.md) | approvals | answer | watch_approvals (the `ask`
//                 level, docs/PERMISSIONS.md: watch_approvals turns its connection into a stream
//                 of one approval event per line until the client closes it or the sandbox stops)
// With network on it also owns the sandbox's network namespace and its egress filter (net/): the
// only way out of that namespace, so every connection is decided here, outside the sandbox.
// It runs as its own session (setsid), so the API server can die and restart without touching it;
// the server re-adopts it through these sockets.
#pragma once

#include <atomic>
#include <deque>
#include <vector>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "base/unique_fd.h"
#include "fs/mount.h"
#include "net/egress_proxy.h"
#include "runtime/identity.h"
#include "supervisor/runtime_instance.h"
#include "supervisor/spec.h"

namespace agentfense::supervisor {

class Supervisor {
 public:
  // Mounts the filesystem, starts the runtime, binds both sockets. On error nothing is left
  // mounted or running.
  static Result<std::unique_ptr<Supervisor>> Start(SupervisorSpec spec);
  ~Supervisor();

  // Serves until a stop request, SIGTERM/SIGINT, or the runtime dying; then tears down (runtime
  // stopped, filesystem unmounted, sockets removed). Returns 0 after a requested stop, 1 when
  // the runtime died on its own.
  int Serve();

 private:
  Supervisor() = default;
  // Handles one control request line; sets stop_ for "stop".
  std::string HandleControl(const std::string& line);
  // {"lookup": n, "open": n, ...}: the mount's request counts, for the server's /metrics.
  nlohmann::json FuseRequests() const;
  // The egress filter's counters (empty without network), for /metrics.
  nlohmann::json EgressCounters() const;
  void ServeControlConnection(UniqueFd conn);
  void Teardown();
  // Network on: prepares `netns` (bwrap: a new one; Docker: the container's) and starts the
  // egress filter on it.
  Status StartEgress(UniqueFd netns);
  // One line of audit.jsonl (file and network denials share the log); bounded by kMaxAuditBytes.
  void WriteAudit(const nlohmann::json& line);
  // An access to an `ask` path was held or ended: audited, and sent to every watcher.
  void OnAskEvent(const fs::AskEvent& event);
  // Serves a watch_approvals connection until the client leaves or the sandbox stops.
  void WatchApprovals(int conn);
  // Ends every watch_approvals connection (the sandbox is stopping).
  void CloseWatchers();

  // One watch_approvals connection: lines to send, and an eventfd that wakes its thread.
  struct Watcher {
    std::mutex mu;  // guards lines and closed; leaf lock
    std::deque<std::string> lines;
    bool closed = false;
    UniqueFd wake;
  };
  static constexpr size_t kMaxWatcherBacklog = 4096;  // a watcher this far behind is dropped
  std::mutex watchers_mu_;  // guards watchers_; taken before a Watcher's mu
  std::vector<std::shared_ptr<Watcher>> watchers_;

  SupervisorSpec spec_;
  runtime::IdentityLease lease_;  // held for the supervisor's whole life
  SandboxIdentity identity_;
  // Control requests use these under a shared lock; Teardown drops them under the exclusive one
  // (so it waits for a commit in progress). Agent connections hold their own runtime reference.
  std::shared_mutex state_mu_;
  std::unique_ptr<fs::Mount> mount_;
  std::shared_ptr<RuntimeInstance> runtime_;
  std::unique_ptr<net::EgressProxy> egress_;  // network on only
  UniqueFd agent_listen_;
  UniqueFd control_listen_;
  UniqueFd wake_;  // eventfd: wakes Serve() when a control request asks to stop
  std::atomic<bool> stop_{false};
  std::atomic<bool> destroy_{false};
  std::mutex audit_mu_;  // guards audit_ writes
  UniqueFd audit_;
  size_t audit_bytes_ = 0;  // guarded by audit_mu_
};

// The sandbox's host identity: as root a lease from spec.identity_range (kept in `lease`, released
// when it is destroyed), otherwise the calling user's own uid and gid.
Result<SandboxIdentity> AcquireIdentity(const SupervisorSpec& spec, runtime::IdentityLease* lease);

// Creates a listening Unix stream socket at `path` (replacing a stale socket file), mode 0600.
Result<UniqueFd> ListenUnix(const std::string& path);

}  // namespace agentfense::supervisor

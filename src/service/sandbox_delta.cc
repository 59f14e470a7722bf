// SandboxManager: the copy-on-write delta (docs/DELTA.md) and what runs after every command.
//
// Every sandbox writes into a private delta (<run dir>/delta, 0700, removed on destroy); the
// codebase changes only on a commit. When depends on the sandbox's sync mode: ON_EXEC commits
// after every exec and session command, before the reply (a client that reads the codebase after
// an exec sees the change, as with the reference server); ON_STOP at StopSandbox; MANUAL only
// through CommitChanges; NEVER not at all (CommitChanges is refused).
//
// The delta lives in the supervisor: a stopped sandbox has none to talk to, so ListChanges /
// CommitChanges / DiscardChanges answer FAILED_PRECONDITION for it (its delta dir is kept and
// reused at the next start).
#include <set>

#include <fmt/format.h>

#include "base/ids.h"
#include "base/log.h"
#include "base/path.h"
#include "service/convert.h"
#include "service/sandbox_convert.h"
#include "service/sandbox_manager.h"
#include "store/metadata_store.h"

namespace agentfense::service {

std::string SandboxManager::DeltaDir(const std::string& id) const { return RunDir(id) + "/delta"; }

Result<v1::CommitChangesResponse> SandboxManager::CommitLive(Live& live) {
  fs::CommitReport report;
  {
    std::lock_guard lock(live.commit_mu);
    AF_ASSIGN_OR_RETURN(report, live.control->Commit());
  }
  v1::CommitChangesResponse out;
  for (const auto& c : report.applied) *out.add_applied() = ChangeToProto(c);
  for (const auto& e : report.errors) {
    auto* err = out.add_errors();
    err->set_path(e.path);
    err->set_message(e.message);
  }
  if (report.applied.empty()) return out;

  // The other running sandboxes of this codebase cached the old tree: make them look again.
  std::set<std::string> paths;
  for (const auto& c : report.applied) {
    paths.insert(c.path);
    paths.insert(ParentPath(c.path));  // its listing (and a cached "no such entry")
  }
  InvalidateOthers(live.codebase_id, live.id, paths);
  return out;
}

void SandboxManager::InvalidateOthers(const std::string& codebase_id, const std::string& except_id,
                                      const std::set<std::string>& paths) {
  std::vector<std::shared_ptr<Live>> others;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, l] : live_) {
      if (id != except_id && l->codebase_id == codebase_id) others.push_back(l);
    }
  }
  for (auto& other : others) {
    for (const auto& p : paths) {
      if (Status st = other->control->Invalidate(p); !st.ok()) {
        AF_LOG_WARN("sandbox {}: invalidating {}: {}", other->id, p, st.error().ToString());
        break;  // that supervisor is gone or stuck; the reaper deals with it
      }
    }
  }
}

void SandboxManager::CodebaseFileChanged(const std::string& codebase_id,
                                         const std::string& rel_path) {
  std::string path = "/" + rel_path;
  InvalidateOthers(codebase_id, "", {path, ParentPath(path)});
}

void SandboxManager::AfterCommand(Live& live, const std::string& session_id) {
  if (live.sync_mode == kSyncOnExec || live.sync_mode.empty()) {
    auto report = CommitLive(live);
    if (!report.ok()) {
      // kFailedPrecondition: a supervisor without a delta (writes went straight through).
      if (report.error().code() != ErrorCode::kFailedPrecondition &&
          !live.commit_warned.exchange(true)) {
        AF_LOG_WARN("sandbox {}: commit after exec failed (logged once): {}", live.id,
                    report.error().ToString());
        Audit(live.id, "commit_failed", report.error().ToString());
      }
    } else if (report->errors_size() > 0) {
      for (const auto& e : report->errors()) {
        Audit(live.id, "commit_failed", e.path() + ": " + e.message());
      }
    }
  }
  if (!session_id.empty()) ProbeSessions(live, session_id);
}

void SandboxManager::ProbeSessions(Live& live, const std::string& only_session) {
  if (!live.agent || !live.agent->alive()) return;
  std::vector<std::pair<std::string, uint64_t>> sessions;
  {
    std::lock_guard lock(live.sessions_mu);
    for (const auto& [sess, sid] : live.sessions) {
      if (only_session.empty() || sess == only_session) sessions.emplace_back(sess, sid);
    }
  }
  bool changed = false;
  for (const auto& [sess, sid] : sessions) {
    // The agent checks whether the shell is closed before it validates the command, and refuses
    // a command with a NUL without running or queueing anything: this asks "is the shell still
    // there?" without touching the shell ($?, $_ and a running command stay as they were).
    runtime::proto::SessionExec probe;
    probe.session_id = sid;
    probe.command = std::string(1, '\0');
    probe.timeout_ms = 1000;
    probe.output_cap = 0;
    auto r = live.agent->SessionExec(probe);
    if (r.ok() || (r.error().code() != ErrorCode::kFailedPrecondition &&
                   r.error().code() != ErrorCode::kNotFound)) {
      continue;
    }
    (void)deps_.metadata->CloseSession(sess, NowNs());
    {
      std::lock_guard lock(live.sessions_mu);
      live.sessions.erase(sess);
    }
    changed = true;
  }
  if (changed) SaveSessions(live);
}

namespace {
Error NoDelta(const std::string& id, store::SandboxStatus status) {
  return Error(ErrorCode::kFailedPrecondition,
               fmt::format("sandbox {} is not running (status {}): its pending changes are kept "
                           "and can be listed, committed or discarded once it is started again",
                           id, SandboxStatusName(status)));
}
}  // namespace

Result<v1::ListChangesResponse> SandboxManager::ListChanges(const CallContext&,
                                                            const v1::ListChangesRequest& req) {
  if (req.sandbox_id().empty()) return Error(ErrorCode::kInvalidArgument, "sandbox_id is required");
  AF_ASSIGN_OR_RETURN(store::SandboxRecord rec, LoadSandbox(req.sandbox_id()));
  auto live = FindLive(rec.id);
  if (rec.status != store::SandboxStatus::kRunning || !live) return NoDelta(rec.id, rec.status);
  AF_ASSIGN_OR_RETURN(fs::ChangeSet set, live->control->Changes());
  v1::ListChangesResponse out;
  for (const auto& c : set.changes) *out.add_changes() = ChangeToProto(c);
  out.set_delta_bytes(set.delta_bytes);
  out.set_delta_inodes(set.delta_inodes);
  return out;
}

Result<v1::CommitChangesResponse> SandboxManager::CommitChanges(
    const CallContext&, const v1::CommitChangesRequest& req) {
  if (req.sandbox_id().empty()) return Error(ErrorCode::kInvalidArgument, "sandbox_id is required");
  AF_ASSIGN_OR_RETURN(store::SandboxRecord rec, LoadSandbox(req.sandbox_id()));
  if (rec.sync_mode == kSyncNever) {
    return Error(ErrorCode::kFailedPrecondition,
                 fmt::format("sandbox {} has sync_mode NEVER: its changes are never committed",
                             rec.id));
  }
  auto live = FindLive(rec.id);
  if (rec.status != store::SandboxStatus::kRunning || !live) return NoDelta(rec.id, rec.status);
  AF_ASSIGN_OR_RETURN(auto out, CommitLive(*live));
  Audit(rec.id, "committed",
        fmt::format("{} applied, {} failed", out.applied_size(), out.errors_size()));
  return out;
}

Result<v1::DiscardChangesResponse> SandboxManager::DiscardChanges(
    const CallContext&, const v1::DiscardChangesRequest& req) {
  if (req.sandbox_id().empty()) return Error(ErrorCode::kInvalidArgument, "sandbox_id is required");
  AF_ASSIGN_OR_RETURN(store::SandboxRecord rec, LoadSandbox(req.sandbox_id()));
  auto live = FindLive(rec.id);
  if (rec.status != store::SandboxStatus::kRunning || !live) return NoDelta(rec.id, rec.status);
  int64_t n = 0;
  {
    std::lock_guard lock(live->commit_mu);
    AF_ASSIGN_OR_RETURN(n, live->control->Discard());
  }
  Audit(rec.id, "discarded", fmt::format("{} changes", n));
  v1::DiscardChangesResponse out;
  out.set_discarded(static_cast<int32_t>(std::min<int64_t>(n, INT32_MAX)));
  return out;
}

}  // namespace agentfense::service

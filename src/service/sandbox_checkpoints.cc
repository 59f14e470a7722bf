// SandboxManager: checkpoints of a running sandbox's delta (docs/CHECKPOINTS.md). The supervisor
// owns the delta and does the work (fs/delta_checkpoints.cc); here are the API's rules: which
// sandboxes can have checkpoints, names, restore while commands run, the audit log.
#include <fmt/format.h>

#include "base/ids.h"
#include "fs/delta.h"
#include "service/convert.h"
#include "service/sandbox_convert.h"
#include "service/sandbox_manager.h"
#include "store/metadata_store.h"

namespace agentfense::service {
namespace {

v1::Checkpoint CheckpointToProto(const fs::CheckpointInfo& c) {
  v1::Checkpoint out;
  out.set_name(c.name);
  SetTimestamp(c.created_ns, out.mutable_created_at());
  out.set_size(c.bytes);
  out.set_files(c.files);
  out.set_directories(c.dirs);
  out.set_deletions(c.deletions);
  return out;
}

// Names are checked here too, so that a bad one never reaches a supervisor (and the error names
// the field the client sent).
Status CheckName(const std::string& name, const char* field = "name") {
  if (Status st = fs::ValidateCheckpointName(name); !st.ok()) {
    return Error(ErrorCode::kInvalidArgument, std::string(field) + ": " + st.error().message());
  }
  return OkStatus();
}

}  // namespace

Result<std::shared_ptr<SandboxManager::Live>> SandboxManager::CheckpointSandbox(
    const std::string& id, const std::string& what) {
  if (id.empty()) return Error(ErrorCode::kInvalidArgument, "sandbox_id is required");
  AF_ASSIGN_OR_RETURN(store::SandboxRecord rec, LoadSandbox(id));
  if (rec.sync_mode == kSyncOnExec || rec.sync_mode.empty()) {
    return Error(ErrorCode::kFailedPrecondition,
                 fmt::format("sandbox {} commits its changes after every command (sync_mode "
                             "ON_EXEC), so its delta holds nothing to {}: checkpoints need "
                             "sync_mode MANUAL, ON_STOP or NEVER",
                             id, what));
  }
  auto live = FindLive(rec.id);
  if (rec.status != store::SandboxStatus::kRunning || !live) {
    return Error(ErrorCode::kFailedPrecondition,
                 fmt::format("sandbox {} is not running (status {}): its checkpoints are kept "
                             "and can be used once it is started again",
                             id, SandboxStatusName(rec.status)));
  }
  return live;
}

Result<v1::Checkpoint> SandboxManager::CreateCheckpoint(const CallContext&,
                                                        const v1::CreateCheckpointRequest& req) {
  AF_RETURN_IF_ERROR(CheckName(req.name()));
  AF_ASSIGN_OR_RETURN(auto live, CheckpointSandbox(req.sandbox_id(), "checkpoint"));
  if (options_.max_checkpoints <= 0) {
    return Error(ErrorCode::kResourceExhausted,
                 "checkpoints are disabled on this server (sandbox.max_checkpoints is 0)");
  }
  fs::CheckpointInfo info;
  {
    std::lock_guard lock(live->commit_mu);  // never in the middle of a commit or discard
    AF_ASSIGN_OR_RETURN(info, live->control->CreateCheckpoint(req.name()));
  }
  Audit(live->id, "checkpoint_created",
        fmt::format("{}: {} files, {} bytes, {} deletions", info.name, info.files, info.bytes,
                    info.deletions));
  return CheckpointToProto(info);
}

Result<v1::ListCheckpointsResponse> SandboxManager::ListCheckpoints(
    const CallContext&, const v1::ListCheckpointsRequest& req) {
  AF_ASSIGN_OR_RETURN(auto live, CheckpointSandbox(req.sandbox_id(), "list"));
  AF_ASSIGN_OR_RETURN(auto list, live->control->ListCheckpoints());
  v1::ListCheckpointsResponse out;
  for (const auto& c : list) *out.add_checkpoints() = CheckpointToProto(c);
  return out;
}

Result<v1::Checkpoint> SandboxManager::RestoreCheckpoint(const CallContext&,
                                                         const v1::RestoreCheckpointRequest& req) {
  AF_RETURN_IF_ERROR(CheckName(req.name()));
  AF_ASSIGN_OR_RETURN(auto live, CheckpointSandbox(req.sandbox_id(), "restore"));
  fs::CheckpointInfo info;
  {
    std::lock_guard lock(live->commit_mu);
    // Refused rather than racing a command that writes as the workspace changes under it (a
    // session's background jobs are not commands of the API and keep running: CHECKPOINTS.md).
    if (int n = live->commands.load(); n > 0) {
      return Error(ErrorCode::kFailedPrecondition,
                   fmt::format("sandbox {} is running {} command(s): restore once they end",
                               live->id, n));
    }
    AF_ASSIGN_OR_RETURN(info, live->control->RestoreCheckpoint(req.name()));
  }
  Audit(live->id, "checkpoint_restored", info.name);
  return CheckpointToProto(info);
}

Result<v1::DiffCheckpointResponse> SandboxManager::DiffCheckpoint(
    const CallContext&, const v1::DiffCheckpointRequest& req) {
  AF_RETURN_IF_ERROR(CheckName(req.name()));
  std::string against = req.against();
  if (against == "current") against.clear();
  if (!against.empty()) AF_RETURN_IF_ERROR(CheckName(against, "against"));
  AF_ASSIGN_OR_RETURN(auto live, CheckpointSandbox(req.sandbox_id(), "diff"));
  std::vector<fs::Change> changes;
  {
    std::lock_guard lock(live->commit_mu);
    AF_ASSIGN_OR_RETURN(changes, live->control->DiffCheckpoint(req.name(), against));
  }
  v1::DiffCheckpointResponse out;
  for (const auto& c : changes) *out.add_changes() = ChangeToProto(c);
  return out;
}

Result<v1::Empty> SandboxManager::DeleteCheckpoint(const CallContext&,
                                                   const v1::DeleteCheckpointRequest& req) {
  AF_RETURN_IF_ERROR(CheckName(req.name()));
  AF_ASSIGN_OR_RETURN(auto live, CheckpointSandbox(req.sandbox_id(), "delete"));
  {
    std::lock_guard lock(live->commit_mu);
    AF_RETURN_IF_ERROR(live->control->DeleteCheckpoint(req.name()));
  }
  Audit(live->id, "checkpoint_deleted", req.name());
  return v1::Empty();
}

}  // namespace agentfense::service

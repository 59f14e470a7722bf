// SandboxManager: approvals of accesses to `ask` paths (docs/PERMISSIONS.md, "ask"). The
// supervisor holds the accesses and audits every one (held, and how it ended); here are the API's
// rules: who answered, and a remembered decision becoming a rule through UpdatePermissions.
#include <fmt/format.h>

#include "base/ids.h"
#include "fs/ask_types.h"
#include "policy/policy.h"
#include "service/convert.h"
#include "service/sandbox_convert.h"
#include "service/sandbox_manager.h"
#include "store/metadata_store.h"

namespace agentfense::service {
namespace {

constexpr size_t kMaxAnsweredBy = 128;

v1::Approval ApprovalToProto(const std::string& sandbox_id, const fs::AskEvent& e) {
  const fs::AccessRequest& r = e.request;
  v1::Approval a;
  a.set_id(r.id);
  a.set_sandbox_id(sandbox_id);
  a.set_path(r.path);
  a.set_operation(r.op);
  a.set_access(r.need == policy::Level::kWrite ? v1::APPROVAL_ACCESS_WRITE
                                               : v1::APPROVAL_ACCESS_READ);
  a.set_pid(static_cast<int32_t>(r.pid));
  a.set_command(r.command);
  SetTimestamp(r.since_ns, a.mutable_waiting_since());
  SetTimestamp(r.deadline_ns, a.mutable_deadline());
  switch (e.state) {
    case fs::AskState::kPending: a.set_state(v1::APPROVAL_STATE_PENDING); break;
    case fs::AskState::kAllowed: a.set_state(v1::APPROVAL_STATE_ALLOWED); break;
    case fs::AskState::kDenied: a.set_state(v1::APPROVAL_STATE_DENIED); break;
    case fs::AskState::kTimedOut: a.set_state(v1::APPROVAL_STATE_TIMED_OUT); break;
    case fs::AskState::kCancelled: a.set_state(v1::APPROVAL_STATE_CANCELLED); break;
  }
  if (e.state != fs::AskState::kPending) {
    a.set_decision(e.grant == policy::Level::kWrite  ? v1::APPROVAL_DECISION_ALLOW_WRITE
                   : e.grant == policy::Level::kRead ? v1::APPROVAL_DECISION_ALLOW_READ
                                                     : v1::APPROVAL_DECISION_DENY);
    a.set_answered_by(e.by);
    a.set_remembered(e.remember);
  }
  return a;
}

}  // namespace

Result<std::shared_ptr<SandboxManager::Live>> SandboxManager::AskingSandbox(const std::string& id) {
  if (id.empty()) return Error(ErrorCode::kInvalidArgument, "sandbox_id is required");
  AF_ASSIGN_OR_RETURN(store::SandboxRecord rec, LoadSandbox(id));
  auto live = FindLive(rec.id);
  if (rec.status != store::SandboxStatus::kRunning || !live) {
    return Error(ErrorCode::kFailedPrecondition,
                 fmt::format("sandbox {} is not running (status {}): nothing waits for a decision",
                             id, SandboxStatusName(rec.status)));
  }
  return live;
}

Result<v1::ListApprovalsResponse> SandboxManager::ListApprovals(
    const CallContext&, const v1::ListApprovalsRequest& req) {
  AF_ASSIGN_OR_RETURN(auto live, AskingSandbox(req.sandbox_id()));
  AF_ASSIGN_OR_RETURN(auto pending, live->control->Approvals());
  v1::ListApprovalsResponse out;
  for (auto& r : pending) {
    fs::AskEvent e;
    e.request = std::move(r);
    *out.add_approvals() = ApprovalToProto(live->id, e);
  }
  return out;
}

Result<v1::Approval> SandboxManager::AnswerApproval(const CallContext& ctx,
                                                    const v1::AnswerApprovalRequest& req) {
  AF_RETURN_IF_ERROR(ValidateApprovalId(req.approval_id()));
  if (req.decision() == v1::APPROVAL_DECISION_UNSPECIFIED) {
    return Error(ErrorCode::kInvalidArgument, "decision is required (allow, allow read, "
                                              "allow write or deny)");
  }
  if (req.answered_by().size() > kMaxAnsweredBy) {
    return Error(ErrorCode::kInvalidArgument, "answered_by is longer than 128 bytes");
  }
  if (req.remember().size() > policy::kMaxPatternBytes) {
    return Error(ErrorCode::kInvalidArgument, "remember is longer than a pattern may be");
  }
  AF_ASSIGN_OR_RETURN(auto live, AskingSandbox(req.sandbox_id()));
  AF_ASSIGN_OR_RETURN(auto pending, live->control->Approvals());
  auto it = std::find_if(pending.begin(), pending.end(),
                         [&](const fs::AccessRequest& r) { return r.id == req.approval_id(); });
  if (it == pending.end()) {
    return Error(ErrorCode::kNotFound, fmt::format("no pending approval {} in sandbox {} "
                                                   "(answered, timed out or cancelled)",
                                                   req.approval_id(), live->id));
  }
  fs::AskEvent done;
  done.request = *it;
  fs::AskAnswer answer;
  switch (req.decision()) {
    case v1::APPROVAL_DECISION_ALLOW: answer.grant = it->need; break;
    case v1::APPROVAL_DECISION_ALLOW_READ: answer.grant = policy::Level::kRead; break;
    case v1::APPROVAL_DECISION_ALLOW_WRITE: answer.grant = policy::Level::kWrite; break;
    case v1::APPROVAL_DECISION_DENY: answer.grant = policy::Level::kNone; break;
    default: return Error(ErrorCode::kInvalidArgument, "unknown decision");
  }
  const std::string who = req.answered_by().empty() ? "an API client" : req.answered_by();
  answer.by = fmt::format("{} ({} {})", who, ctx.transport, ctx.peer);

  // A remembered decision: the rule is built and checked against the stored rules first, so a
  // refused pattern leaves the access waiting (nothing half done).
  std::optional<store::RuleRecord> remembered;
  const std::string& remember = req.remember();
  if (!remember.empty() && remember != "once") {
    AF_ASSIGN_OR_RETURN(store::SandboxRecord rec, LoadSandbox(live->id));
    AF_ASSIGN_OR_RETURN(policy::Policy current, policy::Policy::Compile(RulesToPolicy(rec.rules)));
    const bool is_dir = it->op == "mkdir" || it->op == "rmdir";
    const policy::Level level =
        answer.grant == policy::Level::kNone ? policy::Level::kView : answer.grant;
    std::optional<int32_t> priority;
    if (req.has_priority()) priority = req.priority();
    AF_ASSIGN_OR_RETURN(policy::Rule rule,
                        policy::RememberRule(current, it->path, is_dir, level, remember, priority));
    store::RuleRecord r;
    r.pattern = rule.pattern;
    r.type = static_cast<int>(rule.type);
    r.level = static_cast<int>(rule.level);
    r.priority = rule.priority;
    answer.remember = RenderRule(r);
    remembered = r;
  }
  AF_RETURN_IF_ERROR(live->control->Answer(req.approval_id(), answer));
  if (remembered) {
    // Through the same path as UpdatePermissions: stored, applied to the running sandbox (which
    // re-runs the other held accesses the rule now decides), audited. Appended to the rules
    // stored when the lock is held, not to those read above: an update made meanwhile stays.
    auto updated = ReplaceRules(live->id, [&](const std::vector<store::RuleRecord>& stored) {
      std::vector<store::RuleRecord> rules = stored;
      rules.push_back(*remembered);
      return Result<std::vector<store::RuleRecord>>(std::move(rules));
    });
    if (!updated.ok()) {
      return std::move(updated).error().With("the access was answered, but remembering it failed");
    }
  }
  done.state = answer.grant >= it->need ? fs::AskState::kAllowed : fs::AskState::kDenied;
  done.grant = answer.grant;
  done.by = answer.by;
  done.remember = answer.remember;
  return ApprovalToProto(live->id, done);
}

Status SandboxManager::WatchApprovals(const CallContext& ctx, const v1::WatchApprovalsRequest& req,
                                      const ApprovalWriter& write) {
  AF_ASSIGN_OR_RETURN(auto live, AskingSandbox(req.sandbox_id()));
  AF_ASSIGN_OR_RETURN(supervisor::ApprovalWatch watch, live->control->WatchApprovals());
  while (!ctx.IsCancelled()) {
    auto next = watch.Next(std::chrono::milliseconds(250));
    if (!next.ok()) {
      // The supervisor closed the stream: the sandbox stopped. The stream ends normally.
      if (next.error().code() == ErrorCode::kUnavailable) return OkStatus();
      return std::move(next).error();
    }
    if (!next->has_value()) continue;
    if (!write(ApprovalToProto(live->id, **next))) break;
  }
  return Error(ErrorCode::kCancelled, "the client went away");
}

}  // namespace agentfense::service

// SandboxManager: the policy extensions. UpdatePermissions swaps a sandbox's rules (hot on a
// running sandbox: the supervisor has dropped every stale cache before we reply, SPEC §3.7);
// ExplainPermission answers "why can (not) the agent see this path" from the stored rules.
#include <fcntl.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include "base/ids.h"
#include "base/path.h"
#include "policy/egress.h"
#include "policy/policy.h"
#include "service/sandbox_convert.h"
#include "service/sandbox_manager.h"
#include "store/codebase_files.h"
#include "store/metadata_store.h"
#include "store/safe_open.h"

namespace agentfense::service {

Result<v1::Sandbox> SandboxManager::UpdatePermissions(const CallContext&,
                                                      const v1::UpdatePermissionsRequest& req) {
  if (req.sandbox_id().empty()) return Error(ErrorCode::kInvalidArgument, "sandbox_id is required");
  AF_RETURN_IF_ERROR(ValidateSandboxId(req.sandbox_id()));
  AF_ASSIGN_OR_RETURN(auto rules, RulesFromProto(req.permissions()));
  return ReplaceRules(req.sandbox_id(),
                      [&](const std::vector<store::RuleRecord>&) { return rules; });
}

Result<v1::Sandbox> SandboxManager::ReplaceRules(const std::string& id, const RulesEdit& next) {
  // Under the lifecycle lock: a concurrent start must not launch with the old rules after we
  // stored the new ones (or the reverse), and two edits apply one after the other.
  auto lock_handle = LifecycleLock(id);
  std::lock_guard lifecycle(*lock_handle);
  AF_ASSIGN_OR_RETURN(store::SandboxRecord rec, LoadSandbox(id));
  AF_ASSIGN_OR_RETURN(std::vector<store::RuleRecord> rules, next(rec.rules));
  AF_RETURN_IF_ERROR(policy::Policy::Compile(RulesToPolicy(rules)));
  if (rec.status == store::SandboxStatus::kRunning) {
    auto live = FindLive(rec.id);
    if (!live) {
      return Error(ErrorCode::kUnavailable, fmt::format("sandbox {} lost its supervisor", rec.id));
    }
    // Applied first: if the supervisor refuses, the stored rules stay those it enforces.
    AF_RETURN_IF_ERROR(live->control->SetPolicy(RulesToPolicy(rules)));
  }
  rec.rules = std::move(rules);
  AF_RETURN_IF_ERROR(deps_.metadata->UpdateSandbox(rec));
  Audit(rec.id, "permissions_updated", fmt::format("{} rules", rec.rules.size()));
  return SandboxToProto(rec);
}

Status SandboxManager::SetEgress(
    store::SandboxRecord& rec, bool any_public,
    const google::protobuf::RepeatedPtrField<std::string>& allow) const {
  std::vector<std::string> rules(allow.begin(), allow.end());
  AF_ASSIGN_OR_RETURN(
      auto egress, policy::EgressPolicy::Create(any_public, rules, options_.network_public_cidrs));
  rec.egress_any_public = any_public;
  rec.egress_allow = egress.RuleTexts();
  return OkStatus();
}

Result<v1::Sandbox> SandboxManager::UpdateEgress(const CallContext&,
                                                 const v1::UpdateEgressRequest& req) {
  if (req.sandbox_id().empty()) return Error(ErrorCode::kInvalidArgument, "sandbox_id is required");
  AF_RETURN_IF_ERROR(ValidateSandboxId(req.sandbox_id()));
  auto lock_handle = LifecycleLock(req.sandbox_id());
  std::lock_guard lifecycle(*lock_handle);
  AF_ASSIGN_OR_RETURN(store::SandboxRecord rec, LoadSandbox(req.sandbox_id()));
  AF_RETURN_IF_ERROR(SetEgress(rec, req.egress().any_public(), req.egress().allow()));
  const bool wants_network = rec.egress_any_public || !rec.egress_allow.empty();
  const bool running = rec.status == store::SandboxStatus::kRunning;
  if (!running) rec.network = rec.network || wants_network;
  if (rec.network && rec.runtime == store::RuntimeKind::kDocker &&
      !options_.docker_enable_networking) {
    return Error(ErrorCode::kFailedPrecondition,
                 "network access is disabled on this server (runtime.docker.enable_networking)");
  }
  if (running) {
    if (!rec.network) {
      return Error(ErrorCode::kFailedPrecondition,
                   fmt::format("sandbox {} was started without network: stop it, update its "
                               "egress, start it again",
                               rec.id));
    }
    auto live = FindLive(rec.id);
    if (!live) {
      return Error(ErrorCode::kUnavailable, fmt::format("sandbox {} lost its supervisor", rec.id));
    }
    supervisor::EgressSpec e;
    e.any_public = rec.egress_any_public;
    e.allow = rec.egress_allow;
    // Applied first: if the supervisor refuses, the stored policy stays the one it enforces.
    AF_RETURN_IF_ERROR(live->control->SetEgress(e));
  }
  AF_RETURN_IF_ERROR(deps_.metadata->UpdateSandbox(rec));
  Audit(rec.id, "egress_updated",
        fmt::format("{}{} rules", rec.egress_any_public ? "any public + " : "",
                    rec.egress_allow.size()));
  return SandboxToProto(rec);
}

Result<v1::ExplainPermissionResponse> SandboxManager::ExplainPermission(
    const CallContext&, const v1::ExplainPermissionRequest& req) {
  if (req.sandbox_id().empty()) return Error(ErrorCode::kInvalidArgument, "sandbox_id is required");
  AF_ASSIGN_OR_RETURN(store::SandboxRecord rec, LoadSandbox(req.sandbox_id()));
  auto normalized = NormalizeWorkspacePath(req.path());
  if (!normalized.ok()) {
    return Error(ErrorCode::kInvalidArgument, "path: " + normalized.error().message());
  }
  const std::string& path = *normalized;
  AF_ASSIGN_OR_RETURN(policy::Policy pol, policy::Policy::Compile(RulesToPolicy(rec.rules)));
  policy::Explanation ex = pol.Explain(path);

  // A directory's level includes ancestor visibility (§3.4): ask the codebase what the path is.
  // Never follows a link (the path is client data); anything unreachable counts as a file.
  bool is_dir = path == "/";
  if (!is_dir) {
    auto root = deps_.files->CodebasePath(rec.codebase_id);
    if (root.ok()) {
      UniqueFd root_fd(::open(root->c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
      if (root_fd.get() >= 0) {
        auto fd = store::OpenBeneath(root_fd.get(), path.substr(1), O_PATH, 0,
                                     store::ProbeResolveMode());
        struct stat st{};
        if (fd.ok() && ::fstat(fd->get(), &st) == 0) is_dir = S_ISDIR(st.st_mode);
      }
    }
  }
  const policy::Decision& d = is_dir ? ex.as_directory : ex.as_file;

  v1::ExplainPermissionResponse out;
  out.set_path(path);
  out.set_permission(PermissionToProto(d.level));
  out.set_deciding_rule(d.rule);
  for (const auto& m : ex.matches) {
    if (m.rule < 0 || static_cast<size_t>(m.rule) >= rec.rules.size()) continue;
    auto* rm = out.add_matching_rules();
    rm->set_index(m.rule);
    *rm->mutable_rule() = RuleToProto(rec.rules[static_cast<size_t>(m.rule)]);
  }
  // The engine's sentence covers both readings (file, and directory with ancestor visibility).
  std::string reason = ex.reason;
  if (reason.empty()) {
    reason = d.rule < 0 ? "no rule matches: the default is none"
                        : fmt::format("rule {} decides", d.rule);
  }
  out.set_reason(reason);
  return out;
}

}  // namespace agentfense::service

#include "service/sandbox_convert.h"

#include <fmt/format.h>

#include "service/convert.h"

namespace agentfense::service {

namespace v1 = ::sandbox::v1;

Result<std::vector<store::RuleRecord>> RulesFromProto(
    const google::protobuf::RepeatedPtrField<v1::PermissionRule>& rules) {
  if (static_cast<size_t>(rules.size()) > policy::kMaxRules) {
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("too many rules: {} (at most {})", rules.size(), policy::kMaxRules));
  }
  std::vector<store::RuleRecord> out;
  out.reserve(static_cast<size_t>(rules.size()));
  int index = 0;
  for (const auto& r : rules) {
    store::RuleRecord rec;
    rec.pattern = r.pattern();
    switch (r.type()) {
      case v1::PATTERN_TYPE_UNSPECIFIED:
      case v1::PATTERN_TYPE_GLOB: rec.type = static_cast<int>(policy::PatternType::kGlob); break;
      case v1::PATTERN_TYPE_DIRECTORY:
        rec.type = static_cast<int>(policy::PatternType::kDirectory);
        break;
      case v1::PATTERN_TYPE_FILE: rec.type = static_cast<int>(policy::PatternType::kFile); break;
      default:
        return Error(ErrorCode::kInvalidArgument, fmt::format("rule {}: unknown pattern type", index));
    }
    switch (r.permission()) {
      case v1::PERMISSION_NONE: rec.level = static_cast<int>(policy::Level::kNone); break;
      case v1::PERMISSION_VIEW: rec.level = static_cast<int>(policy::Level::kView); break;
      case v1::PERMISSION_READ: rec.level = static_cast<int>(policy::Level::kRead); break;
      case v1::PERMISSION_WRITE: rec.level = static_cast<int>(policy::Level::kWrite); break;
      case v1::PERMISSION_ASK: rec.level = static_cast<int>(policy::Level::kAsk); break;
      default:
        return Error(ErrorCode::kInvalidArgument,
                     fmt::format("rule {} ('{}'): permission is missing or unknown", index,
                                 r.pattern().substr(0, 64)));
    }
    rec.priority = r.priority();
    out.push_back(std::move(rec));
    ++index;
  }
  return out;
}

std::vector<policy::Rule> RulesToPolicy(const std::vector<store::RuleRecord>& rules) {
  std::vector<policy::Rule> out;
  out.reserve(rules.size());
  for (const auto& r : rules) {
    out.push_back({r.pattern, static_cast<policy::PatternType>(r.type),
                   static_cast<policy::Level>(r.level), r.priority});
  }
  return out;
}

Result<store::ResourceLimitsRecord> LimitsFromProto(const v1::ResourceLimits& l) {
  if (l.memory_bytes() < 0 || l.cpu_quota() < 0 || l.cpu_shares() < 0 || l.pids_limit() < 0) {
    return Error(ErrorCode::kInvalidArgument, "resource limits must not be negative");
  }
  if (l.memory_bytes() != 0 && l.memory_bytes() < (4 << 20)) {
    return Error(ErrorCode::kInvalidArgument, "memory_bytes below 4 MiB cannot run a sandbox");
  }
  if (l.cpu_quota() != 0 && l.cpu_quota() < 1000) {
    return Error(ErrorCode::kInvalidArgument, "cpu_quota below 1000 µs per 100 ms is too small");
  }
  store::ResourceLimitsRecord r;
  r.memory_bytes = l.memory_bytes();
  r.cpu_quota = l.cpu_quota();
  r.cpu_shares = l.cpu_shares();
  r.pids_limit = l.pids_limit();
  return r;
}

std::string_view SandboxStatusName(store::SandboxStatus status) {
  switch (status) {
    case store::SandboxStatus::kPending: return "PENDING";
    case store::SandboxStatus::kRunning: return "RUNNING";
    case store::SandboxStatus::kStopped: return "STOPPED";
    case store::SandboxStatus::kError: return "ERROR";
  }
  return "UNKNOWN";
}

Result<std::string> SyncModeFromProto(v1::SyncMode mode) {
  switch (mode) {
    case v1::SYNC_MODE_UNSPECIFIED:
    case v1::SYNC_MODE_ON_EXEC: return std::string(kSyncOnExec);
    case v1::SYNC_MODE_ON_STOP: return std::string(kSyncOnStop);
    case v1::SYNC_MODE_MANUAL: return std::string(kSyncManual);
    case v1::SYNC_MODE_NEVER: return std::string(kSyncNever);
    default: return Error(ErrorCode::kInvalidArgument, "unknown sync_mode");
  }
}

v1::SyncMode SyncModeToProto(const std::string& stored) {
  if (stored == kSyncOnStop) return v1::SYNC_MODE_ON_STOP;
  if (stored == kSyncManual) return v1::SYNC_MODE_MANUAL;
  if (stored == kSyncNever) return v1::SYNC_MODE_NEVER;
  return v1::SYNC_MODE_ON_EXEC;  // "on_exec" and rows written before sync modes existed
}

v1::FileChange ChangeToProto(const fs::Change& c) {
  v1::FileChange out;
  out.set_path(c.path);
  switch (c.kind) {
    case fs::ChangeKind::kAdded: out.set_kind(v1::CHANGE_KIND_ADDED); break;
    case fs::ChangeKind::kModified: out.set_kind(v1::CHANGE_KIND_MODIFIED); break;
    case fs::ChangeKind::kDeleted: out.set_kind(v1::CHANGE_KIND_DELETED); break;
  }
  out.set_size(c.size);
  out.set_is_dir(c.is_dir);
  return out;
}

v1::Permission PermissionToProto(policy::Level level) {
  switch (level) {
    case policy::Level::kNone: return v1::PERMISSION_NONE;
    case policy::Level::kView: return v1::PERMISSION_VIEW;
    case policy::Level::kAsk: return v1::PERMISSION_ASK;
    case policy::Level::kRead: return v1::PERMISSION_READ;
    case policy::Level::kWrite: return v1::PERMISSION_WRITE;
  }
  return v1::PERMISSION_UNSPECIFIED;
}

v1::PermissionRule RuleToProto(const store::RuleRecord& r) {
  v1::PermissionRule p;
  p.set_pattern(r.pattern);
  p.set_type(static_cast<v1::PatternType>(r.type + 1));
  p.set_permission(PermissionToProto(static_cast<policy::Level>(r.level)));
  p.set_priority(r.priority);
  return p;
}

std::string RenderRule(const store::RuleRecord& r) {
  return fmt::format("{} = {} @{} ({})", r.pattern,
                     policy::LevelName(static_cast<policy::Level>(r.level)), r.priority,
                     policy::PatternTypeName(static_cast<policy::PatternType>(r.type)));
}

v1::Sandbox SandboxToProto(const store::SandboxRecord& rec) {
  v1::Sandbox s;
  s.set_id(rec.id);
  s.set_codebase_id(rec.codebase_id);
  for (const auto& r : rec.rules) *s.add_permissions() = RuleToProto(r);
  s.set_status(static_cast<v1::SandboxStatus>(static_cast<int>(rec.status)));
  for (const auto& [k, v] : rec.labels) (*s.mutable_labels())[k] = v;
  SetTimestamp(rec.created_at_ns, s.mutable_created_at());
  if (rec.started_at_ns) SetTimestamp(rec.started_at_ns, s.mutable_started_at());
  if (rec.stopped_at_ns) SetTimestamp(rec.stopped_at_ns, s.mutable_stopped_at());
  if (rec.expires_at_ns) SetTimestamp(rec.expires_at_ns, s.mutable_expires_at());
  s.set_runtime(static_cast<v1::RuntimeType>(static_cast<int>(rec.runtime)));
  s.set_image(rec.image);
  if (rec.resources.memory_bytes || rec.resources.cpu_quota || rec.resources.cpu_shares ||
      rec.resources.pids_limit) {
    auto* l = s.mutable_resources();
    l->set_memory_bytes(rec.resources.memory_bytes);
    l->set_cpu_quota(rec.resources.cpu_quota);
    l->set_cpu_shares(rec.resources.cpu_shares);
    l->set_pids_limit(rec.resources.pids_limit);
  }
  s.set_sync_mode(SyncModeToProto(rec.sync_mode));
  s.set_network(rec.network);
  if (rec.network) {
    s.mutable_egress()->set_any_public(rec.egress_any_public);
    for (const auto& rule : rec.egress_allow) s.mutable_egress()->add_allow(rule);
  }
  if (rec.delta_quota_bytes || rec.delta_quota_inodes) {
    s.mutable_delta_quota()->set_max_bytes(rec.delta_quota_bytes);
    s.mutable_delta_quota()->set_max_inodes(rec.delta_quota_inodes);
  }
  if (rec.status == store::SandboxStatus::kError) s.set_status_message(rec.error_reason);
  s.set_host_uid(static_cast<uint32_t>(rec.host_uid));
  // The effective wait of an `ask` access (the supervisor's default when none was set).
  const int64_t ask_ms = rec.ask_timeout_ms > 0 ? rec.ask_timeout_ms : kDefaultAskTimeoutMs;
  s.mutable_ask_timeout()->set_seconds(ask_ms / 1000);
  s.mutable_ask_timeout()->set_nanos(static_cast<int32_t>(ask_ms % 1000) * 1'000'000);
  return s;
}

v1::Session SessionToProto(const store::SessionRecord& rec) {
  v1::Session s;
  s.set_id(rec.id);
  s.set_sandbox_id(rec.sandbox_id);
  s.set_status(rec.status == store::SessionStatus::kActive ? v1::SESSION_STATUS_ACTIVE
                                                           : v1::SESSION_STATUS_CLOSED);
  s.set_shell(rec.shell);
  SetTimestamp(rec.created_at_ns, s.mutable_created_at());
  if (rec.closed_at_ns) SetTimestamp(rec.closed_at_ns, s.mutable_closed_at());
  return s;
}

}  // namespace agentfense::service

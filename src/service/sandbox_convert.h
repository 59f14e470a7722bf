// Conversions between sandbox records, policy rules and the sandbox.v1 wire messages.
#pragma once

#include <string_view>
#include <vector>

#include "base/result.h"
#include "fs/changes.h"
#include "policy/policy.h"
#include "sandbox/v1/sandbox.pb.h"
#include "store/records.h"

namespace agentfense::service {

// Wire rules → stored rules. PERMISSION_UNSPECIFIED is refused (naming the rule index): a rule
// that grants nothing by accident is a policy bug, not a default.
Result<std::vector<store::RuleRecord>> RulesFromProto(
    const google::protobuf::RepeatedPtrField<::sandbox::v1::PermissionRule>& rules);
std::vector<policy::Rule> RulesToPolicy(const std::vector<store::RuleRecord>& rules);

// Negative limits are refused; zero means "no limit".
Result<store::ResourceLimitsRecord> LimitsFromProto(const ::sandbox::v1::ResourceLimits& limits);

::sandbox::v1::Sandbox SandboxToProto(const store::SandboxRecord& rec);
::sandbox::v1::Session SessionToProto(const store::SessionRecord& rec);

std::string_view SandboxStatusName(store::SandboxStatus status);

// Sync modes as stored ("on_exec", "on_stop", "manual", "never"); UNSPECIFIED is "on_exec".
inline constexpr const char* kSyncOnExec = "on_exec";
inline constexpr const char* kSyncOnStop = "on_stop";
inline constexpr const char* kSyncManual = "manual";
inline constexpr const char* kSyncNever = "never";
Result<std::string> SyncModeFromProto(::sandbox::v1::SyncMode mode);
::sandbox::v1::SyncMode SyncModeToProto(const std::string& stored);

// One rule as a human reads it in the audit log: "**/.env* = none @100 (glob)".
std::string RenderRule(const store::RuleRecord& rule);
::sandbox::v1::PermissionRule RuleToProto(const store::RuleRecord& rule);
::sandbox::v1::Permission PermissionToProto(policy::Level level);
::sandbox::v1::FileChange ChangeToProto(const fs::Change& change);

// How long an `ask` access waits when the sandbox sets nothing (docs/PERMISSIONS.md).
inline constexpr int64_t kDefaultAskTimeoutMs = 60'000;

}  // namespace agentfense::service

// Object ids (WIRE.md "ids"): `cb_`, `sb_` or `sess_` (and `ap_` for a pending approval of an
// `ask` access) followed by exactly 16 lowercase hex digits.
// The one definition of their shape, for every layer: the API validates client ids with it, the
// runtime names cgroups and containers after sandbox ids only of this shape, the CLI makes its
// embedded sandboxes' ids with it. An id is never joined into a path, a cgroup or a container
// name unvalidated.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"

namespace agentfense {

inline constexpr std::string_view kCodebaseIdPrefix = "cb_";
inline constexpr std::string_view kSandboxIdPrefix = "sb_";
inline constexpr std::string_view kSessionIdPrefix = "sess_";
inline constexpr std::string_view kApprovalIdPrefix = "ap_";
inline constexpr size_t kIdHexDigits = 16;

// New random ids: 64 bits from getrandom(2). Fails only if the kernel cannot supply randomness.
Result<std::string> NewCodebaseId();
Result<std::string> NewSandboxId();
Result<std::string> NewSessionId();
Result<std::string> NewApprovalId();

// Exact checks: prefix, then 16 characters of [0-9a-f], nothing else.
bool IsValidCodebaseId(std::string_view id);
bool IsValidSandboxId(std::string_view id);
bool IsValidSessionId(std::string_view id);
bool IsValidApprovalId(std::string_view id);

// The same checks as the API answers them: kInvalidArgument when the id is missing
// ("sandbox_id is required"), kNotFound when it is malformed ("sandbox not found"): no object can
// have such an id, and clients of the reference rely on NOT_FOUND for `sb_doesnotexist`. The id
// itself is not echoed (it may be arbitrary client bytes).
Status ValidateCodebaseId(std::string_view id);
Status ValidateSandboxId(std::string_view id);
Status ValidateSessionId(std::string_view id);
Status ValidateApprovalId(std::string_view id);

// `n` random bytes as 2n lowercase hex digits (getrandom(2), retried on EINTR).
Result<std::string> RandomHex(size_t n_bytes);

}  // namespace agentfense

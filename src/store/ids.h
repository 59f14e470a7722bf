// Object ids of the wire API (WIRE.md "ids"): `cb_`, `sb_` or `sess_` followed by exactly 16
// lowercase hex digits. Every id that arrives from a client is validated with these before it is
// used as a key or a directory name: an id is never joined into a path unvalidated.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"

namespace agentfense::store {

inline constexpr std::string_view kCodebaseIdPrefix = "cb_";
inline constexpr std::string_view kSandboxIdPrefix = "sb_";
inline constexpr std::string_view kSessionIdPrefix = "sess_";
inline constexpr size_t kIdHexDigits = 16;

// New random ids: 64 bits from getrandom(2). Fails only if the kernel cannot supply randomness.
Result<std::string> NewCodebaseId();
Result<std::string> NewSandboxId();
Result<std::string> NewSessionId();

// Exact checks: prefix, then 16 characters of [0-9a-f], nothing else.
bool IsValidCodebaseId(std::string_view id);
bool IsValidSandboxId(std::string_view id);
bool IsValidSessionId(std::string_view id);

// The same checks as Status: kInvalidArgument naming what was wrong ("codebase_id is empty",
// "malformed codebase_id"). The id itself is not echoed (it may be arbitrary client bytes).
Status ValidateCodebaseId(std::string_view id);
Status ValidateSandboxId(std::string_view id);
Status ValidateSessionId(std::string_view id);

// `n` random bytes as 2n lowercase hex digits (getrandom(2), retried on EINTR).
Result<std::string> RandomHex(size_t n_bytes);

}  // namespace agentfense::store

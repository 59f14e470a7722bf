// Input validation shared by the service functions. Transports call the service, which validates
// every client-controlled value before it reaches the store or a sandbox: ids (base/ids.h),
// relative paths (base/path.h), commands, names and file modes. Errors are kInvalidArgument naming
// the field; the offending value is not echoed (it may be arbitrary bytes).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include "base/result.h"

namespace agentfense::service {

inline constexpr size_t kMaxCommandBytes = 128 * 1024;  // a shell command, not a payload
inline constexpr size_t kMaxNameBytes = 256;             // codebase names and owner ids
inline constexpr size_t kMaxStdinBytes = 16 * 1024 * 1024;

// Non-empty, at most kMaxCommandBytes, no NUL (it would silently truncate the argv string).
Status ValidateCommand(std::string_view command);

// A required, bounded, NUL-free text field (`field` names it in the error).
Status ValidateName(std::string_view field, std::string_view value);

// A client path inside a codebase in canonical form ("a/b"). `allow_empty` admits "" (the root).
// Leading "/" is refused, as are ".", "..", empty segments, NUL and backslashes.
Result<std::string> ValidateFilePath(std::string_view field, std::string_view path,
                                     bool allow_empty);

// An environment map (CreateSandboxRequest.env, ExecRequest.env...): at most 256 entries, names
// 1-256 bytes without '=' or NUL, values at most 64 KiB without NUL.
Status ValidateEnv(const std::map<std::string, std::string>& env);

// An octal permission string ("0755", "644"); at most 07777. "" yields `fallback`.
Result<mode_t> ParseFileMode(std::string_view text, mode_t fallback);

}  // namespace agentfense::service

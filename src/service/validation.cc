#include "service/validation.h"

#include <fmt/format.h>

#include "base/path.h"

namespace agentfense::service {

Status ValidateCommand(std::string_view command) {
  if (command.empty()) return Error(ErrorCode::kInvalidArgument, "command is empty");
  if (command.size() > kMaxCommandBytes) {
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("command is longer than {} bytes", kMaxCommandBytes));
  }
  if (command.find('\0') != std::string_view::npos) {
    return Error(ErrorCode::kInvalidArgument, "command contains a NUL byte");
  }
  return OkStatus();
}

Status ValidateName(std::string_view field, std::string_view value) {
  if (value.empty()) return Error(ErrorCode::kInvalidArgument, fmt::format("{} is empty", field));
  if (value.size() > kMaxNameBytes) {
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("{} is longer than {} bytes", field, kMaxNameBytes));
  }
  if (value.find('\0') != std::string_view::npos) {
    return Error(ErrorCode::kInvalidArgument, fmt::format("{} contains a NUL byte", field));
  }
  return OkStatus();
}

Result<std::string> ValidateFilePath(std::string_view field, std::string_view path,
                                     bool allow_empty) {
  if (path.empty() && !allow_empty) {
    return Error(ErrorCode::kInvalidArgument, fmt::format("{} is empty", field));
  }
  auto canonical = ValidateRelativePath(path, allow_empty);
  if (!canonical.ok()) {
    // The base error says what was wrong ("absolute", "'..' segment"); keep it, add the field.
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("invalid {}: {}", field, canonical.error().message()));
  }
  return std::move(canonical).value();
}

Result<mode_t> ParseFileMode(std::string_view text, mode_t fallback) {
  if (text.empty()) return fallback;
  if (text.size() > 6) return Error(ErrorCode::kInvalidArgument, "mode: too long");
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '7') return Error(ErrorCode::kInvalidArgument, "mode must be octal");
    value = value * 8 + static_cast<unsigned>(c - '0');
  }
  if (value > 07777) return Error(ErrorCode::kInvalidArgument, "mode is larger than 07777");
  return static_cast<mode_t>(value);
}

Status ValidateEnv(const std::map<std::string, std::string>& env) {
  if (env.size() > 256) return Error(ErrorCode::kInvalidArgument, "too many env entries (256 max)");
  for (const auto& [k, v] : env) {
    if (k.empty() || k.size() > 256 || k.find('=') != std::string::npos ||
        k.find('\0') != std::string::npos || v.find('\0') != std::string::npos ||
        v.size() > 64 * 1024) {
      return Error(ErrorCode::kInvalidArgument,
                   "env names are 1-256 bytes without '=' or NUL, values at most 64 KiB");
    }
  }
  return OkStatus();
}

}  // namespace agentfense::service

#include "base/ids.h"

#include <sys/random.h>

#include <cerrno>

namespace agentfense {
namespace {

bool HasIdShape(std::string_view id, std::string_view prefix) {
  if (id.size() != prefix.size() + kIdHexDigits) return false;
  if (id.substr(0, prefix.size()) != prefix) return false;
  for (char c : id.substr(prefix.size())) {
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (!hex) return false;
  }
  return true;
}

Status Validate(std::string_view id, std::string_view prefix, std::string_view field,
                std::string_view object) {
  if (id.empty()) return Error(ErrorCode::kInvalidArgument, std::string(field) + " is required");
  if (!HasIdShape(id, prefix)) return Error(ErrorCode::kNotFound, std::string(object) + " not found");
  return OkStatus();
}

Result<std::string> NewId(std::string_view prefix) {
  AF_ASSIGN_OR_RETURN(std::string hex, RandomHex(kIdHexDigits / 2));
  return std::string(prefix) + hex;
}

}  // namespace

Result<std::string> RandomHex(size_t n_bytes) {
  std::string bytes(n_bytes, '\0');
  size_t got = 0;
  while (got < n_bytes) {
    // Small requests from the urandom pool never return short once it is initialised, but the
    // loop costs nothing and makes no assumption.
    ssize_t n = ::getrandom(bytes.data() + got, n_bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::FromErrno(errno, "getrandom");
    }
    got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n_bytes);
  for (unsigned char b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
  return out;
}

Result<std::string> NewCodebaseId() { return NewId(kCodebaseIdPrefix); }
Result<std::string> NewSandboxId() { return NewId(kSandboxIdPrefix); }
Result<std::string> NewSessionId() { return NewId(kSessionIdPrefix); }
Result<std::string> NewApprovalId() { return NewId(kApprovalIdPrefix); }

bool IsValidCodebaseId(std::string_view id) { return HasIdShape(id, kCodebaseIdPrefix); }
bool IsValidSandboxId(std::string_view id) { return HasIdShape(id, kSandboxIdPrefix); }
bool IsValidSessionId(std::string_view id) { return HasIdShape(id, kSessionIdPrefix); }
bool IsValidApprovalId(std::string_view id) { return HasIdShape(id, kApprovalIdPrefix); }

Status ValidateCodebaseId(std::string_view id) {
  return Validate(id, kCodebaseIdPrefix, "codebase_id", "codebase");
}
Status ValidateSandboxId(std::string_view id) {
  return Validate(id, kSandboxIdPrefix, "sandbox_id", "sandbox");
}
Status ValidateSessionId(std::string_view id) {
  return Validate(id, kSessionIdPrefix, "session_id", "session");
}
Status ValidateApprovalId(std::string_view id) {
  return Validate(id, kApprovalIdPrefix, "approval_id", "approval");
}

}  // namespace agentfense

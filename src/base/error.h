// Errors are values. An Error carries a category code, the errno that caused it (0 if none) and a
// chain of context strings, innermost first. It is converted to a transport's vocabulary only at the
// edges: FUSE (ToErrno), gRPC and HTTP status (in server/), process exit codes (in cli/).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace agentfense {

// Mirrors the gRPC canonical codes so the service layer can map 1:1 without including gRPC here.
enum class ErrorCode {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

std::string_view ErrorCodeName(ErrorCode code);

class Error {
 public:
  Error(ErrorCode code, std::string message, int sys_errno = 0);

  // An error from a failed system call. The code is derived from the errno (ENOENT → kNotFound...).
  static Error FromErrno(int sys_errno, std::string_view what);

  ErrorCode code() const { return code_; }
  int sys_errno() const { return errno_; }
  const std::string& message() const { return message_; }
  const std::vector<std::string>& context() const { return context_; }

  // Adds an outer layer of context ("opening rules file x"); returns *this for chaining.
  Error& With(std::string context) &;
  Error&& With(std::string context) &&;

  // "outer: inner: message (errno text)".
  std::string ToString() const;

  // The errno to report through a POSIX-like interface (FUSE): the carried errno, else one derived
  // from the code.
  int ToErrno() const;

 private:
  ErrorCode code_;
  int errno_;
  std::string message_;
  std::vector<std::string> context_;  // appended outermost-last
};

ErrorCode ErrorCodeFromErrno(int sys_errno);

}  // namespace agentfense

#include "base/error.h"

#include <cerrno>
#include <cstring>
#include <utility>

namespace agentfense {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "OK";
    case ErrorCode::kCancelled: return "CANCELLED";
    case ErrorCode::kUnknown: return "UNKNOWN";
    case ErrorCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case ErrorCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case ErrorCode::kNotFound: return "NOT_FOUND";
    case ErrorCode::kAlreadyExists: return "ALREADY_EXISTS";
    case ErrorCode::kPermissionDenied: return "PERMISSION_DENIED";
    case ErrorCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case ErrorCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case ErrorCode::kAborted: return "ABORTED";
    case ErrorCode::kOutOfRange: return "OUT_OF_RANGE";
    case ErrorCode::kUnimplemented: return "UNIMPLEMENTED";
    case ErrorCode::kInternal: return "INTERNAL";
    case ErrorCode::kUnavailable: return "UNAVAILABLE";
    case ErrorCode::kDataLoss: return "DATA_LOSS";
    case ErrorCode::kUnauthenticated: return "UNAUTHENTICATED";
  }
  return "UNKNOWN";
}

Error::Error(ErrorCode code, std::string message, int sys_errno)
    : code_(code), errno_(sys_errno), message_(std::move(message)) {}

Error Error::FromErrno(int sys_errno, std::string_view what) {
  return Error(ErrorCodeFromErrno(sys_errno), std::string(what), sys_errno);
}

Error& Error::With(std::string context) & {
  context_.push_back(std::move(context));
  return *this;
}

Error&& Error::With(std::string context) && {
  context_.push_back(std::move(context));
  return std::move(*this);
}

std::string Error::ToString() const {
  std::string out;
  for (auto it = context_.rbegin(); it != context_.rend(); ++it) {
    out += *it;
    out += ": ";
  }
  out += message_;
  if (errno_ != 0) {
    out += " (";
    out += strerrordesc_np(errno_) ? strerrordesc_np(errno_) : "unknown errno";
    out += ")";
  }
  return out;
}

int Error::ToErrno() const {
  if (errno_ != 0) return errno_;
  switch (code_) {
    case ErrorCode::kOk: return 0;
    case ErrorCode::kInvalidArgument: return EINVAL;
    case ErrorCode::kNotFound: return ENOENT;
    case ErrorCode::kAlreadyExists: return EEXIST;
    case ErrorCode::kPermissionDenied: return EACCES;
    case ErrorCode::kResourceExhausted: return ENOSPC;
    case ErrorCode::kUnimplemented: return ENOSYS;
    case ErrorCode::kDeadlineExceeded: return ETIMEDOUT;
    case ErrorCode::kUnavailable: return EAGAIN;
    case ErrorCode::kCancelled: return ECANCELED;
    default: return EIO;
  }
}

ErrorCode ErrorCodeFromErrno(int sys_errno) {
  switch (sys_errno) {
    case 0: return ErrorCode::kOk;
    case ENOENT:
    case ENOTDIR:
    case ESRCH: return ErrorCode::kNotFound;
    case EEXIST:
    case ENOTEMPTY: return ErrorCode::kAlreadyExists;
    case EACCES:
    case EPERM:
    case EROFS: return ErrorCode::kPermissionDenied;
    case EINVAL:
    case ENAMETOOLONG:
    case ELOOP:
    case EISDIR:
    case EXDEV: return ErrorCode::kInvalidArgument;
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case EAGAIN: return ErrorCode::kResourceExhausted;
    case ETIMEDOUT: return ErrorCode::kDeadlineExceeded;
    case ENOSYS:
    case EOPNOTSUPP: return ErrorCode::kUnimplemented;
    case ECANCELED:
    case EINTR: return ErrorCode::kCancelled;
    case ECONNREFUSED:
    case ECONNRESET:
    case EPIPE: return ErrorCode::kUnavailable;
    default: return ErrorCode::kInternal;
  }
}

}  // namespace agentfense

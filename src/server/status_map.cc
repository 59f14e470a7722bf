#include "server/status_map.h"

#include <nlohmann/json.hpp>

#include "base/log.h"

namespace agentfense::server {

std::string ClientMessage(const Error& error) {
  if (error.code() == ErrorCode::kInternal || error.code() == ErrorCode::kUnknown ||
      error.code() == ErrorCode::kDataLoss) {
    AF_LOG_ERROR("internal error answered to a client: {}", error.ToString());
    return "internal error (details in the server log)";
  }
  return error.ToString();
}

grpc::Status ToGrpcStatus(const Error& error) {
  if (error.code() == ErrorCode::kOk) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(static_cast<int>(error.code())),
                      ClientMessage(error));
}

int HttpStatusForCode(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return 200;
    case ErrorCode::kCancelled: return 499;
    case ErrorCode::kUnknown: return 500;
    case ErrorCode::kInvalidArgument: return 400;
    case ErrorCode::kDeadlineExceeded: return 504;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kAlreadyExists: return 409;
    case ErrorCode::kPermissionDenied: return 403;
    case ErrorCode::kResourceExhausted: return 429;
    case ErrorCode::kFailedPrecondition: return 400;
    case ErrorCode::kAborted: return 409;
    case ErrorCode::kOutOfRange: return 400;
    case ErrorCode::kUnimplemented: return 501;
    case ErrorCode::kInternal: return 500;
    case ErrorCode::kUnavailable: return 503;
    case ErrorCode::kDataLoss: return 500;
    case ErrorCode::kUnauthenticated: return 401;
  }
  return 500;
}

std::string ErrorJson(ErrorCode code, const std::string& message) {
  nlohmann::ordered_json j;
  j["code"] = static_cast<int>(code);
  // Messages may carry arbitrary client bytes (not valid UTF-8); replace rather than throw.
  j["message"] = message;
  j["details"] = nlohmann::ordered_json::array();
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace agentfense::server

// Error → transport status at the edges: gRPC codes are the ErrorCode numbers 1:1; HTTP statuses
// follow grpc-gateway's mapping (WIRE.md "REST JSON conventions").
#pragma once

#include <grpcpp/support/status.h>

#include <string>

#include "base/error.h"

namespace agentfense::server {

// The message shown to clients: the error with its context chain, except for kInternal and
// kUnknown, which are logged in full and answered with a generic text (no host paths leak).
std::string ClientMessage(const Error& error);

grpc::Status ToGrpcStatus(const Error& error);

// grpc-gateway's HTTP status for a gRPC code.
int HttpStatusForCode(ErrorCode code);

// {"code": N, "message": "...", "details": []}
std::string ErrorJson(ErrorCode code, const std::string& message);

}  // namespace agentfense::server
